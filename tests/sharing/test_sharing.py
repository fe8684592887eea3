"""1515 sharing: tiers and deadlines, decisions, grants, the gateway's checks, masking and audit."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, func, select, text

from shgov.catalog import service as catalog
from shgov.core.audit.models import AuditRecord
from shgov.core.calendar.service import add_working_days, city_today
from shgov.core.db import Database, utcnow
from shgov.core.events import Event, matches
from shgov.lake.synthetic import SyntheticCity
from shgov.sharing import service as sharing
from tests.sharing.conftest import auth, file

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
TokenFor = Callable[[str], str]
PUDONG = "310115"


def approve(client: httpx.Client, token: str, request_id: str, **body: Any) -> httpx.Response:
    return client.post(
        f"/api/v1/sharing/requests/{request_id}/decisions", json={"action": "approve", **body}, headers=auth(token)
    )


def person_grant(client: httpx.Client, token_for: TokenFor, codes: dict[str, str], **decision: Any) -> dict[str, Any]:
    """市民政局 asks for Pudong's residents in the person register; the big-data centre approves."""
    filed = file(
        client,
        token_for("minzheng.admin"),
        resource_code=codes["person"],
        items=["id_number", "name", "sex", "district_code", "marital_status"],
        purpose="社会救助家庭经济状况核对",
        scenario="低保申请核对",
        row_scope={"district_code": PUDONG},
        duration_days=90,
    )
    assert filed.status_code == 201, filed.text
    body: dict[str, Any] = filed.json()
    decided = approve(client, token_for("data.officer"), body["id"], **decision)
    assert decided.status_code == 200, decided.text
    result: dict[str, Any] = decided.json()
    return result


def pudong_resident_url(city: SyntheticCity, codes: dict[str, str]) -> str:
    """The gateway URL of a Pudong resident in the person register (inside the grants' rows)."""
    someone = city.get("population").filter(pl.col("district_code") == PUDONG).row(0, named=True)["id_number"]
    return f"/api/v1/share/{codes['person']}/{someone}"


def test_the_hub_sets_the_tier_and_the_deadline_in_working_days(
    client: httpx.Client, token_for: TokenFor, codes: dict[str, str], lake_dir: Path, db: Database
) -> None:
    requester = token_for("minzheng.admin")
    today = city_today()
    # Aggregated, unconditional, for a key scenario: granted at once (tier 1).
    fast = file(
        client,
        requester,
        resource_code=codes["tax"],
        items=["credit_code", "name", "employees"],
        purpose="企业开办后续服务",
        scenario="企业开办一件事",
        key_scenario_code="enterprise-start",
    )
    assert fast.status_code == 201, fast.text
    assert (fast.json()["tier"], fast.json()["status"]) == (1, "granted")
    assert fast.json()["grant_id"] is not None
    assert fast.json()["deadline"] == add_working_days(today, 1).isoformat()
    # The same data outside the key-scenario list goes to its owner (tier 5).
    slower = file(
        client, requester, resource_code=codes["tax"], items=["credit_code"], purpose="统计分析", scenario="年度统计"
    )
    assert (slower.json()["tier"], slower.json()["status"]) == (5, "reviewing")
    assert slower.json()["deadline"] == add_working_days(today, 5).isoformat()
    # Data the centre does not hold yet: coordination (tier 15).
    with db.session() as session:
        data = catalog.ResourceData(
            title="养老床位信息",
            class_code="3",
            item_code="09",
            category_code="003",
            provider_department_code="310000.mz",
            tenant_code="310000",
            format_class="database",
            sharing_type="unconditional",
            sharing_method="api",
            open_type="none",
            update_cycle="monthly",
            aggregation_mode="incremental",
            lake_resource="care_beds",
            items=[catalog.ItemData("institution_code", "机构代码", is_key=True), catalog.ItemData("beds", "床位数")],
        )
        entry = catalog.create_resource(session, None, data)
        catalog.transition(session, None, entry, "submit")
        catalog.transition(session, None, entry, "approve")
        beds = entry.code
    coordinated = file(
        client, token_for("pudong.admin"), resource_code=beds, items=["beds"], purpose="养老规划", scenario="床位规划"
    )
    assert coordinated.status_code == 403  # a district administrator has no department to request for
    slow = file(
        client,
        token_for("data.officer"),
        resource_code=beds,
        items=["beds"],
        purpose="养老服务规划",
        scenario="全市床位布局",
    )
    assert (slow.json()["tier"], slow.json()["status"]) == (15, "coordinating")
    assert slow.json()["deadline"] == add_working_days(today, 15).isoformat()


def test_bad_requests_are_refused_and_named(client: httpx.Client, token_for: TokenFor, codes: dict[str, str]) -> None:
    requester = token_for("minzheng.admin")
    base = {"purpose": "核对", "scenario": "核对"}
    negative = file(client, requester, resource_code=codes["tax"], items=["credit_code", "tax_status"], **base)
    assert negative.status_code == 422
    assert negative.json()["errors"][0]["field"] == "items"
    assert "tax_status" in negative.json()["detail"]
    unknown = file(client, requester, resource_code=codes["tax"], items=["shoe_size"], **base)
    assert unknown.status_code == 422
    own = file(client, requester, resource_code=codes["marriages"], items=["id_number"], **base)
    assert own.status_code == 422  # 民政 holds marriages itself
    scope = file(client, requester, resource_code=codes["tax"], items=["name"], row_scope={"planet": "x"}, **base)
    assert scope.json()["errors"][0]["field"] == "row_scope"
    assert file(client, requester, resource_code="999999/00001", items=["x"], **base).status_code == 404
    citizen = file(client, token_for("citizen"), resource_code=codes["tax"], items=["name"], **base)
    assert citizen.status_code == 403


def test_owners_decide_refusals_need_a_written_reason_and_requesters_may_withdraw(
    client: httpx.Client, token_for: TokenFor, codes: dict[str, str], lake_dir: Path
) -> None:
    requester, centre = token_for("minzheng.admin"), token_for("data.officer")
    filed = file(
        client, requester, resource_code=codes["person"], items=["id_number", "name"], purpose="核对", scenario="核对"
    ).json()
    url = f"/api/v1/sharing/requests/{filed['id']}/decisions"
    assert client.post(url, json={"action": "approve"}, headers=auth(requester)).status_code == 403
    terse = client.post(url, json={"action": "refuse", "note": "不行"}, headers=auth(centre))
    assert terse.status_code == 422
    assert terse.json()["errors"][0]["field"] == "note"
    refused = client.post(
        url, json={"action": "refuse", "note": "该场景不属于法定职责范围，建议改用核验接口"}, headers=auth(centre)
    )
    assert refused.json()["status"] == "refused"
    assert [h["action"] for h in refused.json()["history"]] == ["file", "refuse"]
    assert client.post(url, json={"action": "approve"}, headers=auth(centre)).status_code == 409
    other = file(
        client, requester, resource_code=codes["person"], items=["sex"], purpose="统计", scenario="统计"
    ).json()
    withdrawn = client.post(
        f"/api/v1/sharing/requests/{other['id']}/decisions", json={"action": "withdraw"}, headers=auth(requester)
    )
    assert withdrawn.json()["status"] == "withdrawn"
    more = approve(client, centre, file(
        client, requester, resource_code=codes["person"], items=["sex"], purpose="统计", scenario="统计"
    ).json()["id"], items=["sex", "name"])  # fmt: skip
    assert more.status_code == 422  # more than was asked for


def test_the_gateway_serves_granted_items_masked_within_the_rows_granted(
    client: httpx.Client,
    token_for: TokenFor,
    client_token: Callable[[str], str],
    codes: dict[str, str],
    lake_dir: Path,
    city: SyntheticCity,
) -> None:
    decided = person_grant(client, token_for, codes, items=["id_number", "name", "sex", "district_code"])
    assert decided["status"] == "granted"
    system = client_token("310000.mz")
    population = city.get("population")
    pudong = population.filter(pl.col("district_code") == PUDONG)
    elsewhere = population.filter(pl.col("district_code") != PUDONG)
    someone = pudong.row(0, named=True)
    url = f"/api/v1/share/{codes['person']}"
    got = client.get(f"{url}/{someone['id_number']}", headers=auth(system))
    assert got.status_code == 200, got.text
    record = got.json()["record"]
    assert set(record) == {"id_number", "name", "sex", "district_code"}
    assert record["id_number"] == someone["id_number"][:4] + "*" * 10 + someone["id_number"][-4:]
    assert record["name"].startswith(someone["name"][0])
    assert "*" in record["name"]
    assert record["sex"] == someone["sex"]
    assert got.json()["masked"] == ["id_number", "name"]
    assert someone["id_number"] not in got.text  # no unmasked 身份证号 without a plain grant
    # Another district's resident is invisible, as is anyone unknown.
    outside = elsewhere.row(0, named=True)["id_number"]
    assert client.get(f"{url}/{outside}", headers=auth(system)).status_code == 404
    batch = client.post(
        f"{url}/batch",
        json={"keys": [someone["id_number"], outside, "310101199001011234", pudong.row(1, named=True)["id_number"]]},
        headers=auth(system),
    )
    assert batch.status_code == 200
    assert len(batch.json()["rows"]) == 2
    narrow = client.get(f"{url}/{someone['id_number']}", params={"fields": "sex"}, headers=auth(system))
    assert narrow.json()["record"] == {"sex": someone["sex"]}
    assert (
        client.get(
            f"{url}/{someone['id_number']}", params={"fields": "marital_status"}, headers=auth(system)
        ).status_code
        == 403
    )
    # A filtered query pages in key order, within the granted rows only.
    first = client.get(url, params={"eq": "sex:女", "limit": 5}, headers=auth(system)).json()
    assert len(first["rows"]) == 5
    assert {r["sex"] for r in first["rows"]} == {"女"}
    assert {r["district_code"] for r in first["rows"]} == {PUDONG}
    second = client.get(url, params={"eq": "sex:女", "limit": 5, "after": first["next_after"]}, headers=auth(system))
    assert second.status_code == 200
    assert not {r["id_number"] for r in first["rows"]} & {r["id_number"] for r in second.json()["rows"]}
    assert client.get(url, params={"eq": "marital_status:已婚"}, headers=auth(system)).status_code == 403
    assert client.get(url, params={"eq": "sex"}, headers=auth(system)).status_code == 422
    # A plain grant returns the number itself.
    plain = person_grant(client, token_for, codes, items=["id_number", "sex"], plain_items=["id_number"])
    assert plain["status"] == "granted"


def test_every_refusal_is_refused_and_audited(
    client: httpx.Client,
    token_for: TokenFor,
    client_token: Callable[[str], str],
    codes: dict[str, str],
    lake_dir: Path,
    city: SyntheticCity,
    db: Database,
    app: FastAPI,
) -> None:
    decided = person_grant(client, token_for, codes, items=["id_number", "sex", "district_code"])
    system = client_token("310000.mz")
    url = pudong_resident_url(city, codes)
    calls: list[int] = []

    def call(token: str, **params: str) -> int:
        status = client.get(url, params=params, headers=auth(token)).status_code
        calls.append(status)
        return status

    assert call(system) == 200
    assert call(client_token("310000.ga")) == 403  # no grant for 公安's client
    assert call(token_for("minzheng.admin")) == 403  # a person's token, not a system client
    assert call("forged-token-value") == 401  # refused and audited, without a caller
    assert call(system, fields="name") == 403  # not granted
    # The negative list changes: the next call no longer serves the item, and a re-check narrows the grant.
    centre = token_for("data.officer")
    listed = client.post(
        "/api/v1/catalog/negative",
        json={"resource_code": codes["person"], "item": "sex", "legal_basis": "《个人信息保护法》第二十八条"},
        headers=auth(centre),
    )
    assert listed.status_code == 201
    assert call(system, fields="sex") == 403
    prefix, serial = codes["person"].split("/")
    rechecked = client.post(f"/api/v1/sharing/grants/recheck/{prefix}/{serial}", headers=auth(centre)).json()
    assert rechecked[0]["items"] == ["id_number", "district_code"]
    assert "sex" in rechecked[0]["status_reason"]
    # Expired, then revoked: refused.
    grant_id = decided["grant_id"]
    with db.session() as session:
        grant = sharing.find_grant(session, uuid.UUID(grant_id))
        assert grant is not None
        grant.expires_at = utcnow() - timedelta(minutes=1)
    assert call(system) == 403
    with db.session() as session:
        grant = sharing.find_grant(session, uuid.UUID(grant_id))
        assert grant is not None
        grant.expires_at = utcnow() + timedelta(days=1)
    assert call(system) == 200
    revoked = client.post(
        f"/api/v1/sharing/grants/{grant_id}/revoke", json={"reason": "核对工作结束"}, headers=auth(centre)
    )
    assert revoked.json()["status"] == "revoked"
    assert call(system) == 403
    with db.session() as session:
        trail = session.execute(
            select(AuditRecord.outcome, func.count())
            .where(AuditRecord.action == "sharing.gateway.read")
            .group_by(AuditRecord.outcome)
        ).all()
    outcomes = dict(trail)
    assert outcomes.get("ok", 0) == calls.count(200)
    assert outcomes.get("denied", 0) == len(calls) - calls.count(200)
    owner_view = client.get("/api/v1/sharing/audit", headers=auth(centre)).json()
    assert owner_view[0]["resource"] == codes["person"]
    assert {"purpose", "items", "digest", "rows"} <= set(next(r for r in owner_view if r["outcome"] == "ok"))
    stats = client.get("/api/v1/sharing/stats", headers=auth(centre)).json()
    by_department = {c["department"]: 0 for c in stats["calls"]}
    for c in stats["calls"]:
        by_department[c["department"]] += c["calls"]
    # One call came from 公安's client, one with a forged token (no department).
    assert by_department == {"310000.mz": len(calls) - 2, "310000.ga": 1, None: 1}


def test_an_admission_is_reused_briefly_and_dropped_at_once_when_this_process_changes_a_grant(
    client: httpx.Client,
    token_for: TokenFor,
    client_token: Callable[[str], str],
    codes: dict[str, str],
    lake_dir: Path,
    city: SyntheticCity,
    connection: Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway = sharing.gateway(lake_dir, cache_seconds=2.0)  # the app's gateway for this lake
    now = [1000.0]
    # the admission's lifetime on a clock the test steps, whatever the machine's load
    monkeypatch.setattr(gateway, "clock", lambda: now[0])
    decided = person_grant(client, token_for, codes, items=["sex", "district_code"])
    system = client_token("310000.mz")
    url = pudong_resident_url(city, codes)
    assert client.get(url, headers=auth(system)).status_code == 200
    # Another process suspends the grant (a write this process never sees): the admission holds a moment...
    connection.execute(text("UPDATE sharing_grants SET status = 'suspended'"))
    now[0] += 1.9
    assert client.get(url, headers=auth(system)).status_code == 200
    assert gateway.admitted(system, codes["person"], None) is not None
    # ...and no longer than the cache time.
    now[0] += 0.2
    assert client.get(url, headers=auth(system)).status_code == 403
    connection.execute(text("UPDATE sharing_grants SET status = 'active'"))
    assert client.get(url, headers=auth(system)).status_code == 200
    # A revocation in this process is seen by the next call.
    centre = token_for("data.officer")
    revoked = client.post(
        f"/api/v1/sharing/grants/{decided['grant_id']}/revoke", json={"reason": "核对工作结束"}, headers=auth(centre)
    )
    assert revoked.status_code == 200
    assert client.get(url, headers=auth(system)).status_code == 403


def test_the_gateway_documents_the_parameters_it_reads_itself(client: httpx.Client) -> None:
    spec = client.get("/api/openapi.json").json()
    operation = spec["paths"]["/api/v1/share/{prefix}/{serial}/{key}"]["get"]
    assert {(p["name"], p["in"]) for p in operation["parameters"]} == {
        ("prefix", "path"),
        ("serial", "path"),
        ("key", "path"),
        ("fields", "query"),
    }
    assert "RecordOut" in str(operation["responses"]["200"])


def test_a_grant_answers_429_with_retry_after_beyond_its_rate(
    client: httpx.Client,
    token_for: TokenFor,
    client_token: Callable[[str], str],
    codes: dict[str, str],
    lake_dir: Path,
    city: SyntheticCity,
) -> None:
    decided = person_grant(client, token_for, codes, items=["sex"], rate_per_minute=2)
    assert decided["status"] == "granted"
    system = client_token("310000.mz")
    url = pudong_resident_url(city, codes)
    assert [client.get(url, headers=auth(system)).status_code for _ in range(2)] == [200, 200]
    limited = client.get(url, headers=auth(system))
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["content-type"].startswith("application/problem+json")


def test_the_sweep_reminds_escalates_and_expires(
    client: httpx.Client, token_for: TokenFor, codes: dict[str, str], db: Database, lake_dir: Path
) -> None:
    filed = file(
        client,
        token_for("minzheng.admin"),
        resource_code=codes["person"],
        items=["sex"],
        purpose="统计",
        scenario="统计",
    ).json()
    with db.session() as session:
        request = sharing.find_request(session, uuid.UUID(filed["id"]))
        assert request is not None
        result = sharing.sweep(session, today=city_today())
        due = sharing.sweep(session, today=request.deadline)
        assert request.reminded_at is not None
        late = sharing.sweep(session, today=request.deadline + timedelta(days=3))
        again = sharing.sweep(session, today=request.deadline + timedelta(days=4))
        assert request.escalated_at is not None
        steps = [h.action for h in sharing.history(session, request.id)]
        timing = sharing.on_time(session, today=request.deadline + timedelta(days=3))
    assert result.escalated == 0
    assert due.reminded >= 1
    assert late.escalated >= 1
    assert again.escalated == 0  # escalated once
    assert steps[-1] == "escalate"
    assert timing.overdue >= 1
    listed = client.get(
        "/api/v1/sharing/requests", params={"status": "reviewing"}, headers=auth(token_for("data.officer"))
    ).json()
    assert any(r["id"] == filed["id"] for r in listed)


def test_the_pages_let_a_department_request_and_the_owner_decide(
    server_url: str, codes: dict[str, str], lake_dir: Path
) -> None:
    from shgov.core.identity.demo import DEMO_PASSWORD
    from tests.disputes.test_pages import browser_for, csrf_of

    with browser_for(server_url, "minzheng.admin", DEMO_PASSWORD) as requester:
        page = requester.get("/data/sharing")
        assert page.status_code == 200
        filed = requester.post(
            "/data/sharing",
            data={
                "resource_code": codes["person"],
                "items": "id_number，sex",
                "purpose": "低保核对",
                "scenario": "社会救助",
                "duration_days": "30",
                "csrf_token": csrf_of(page.text),
            },
        )
        assert "低保核对" in filed.text
        refused = requester.post(
            "/data/sharing",
            data={"resource_code": codes["tax"], "items": "tax_status", "purpose": "核对", "scenario": "核对",
                  "csrf_token": csrf_of(page.text)},
        )  # fmt: skip
        assert 'data-testid="sharing-error"' in refused.text
    with browser_for(server_url, "data.officer", DEMO_PASSWORD) as centre:
        page = centre.get("/data/sharing")
        assert "低保核对" in page.text
        request_id = page.text.split('data-request="')[1].split('"')[0]
        done = centre.post(f"/data/sharing/{request_id}", data={"action": "approve", "csrf_token": csrf_of(page.text)})
        assert done.status_code == 200
        assert "已授权" in done.text or "granted" in done.text
        assert centre.get("/data/sharing/audit").status_code == 200


def test_catalog_events_recheck_live_grants(
    client: httpx.Client, token_for: TokenFor, codes: dict[str, str], lake_dir: Path, db: Database, app: FastAPI
) -> None:
    decided = person_grant(client, token_for, codes, items=["id_number", "sex", "district_code"])
    subscribers = {name: (pattern, handler) for name, pattern, handler in sharing.subscribers(db, app.state.settings)}
    assert set(subscribers) <= set(app.state.relay.bus.subscriptions)  # the app wires them to its bus
    with db.session() as session:
        catalog.add_negative(session, None, codes["person"], "sex", "《个人信息保护法》第二十八条")
    pattern, handler = subscribers["sharing.recheck-on-negative"]
    event = Event(uuid.uuid4(), "catalog.negative.added", {"resource": codes["person"], "item": "sex"}, utcnow())
    assert matches(pattern, event.type)
    handler(event)
    with db.session() as session:
        grant = sharing.find_grant(session, uuid.UUID(decided["grant_id"]))
        assert grant is not None
        assert grant.items == ["id_number", "district_code"]
        assert grant.status == "active"
        entry = catalog.get_resource(session, codes["person"])
        catalog.transition(session, None, entry, "retire", "并入新库")
    handler(Event(uuid.uuid4(), "catalog.resource.retired", {"code": codes["person"], "version": 1}, utcnow()))
    with db.session() as session:
        grant = sharing.find_grant(session, uuid.UUID(decided["grant_id"]))
        assert grant is not None
        assert grant.status == "suspended"

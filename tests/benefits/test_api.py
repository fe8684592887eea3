"""The benefits API over real HTTP: managers write, test and run policies; a bad policy is a problem
document naming the field with the line and column; citizens see their own grants and reasons only."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from shgov.benefits import service as benefits
from shgov.core.db import Database
from shgov.core.identity.service import create_user
from shgov.registers import service as registers

POLICY: dict[str, Any] = {
    "code": "newborn_grant",
    "name": "新生儿一次性补贴",
    "target": "person",
    "department_code": "310000.wj",
    "legal_basis": "《上海市生育保险办法》（示例条款）",
    "mode": "auto",
    "period": "once",
    "effective_from": "2020-01-01",
    "conditions": ["age(birth_date) < 3", 'district_code in ["310101", "310104", "310105", "310115"]'],
    "amount": "1000",
}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_managers_write_test_and_run_a_policy_and_the_citizen_sees_why(
    client: httpx.Client, token_for: Callable[[str], str], db: Database, lake_dir: Path
) -> None:
    admin = _bearer(token_for("admin"))
    assert client.get("/api/v1/benefits/policies").status_code == 401
    bad = {**POLICY, "conditions": ["age(birth_date) < 3", "district_code in [310101]"]}
    answer = client.post("/api/v1/benefits/policies", json=bad, headers={**admin, "Accept-Language": "en"})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    error = answer.json()["errors"][0]
    assert error["field"] == "conditions[1]"
    assert "line 1, column 19" in error["message"]
    extra = client.post("/api/v1/benefits/policies", json={**POLICY, "sneaky": 1}, headers=admin)
    assert extra.status_code == 422
    with db.session() as session:
        assert benefits.latest_version(session, "newborn_grant") is None  # nothing half-saved
    saved = client.post("/api/v1/benefits/policies", json=POLICY, headers=admin)
    assert saved.status_code == 201, saved.text
    assert saved.json()["latest_version"] == 1
    assert saved.json()["active_version"] is None
    schema = client.get("/api/v1/benefits/schema", headers=admin).json()
    assert schema["person"]["fields"]["birth_date"]["type"] == "date"
    dry = client.get(
        "/api/v1/benefits/policies/newborn_grant/dry-run", params={"version": 1, "as_of": "2026-11-24"}, headers=admin
    )
    assert dry.status_code == 200, dry.text
    qualified = dry.json()["qualified"]
    assert qualified > 0
    assert dry.json()["total_fen"] == qualified * 100_000
    with db.session() as session:
        folder, _ = registers.live_folder(session, lake_dir, "person")
    persons = pl.read_parquet(folder / "*.parquet").filter(pl.col("birth_date") > pl.date(2024, 6, 1))
    baby = persons.filter(pl.col("district_code").is_in(["310101", "310104", "310105", "310115"]))["id_number"][0]
    trace = client.get(
        "/api/v1/benefits/policies/newborn_grant/explain", params={"key": baby, "as_of": "2026-11-24"}, headers=admin
    ).json()
    assert trace["eligible"] is True
    assert [c["outcome"] for c in trace["conditions"]] == ["pass", "pass"]
    assert client.post("/api/v1/benefits/policies/newborn_grant/runs", json={}, headers=admin).status_code == 409
    activated = client.post("/api/v1/benefits/policies/newborn_grant/versions/1/activate", headers=admin)
    assert activated.json()["active_version"] == 1
    ran = client.post("/api/v1/benefits/policies/newborn_grant/runs", json={"as_of": "2026-11-24"}, headers=admin)
    assert ran.status_code == 202, ran.text  # queued: written outside the request (test_queued_runs)
    run_id = uuid.UUID(ran.json()["id"])
    benefits.run_in_chunks(db, lake_dir, "newborn_grant", date(2026, 11, 24), run_id=run_id)
    assert client.get(ran.headers["Location"], headers=admin).json()["granted"] == qualified
    # the baby's parent account stands in for the baby: an account registered with the baby's ID number
    with db.session() as session:
        create_user(session, kind="citizen", username="baby1", display_name="宝宝", id_number=baby)
        create_user(session, kind="citizen", username="nobody", display_name="路人", id_number="110101199003077774")
    mine = [
        g
        for g in client.get("/api/v1/benefits/mine", headers=_bearer(token_for("baby1"))).json()
        if g["policy_code"] == "newborn_grant"
    ]
    assert [(g["amount_fen"], g["status"]) for g in mine] == [(100_000, "granted")]
    assert mine[0]["trace"]["conditions"][0]["outcome"] == "pass"
    why = client.get("/api/v1/benefits/mine/newborn_grant/explain", headers=_bearer(token_for("baby1")))
    assert why.json()["eligible"] is True
    other = _bearer(token_for("nobody"))
    assert client.get("/api/v1/benefits/mine", headers=other).json() == []
    assert client.get("/api/v1/benefits/mine/newborn_grant/explain", headers=other).json()["found"] is False
    grant_id = mine[0]["id"]
    assert (
        client.post(f"/api/v1/benefits/grants/{grant_id}/appeal", json={"reason": "x"}, headers=other).status_code
        == 404
    )
    assert (
        client.post(f"/api/v1/benefits/grants/{grant_id}/reverse", json={"reason": "复核"}, headers=other).status_code
        == 403
    )
    assert client.post("/api/v1/benefits/policies", json=POLICY, headers=other).status_code == 403
    appealed = client.post(
        f"/api/v1/benefits/grants/{grant_id}/appeal", json={"reason": "请核对金额"}, headers=_bearer(token_for("baby1"))
    )
    assert appealed.json()["status"] == "appealed"

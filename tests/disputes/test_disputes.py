"""异议: filing about register values, routing to the authoritative department, deciding, history."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest
from sqlalchemy import select

from shgov.core.calendar.service import add_working_days, city_today
from shgov.core.db import Database
from shgov.core.events import OutboxEvent
from shgov.disputes.models import Dispute
from shgov.lake.synthetic import SyntheticCity
from shgov.registers import service as registers

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
TokenFor = Callable[[str], str]


def file(client: httpx.Client, token: str, **body: object) -> httpx.Response:
    return client.post("/api/v1/disputes", json=body, headers={"Authorization": f"Bearer {token}"})


def test_a_citizen_disputes_their_address_and_the_source_department_corrects_it(
    client: httpx.Client, token_for: TokenFor, resident: tuple[str, str], lake_dir: Path, db: Database
) -> None:
    id_number, token = resident
    filed = file(
        client,
        token,
        register="person",
        record_key=id_number,
        element="address",
        proposed_value="浦东新区陆家嘴街道梅园一村1号101室",
        reason="我已搬家，户籍地址已变更",
        evidence=[{"name": "居住证明", "reference": "scan-001"}],
    )
    assert filed.status_code == 201, filed.text
    dispute = filed.json()
    assert dispute["department_code"] == "310000.ga"  # 一数一源: 公安 is the source of addresses
    assert dispute["status"] == "filed"
    assert dispute["deadline"] == add_working_days(city_today(), 5).isoformat()
    admin = {"Authorization": f"Bearer {token_for('admin')}"}
    url = f"/api/v1/disputes/{dispute['id']}/decisions"
    assert (
        client.post(url, json={"action": "verify", "reason": "核实中"}, headers=admin).json()["status"] == "verifying"
    )
    corrected = client.post(url, json={"action": "correct", "reason": "经核实，地址有误，已更正"}, headers=admin)
    assert corrected.status_code == 200, corrected.text
    body = corrected.json()
    assert body["status"] == "corrected"
    assert [h["to_status"] for h in body["history"]] == ["filed", "verifying", "corrected"]
    with db.session() as session:
        record = registers.find_person(session, registers.shared_reader(lake_dir), id_number, ["address"])
        changed = session.scalars(select(OutboxEvent).where(OutboxEvent.type == "registers.person.changed")).all()
        told = session.scalars(select(OutboxEvent).where(OutboxEvent.type == "disputes.dispute.decided")).all()
    assert record == {"id_number": id_number, "address": "浦东新区陆家嘴街道梅园一村1号101室"}
    assert [e.payload["key"] for e in changed] == [id_number]
    assert told[-1].payload["status"] == "corrected"
    mine = client.get(f"/api/v1/disputes/{dispute['id']}", headers={"Authorization": f"Bearer {token}"}).json()
    assert mine["decision_reason"] == "经核实，地址有误，已更正"


def test_a_marital_status_dispute_goes_to_civil_affairs(
    client: httpx.Client, token_for: TokenFor, resident: tuple[str, str], lake_dir: Path
) -> None:
    id_number, token = resident
    filed = file(
        client,
        token,
        register="person",
        record_key=id_number,
        element="marital_status",
        proposed_value="离婚",
        reason="已办理离婚登记",
    ).json()
    assert filed["department_code"] == "310000.mz"
    url = f"/api/v1/disputes/{filed['id']}/decisions"
    refused = client.post(
        url, json={"action": "reject", "reason": ""}, headers={"Authorization": f"Bearer {token_for('minzheng.admin')}"}
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "reason"
    rejected = client.post(
        url,
        json={"action": "reject", "reason": "未查到离婚登记记录"},
        headers={"Authorization": f"Bearer {token_for('minzheng.admin')}"},
    )
    assert rejected.json()["status"] == "rejected"
    again = client.post(
        url,
        json={"action": "correct", "reason": "x"},
        headers={"Authorization": f"Bearer {token_for('minzheng.admin')}"},
    )
    assert again.status_code == 409


def test_only_the_authoritative_department_sees_and_decides(
    client: httpx.Client, token_for: TokenFor, resident: tuple[str, str], lake_dir: Path
) -> None:
    id_number, token = resident
    filed = file(
        client,
        token,
        register="person",
        record_key=id_number,
        element="address",
        proposed_value="新地址9号",
        reason="地址错误",
    ).json()
    civil = {"Authorization": f"Bearer {token_for('minzheng.admin')}"}
    assert client.get(f"/api/v1/disputes/{filed['id']}", headers=civil).status_code == 404
    response = client.post(
        f"/api/v1/disputes/{filed['id']}/decisions", json={"action": "verify", "reason": "x"}, headers=civil
    )
    assert response.status_code == 404


def test_citizens_may_dispute_only_their_own_records_and_bad_filings_are_named(
    client: httpx.Client, resident: tuple[str, str], city: SyntheticCity, lake_dir: Path
) -> None:
    id_number, token = resident
    other = city.get("population").filter(pl.col("id_number") != id_number)["id_number"][0]
    assert (
        file(
            client, token, register="person", record_key=other, element="address", proposed_value="x", reason="不是我的"
        ).status_code
        == 403
    )
    unknown = file(client, token, register="person", record_key=id_number, element="shoe_size", reason="鞋码不对")
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "element"
    sourceless = file(client, token, register="person", record_key=id_number, element="phone", reason="电话错误")
    assert sourceless.status_code == 422
    first = file(
        client,
        token,
        register="person",
        record_key=id_number,
        element="address",
        proposed_value="甲",
        reason="地址错误",
    )
    assert first.status_code == 201
    duplicate = file(
        client,
        token,
        register="person",
        record_key=id_number,
        element="address",
        proposed_value="乙",
        reason="地址错误",
    )
    assert duplicate.status_code == 409


def test_overdue_disputes_are_flagged(
    client: httpx.Client, token_for: TokenFor, resident: tuple[str, str], lake_dir: Path, db: Database
) -> None:
    id_number, token = resident
    filed = file(
        client,
        token,
        register="person",
        record_key=id_number,
        element="address",
        proposed_value="丙",
        reason="地址错误",
    ).json()
    with db.session() as session:
        dispute = session.get(Dispute, uuid.UUID(filed["id"]))
        assert dispute is not None
        dispute.deadline = city_today() - timedelta(days=3)
    admin = {"Authorization": f"Bearer {token_for('admin')}"}
    overdue = client.get("/api/v1/disputes", params={"overdue": "true"}, headers=admin).json()
    assert [d["id"] for d in overdue] == [filed["id"]]
    assert overdue[0]["overdue"] is True


def test_deadlines_are_data_set_per_element_by_city_administrators(
    client: httpx.Client, token_for: TokenFor, resident: tuple[str, str], lake_dir: Path
) -> None:
    id_number, token = resident
    admin = {"Authorization": f"Bearer {token_for('admin')}"}
    civil = {"Authorization": f"Bearer {token_for('minzheng.admin')}"}
    assert (
        client.put("/api/v1/disputes/deadlines/person/address", json={"working_days": 3}, headers=civil).status_code
        == 403
    )
    rule = client.put("/api/v1/disputes/deadlines/person/address", json={"working_days": 3}, headers=admin)
    assert rule.status_code == 200, rule.text
    assert rule.json() == {"register": "person", "element": "address", "working_days": 3}
    assert (
        client.put("/api/v1/disputes/deadlines/person/shoe_size", json={"working_days": 3}, headers=admin).status_code
        == 422
    )
    assert (
        client.put("/api/v1/disputes/deadlines/person/*", json={"working_days": 99}, headers=admin).status_code == 422
    )
    filed = file(
        client,
        token,
        register="person",
        record_key=id_number,
        element="address",
        proposed_value="丁",
        reason="地址错误",
    ).json()
    assert filed["deadline"] == add_working_days(city_today(), 3).isoformat()
    listed = client.get("/api/v1/disputes/deadlines", headers=admin).json()
    assert {"register": "person", "element": "address", "working_days": 3} in listed


PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def evidence_upload(
    client: httpx.Client, token: str, dispute_id: str, files: list[tuple[str, bytes, str]]
) -> httpx.Response:
    return client.post(
        f"/api/v1/disputes/{dispute_id}/evidence",
        files=[("file", f) for f in files],
        headers={"Authorization": f"Bearer {token}"},
    )


def test_evidence_files_are_uploaded_by_the_filer_and_read_by_the_department(
    client: httpx.Client, token_for: TokenFor, resident: tuple[str, str], lake_dir: Path, app: object
) -> None:
    id_number, token = resident
    filed = file(client, token, register="person", record_key=id_number, element="address", reason="地址有误")
    dispute_id = filed.json()["id"]
    uploaded = evidence_upload(
        client, token, dispute_id, [("居住证明.pdf", PDF, "application/pdf"), ("../../门牌照片.png", PNG, "image/png")]
    )
    assert uploaded.status_code == 201, uploaded.text
    files = uploaded.json()["attachments"]
    assert [(f["name"], f["media_type"], f["size"]) for f in files] == [
        ("居住证明.pdf", "application/pdf", len(PDF)),
        ("门牌照片.png", "image/png", len(PNG)),  # no folders in a stored name
    ]
    assert "evidence: 居住证明.pdf, 门牌照片.png" in uploaded.json()["history"][-1]["note"]
    for who in (f"Bearer {token}", f"Bearer {token_for('admin')}"):
        got = client.get(files[0]["href"], headers={"Authorization": who})
        assert got.status_code == 200
        assert got.content == PDF
        assert got.headers["content-type"] == "application/pdf"
        assert "filename*=UTF-8''%E5%B1%85" in got.headers["content-disposition"]
        assert got.headers["x-content-type-options"] == "nosniff"
    # Neither another department nor an anonymous caller sees it.
    other = {"Authorization": f"Bearer {token_for('pudong.window')}"}
    assert client.get(files[0]["href"], headers=other).status_code == 404
    assert client.get(files[0]["href"]).status_code == 401
    auditor = {"Authorization": f"Bearer {token_for('auditor')}"}
    trail = client.get("/api/v1/audit/records", params={"action": "disputes.evidence.read"}, headers=auditor).json()
    assert len([r for r in trail if r["object_id"] == dispute_id]) == 2


def test_bad_evidence_is_refused_whole_and_named(
    client: httpx.Client, token_for: TokenFor, resident: tuple[str, str], lake_dir: Path
) -> None:
    id_number, token = resident
    filed = file(client, token, register="person", record_key=id_number, element="address", reason="地址有误")
    dispute_id = filed.json()["id"]
    cases = [
        [("证明.pdf", b"just text pretending to be a PDF", "application/pdf")],
        [("ok.pdf", PDF, "application/pdf"), ("empty.png", b"", "image/png")],
        [("big.pdf", PDF + b"0" * (6 * 1024 * 1024), "application/pdf")],
        [(f"{i}.pdf", PDF, "application/pdf") for i in range(6)],
    ]
    for files in cases:
        refused = evidence_upload(client, token, dispute_id, files)
        assert refused.status_code in (413, 422), refused.text
        if refused.status_code == 422:
            assert refused.json()["errors"][0]["field"] in ("evidence", "file")
    one = client.get(f"/api/v1/disputes/{dispute_id}", headers={"Authorization": f"Bearer {token}"}).json()
    assert one["attachments"] == []  # all or none: the good file of a refused batch is not attached
    # Only the filer adds evidence, and only while the dispute is open.
    admin = {"Authorization": f"Bearer {token_for('admin')}"}
    by_department = evidence_upload(client, token_for("admin"), dispute_id, [("a.pdf", PDF, "application/pdf")])
    assert by_department.status_code == 403
    client.post(f"/api/v1/disputes/{dispute_id}/decisions", json={"action": "reject", "reason": "无误"}, headers=admin)
    late = evidence_upload(client, token, dispute_id, [("a.pdf", PDF, "application/pdf")])
    assert late.status_code == 409

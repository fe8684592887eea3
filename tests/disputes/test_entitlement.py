"""Disputes reveal no register value to whom may not read it: staff file only within their data-use rights,
and every answer leaves out the values of a record the caller may not read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import polars as pl
import pytest
from sqlalchemy import func, select

from shgov.core.db import Database
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import assign_role, create_user, issue_token
from shgov.disputes.models import Dispute
from shgov.lake.synthetic import SyntheticCity

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
TokenFor = Callable[[str], str]


def _staff(db: Database, username: str, role: str, scope: Scope) -> str:
    """A staff account holding ``role`` within ``scope``, and its token."""
    with db.session() as session:
        user = create_user(
            session,
            kind="staff",
            username=username,
            display_name=username,
            password="Staff#2026pass",
            tenant_code=scope.tenant_code,
            department_code=scope.department_code,
        )
        assign_role(session, user.id, role, scope)
        token, _ = issue_token(session, user.id, "password", 3600)
    return token


def _file(client: httpx.Client, token: str, key: str, element: str = "marital_status") -> httpx.Response:
    body = {"register": "person", "record_key": key, "element": element, "proposed_value": "离婚", "reason": "核对"}
    return client.post("/api/v1/disputes", json=body, headers={"Authorization": f"Bearer {token}"})


def _count(db: Database) -> int:
    with db.session(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(Dispute)) or 0)


def test_a_department_without_register_access_cannot_file_to_read_a_value(
    client: httpx.Client, token_for: TokenFor, resident: tuple[str, str], lake_dir: Path, db: Database
) -> None:
    id_number, _token = resident
    refused = _file(client, token_for("minzheng.admin"), id_number, "address")
    assert refused.status_code == 403, refused.text
    assert "registers.person.read" in refused.json()["detail"]
    assert "current_value" not in refused.text
    assert _count(db) == 0


def test_staff_file_only_about_records_in_their_scope_and_outside_it_nothing_exists(
    client: httpx.Client,
    resident: tuple[str, str],
    city: SyntheticCity,
    lake_dir: Path,
    db: Database,
) -> None:
    id_number, _token = resident
    district = city.get("population").filter(pl.col("id_number") == id_number)["district_code"][0]
    elsewhere = "310101" if district != "310101" else "310115"
    outsider = _staff(db, "outsider", "data_officer", Scope(elsewhere, None))
    insider = _staff(db, "insider", "data_officer", Scope(district, None))
    outside = _file(client, outsider, id_number)
    unknown = _file(client, outsider, "110101199003077777")
    assert outside.status_code == unknown.status_code == 404
    assert outside.json()["detail"] == unknown.json()["detail"]
    assert outside.json()["errors"] == unknown.json()["errors"]
    inside = _file(client, insider, id_number)
    assert inside.status_code == 201, inside.text
    assert inside.json()["values_withheld"] is False
    assert inside.json()["current_value"] is not None


def test_answers_leave_out_values_the_caller_may_not_read(
    client: httpx.Client, token_for: TokenFor, resident: tuple[str, str], lake_dir: Path, db: Database
) -> None:
    id_number, token = resident
    filed = _file(client, token, id_number)
    assert filed.status_code == 201, filed.text
    dispute = filed.json()
    assert dispute["current_value"] == "已婚"  # the citizen reads their own record
    assert dispute["department_code"] == "310000.mz"
    # a civil affairs data officer sees disputes routed to the department but may not read the register
    reader = _staff(db, "mz.officer", "data_officer", Scope("310000", "310000.mz"))
    for url in (f"/api/v1/disputes/{dispute['id']}", "/api/v1/disputes"):
        seen = client.get(url, headers={"Authorization": f"Bearer {reader}"})
        assert seen.status_code == 200, seen.text
        body = seen.json() if isinstance(seen.json(), dict) else seen.json()[0]
        assert body["values_withheld"] is True
        assert body["current_value"] is None
        assert body["proposed_value"] is None
        assert "已婚" not in seen.text
        assert "离婚" not in seen.text
    # the department that decides it reads its own data
    decider = client.get(
        f"/api/v1/disputes/{dispute['id']}", headers={"Authorization": f"Bearer {token_for('minzheng.admin')}"}
    ).json()
    assert decider["values_withheld"] is False
    assert decider["current_value"] == "已婚"

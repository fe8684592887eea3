"""Prefill at the window needs the applicant present (ID number and name as registered, or their window code),
reaches only applicants the clerk's window serves, and every look is in the audit log."""

from __future__ import annotations

from pathlib import Path

import httpx
import polars as pl
import pytest
from sqlalchemy import select
from stdnum.cn import ric

from shgov.core.audit.models import AuditRecord
from shgov.core.db import Database
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import assign_role, create_user, issue_token
from shgov.lake.synthetic import SyntheticCity

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
PREPARE = "/api/v1/offerings/bundle/birth/prepare"


def _clerk(db: Database, district: str) -> str:
    """A window clerk of the civil affairs bureau of ``district``, and its token."""
    with db.session() as session:
        user = create_user(
            session,
            kind="staff",
            username=f"window.{district}",
            display_name="窗口",
            password="Window#2026pass",
            tenant_code=district,
            department_code=f"{district}.mz",
        )
        assign_role(session, user.id, "window_clerk", Scope(district, f"{district}.mz"))
        token, _ = issue_token(session, user.id, "password", 3600)
    return token


def _looks(db: Database) -> list[AuditRecord]:
    with db.session(write=False) as session:
        return list(session.scalars(select(AuditRecord).where(AuditRecord.action == "cases.applicant.lookup")))


def _name(city: SyntheticCity, id_number: str) -> str:
    return str(city.get("population").filter(pl.col("id_number") == id_number)["name"][0])


def test_the_clerk_proves_the_applicant_present_before_anything_is_prefilled(
    client: httpx.Client, parent: tuple[str, str, str], city: SyntheticCity, lake_dir: Path, db: Database
) -> None:
    id_number, _token, district = parent
    clerk = {"Authorization": f"Bearer {_clerk(db, district)}"}
    bare = client.get(PREPARE, params={"applicant": id_number}, headers=clerk)
    assert bare.status_code == 422, bare.text
    assert bare.json()["errors"][0]["field"] == "identity_name"
    wrong = client.get(PREPARE, params={"applicant": id_number, "identity_name": "李四"}, headers=clerk)
    nobody = "11010119900307001" + ric.calc_check_digit("110101199003070010")
    unknown = client.get(PREPARE, params={"applicant": nobody, "identity_name": "李四"}, headers=clerk)
    assert wrong.status_code == unknown.status_code == 403
    assert wrong.json()["detail"] == unknown.json()["detail"]  # nothing tells a wrong name from no such person
    assert "prefilled" not in wrong.text
    assert _looks(db) == []
    name = _name(city, id_number)
    spaced = " ".join(name)  # as a clerk might type it
    passed = client.get(PREPARE, params={"applicant": id_number, "identity_name": spaced}, headers=clerk)
    assert passed.status_code == 200, passed.text
    assert passed.json()["prefilled"]["applicant_id_number"] == id_number
    ticket = passed.json()["presence"]
    again = client.get(PREPARE, params={"applicant": id_number, "presence": ticket}, headers=clerk)
    assert again.status_code == 200, again.text
    looks = _looks(db)
    assert [r.details["method"] for r in looks] == ["name", "ticket"]
    assert all(r.object_id and id_number not in r.object_id for r in looks)  # stored as a keyed digest
    # a ticket is the clerk's own: another clerk cannot use it
    elsewhere = next(d for d in ("310101", "310104", "310115") if d != district)
    other = {"Authorization": f"Bearer {_clerk(db, elsewhere)}"}
    stolen = client.get(PREPARE, params={"applicant": id_number, "presence": ticket}, headers=other)
    assert stolen.status_code == 403
    assert stolen.json()["errors"][0]["field"] == "identity_name"  # refused as unproven, before any reach check


def test_the_applicant_may_prove_presence_with_the_code_of_their_account(
    client: httpx.Client, parent: tuple[str, str, str], lake_dir: Path, db: Database
) -> None:
    id_number, token, district = parent
    clerk = {"Authorization": f"Bearer {_clerk(db, district)}"}
    shown = client.get("/api/v1/window-code", headers={"Authorization": f"Bearer {token}"})
    assert shown.status_code == 200, shown.text
    code = shown.json()["code"]
    assert len(code) == 6
    assert code.isdigit()
    guessed = f"{(int(code) + 1) % 1_000_000:06d}"
    refused = client.get(PREPARE, params={"applicant": id_number, "identity_code": guessed}, headers=clerk)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["field"] == "identity_code"
    passed = client.get(PREPARE, params={"applicant": id_number, "identity_code": code}, headers=clerk)
    assert passed.status_code == 200, passed.text
    assert client.get("/api/v1/window-code", headers=clerk).status_code == 403  # staff have no window code


def test_a_clerk_reaches_only_applicants_of_their_district(
    client: httpx.Client, parent: tuple[str, str, str], city: SyntheticCity, lake_dir: Path, db: Database
) -> None:
    id_number, _token, district = parent
    elsewhere = next(d for d in ("310101", "310104", "310115") if d != district)
    clerk = {"Authorization": f"Bearer {_clerk(db, elsewhere)}"}
    far = client.get(PREPARE, params={"applicant": id_number, "identity_name": _name(city, id_number)}, headers=clerk)
    assert far.status_code == 403, far.text
    assert far.json()["errors"][0]["field"] == "applicant"
    assert "prefilled" not in far.text
    assert _looks(db) == []

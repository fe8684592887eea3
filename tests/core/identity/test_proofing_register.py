"""In-person proofing against the base registers: the name on the document must be the one the person (or
enterprise) register holds for the number, so that a clerk cannot hand a resident's identity to an account of
their choosing; refusals are audited and a clerk who keeps guessing waits."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import time_machine
from fastapi import FastAPI
from sqlalchemy import select

from shgov.core.audit.models import AuditRecord
from shgov.core.db import Database
from shgov.core.identity.models import User
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import assign_role, create_user
from shgov.core.regions.service import RegionIndex
from shgov.lake.service import read_current
from shgov.lake.synthetic import CityConfig, SyntheticCity, generate
from tests.conftest import served_lake

TokenFor = Callable[[str], str]


@pytest.fixture(scope="module")
def city(request: pytest.FixtureRequest) -> SyntheticCity:
    index: RegionIndex = request.getfixturevalue("region_index")
    return generate(index, CityConfig(persons=300, enterprises=60, seed=55, defect_rate=0.0))


@pytest.fixture
def lake_dir(tmp_path: Path, db: Database, city: SyntheticCity, region_index: RegionIndex, app: FastAPI) -> Path:
    return served_lake(tmp_path, db, city, region_index, app, ("person", "enterprise"))


def _account(db: Database, kind: str) -> uuid.UUID:
    with db.session() as session:
        name = f"walk.in.{uuid.uuid4().hex[:6]}"
        return create_user(session, kind=kind, username=name, display_name="来访者", password="Strong#Pass2026").id


def _proof(client: httpx.Client, clerk: str, user_id: uuid.UUID, **document: str) -> httpx.Response:
    body = {"document_checked": True, "reason": "本人持证到窗口办理", **document}
    return client.post(f"/api/v1/identity/users/{user_id}/identity", json=body, headers={"Authorization": clerk})


def _refusals(db: Database) -> list[AuditRecord]:
    with db.session() as session:
        return list(session.scalars(select(AuditRecord).where(AuditRecord.action == "identity.user.proof.refused")))


def test_a_resident_is_bound_only_under_the_registered_name(
    client: httpx.Client, token_for: TokenFor, db: Database, lake_dir: Path
) -> None:
    population = read_current(lake_dir, "population")
    assert population is not None
    person = population.row(0, named=True)
    clerk = f"Bearer {token_for('pudong.window')}"
    taker = _account(db, "citizen")
    document = {"id_number": person["id_number"], "document_type": "resident_id_card"}

    wrong = _proof(client, clerk, taker, name=person["name"] + "某", **document)
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "name"
    assert person["name"] not in wrong.text  # the answer never says what the register holds
    with db.session() as session:
        assert session.get(User, taker).id_number is None  # type: ignore[union-attr]
    [refusal] = _refusals(db)
    assert refusal.outcome == "denied"
    assert refusal.details["refused"] == "name-mismatch"
    assert person["id_number"] not in str(refusal.details)

    spaced = " ".join(person["name"])  # as a clerk may type it from the card
    right = _proof(client, clerk, taker, name=spaced, **document)
    assert right.status_code == 200, right.text
    with db.session() as session:
        bound = session.get(User, taker)
        assert bound is not None
        assert bound.id_number == person["id_number"]
        assert bound.display_name == person["name"]  # 实名: the register's spelling, not the clerk's typing
        record = session.scalar(select(AuditRecord).where(AuditRecord.action == "identity.user.proof"))
    assert record is not None
    assert record.details["in_register"] is True


def test_an_enterprise_account_is_bound_under_the_registered_company_name(
    client: httpx.Client, token_for: TokenFor, db: Database, lake_dir: Path
) -> None:
    enterprises = read_current(lake_dir, "enterprises")
    assert enterprises is not None
    company = enterprises.row(0, named=True)
    clerk = f"Bearer {token_for('pudong.window')}"
    account = _account(db, "enterprise")
    document = {"credit_code": company["credit_code"], "document_type": "business_licence"}
    assert _proof(client, clerk, account, name="上海某某有限公司", **document).status_code == 422
    as_id_card = _proof(
        client, clerk, account, name=company["name"], **document | {"document_type": "resident_id_card"}
    )
    assert (as_id_card.status_code, as_id_card.json()["errors"][0]["field"]) == (422, "document_type")
    assert _proof(client, clerk, account, name=company["name"], **document).status_code == 200
    second = _proof(client, clerk, _account(db, "enterprise"), name=company["name"], **document)
    assert second.status_code == 200  # an enterprise may have several accounts (one per 经办人)


def test_an_administrator_holding_everything_does_not_prove_identities(
    client: httpx.Client, token_for: TokenFor, db: Database, lake_dir: Path
) -> None:
    """Issue #26: "*" implied identity.user.proof, so the platform administrator could bind any identity, and
    could give itself the window's role to do it; it may still give that role to someone else."""
    population = read_current(lake_dir, "population")
    assert population is not None
    person = population.row(2, named=True)
    admin = f"Bearer {token_for('admin')}"
    document = {"id_number": person["id_number"], "document_type": "resident_id_card", "name": person["name"]}
    assert _proof(client, admin, _account(db, "citizen"), **document).status_code == 403
    with db.session() as session:
        me = session.scalar(select(User.id).where(User.username == "admin"))
        other = create_user(
            session,
            kind="staff",
            username="new.clerk",
            display_name="新窗口",
            password="Strong#Pass2026",
            tenant_code="310115",
        )
        other_id = other.id
    role = {"role_code": "window_clerk", "tenant_code": "310115"}
    headers = {"Authorization": admin}
    to_self = client.post(f"/api/v1/identity/users/{me}/roles", json=role, headers=headers)
    assert to_self.status_code == 403, to_self.text
    assert client.post(f"/api/v1/identity/users/{other_id}/roles", json=role, headers=headers).status_code == 201


def test_a_clerk_who_keeps_guessing_names_waits(
    client: httpx.Client, token_for: TokenFor, db: Database, lake_dir: Path
) -> None:
    population = read_current(lake_dir, "population")
    assert population is not None
    person = population.row(1, named=True)
    taker = _account(db, "citizen")
    document = {"id_number": person["id_number"], "document_type": "resident_id_card"}
    with time_machine.travel(datetime(2026, 12, 7, 2, 0, tzinfo=UTC), tick=False):  # every thread's clock stands
        clerk = f"Bearer {token_for('pudong.window')}"
        answers = [_proof(client, clerk, taker, name=f"猜{n}", **document).status_code for n in range(6)]
        assert answers == [422] * 6  # five free, the sixth makes the clerk wait
        waiting = _proof(client, clerk, taker, name=person["name"], **document)  # even the right name waits now
    assert waiting.status_code == 429
    assert int(waiting.headers["Retry-After"]) > 0
    assert len(_refusals(db)) == 6
    # another clerk is not held up by this one's guesses
    with db.session() as session:
        second = create_user(
            session,
            kind="staff",
            username="huangpu.window",
            display_name="黄浦区窗口",
            password="Strong#Pass2026",
            tenant_code="310101",
            department_code="310101.mz",
        )
        assign_role(session, second.id, "window_clerk", Scope("310101", "310101.mz"))
    other = f"Bearer {token_for('huangpu.window')}"
    assert _proof(client, other, taker, name=person["name"], **document).status_code == 200

"""A run over a whole population asked for over the API or the workbench is queued (202 with a Location)
and written outside the request, through the outbox: the request never holds the writer for the run. The
run's status shows its progress, and its result is what a run from the command line gives."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from shgov.benefits import service as benefits
from shgov.benefits.models import BenefitGrant, PolicyRun
from shgov.core.db import Database
from shgov.core.events import OutboxEvent
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import add_actions_to_role, assign_role, create_user
from tests.benefits.test_api import POLICY, _bearer

AS_OF = date(2026, 11, 24)


def _activated(client: httpx.Client, admin: dict[str, str], app: FastAPI, code: str = "newborn_grant") -> None:
    _drain(app)  # the registers' build events first: they would run every active policy for today
    assert client.post("/api/v1/benefits/policies", json={**POLICY, "code": code}, headers=admin).status_code == 201
    assert client.post(f"/api/v1/benefits/policies/{code}/versions/1/activate", headers=admin).status_code == 200


def _drain(app: FastAPI) -> int:
    return asyncio.run(app.state.relay.drain())


def _grants(db: Database, code: str) -> set[tuple[str, int, str]]:
    with db.session(write=False) as session:
        rows = session.execute(
            select(BenefitGrant.entity_key, BenefitGrant.amount_fen, BenefitGrant.status).where(
                BenefitGrant.policy_code == code
            )
        ).all()
    return {(r.entity_key, r.amount_fen, r.status) for r in rows}


def test_a_full_run_is_queued_answered_202_and_done_by_the_outbox(
    client: httpx.Client, token_for: Callable[[str], str], db: Database, lake_dir: Path, app: FastAPI
) -> None:
    admin = _bearer(token_for("admin"))
    _activated(client, admin, app)
    asked = client.post("/api/v1/benefits/policies/newborn_grant/runs", json={"as_of": "2026-11-24"}, headers=admin)
    assert asked.status_code == 202, asked.text
    queued: dict[str, Any] = asked.json()
    assert queued["status"] == "queued"
    assert queued["granted"] == 0
    location = asked.headers["Location"]
    assert location == f"/api/v1/benefits/policies/newborn_grant/runs/{queued['id']}"
    with db.session(write=False) as session:  # nothing granted in the request; the run waits in the outbox
        assert not session.scalars(select(BenefitGrant).where(BenefitGrant.policy_code == "newborn_grant")).first()
        requested = session.scalars(select(OutboxEvent).where(OutboxEvent.type == benefits.RUN_REQUESTED)).one()
        assert requested.payload["run_id"] == queued["id"]
        assert requested.payload["requested_by"] == "admin"
    assert client.get(location, headers=admin).json()["status"] == "queued"

    _drain(app)
    done = client.get(location, headers=admin)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "done"
    assert done.json()["finished_at"] is not None
    dry = client.get(
        "/api/v1/benefits/policies/newborn_grant/dry-run", params={"as_of": "2026-11-24"}, headers=admin
    ).json()
    assert done.json()["granted"] == dry["qualified"] > 0, done.json()
    assert done.json()["total_fen"] == dry["total_fen"]

    # The same event delivered again (another worker's relay, after the lease ran out) starts nothing.
    with db.session() as session:
        row = session.scalars(select(OutboxEvent).where(OutboxEvent.type == benefits.RUN_REQUESTED)).one()
        row.published_at = None
        row.next_attempt_at = row.occurred_at
    _drain(app)
    with db.session(write=False) as session:
        runs = session.scalars(select(PolicyRun).where(PolicyRun.policy_code == "newborn_grant")).all()
    assert [(r.status, r.granted) for r in runs] == [("done", dry["qualified"])]

    # The same policy run from the command line's path (run_in_chunks) on a copy grants the same.
    _activated(client, admin, app, "newborn_grant_cli")
    benefits.run_in_chunks(db, lake_dir, "newborn_grant_cli", AS_OF, "manual", chunk=7)
    assert {(k, a, s) for k, a, s in _grants(db, "newborn_grant_cli")} == _grants(db, "newborn_grant")


def test_the_status_shows_progress_and_a_taken_run_is_not_started_twice(
    client: httpx.Client, token_for: Callable[[str], str], db: Database, lake_dir: Path, app: FastAPI
) -> None:
    admin = _bearer(token_for("admin"))
    _activated(client, admin, app)
    asked = client.post("/api/v1/benefits/policies/newborn_grant/runs", json={"as_of": "2026-11-24"}, headers=admin)
    location, run_id = asked.headers["Location"], uuid.UUID(asked.json()["id"])
    # Another worker process has taken the run (its relay claimed the event first; the lease ran out): the
    # event delivered here leaves the run alone.
    with db.session() as session:
        benefits.get_run(session, run_id).status = "running"
    _drain(app)
    taken = client.get(location, headers=admin).json()
    assert (taken["status"], taken["granted"]) == ("running", 0)
    assert _grants(db, "newborn_grant") == set()
    with db.session() as session:
        benefits.get_run(session, run_id).status = "queued"

    seen: list[tuple[str, int]] = []

    def watching(session: Any, _version: Any, _grants: list[dict[str, Any]]) -> None:
        record = benefits.get_run(session, run_id)  # what the chunk commits with its grants
        seen.append((record.status, record.granted))

    benefits.run_in_chunks(db, lake_dir, "newborn_grant", AS_OF, chunk=1, notify_holders=watching, run_id=run_id)
    assert seen == [("running", n) for n in range(1, len(seen) + 1)]
    assert len(seen) >= 2
    done = client.get(location, headers=admin).json()
    assert (done["status"], done["granted"]) == ("done", len(seen))
    assert len(_grants(db, "newborn_grant")) == len(seen)


def test_a_targeted_run_stays_in_the_request_and_strangers_are_refused(
    client: httpx.Client, token_for: Callable[[str], str], db: Database, lake_dir: Path, app: FastAPI
) -> None:
    admin = _bearer(token_for("admin"))
    _activated(client, admin, app)
    targeted = client.post(
        "/api/v1/benefits/policies/newborn_grant/runs",
        json={"as_of": "2026-11-24", "keys": ["110101199003077774"]},
        headers=admin,
    )
    assert targeted.status_code == 201, targeted.text
    assert targeted.json()["status"] == "done"
    asked = client.post("/api/v1/benefits/policies/newborn_grant/runs", json={"as_of": "2026-11-24"}, headers=admin)
    location = asked.headers["Location"]
    assert client.post("/api/v1/benefits/policies/newborn_grant/runs", json={}).status_code == 401
    assert client.get(location).status_code == 401
    with db.session() as session:
        add_actions_to_role(session, "department_admin", (benefits.MANAGE,))
        user = create_user(
            session,
            kind="staff",
            username="mz_manager",
            display_name="民政经办",
            tenant_code="310000",
            department_code="310000.mz",
        )
        assign_role(session, user.id, "department_admin", Scope("310000", "310000.mz"))
    other = _bearer(token_for("mz_manager"))
    assert client.get(location, headers=other).status_code == 404
    refused = client.post("/api/v1/benefits/policies/newborn_grant/runs", json={}, headers=other)
    assert refused.status_code == 403
    with db.session(write=False) as session:
        assert session.get(PolicyRun, uuid.UUID(asked.json()["id"])) is not None
        assert len(session.scalars(select(PolicyRun).where(PolicyRun.status == "queued")).all()) == 1
    assert client.get(f"/api/v1/benefits/policies/newborn_grant/runs/{uuid.uuid4()}", headers=admin).status_code == 404

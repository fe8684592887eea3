"""A run over a whole population writes in short transactions: interrupted midway and run again it gives
exactly what one uninterrupted run gives, and other writers keep writing while it runs (on SQLite through
the writers' discipline of ``core/db``, with a short wait) — on SQLite and on PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bench.servers import scratch_postgres
from sqlalchemy import func, select

from shgov import migrations
from shgov.benefits import service as benefits
from shgov.benefits.models import BenefitGrant, GrantEvent, PolicyRun, PolicyVersion
from shgov.benefits.service import PolicySpec
from shgov.core.calendar.service import city_today
from shgov.core.db import Database
from shgov.core.seeding import already_seeded, mark_seeded
from shgov.core.settings import Settings
from shgov.registers import service as registers
from shgov.seed import seed_demo
from tests.conftest import make_settings

AS_OF = dt.date(2026, 11, 24)
CORE = {"divisions", "organisations", "roles", "demo-accounts"}


@dataclass
class City:
    db: Database
    lake_dir: Path
    settings: Settings


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def city(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    """A database of its own (real transactions; on SQLite the write gate, with a 2 s wait), with a small
    city's person and enterprise registers."""
    folder = tmp_path_factory.mktemp("chunked")
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{folder / 'shgov.db'}"
        else:
            scratch = stack.enter_context(scratch_postgres("shgov_chunked"))
            if scratch is None:
                pytest.skip("PostgreSQL is not reachable — PostgreSQL runs skipped")
            url = scratch
        db = Database.from_url(url, write_wait_seconds=2.0)
        stack.callback(db.dispose)
        with db.engine.begin() as connection:
            migrations.upgrade(connection)
        settings = make_settings(folder, demo_persons=1_500, database={"url": url})
        seed_demo(db, settings, only=CORE | {"lake"})  # the demo city's lake: its persons and their records
        for register in ("person", "enterprise"):
            with db.session() as session:
                registers.build(session, settings.lake_dir, register)
        yield City(db, settings.lake_dir, settings)


def _policy(db: Database, code: str, budget_fen: int | None = None) -> None:
    spec = PolicySpec(
        code=code,
        name="高龄老人营养补贴（分批）",
        target="person",
        department_code="310000.mz",
        legal_basis="《上海市老年人权益保障条例》第三十条（示例）",
        mode="auto",
        period="month",
        effective_from=dt.date(2026, 1, 1),
        effective_to=None,
        conditions=["age(birth_date) >= 60"],
        amount="if age(birth_date) >= 90 then 180 else 75",
        budget_fen=budget_fen,
    )
    with db.session() as session:
        version = benefits.save_policy(session, benefits.register_schema(session), spec, "tester")
        benefits.activate(session, code, version.version)


def _grants(db: Database, code: str) -> set[tuple[str, int, str]]:
    with db.session(write=False) as session:
        rows = session.execute(
            select(BenefitGrant.entity_key, BenefitGrant.amount_fen, BenefitGrant.status).where(
                BenefitGrant.policy_code == code
            )
        ).all()
    assert len(rows) == len({r.entity_key for r in rows}), "nobody twice"
    return {(r.entity_key, r.amount_fen, r.status) for r in rows}


class Crash(BaseException):
    """The process dying midway (not an error the run could record)."""


def test_a_run_killed_midway_and_run_again_grants_what_one_run_grants(city: City) -> None:
    db, lake_dir = city.db, city.lake_dir
    # a budget that runs out midway: which grants a resumed run gives depends on the order being kept
    _policy(db, "chunk_whole", budget_fen=200 * 7_500)
    _policy(db, "chunk_killed", budget_fen=200 * 7_500)
    whole = benefits.run_in_chunks(db, lake_dir, "chunk_whole", AS_OF, chunk=40)
    assert whole.status == "done"
    assert whole.over_budget > 0
    assert whole.granted > 160  # the budget ran out after the crash point

    told: list[int] = []

    def dies_on_the_fourth_chunk(session: Any, version: PolicyVersion, grants: list[dict[str, Any]]) -> None:
        told.append(len(grants))
        if len(told) == 4:
            raise Crash

    with pytest.raises(Crash):
        benefits.run_in_chunks(db, lake_dir, "chunk_killed", AS_OF, chunk=40, notify_holders=dies_on_the_fourth_chunk)
    with db.session(write=False) as session:
        killed = session.scalars(select(PolicyRun).where(PolicyRun.policy_code == "chunk_killed")).one()
        kept = session.scalar(select(func.count()).where(BenefitGrant.policy_code == "chunk_killed"))
    # three chunks committed, the fourth died with the process; the record shows how far it got
    assert (killed.status, killed.granted, killed.qualified) == ("running", sum(told[:3]), 120)
    assert kept == sum(told[:3])

    again = benefits.run_in_chunks(db, lake_dir, "chunk_killed", AS_OF, chunk=40)
    assert again.status == "done"
    assert (again.already, again.granted) == (kept, whole.granted - kept)
    assert again.over_budget == whole.over_budget
    with db.session(write=False) as session:
        assert session.get(PolicyRun, killed.id).status == "stopped"  # type: ignore[union-attr]
        events = session.scalar(
            select(func.count())
            .select_from(GrantEvent)
            .join(BenefitGrant, BenefitGrant.id == GrantEvent.grant_id)
            .where(BenefitGrant.policy_code == "chunk_killed")
        )
    assert _grants(db, "chunk_killed") == _grants(db, "chunk_whole")
    assert events == whole.granted  # one history line per grant, none lost, none doubled
    # a third run finds everything granted
    third = benefits.run_in_chunks(db, lake_dir, "chunk_killed", AS_OF, chunk=40)
    assert (third.granted, third.already) == (0, whole.granted)


def test_other_writers_are_not_refused_while_a_run_writes(city: City) -> None:
    db, lake_dir = city.db, city.lake_dir
    _policy(db, "chunk_busy")
    done = threading.Event()
    failures: list[BaseException] = []
    result: list[PolicyRun] = []

    def slow_notices(session: Any, version: PolicyVersion, grants: list[dict[str, Any]]) -> None:
        time.sleep(0.05)  # each chunk holds the writer a little while: the run lasts far longer than the wait

    def runner() -> None:
        try:
            result.append(
                benefits.run_in_chunks(db, lake_dir, "chunk_busy", AS_OF, chunk=10, notify_holders=slow_notices)
            )
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=runner)
    thread.start()
    seen: list[int] = []
    writes = 0
    while not done.is_set():
        with db.session() as session:  # a writer with the gate's 2 s wait: refused if the run held it longer
            mark_seeded(session, f"probe-{writes}")
            progress = session.scalar(
                select(PolicyRun.granted).where(PolicyRun.policy_code == "chunk_busy", PolicyRun.status == "running")
            )
        writes += 1
        if progress is not None:
            seen.append(progress)
        time.sleep(0.02)
    thread.join()
    assert not failures, failures
    record = result[0]
    assert record.status == "done"
    assert record.granted > 100
    assert writes > 10
    # the writes landed between the run's chunks, and each saw the run's progress so far
    assert len(set(seen)) > 3
    assert 0 < max(seen) <= record.granted


def test_the_demo_seed_killed_during_its_benefit_runs_completes_them_when_run_again(
    city: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, settings = city.db, city.settings
    grant_chunk = benefits._grant_chunk
    calls: list[str] = []

    def dies_in_the_third_run(session: Any, plan: Any, rows: Any, notify: Any) -> PolicyRun:
        calls.append(plan.code)
        if len(set(calls)) == 3:
            raise Crash
        return grant_chunk(session, plan, rows, notify)

    monkeypatch.setattr(benefits, "_grant_chunk", dies_in_the_third_run)
    with pytest.raises(Crash):
        seed_demo(db, settings, only={"benefits"})
    with db.session(write=False) as session:
        assert not already_seeded(session, "benefits")  # recorded only once it finished
        before = session.scalar(select(func.count()).select_from(BenefitGrant))
    monkeypatch.setattr(benefits, "_grant_chunk", grant_chunk)
    assert seed_demo(db, settings, only={"benefits"}) == {"benefits": True}
    assert seed_demo(db, settings, only={"benefits"}) == {"benefits": False}
    specs = [spec for spec in benefits.demo_specs() if spec.mode != "apply"]
    with db.session(write=False) as session:
        assert already_seeded(session, "benefits")
        versions = session.scalars(select(PolicyVersion.policy_code)).all()
        after = session.scalar(select(func.count()).select_from(BenefitGrant))
    assert (after or 0) > (before or 0)
    assert all(versions.count(spec.code) == 1 for spec in specs)  # the policies were not saved twice
    for spec in specs:  # every run is complete: running again grants nobody
        assert benefits.run_in_chunks(db, city.lake_dir, spec.code, city_today()).granted == 0

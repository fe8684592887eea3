"""A run of the city's size: 36,000,000 yuan (3.6e9 fen, beyond 32 bits) is granted, stored and read back —
on PostgreSQL too, where the run's total once overflowed an INTEGER column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select

from shgov.benefits import service as benefits
from shgov.benefits.models import BenefitGrant, PolicyRun, PolicyVersion
from shgov.benefits.service import PolicySpec
from shgov.core.db import Database

AS_OF = dt.date(2026, 11, 24)
BUDGET_FEN = 36_000_000 * 100  # 36,000,000 yuan
EACH_FEN = 20_000 * 100  # 1,800 grants of 20,000 yuan spend the budget exactly


def test_a_run_of_36_million_yuan_round_trips(db: Database, lake_dir: Path) -> None:
    spec = PolicySpec(
        code="city_dividend",
        name="城市发展红利（示例）",
        target="person",
        department_code="310000.mz",
        legal_basis="示例",
        mode="auto",
        period="once",
        effective_from=dt.date(2026, 1, 1),
        effective_to=None,
        conditions=['district_code != ""'],
        amount="20000",
        budget_fen=BUDGET_FEN,
    )
    with db.session() as session:
        version = benefits.save_policy(session, benefits.register_schema(session), spec, "tester")
        benefits.activate(session, spec.code, version.version)
        run_id = benefits.run(session, lake_dir, spec.code, AS_OF).id
    with db.session() as session:
        run = session.get(PolicyRun, run_id)
        assert run is not None
        session.refresh(run)  # read back from the database, not the identity map
        assert run.status == "done", run.error
        assert run.granted == BUDGET_FEN // EACH_FEN
        assert run.over_budget == run.qualified - run.granted > 0
        assert run.total_fen == BUDGET_FEN > 2**31
        stored = session.scalar(select(func.sum(BenefitGrant.amount_fen)).where(BenefitGrant.run_id == run_id))
        assert int(stored or 0) == BUDGET_FEN
        saved = session.scalar(select(PolicyVersion.budget_fen).where(PolicyVersion.policy_code == spec.code))
        assert saved == BUDGET_FEN

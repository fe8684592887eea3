"""Where policies are evaluated: embedded deployments load the register files into DuckDB; a PostgreSQL
deployment evaluates its own copy of each live register version (made once, replaced by the next build) and
gets the same answers; runs write grants in batches and tell every holder, persons and enterprises."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import func, select, text

from shgov.benefits import evaluation, language
from shgov.benefits import service as benefits
from shgov.benefits.models import GrantEvent, RegisterCopy
from shgov.benefits.service import PolicySpec
from shgov.core.db import Database
from shgov.core.identity.service import create_user
from shgov.core.notify import inbox
from shgov.registers import service as registers

AS_OF = dt.date(2026, 11, 24)


def _plain(row: dict[str, Any]) -> tuple[Any, ...]:
    """A row with numbers compared by value (DuckDB's HUGEINT is an int, PostgreSQL's NUMERIC a Decimal)."""
    return tuple(int(v) if isinstance(v, Decimal) and v == v.to_integral_value() else v for v in row.values())


def test_the_database_engine_evaluates_and_agrees_with_the_register_files(db: Database, lake_dir: Path) -> None:
    specs = benefits.demo_specs()
    sources = {s.code: s.source for s in specs}
    with db.session() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        with benefits.opened(session, lake_dir) as views:
            assert views.dialect == ("postgresql" if postgres else "duckdb")
            files = evaluation.DuckDBRegisters(
                evaluation.loaded_registers(session, lake_dir, benefits.TARGETS, benefits.register_schema)
            )
            qualified = 0
            for spec in specs:
                checked = language.check(views.schema, sources[spec.code], sources.get)
                dates = language.Dates(AS_OF, dt.date(2026, 1, 1), dt.date(2026, 12, 31))
                ours = {r["entity_key"]: _plain(r) for r in views.rows(views.compiled(checked, dates).sql)}
                theirs = {r["entity_key"]: _plain(r) for r in files.rows(files.compiled(checked, dates).sql)}
                assert ours == theirs, spec.code
                qualified += sum(1 for r in theirs.values() if r[1])
                key = next(iter(sorted(theirs)))
                one = next(views.rows(views.compiled(checked, dates).one_entity_sql, {"key": key}))
                assert _plain(one) == theirs[key], spec.code
            files.close()
        assert qualified > 0
        copies = session.scalars(select(RegisterCopy).order_by(RegisterCopy.target)).all()
        if not postgres:
            assert copies == []  # nothing is copied: DuckDB reads the files
            return
        assert [(c.target, c.rows) for c in copies] == [
            (
                t,
                pl.scan_parquet(registers.live_folder(session, lake_dir, t)[0] / "*.parquet")
                .select(pl.len())
                .collect()
                .item(),
            )
            for t in ("enterprise", "person")
        ]
        first = {c.target: c.table_name for c in copies}
        with benefits.opened(session, lake_dir):
            pass  # the same versions: the same copies
        assert {c.target: c.table_name for c in session.scalars(select(RegisterCopy))} == first
        registers.build(session, lake_dir, "person")  # a new version replaces the person copy
        with benefits.opened(session, lake_dir) as views:
            assert views.tables["enterprise"] == first["enterprise"]
            assert views.tables["person"] != first["person"]
        assert session.scalar(text("SELECT to_regclass(:t)"), {"t": first["person"]}) is None


def test_a_run_writes_grants_in_batches_and_tells_every_enterprise_account(
    db: Database, lake_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(benefits, "GRANT_BATCH", 7)
    spec = PolicySpec(
        code="going_concern",
        name="存续企业关怀",
        target="enterprise",
        department_code="310000.jxw",
        legal_basis="示例",
        mode="auto",
        period="once",
        effective_from=dt.date(2026, 1, 1),
        effective_to=None,
        conditions=['status == "存续"'],
        amount="100",
    )
    with db.session() as session:
        folder, _version = registers.live_folder(session, lake_dir, "enterprise")
        enterprises = pl.read_parquet(folder / "*.parquet")
        going = sorted(enterprises.filter(pl.col("status") == "存续")["credit_code"].to_list())
        assert len(going) > 7 * 3
        holder = going[len(going) // 2]
        staff = [
            create_user(session, kind="enterprise", username=f"firm{i}", display_name="企业经办人", credit_code=holder)
            for i in range(2)
        ]
        version = benefits.save_policy(session, benefits.register_schema(session), spec, "tester")
        benefits.activate(session, spec.code, version.version)
        done = benefits.run(session, lake_dir, spec.code, AS_OF)
        assert (done.evaluated, done.granted, done.total_fen) == (enterprises.height, len(going), 100_00 * len(going))
        grants = benefits.grants_of_policy(session, spec.code, limit=len(going) + 1)
        assert [g.entity_key for g in grants] == going
        steps = session.scalar(
            select(func.count()).select_from(GrantEvent).where(GrantEvent.grant_id.in_([g.id for g in grants]))
        )
        assert steps == len(going)
        for user in staff:  # both of the enterprise's accounts are told
            assert [n.subject for n in inbox(session, user.id)] == ["【免申即享】存续企业关怀"]
        again = benefits.run(session, lake_dir, spec.code, AS_OF)
        assert (again.granted, again.already) == (0, len(going))

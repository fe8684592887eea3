"""The demo policies: each one checks against the registers' schema, and its compiled query gives the same
answer for every person and enterprise on DuckDB (over the register files) and on PostgreSQL (over the same
rows loaded into tables)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from sqlalchemy import Connection, create_engine, text

from shgov.benefits import language
from shgov.benefits import service as benefits
from shgov.core.db import Database
from shgov.registers import service as registers

AS_OF = dt.date(2026, 11, 24)
PG_TYPES = {
    pl.String: "TEXT",
    pl.Date: "DATE",
    pl.Int64: "BIGINT",
    pl.Boolean: "BOOLEAN",
    pl.Float64: "DOUBLE PRECISION",
}

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
Compiling = tuple[duckdb.DuckDBPyConnection, language.Schema, dict[str, language.Source]]
TABLES = {"person": "person", "enterprise": "enterprise"}


@pytest.fixture
def frames(db: Database, lake_dir: Path) -> dict[str, pl.DataFrame]:
    out = {}
    with db.session() as session:
        for target in benefits.TARGETS:
            folder, _version = registers.live_folder(session, lake_dir, target)
            out[target] = pl.read_parquet(folder / "*.parquet")
    return out


@pytest.fixture
def postgres(postgresql_database: str, frames: dict[str, pl.DataFrame]) -> Iterator[Connection]:
    engine = create_engine(postgresql_database.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        for name, frame in frames.items():
            columns = ", ".join(f'"{c}" {PG_TYPES.get(t.base_type(), "TEXT")}' for c, t in frame.schema.items())
            conn.execute(text(f"CREATE TEMPORARY TABLE {name} ({columns})"))
            marks = ", ".join(f":c{i}" for i in range(frame.width))
            conn.execute(
                text(f"INSERT INTO {name} VALUES ({marks})"),
                [{f"c{i}": v for i, v in enumerate(row)} for row in frame.iter_rows()],
            )
        yield conn
    engine.dispose()


@pytest.fixture
def compiled_on_duckdb(db: Database, frames: dict[str, pl.DataFrame]) -> Compiling:
    """The register frames in DuckDB, the registers' schema and the demo policies' sources."""
    sources = {s.code: s.source for s in benefits.demo_specs()}
    with db.session() as session:
        schema = benefits.register_schema(session)
    duck = duckdb.connect()
    for name, frame in frames.items():
        duck.register(name, frame.to_arrow())
    return duck, schema, sources


def _rows(cursor: Any) -> dict[str, tuple[Any, ...]]:
    return {
        str(row[0]): tuple(int(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in row[1:])
        for row in cursor
    }


def test_every_demo_policy_gives_the_same_answers_on_duckdb_and_postgresql(
    compiled_on_duckdb: Compiling, postgres: Connection
) -> None:
    duck, schema, sources = compiled_on_duckdb
    specs = benefits.demo_specs()
    assert len(specs) >= 20
    assert {s.target for s in specs} == {"person", "enterprise"}
    tables = TABLES
    qualified = 0
    for spec in specs:
        checked = language.check(schema, sources[spec.code], sources.get)
        dates = language.Dates(AS_OF, dt.date(2026, 1, 1), dt.date(2026, 12, 31))
        left = _rows(duck.execute(language.compile_policy(checked, schema, "duckdb", tables, dates).sql).fetchall())
        right = _rows(postgres.execute(text(language.compile_policy(checked, schema, "postgresql", tables, dates).sql)))
        assert left.keys() == right.keys(), spec.code
        differing = [k for k in left if left[k] != right[k]]
        assert not differing, (
            spec.code,
            differing[:3],
            [left[k] for k in differing[:3]],
            [right[k] for k in differing[:3]],
        )
        qualified += sum(1 for row in left.values() if row[-2])
    assert qualified > 0


def test_one_entity_queries_agree_with_the_whole_population_query(compiled_on_duckdb: Compiling) -> None:
    """The explanation form (correlated subqueries) and the batch form (grouped joins) give the same rows."""
    duck, schema, sources = compiled_on_duckdb
    specs = benefits.demo_specs()
    tables = TABLES
    dates = language.Dates(AS_OF, dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    for spec in specs:
        compiled = language.compile_policy(
            language.check(schema, sources[spec.code], sources.get), schema, "duckdb", tables, dates
        )
        batch = {row[0]: row[1:] for row in duck.execute(compiled.sql).fetchall()}
        qualified = [k for k, row in batch.items() if row[-2]][:15]
        others = [k for k, row in batch.items() if not row[-2]][:15]
        for key in qualified + others:
            (one,) = duck.execute(compiled.one_entity_sql, {"key": key}).fetchall()
            assert one[1:] == batch[key], (spec.code, key)

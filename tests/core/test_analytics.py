"""DuckDB reads the Parquet lake through one view per dataset."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from shgov.core.analytics import Analytics


def test_datasets_in_the_lake_are_queryable_as_views(tmp_path: Path) -> None:
    lake = Analytics(tmp_path / "lake")
    lake.write("readings", pa.table({"district": ["310101", "310104", "310101"], "pm25": [35.0, 80.5, 12.5]}))
    lake.write("readings", pa.table({"district": ["310115"], "pm25": [50.0]}), part="part-1")
    with lake.connect() as conn:
        rows = conn.execute(
            "SELECT district, count(*), avg(pm25) FROM readings GROUP BY district ORDER BY district"
        ).fetchall()
    assert rows == [("310101", 2, 23.75), ("310104", 1, 80.5), ("310115", 1, 50.0)]
    assert lake.datasets() == ["readings"]


def test_hive_partitions_become_columns(tmp_path: Path) -> None:
    lake = Analytics(tmp_path)
    lake.write("loads", pa.table({"n": [1, 2]}), part="day=2026-11-24/part-0")
    with lake.connect() as conn:
        assert conn.execute("SELECT sum(n), min(day)::VARCHAR FROM loads").fetchone() == (3, "2026-11-24")


def test_an_unsafe_dataset_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dataset name"):
        Analytics(tmp_path).write("x; DROP", pa.table({"a": [1]}))


def test_an_empty_lake_has_no_views(tmp_path: Path) -> None:
    with Analytics(tmp_path / "missing").connect() as conn:
        assert conn.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone() == (0,)

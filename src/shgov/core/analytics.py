"""Analytics: DuckDB over the Parquet lake under ``var/lake/``.

Each dataset is a folder ``<lake>/<name>/`` of Parquet files (optionally hive-partitioned, e.g.
``day=2026-11-24/part-0.parquet``); ``Analytics.connect()`` exposes each as a view named after the
folder, so contexts query ``SELECT … FROM persons`` without knowing file layouts. A versioned
dataset has a ``CURRENT`` file naming its live version folder (``v=000007``): the view reads that
version only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from shgov.core.settings import AnalyticsSettings

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"dataset name {name!r} must be lower-case letters, digits and _")
    return name


class Analytics:
    """A factory of DuckDB connections with one view per lake dataset."""

    def __init__(self, lake_dir: Path, settings: AnalyticsSettings | None = None) -> None:
        self.lake_dir = lake_dir
        self.settings = settings or AnalyticsSettings()

    def datasets(self) -> list[str]:
        """Names of the datasets that have at least one Parquet file."""
        if not self.lake_dir.exists():
            return []
        return sorted(
            p.name for p in self.lake_dir.iterdir() if p.is_dir() and _NAME.match(p.name) and any(p.rglob("*.parquet"))
        )

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB connection with a view over every dataset (closed on exit)."""
        conn = duckdb.connect(
            ":memory:",
            config={"memory_limit": self.settings.memory_limit, "threads": str(self.settings.threads)},
        )
        try:
            for name in self.datasets():
                folder = self.lake_dir / name
                pointer = folder / "CURRENT"
                if pointer.exists():
                    folder = folder / pointer.read_text(encoding="utf-8").strip()
                pattern = (folder / "**" / "*.parquet").as_posix().replace("'", "''")
                # The name passed _NAME and the path is quoted; DDL cannot take parameters.
                # Partition values stay text: division codes such as 310115 are codes, not numbers.
                source = f"read_parquet('{pattern}', hive_partitioning = true, hive_types_autocast = false)"
                conn.execute(f"CREATE VIEW {name} AS SELECT * FROM {source}")  # noqa: S608
            yield conn
        finally:
            conn.close()

    def write(self, name: str, table: pa.Table, *, part: str = "part-0") -> Path:
        """Write ``table`` as ``<lake>/<name>/<part>.parquet`` atomically (temp file, then rename)."""
        folder = self.lake_dir / _check_name(name)
        target = folder / f"{part}.parquet"
        if not target.resolve().is_relative_to(folder.resolve()):
            raise ValueError(f"part {part!r} must stay inside the dataset folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp, compression="zstd")
        tmp.replace(target)
        return target

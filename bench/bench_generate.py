"""Synthetic city generation: 1M persons + 200k enterprises (target < 60 s on 2 cores)."""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

from shgov.core.db import Base, Database
from shgov.core.regions.service import RegionIndex, load_builtin_divisions
from shgov.lake.synthetic import CityConfig, generate

PERSONS = 1_000_000
ENTERPRISES = 200_000
TARGET_SECONDS = 60.0


def main() -> None:
    """Generate and write the city; print time, rows per second and peak memory."""
    db = Database.from_url("sqlite://")
    Base.metadata.create_all(db.engine)
    with db.session() as session:
        load_builtin_divisions(session)
        index = RegionIndex.from_session(session)
    started = time.perf_counter()
    city = generate(index, CityConfig(persons=PERSONS, enterprises=ENTERPRISES, seed=1))
    generated = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        city.write(Path(folder))
        total = time.perf_counter() - started
    rows = sum(d.frame.height for d in city.deliveries)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"   persons {PERSONS:,}, enterprises {ENTERPRISES:,}, rows in all deliveries {rows:,}")
    print(f"   generate {generated:.1f} s, generate + write Parquet {total:.1f} s (target < {TARGET_SECONDS:.0f} s)")
    print(f"   {rows / total:,.0f} rows/s; peak memory {peak_mb:,.0f} MB")
    print(f"   ratio to target: {total / TARGET_SECONDS:.2f}")

"""Register build and point lookups on 1M persons (target: lookup p99 < 5 ms)."""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path

from shgov.contexts import import_models
from shgov.core.db import Base, Database
from shgov.core.regions.service import RegionIndex, load_builtin_divisions
from shgov.lake import service as lake
from shgov.lake.synthetic import CityConfig, generate
from shgov.registers import service as registers

PERSONS = 1_000_000
LOOKUPS = 10_000
TARGET_P99_MS = 5.0


def _sources(register: str) -> set[str]:
    """The lake resources a register is built from (its population and every element's sources)."""
    reg = registers.register_def(register)
    found = {reg.base}
    for element in reg.elements:
        places = [*([element.source] if element.source else []), *element.references]
        found |= {resource for resource, _column in places}
    return found


def main() -> None:
    """Load a 1M-person city, build the person register, time random point lookups."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        import_models()
        db = Database.from_url(f"sqlite:///{folder / 'bench.db'}")
        Base.metadata.create_all(db.engine)
        with db.session() as session:
            load_builtin_divisions(session)
            lake.seed_resources(session, "310000")
            index = RegionIndex.from_session(session)
        city = generate(index, CityConfig(persons=PERSONS, enterprises=PERSONS // 5, seed=9))
        lake_dir = folder / "lake"
        context = lake.make_context(lake_dir, lake.region_codes(index))
        with db.session() as session:
            lake.load_city(
                session,
                lake_dir,
                city,
                folder / "incoming",
                context,
                only=_sources("person"),
            )
        ids = city.get("population")["id_number"].to_list()
        del city
        started = time.perf_counter()
        with db.session() as session:
            result = registers.build(session, lake_dir, "person")
        print(
            f"   build: {result.rows:,} persons in {time.perf_counter() - started:.1f} s; conflicts {result.conflicts}"
        )
        reader = registers.RegisterReader(lake_dir)
        with db.session() as session:
            started = time.perf_counter()
            registers.find_person(session, reader, ids[0], ["name"])
            print(f"   first lookup (loads the index): {time.perf_counter() - started:.2f} s")
            sample = random.Random(1).sample(ids, LOOKUPS)
            times = []
            for id_number in sample:
                started = time.perf_counter()
                registers.find_person(session, reader, id_number, ["name", "address", "marital_status"])
                times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p99 = times[int(len(times) * 0.99)]
        print(
            f"   {LOOKUPS:,} lookups: p50 {statistics.median(times):.3f} ms, p99 {p99:.3f} ms "
            f"(target < {TARGET_P99_MS} ms; ratio {p99 / TARGET_P99_MS:.3f})"
        )

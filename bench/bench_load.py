"""归集 throughput: a 1M-row population delivery validated and written (targets ≥ 300k rows/s, < 2 GB)."""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from queue import Empty

from shgov.contexts import import_models
from shgov.core.audit import service as audit
from shgov.core.db import Base, Database
from shgov.core.regions.service import RegionIndex, load_builtin_divisions
from shgov.core.settings import Settings
from shgov.lake.service import seed_resources

PERSONS = 1_000_000
TARGET_ROWS_PER_SECOND = 300_000
TARGET_PEAK_MB = 2048


def _settings(url: str, folder: Path) -> Settings:
    """This bench's city: the parent and the loading processes chain the audit log with the same key."""
    return Settings(_env_file=None, env="dev", data_dir=folder, database={"url": url})


def _setup(folder: Path) -> tuple[str, Path]:
    url = f"sqlite:///{folder / 'bench.db'}"
    audit.configure(_settings(url, folder))
    db = Database.from_url(url)
    import_models()
    Base.metadata.create_all(db.engine)
    with db.session() as session:
        load_builtin_divisions(session)
        seed_resources(session, "310000")
    db.dispose()
    return url, folder / "lake"


def _load_in_child(url: str, lake_dir: str, file: str, fmt: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from shgov.lake import service as lake

    audit.configure(_settings(url, Path(lake_dir).parent))  # a spawned process starts with nothing configured
    db = Database.from_url(url)
    with db.session() as session:
        index = RegionIndex.from_session(session)
    context = lake.make_context(Path(lake_dir), lake.region_codes(index))
    started = time.perf_counter()
    with db.session() as session:
        result = lake.load(
            session,
            Path(lake_dir),
            "population",
            lake.Source(path=Path(file)),
            department_code="310000.ga",
            context=context,
        )
    seconds = time.perf_counter() - started
    out.put((fmt, result.rows_in, result.rows_quarantined, seconds, _peak_mb()))


def _peak_mb() -> float:
    # VmHWM is this process's own high-water mark (ru_maxrss can carry the parent's over fork + exec).
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Generate a 1M-person delivery, then load it (Parquet, then CSV) each in a fresh process."""
    from shgov.lake.synthetic import CityConfig, generate

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url, lake_dir = _setup(folder)
        db = Database.from_url(url)
        with db.session() as session:
            index = RegionIndex.from_session(session)
        db.dispose()
        population = generate(index, CityConfig(persons=PERSONS, enterprises=1_000, seed=3)).get("population")
        files = {"parquet": folder / "population.parquet", "csv": folder / "population.csv"}
        population.write_parquet(files["parquet"])
        population.write_csv(files["csv"])
        del population
        spawn = multiprocessing.get_context("spawn")
        for fmt, file in files.items():
            queue = spawn.Queue()
            child = spawn.Process(target=_load_in_child, args=(url, str(lake_dir), str(file), fmt, queue))
            child.start()
            while True:
                try:
                    fmt_, rows, quarantined, seconds, peak_mb = queue.get(timeout=5)
                    break
                except Empty:
                    if not child.is_alive():
                        raise RuntimeError(f"the {fmt} load's process died (its traceback is above)") from None
            child.join()
            rate = rows / seconds
            print(
                f"   {fmt_:<8} {rows:,} rows ({quarantined:,} quarantined) in {seconds:.2f} s = {rate:,.0f} rows/s "
                f"(ratio to the 300k target: {rate / TARGET_ROWS_PER_SECOND:.2f}); peak memory {peak_mb:,.0f} MB "
                f"(limit {TARGET_PEAK_MB} MB)"
            )

"""灾备 figures: RPO and RTO of ``shgov backup`` / ``shgov restore`` for the demo city and for 1M persons, on
SQLite and on PostgreSQL (base backup + streamed WAL, point-in-time restore).

* RPO, SQLite: backups are scheduled; what a disaster can lose is the interval plus the time a backup takes to
  be complete (D), so the figure is D (add the interval); back to back it is 2·D.
* RPO, PostgreSQL: the database's is the WAL streaming lag (commit → flushed in the archive by pg_receivewal);
  the files' and the lake's is the backup interval as on SQLite.
* RTO: the measured restore into an empty folder and an empty database — checking every SM3, the database
  (PostgreSQL: recovery in a private server, WAL replayed to a point after the backup, then dump and restore),
  the files, the keys — with the process already started.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.drill import WriteLoad
from bench.servers import POSTGRES_URL, reachable, scratch_postgres
from shgov import migrations
from shgov.cli import lake_versions
from shgov.core.audit import service as audit
from shgov.core.backup import backup, restore
from shgov.core.backup import postgres as pg
from shgov.core.backup.archive import BackupError
from shgov.core.db import Database
from shgov.core.settings import Settings
from shgov.seed import seed_demo

PASSPHRASE = "bench-passphrase"  # noqa: S105 - a throw-away city's
SECRET = "bench-secret-0123456789abcdef"  # noqa: S105 - a throw-away city's
DEMO_PERSONS = 20_000  # the demo city's default (SHGOV_DEMO_PERSONS)
MILLION = 1_000_000
# 1M persons: the reference data, the accounts and the lake with its registers (the parts that grow with
# persons); the other contexts' demo data is the same as the demo city's.
MILLION_PARTS = {"divisions", "organisations", "roles", "demo-accounts", "lake", "registers"}
LAG_SAMPLES = 200


def settings_for(data_dir: Path, persons: int, url: str = "") -> Settings:
    """Settings of a bench city in ``data_dir``."""
    values: dict[str, Any] = {
        "env": "test",
        "secret_key": SECRET,
        "web": {"session_secret": SECRET},
        "data_dir": data_dir,
        "log_json": False,
        "demo_persons": persons,
    }
    if url:
        values["database"] = {"url": url}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def seed(settings: Settings, parts: set[str] | None) -> float:
    """Migrate and seed; returns the seconds it took."""
    started = time.perf_counter()
    _configure_audit(settings)
    db = Database.from_url(settings.database.url)
    try:
        with db.engine.begin() as connection:
            migrations.upgrade(connection)
        seed_demo(db, settings, only=parts)
    finally:
        db.dispose()
    return time.perf_counter() - started


def _configure_audit(settings: Settings) -> None:
    # Builds whose audit log is configured per process take this city's keys (others need nothing).
    configure: Callable[[Settings], object] | None = getattr(audit, "configure", None)
    if configure is not None:
        configure(settings)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass
class Figures:
    label: str
    seed_s: float
    set_mb: float
    backup_s: float
    restore_s: float
    rows: int
    lag_ms: tuple[float, float] | None = None
    replayed_mb: float = 0.0

    def print(self) -> None:
        """The figures, as lines."""
        print(f"   {self.label}: seeded in {self.seed_s:.0f} s; set {self.set_mb:,.0f} MB, {self.rows:,} rows")
        if self.lag_ms is None:
            print(
                f"     RPO = backup interval + {self.backup_s:.1f} s (a backup under a write load takes "
                f"{self.backup_s:.1f} s; back to back: {2 * self.backup_s:.1f} s)"
            )
        else:
            p50, worst = self.lag_ms
            print(
                f"     RPO (database) = WAL streaming lag: p50 {p50:.1f} ms, max {worst:.1f} ms over {LAG_SAMPLES} "
                f"commits; files and lake: backup interval + {self.backup_s:.1f} s (base backup under a write load)"
            )
        replay = ""
        if self.replayed_mb:
            replay = f", replaying {self.replayed_mb:,.0f} MB of WAL to a point after the backup"
        print(f"     RTO = {self.restore_s:.1f} s (restore into an empty folder and database{replay})")


def sqlite_scenario(root: Path, label: str, persons: int, parts: set[str] | None) -> Figures:
    """Seed on SQLite, back up under a write load, restore into an empty folder."""
    settings = settings_for(root / "live", persons)
    seeded = seed(settings, parts)
    db = Database.from_url(settings.database.url)
    load = WriteLoad(db, settings)
    load.write()  # the licence key exists before the backup
    with load:
        started = time.perf_counter()
        made = backup(settings, root / "set", lake_views=lake_versions, passphrase=PASSPHRASE)
        took = time.perf_counter() - started
    db.dispose()
    target = settings_for(root / "restored", persons)
    started = time.perf_counter()
    result = restore(target, root / "set", lake_views=lake_versions, passphrase=PASSPHRASE)
    restored = time.perf_counter() - started
    figures = Figures(label, seeded, _size(root / "set") / 1e6, took, restored, sum(result.tables.values()))
    assert made.tables == result.tables
    for folder in ("live", "set", "restored"):
        shutil.rmtree(root / folder)
    return figures


def wal_lag(server: pg.PrivateServer, database: str, samples: int) -> tuple[float, float]:
    """Commit → flushed by pg_receivewal, in ms (p50, max): the database's RPO."""
    lags = []
    with server.conn(database).connect() as db:
        db.execute("CREATE TABLE IF NOT EXISTS bench_lag (n int)")
        for n in range(samples):
            db.execute("INSERT INTO bench_lag VALUES (%s)", (n,))
            committed = time.perf_counter()
            row = db.execute("SELECT pg_current_wal_lsn()").fetchone()
            assert row is not None
            while True:
                flushed = db.execute(
                    "SELECT flush_lsn >= %s::pg_lsn FROM pg_stat_replication WHERE application_name = 'pg_receivewal'",
                    (row[0],),
                ).fetchone()
                if flushed and flushed[0]:
                    break
            lags.append((time.perf_counter() - committed) * 1000)
        db.execute("DROP TABLE bench_lag")
    return statistics.median(lags), max(lags)


def postgres_scenario(root: Path, label: str, persons: int, parts: set[str] | None) -> Figures | None:
    """Seed on a private PostgreSQL server, base backup + WAL streaming under a write load, measure the lag,
    write on, destroy, restore to a point after the backup into an empty database of the shared server."""
    home = root / "pg"
    home.mkdir()
    home.chmod(0o755)  # the server's folder inside is the postgres user's
    source = pg.PrivateServer.initdb(home / "source")
    archive = root / "wal"
    with source:
        source.start()
        with source.conn("postgres").connect() as admin:
            admin.execute("CREATE DATABASE shgov")
        settings = settings_for(root / "live", persons, source.url("shgov"))
        seeded = seed(settings, parts)
        streaming = pg.stream_wal(source.conn("shgov"), archive, major=source.major)
        try:
            city = Database.from_url(settings.database.url)
            load = WriteLoad(city, settings)
            load.write()
            with load:
                started = time.perf_counter()
                backup(settings, root / "set", lake_views=lake_versions, passphrase=PASSPHRASE, pg_method="base")
                took = time.perf_counter() - started
            lag = wal_lag(source, "shgov", LAG_SAMPLES)
            for _ in range(50):
                load.write()
            with source.conn("shgov").connect() as db:
                row = db.execute("SELECT clock_timestamp()").fetchone()
            point = row[0] if row else None
            load.write()  # a commit after the point: recovery stops at it
            city.dispose()
            with source.conn("postgres").connect() as admin:
                admin.execute("SELECT pg_switch_wal()")
                lsn = admin.execute("SELECT pg_current_wal_lsn()").fetchone()
                assert lsn is not None
                while True:
                    done = admin.execute(
                        "SELECT flush_lsn >= %s::pg_lsn FROM pg_stat_replication", (lsn[0],)
                    ).fetchone()
                    if done and done[0]:
                        break
                    time.sleep(0.05)
        finally:
            streaming.terminate()
            streaming.wait()
    replayed = _size(archive) / 1e6
    shutil.rmtree(home / "source")
    with scratch_postgres("shgov_bench_restore") as url:
        assert url is not None
        target = settings_for(root / "restored", persons, url)
        started = time.perf_counter()
        result = restore(
            target, root / "set", lake_views=lake_versions, passphrase=PASSPHRASE, wal_archive=archive, to_time=point
        )
        restored = time.perf_counter() - started
    figures = Figures(
        label, seeded, _size(root / "set") / 1e6, took, restored, sum(result.tables.values()), lag, replayed
    )
    for folder in ("live", "set", "restored", "wal", "pg"):
        shutil.rmtree(root / folder, ignore_errors=True)
    return figures


def main() -> None:
    """Run each scenario and print its figures, with the machine's load."""
    print(f"   machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (start)")
    postgres = reachable(POSTGRES_URL)
    try:
        pg.tool("initdb")
    except BackupError:
        postgres = False
    with tempfile.TemporaryDirectory(prefix="shgov-bench-backup-") as folder:
        root = Path(folder)
        root.chmod(0o755)
        for label, persons, parts in (
            (f"demo city ({DEMO_PERSONS:,} persons)", DEMO_PERSONS, None),
            (f"{MILLION:,} persons", MILLION, MILLION_PARTS),
        ):
            sqlite_scenario(root, f"{label}, SQLite", persons, parts).print()
            if postgres:
                found = postgres_scenario(root, f"{label}, PostgreSQL base backup + WAL", persons, parts)
                if found is not None:
                    found.print()
            else:
                print("   PostgreSQL skipped: no server at 127.0.0.1:5432 or no PostgreSQL programs")
            print(f"   load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

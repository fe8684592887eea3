"""The sharing gateway on 1M persons, against Datasette and against raw PostgreSQL point selects.

One run, one table: a 1M-person demo city is seeded into PostgreSQL and the lake; the person
register's columns the grant covers are copied into a PostgreSQL table (the raw ceiling: prepared
point selects on the primary key from several connections, like ``pgbench -S``) and into a SQLite
file that Datasette serves (its JSON row API, ``/db/persons/{id}.json``). The gateway answers
``GET /api/v1/share/{code}/{id}`` with a client-credentials token, grant check, masking and an audit
record per call. Each target gets the same closed-loop load (CONCURRENCY clients, DURATION seconds).
Goals (issue #5): ≥ 2× Datasette, ≥ 25 % of the raw ceiling, p99 < 20 ms, audit rows == requests.

Datasette is not a dependency of SH-GOV: ``make bench`` installs it into ``.venv-bench``; without
it that comparison is skipped, saying so. PostgreSQL is required (the ceiling is PostgreSQL's).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy import func, make_url, select

from bench.servers import POSTGRES_URL, free_port, scratch_postgres, wait
from shgov import migrations
from shgov.catalog import service as catalog
from shgov.core.audit import service as audit
from shgov.core.audit.models import AuditRecord
from shgov.core.db import Database, make_engine
from shgov.core.identity.service import create_client, issue_token, principal_by_username
from shgov.core.settings import Settings
from shgov.lake import service as lake
from shgov.registers import service as registers
from shgov.seed import seed_demo
from shgov.sharing import service as sharing

PERSONS = int(os.environ.get("SHGOV_BENCH_PERSONS", "1000000"))
CONCURRENCY = 8
DURATION = 15.0
ROOT = Path(__file__).resolve().parent.parent
DATASETTE = ROOT / ".venv-bench" / "bin" / "datasette"
COLUMNS = ("id_number", "name", "sex", "district_code")


def _load(label: str, *args: str) -> dict[str, float]:
    """Run ``bench.loadgen`` in its own process and print its figures."""
    command = [sys.executable, "-m", "bench.loadgen", "--concurrency", str(CONCURRENCY), "--duration", str(DURATION)]
    done = subprocess.run([*command, *args], check=True, capture_output=True, text=True, cwd=ROOT)  # noqa: S603
    figures: dict[str, float] = json.loads(done.stdout)
    failures = int(figures["failures"])
    print(
        f"   {label}: {figures['calls']:,.0f} calls in {figures['seconds']:.1f} s = {figures['rate']:,.0f}/s;"
        f" p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms{f'; {failures} not 200' if failures else ''}"
    )
    return figures


def main() -> None:
    """Seed, copy the table, serve, load each target, print the figures and ratios."""
    servers: list[subprocess.Popen[bytes]] = []
    with scratch_postgres() as url:
        if url is None:
            print(f"   PostgreSQL is not reachable at {make_url(POSTGRES_URL).host} — the gateway benchmark needs it")
            return
        try:
            with tempfile.TemporaryDirectory() as tmp:
                measure(prepare(Path(tmp), url), servers)
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)


@dataclass(frozen=True)
class City:
    """A seeded city ready to be measured: its database, data folder, the grantee's token and the keys."""

    url: str
    folder: Path
    env: dict[str, str]
    code: str
    token: str
    ids: list[str]
    sqlite_file: Path


def prepare(folder: Path, url: str) -> City:
    """Seed the city, copy the person table for the yardsticks, grant 市民政局's system the four items."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHGOV_")},
        "SHGOV_ENV": "dev",
        "SHGOV_DATA_DIR": str(folder),
        "SHGOV_DATABASE_URL": url,
        "SHGOV_DEMO_PERSONS": str(PERSONS),
        "SHGOV_LOG_LEVEL": "WARNING",
    }
    settings = Settings(_env_file=None, env="dev", data_dir=folder, database_url=url, demo_persons=PERSONS)
    engine = make_engine(url)
    with engine.begin() as conn:
        migrations.upgrade(conn)
    db = Database(engine)
    started = time.perf_counter()
    audit.configure(settings)  # this city's key: a configuration left by an earlier bench would not do
    seed_demo(db, settings)
    print(
        f"   demo city of {PERSONS:,} persons seeded into PostgreSQL and the lake"
        f" in {time.perf_counter() - started:.0f} s"
    )
    with db.session() as session:
        person = next(r for r in catalog.list_resources(session, None) if r.register_code == "person")
        dataset, version, _ = registers.live_dataset(session, "person")
    frame = lake.read_version(settings.lake_dir, dataset, version, list(COLUMNS))
    assert frame is not None
    # The same table for the raw ceiling (PostgreSQL) and for Datasette (SQLite).
    with psycopg.connect(_conninfo(url)) as conn:
        # ``n`` (row number) is for pgbench, whose scripts draw random integers, not random keys.
        conn.execute(
            "CREATE TABLE bench_persons (id_number text PRIMARY KEY, name text, sex text, district_code text,"
            " n integer UNIQUE)"
        )
        with conn.cursor().copy("COPY bench_persons FROM STDIN") as copy:
            for n, row in enumerate(frame.iter_rows(), 1):
                copy.write_row((*row, n))
        conn.execute("ANALYZE bench_persons")
    sqlite_file = folder / "persons.db"
    with sqlite3.connect(sqlite_file) as lite:
        lite.execute("CREATE TABLE persons (id_number TEXT PRIMARY KEY, name TEXT, sex TEXT, district_code TEXT)")
        lite.executemany("INSERT INTO persons VALUES (?, ?, ?, ?)", frame.iter_rows())
    # A grant for 市民政局's system: the four items, names and numbers masked.
    with db.session() as session:
        requester = principal_by_username(session, "minzheng.admin")
        centre = principal_by_username(session, "data.officer")
        assert requester is not None
        assert centre is not None
        request = sharing.file_request(session, requester, person.code, list(COLUMNS), "救助核对", "低保核对", 365)
        sharing.decide(session, centre, request, "approve", rate_per_minute=1_000_000)
        client, _ = create_client(session, name="民政业务系统", tenant_code="310000", department_code="310000.mz")
        token, _ = issue_token(session, client.id, "client_credentials", 3600)
    db.dispose()
    ids = frame["id_number"].to_list()
    (folder / "ids.txt").write_text("\n".join(ids))
    return City(url, folder, env, person.code, token, ids, sqlite_file)


def _serve_gateway(city: City, workers: int, servers: list[subprocess.Popen[bytes]]) -> tuple[int, int]:
    """Start ``shgov serve`` with ``workers`` processes and warm each one up; (port, calls made)."""
    port = free_port()
    command = [sys.executable, "-m", "shgov.cli", "serve", "--port", str(port), "--workers", str(workers)]
    servers.append(subprocess.Popen(command, env=city.env, cwd=city.folder))  # noqa: S603
    wait(f"http://127.0.0.1:{port}/healthz")
    # Every worker reads the 1M-row index on its first call: short loads with many connections (so that
    # every worker gets some) until the rate settles.
    calls, rates = 0, [0.0]
    for _ in range(8):
        warm = _load("(warm-up)", "--duration", "3", "--concurrency", "32", *_gateway_target(city, port))
        calls += int(warm["calls"])
        rates.append(warm["rate"])
        if rates[-1] < rates[-2] * 1.1:
            break
    return port, calls


def _gateway_target(city: City, port: int) -> list[str]:
    paths = city.folder / "gateway.txt"
    if not paths.exists():
        paths.write_text("\n".join(f"/api/v1/share/{city.code}/{i}" for i in city.ids))
    return ["http", "127.0.0.1", str(port), str(paths), "--header", f"Authorization: Bearer {city.token}"]


def _pgbench(city: City) -> dict[str, float] | None:
    """pgbench itself (C client, prepared statements) on the same table, by row number."""
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        print("   pgbench is not installed (Debian: postgresql-client) — its own figure is skipped")
        return None
    url = make_url(city.url)
    script = city.folder / "select.sql"
    script.write_text(
        f"\\set n random(1, {len(city.ids)})\nSELECT {', '.join(COLUMNS)} FROM bench_persons WHERE n = :n;\n"
    )
    command = [pgbench, "-n", "-M", "prepared", "-c", str(CONCURRENCY), "-j", "2", "-T", str(int(DURATION))]
    command += ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    command += ["-f", str(script), url.database or "postgres"]
    done = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603
    tps = float(re.search(r"tps = ([\d.]+)", done.stdout).group(1))  # type: ignore[union-attr]
    latency = float(re.search(r"latency average = ([\d.]+) ms", done.stdout).group(1))  # type: ignore[union-attr]
    print(f"   pgbench -S on the same table (C client, prepared): {tps:,.0f}/s; mean latency {latency:.2f} ms")
    return {"rate": tps}


def measure(city: City, servers: list[subprocess.Popen[bytes]]) -> None:
    """Serve, load each target, print the figures and ratios."""
    audited_calls = 0
    before = _audited(city)
    runs: dict[int, dict[str, float]] = {}
    for workers in sorted({1, os.cpu_count() or 1}):
        port, warm_calls = _serve_gateway(city, workers, servers)
        label = f"SH-GOV gateway, {workers} process{'es' if workers > 1 else ''} (auth + grant + masking + audit)"
        runs[workers] = _load(label, *_gateway_target(city, port))
        audited_calls += warm_calls + int(runs[workers]["calls"])
        server = servers.pop()
        server.terminate()  # every answered call's audit record is committed already
        server.wait(timeout=60)
    select_one = f"SELECT {', '.join(COLUMNS)} FROM bench_persons WHERE id_number = %s"
    ceiling = _load("raw PostgreSQL point selects, Python client like the HTTP ones", "pg", _conninfo(city.url),
                    select_one, str(city.folder / "ids.txt"))  # fmt: skip
    pgbench = _pgbench(city)
    datasette = None
    if DATASETTE.exists():
        dport = free_port()
        servers.append(
            subprocess.Popen(  # noqa: S603
                [str(DATASETTE), "serve", str(city.sqlite_file), "--port", str(dport)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait(f"http://127.0.0.1:{dport}/-/versions.json")
        rows = city.folder / "datasette.txt"
        rows.write_text("\n".join(f"/persons/persons/{i}.json" for i in city.ids))
        datasette = _load("Datasette JSON row API (one process)", "http", "127.0.0.1", str(dport), str(rows))
    else:
        print("   Datasette is not installed in .venv-bench (make bench installs it) — that comparison is skipped")

    audited = _audited(city) - before
    verdict = "equal" if audited == audited_calls else "DIFFERENT"
    print(f"   audit rows {audited:,} for {audited_calls:,} gateway requests, warm-ups included ({verdict})")
    for workers, run in runs.items():
        figures = [f"p99 {run['p99']:.1f} ms (goal < 20 ms)"]
        if datasette:
            figures.append(f"{run['rate'] / datasette['rate']:.2f}× Datasette (goal ≥ 2)")
        figures.append(f"{run['rate'] / ceiling['rate']:.2f} of the Python-client ceiling (goal ≥ 0.25)")
        if pgbench:
            figures.append(f"{run['rate'] / pgbench['rate']:.2f} of pgbench's")
        print(f"   {workers} process{'es' if workers > 1 else ''}: " + "; ".join(figures))
        if run["failures"]:
            print(f"   {run['failures']:,.0f} gateway calls were not answered 200")


def _audited(city: City) -> int:
    engine = make_engine(city.url)
    with engine.connect() as conn:
        audited = conn.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "sharing.gateway.read")
        )
    engine.dispose()
    return int(audited or 0)


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

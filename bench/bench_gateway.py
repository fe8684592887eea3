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

import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import func, make_url, select

from shgov import migrations
from shgov.catalog import service as catalog
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
POSTGRES_URL = os.environ.get("SHGOV_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parent.parent
DATASETTE = ROOT / ".venv-bench" / "bin" / "datasette"
COLUMNS = ("id_number", "name", "sex", "district_code")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up")


def _load(label: str, call: Callable[[Callable[[], str]], int], ids: list[str]) -> tuple[int, float, float, float, int]:
    """Closed-loop load: CONCURRENCY workers call for DURATION seconds; (calls, per s, p50, p99, failures)."""
    latencies: list[list[float]] = [[] for _ in range(CONCURRENCY)]
    failures = [0] * CONCURRENCY
    stop = time.monotonic() + DURATION

    def worker(n: int) -> None:
        rng = random.Random(n)

        def next_id() -> str:
            return ids[rng.randrange(len(ids))]

        while time.monotonic() < stop:
            t0 = time.perf_counter()
            status = call(next_id)
            latencies[n].append((time.perf_counter() - t0) * 1000)
            if status != 200:
                failures[n] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(CONCURRENCY)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    every = sorted(x for lat in latencies for x in lat)
    p50 = statistics.median(every)
    p99 = every[int(len(every) * 0.99) - 1]
    rate = len(every) / elapsed
    print(
        f"   {label}: {len(every):,} calls in {elapsed:.1f} s = {rate:,.0f}/s; p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        f"{f'; {sum(failures)} not 200' if sum(failures) else ''}"
    )
    return len(every), rate, p50, p99, sum(failures)


def _http(base: str, path: Callable[[str], str], headers: dict[str, str]) -> Callable[[Callable[[], str]], int]:
    local = threading.local()

    def call(next_id: Callable[[], str]) -> int:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base, headers=headers, timeout=30)
        return client.get(path(next_id())).status_code

    return call


def _raw(url: str, table: str) -> Callable[[Callable[[], str]], int]:
    local = threading.local()
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    def call(next_id: Callable[[], str]) -> int:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(conninfo, prepare_threshold=0)
        row = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE id_number = %s", (next_id(),)).fetchone()  # noqa: S608
        return 200 if row else 404

    return call


def main() -> None:
    """Seed, copy the table, serve, load each target, print the figures and ratios."""
    admin = make_url(POSTGRES_URL)
    try:
        socket.create_connection((admin.host or "127.0.0.1", admin.port or 5432), timeout=1).close()
    except OSError:
        print(f"   PostgreSQL is not reachable at {admin.host}:{admin.port or 5432} — the gateway benchmark needs it")
        return
    name = f"shgov_bench_{uuid.uuid4().hex[:8]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    servers: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _run(Path(tmp), url, servers)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run(folder: Path, url: str, servers: list[subprocess.Popen[bytes]]) -> None:
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
    ids = frame["id_number"].to_list()
    # The same table for the raw ceiling (PostgreSQL) and for Datasette (SQLite).
    with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
        conn.execute("CREATE TABLE bench_persons (id_number text PRIMARY KEY, name text, sex text, district_code text)")
        with conn.cursor().copy("COPY bench_persons FROM STDIN") as copy:
            for row in frame.iter_rows():
                copy.write_row(row)
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
        sharing.decide(session, centre, request, "approve", rate_per_minute=100_000)
        client, _ = create_client(session, name="民政业务系统", tenant_code="310000", department_code="310000.mz")
        token, _ = issue_token(session, client.id, "client_credentials", 3600)

    port = _free_port()
    servers.append(
        subprocess.Popen([sys.executable, "-m", "shgov.cli", "serve", "--port", str(port)], env=env, cwd=folder)  # noqa: S603
    )
    base = f"http://127.0.0.1:{port}"
    _wait(f"{base}/healthz")
    gateway = _http(base, lambda i: f"/api/v1/share/{person.code}/{i}", {"Authorization": f"Bearer {token}"})
    warm = gateway(lambda: ids[0])  # the first call loads the 1M-row index
    assert warm == 200, warm
    calls, rate, _, p99, failures = _load("SH-GOV gateway (auth + grant + masking + audit)", gateway, ids)

    ceiling_rate = _load("raw PostgreSQL point selects (pgbench -S style)", _raw(url, "bench_persons"), ids)[1]
    datasette_rate = None
    if DATASETTE.exists():
        dport = _free_port()
        servers.append(
            subprocess.Popen(  # noqa: S603
                [str(DATASETTE), "serve", str(sqlite_file), "--port", str(dport), "--setting", "num_sql_threads", "4"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        dbase = f"http://127.0.0.1:{dport}"
        _wait(f"{dbase}/-/versions.json")
        datasette_rate = _load("Datasette JSON row API", _http(dbase, lambda i: f"/persons/persons/{i}.json", {}), ids)[
            1
        ]
    else:
        print("   Datasette is not installed in .venv-bench (make bench installs it) — that comparison is skipped")

    time.sleep(2)  # the audit writer flushes every half second
    with db.session() as session:
        audited = session.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "sharing.gateway.read")
        )
    print(
        f"   audit rows {audited:,} for {calls + 1:,} gateway requests"
        f" ({'equal' if audited == calls + 1 else 'DIFFERENT'})"
    )
    if datasette_rate:
        print(f"   ratio to Datasette: {rate / datasette_rate:.2f} (goal ≥ 2)")
    print(f"   ratio to the raw ceiling: {rate / ceiling_rate:.2f} (goal ≥ 0.25); p99 {p99:.1f} ms (goal < 20 ms)")
    if failures:
        print(f"   {failures} gateway calls were not answered 200")

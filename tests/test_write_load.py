"""The bench's mixed write load (``bench/writeload.py``) with 8 clients for 10 s over real HTTP, on SQLite and on
PostgreSQL: no answer is a 5xx (nor any other unexpected status), and every write the server acknowledged is
in the database afterwards (issue #25, point 2).

The load runs on a copy of the session's seeded database (the demo accounts, services, work-order categories,
catalog), so its thousands of commits never reach the other tests; the app is served by a real uvicorn in a
thread, without the shared server's turn-taking, so requests really run side by side."""

from __future__ import annotations

import sqlite3
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from bench import writeload
from bench.servers import POSTGRES_URL
from sqlalchemy import Engine, make_url

from shgov import migrations
from shgov.app import create_app
from shgov.core.db import Database, make_engine
from shgov.core.regions.service import RegionIndex
from shgov.seed import seed_demo
from tests.conftest import LiveServer, make_settings

CLIENTS = 8
SECONDS = 10.0


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _postgres_copy(engine: Engine, name: str, tmp_path: Path) -> str:
    """A copy of the session's PostgreSQL database (CREATE DATABASE … TEMPLATE, which needs it to have no
    connections for a moment); seeded afresh if another test's pool keeps one open."""
    source = engine.url.database
    engine.dispose()
    with psycopg.connect(_conninfo(POSTGRES_URL), autocommit=True) as admin:
        for _attempt in range(5):
            try:
                admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
                return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
            except psycopg.errors.ObjectInUse:
                time.sleep(1)  # a connection being returned to its pool
        admin.execute(f'CREATE DATABASE "{name}"')
    warnings.warn(f"{source} stayed in use: the write load's database is seeded afresh", stacklevel=2)
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    fresh = make_engine(url)
    with fresh.begin() as conn:
        migrations.upgrade(conn)
    seed_demo(Database(fresh), make_settings(tmp_path / "seed"))
    fresh.dispose()
    return url


@pytest.fixture
def load_database(engine: Engine, tmp_path: Path) -> Iterator[str]:
    """The URL of a private copy of the session's seeded database, removed afterwards."""
    if engine.dialect.name == "sqlite":
        copy = tmp_path / "load.db"
        with sqlite3.connect(str(engine.url.database)) as source, sqlite3.connect(copy) as target:
            source.backup(target)
        yield f"sqlite:///{copy}"
        return
    name = f"shgov_load_{uuid.uuid4().hex[:10]}"
    url = _postgres_copy(engine, name, tmp_path)
    try:
        yield url
    finally:
        with psycopg.connect(_conninfo(POSTGRES_URL), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Eight clients for ten seconds against a server of its own: the gate runs it, the quick lane does not.
@pytest.mark.slow
def test_the_mixed_write_load_has_no_server_errors_and_loses_no_acknowledged_write(
    load_database: str, region_index: RegionIndex, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, database={"url": load_database})
    app = create_app(settings, background=False)
    app.state.region_index = region_index
    server = LiveServer()
    server.switch.take_turns = False  # the app has its own connection pool: requests run side by side
    server.switch.target = app
    server.start()
    try:
        # At least one whole deck per client, so that every kind of write is made however slow the machine.
        result = writeload.run(server.url, CLIENTS, SECONDS, min_rounds=1)
    finally:
        server.stop()
        for runtime in app.state.runtimes.values():
            runtime.stop()
        app.state.db.dispose()

    figures = (
        f"{result.requests} requests in {result.seconds:.1f} s, {result.writes} writes acknowledged; "
        f"requests by kind: {dict(result.by_op())}"
    )
    # Every unexpected answer is listed: status (0: no HTTP answer), request, count and the first body.
    assert result.server_errors == 0, f"5xx answers:\n{result.failures()}\n{figures}"
    assert not result.unexpected, f"unexpected answers:\n{result.failures()}\n{figures}"
    assert all(result.acked[kind] for kind in writeload.WRITES), figures
    db = Database(make_engine(load_database))
    try:
        verified = writeload.verify(db, result.acked)
    finally:
        db.dispose()
    missing = {kind: made - found for kind, (made, found) in verified.items() if found != made}
    assert not missing, f"acknowledged but not in the database: {missing} ({figures})"

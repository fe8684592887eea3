"""Shared fixtures: settings, both database backends (each test rolled back), a real HTTP server."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import time_machine
import uvicorn
from bench.servers import POSTGRES_URL, scratch_postgres
from fastapi import FastAPI
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Connection, Engine, select
from sqlalchemy.engine import make_url
from starlette.types import Message, Receive, Scope, Send

from shgov import migrations
from shgov.app import create_app
from shgov.core.calendar.service import default_calendar
from shgov.core.db import STRICT_LOOP_VARIABLE, Database, make_engine
from shgov.core.identity.models import User
from shgov.core.identity.service import issue_token
from shgov.core.regions.service import RegionIndex
from shgov.core.settings import Settings
from shgov.lake.synthetic import SyntheticCity
from shgov.seed import seed_demo

# The city's clock for the whole run: a Monday (a working day) of the synthetic city's month, ticking from
# the moment the run starts, so that no test depends on the date it happens to run (the official holiday
# schedule, "this month", ages and deadlines), only on durations it measures itself.
CITY_NOW = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)

# Property tests replay the same examples on every run of the gate: whether a commit lands must not depend
# on what a random draw happened to find. ``--hypothesis-profile explore`` draws new examples (with
# ``--hypothesis-seed`` to replay one draw); what it finds becomes an ``@example``.
hypothesis_settings.register_profile("gate", derandomize=True)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile("gate")


def pytest_configure(config: pytest.Config) -> None:
    """Start the city's clock before any test module is imported (module constants read it too), and
    refuse a write turn taken on an event loop's thread (see ``core.db.WriteGate.acquire``)."""
    os.environ[STRICT_LOOP_VARIABLE] = "1"
    traveller = time_machine.travel(CITY_NOW, tick=True)
    traveller.start()
    config.add_cleanup(traveller.stop)


BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backends",
        default=os.environ.get("SHGOV_TEST_BACKENDS", ",".join(BACKENDS)),
        help="comma-separated database backends to test (sqlite, postgresql; default both, or "
        "$SHGOV_TEST_BACKENDS): the tests of the others are deselected",
    )


def _backends(config: pytest.Config) -> set[str]:
    chosen = {name.strip() for name in str(config.getoption("backends")).split(",") if name.strip()}
    if unknown := chosen - set(BACKENDS):
        raise pytest.UsageError(f"--backends: unknown {', '.join(sorted(unknown))} (choose from {', '.join(BACKENDS)})")
    return chosen


def _uses_postgresql(item: pytest.Item) -> bool:
    """A test of the PostgreSQL backend: a parameter (``engine``, a module's own database, ``backend``) set to
    it, the session's PostgreSQL database among its fixtures, or the ``postgresql`` marker set by hand."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "postgresql" in callspec.params.values():
        return True
    if "postgresql_database" in getattr(item, "fixturenames", ()):
        return True
    return item.get_closest_marker("postgresql") is not None


@pytest.hookimpl(tryfirst=True)  # before ``-m`` reads the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every PostgreSQL test ``postgresql`` and deselect it unless PostgreSQL is among ``--backends``
    (deselected rather than skipped, so that its session database is never even created)."""
    wanted = _backends(config)
    kept, dropped = [], []
    for item in items:
        if _uses_postgresql(item):
            item.add_marker(pytest.mark.postgresql)
            if "postgresql" not in wanted:
                dropped.append(item)
                continue
        elif "sqlite" not in wanted and "engine" in getattr(item, "fixturenames", ()):
            dropped.append(item)
            continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


NATS_URL = os.environ.get("SHGOV_TEST_NATS_URL", "nats://127.0.0.1:4222")
TEST_SECRET = "test-secret-0123456789abcdef"
# One audit chain key for every test: the seeded chain and the tests' apps must share it.
TEST_AUDIT_KEY = "test-audit-chain-key-0123456789abcdef"


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test: no ``.env`` file, a real secret, storage under ``data_dir``."""
    values: dict[str, Any] = {
        "env": "test",
        "secret_key": TEST_SECRET,
        "web": {"session_secret": TEST_SECRET},
        "data_dir": data_dir,
        "log_json": False,
        "demo_persons": 3000,
        "workorders": {"demo_orders": 0},  # tests make the orders they look at
    }
    values.update(overrides)
    values["security"] = {"audit_key": TEST_AUDIT_KEY, **values.get("security", {})}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def postgresql_database() -> Iterator[str]:
    """A PostgreSQL database created for this run (dropped at the end), or a skip saying why."""
    with scratch_postgres("shgov_test") as url:
        if url is None:
            pytest.skip(f"PostgreSQL is not reachable at {make_url(POSTGRES_URL).host}:5432 — PostgreSQL runs skipped")
        yield url


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite file for this run."""
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'shgov.db'}"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated engine with the reference data and demo accounts, once on SQLite and once on PostgreSQL."""
    url = request.getfixturevalue(f"{request.param}_database")
    eng = make_engine(url)
    with eng.begin() as conn:
        migrations.upgrade(conn)
    folder = tmp_path_factory.mktemp("seed")
    seed_demo(Database(eng), make_settings(folder))
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def region_index(engine: Engine) -> RegionIndex:
    """The index of the seeded divisions (built once; tests that add grids copy it)."""
    with Database(engine).session() as session:
        return RegionIndex.from_session(session)


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that is rolled back after the test."""
    conn = engine.connect()
    outer = conn.begin()
    try:
        yield conn
    finally:
        if outer.is_active:
            outer.rollback()
        conn.close()


@pytest.fixture
def db(connection: Connection) -> Database:
    """A ``Database`` whose commits stay inside the test's transaction."""
    return Database(connection)


@pytest.fixture
def settings(tmp_path: Path, engine: Engine) -> Settings:
    """Settings pointing at the test's backend and a private data folder."""
    url = engine.url.render_as_string(hide_password=False)
    return make_settings(tmp_path, database={"url": url})


class SwitchApp:
    """An ASGI app that forwards to whichever app the current test set.

    A test's app works on one database connection (the test's transaction), and one connection cannot
    interleave savepoints: requests the browser sends in parallel (a page's images, a second tab) take turns
    on the database's ``turns`` lock, which event streams take for each poll (``live_events``) and the test
    itself with ``db.one_at_a_time()``. An event stream holds the turn only until its answer starts (its
    dependencies — the sign-in check — are units of work too), not while it stays open. Nothing takes turns
    while ``take_turns`` is off (an app that calls a provider it serves itself would wait for its own turn)."""

    def __init__(self) -> None:
        self.target: FastAPI | None = None
        self.take_turns = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if self.target is None:
            raise RuntimeError("no app set for this test")
        db = getattr(self.target.state, "db", None)
        turns = db.turns if isinstance(db, Database) else None
        if turns is None or not self.take_turns or scope["type"] != "http":
            await self.target(scope, receive, send)
            return
        # polled rather than awaited in a thread: a request cancelled while waiting must not take the turn later
        while not turns.acquire(blocking=False):  # noqa: ASYNC110 - a thread lock, not an event
            await asyncio.sleep(0.002)
        held = True

        def give_back() -> None:
            nonlocal held
            if held:
                held = False
                turns.release()

        async def send_then_give_back(message: Message) -> None:
            if message["type"] == "http.response.start" and _is_event_stream(message):
                give_back()
            await send(message)

        try:
            await self.target(scope, receive, send_then_give_back)
        finally:
            give_back()


def _is_event_stream(start: Message) -> bool:
    return any(k.lower() == b"content-type" and v.startswith(b"text/event-stream") for k, v in start["headers"])


class LiveServer:
    """A real uvicorn server on a free loopback port, in a thread, for the whole test session."""

    def __init__(self) -> None:
        self.switch = SwitchApp()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(self.switch, log_level="warning", lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    """The session's HTTP server."""
    server = LiveServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def app(settings: Settings, db: Database, region_index: RegionIndex) -> Iterator[FastAPI]:
    """The app on the test's database (no background tasks)."""
    application = create_app(settings, database=db, background=False)
    application.state.region_index = region_index
    yield application
    for runtime in application.state.runtimes.values():  # the shared server never runs this app's lifespan
        runtime.stop()


@pytest.fixture(autouse=True)
def _restore_default_calendar() -> Iterator[None]:
    """Schedules loaded by a test do not outlive it."""
    calendar = default_calendar()
    saved = calendar.overrides()
    yield
    calendar.set_overrides(saved)


@pytest.fixture
def token_for(db: Database) -> Callable[[str], str]:
    """Issue a bearer token for a demo account inside the test's transaction."""

    def issue(username: str) -> str:
        with db.session() as session:
            user_id = session.scalar(select(User.id).where(User.username == username))
            assert user_id is not None, username
            raw, _ = issue_token(session, user_id, "password", 3600)
        return raw

    return issue


@pytest.fixture
def admin_token(token_for: Callable[[str], str]) -> str:
    """A platform administrator's token."""
    return token_for("admin")


@pytest.fixture
def server_url(live_server: LiveServer, app: FastAPI) -> Iterator[str]:
    """The base URL at which ``app`` is served over real HTTP during this test."""
    live_server.switch.target = app
    yield live_server.url
    live_server.switch.target = None


@pytest.fixture
def client(server_url: str) -> Iterator[httpx.Client]:
    """An HTTP client of the served app."""
    with httpx.Client(base_url=server_url, timeout=10) as http:
        yield http


def served_lake(
    folder: Path, db: Database, city: SyntheticCity, region_index: RegionIndex, app: FastAPI, built: tuple[str, ...]
) -> Path:
    """Load every delivery of a synthetic ``city`` into a lake at ``folder``, build the ``built`` registers
    and point the served app at it."""
    from shgov.lake import service as lake
    from shgov.registers import service as registers

    with db.session() as session:
        context = lake.make_context(folder / "lake", lake.region_codes(region_index))
        lake.load_city(session, folder / "lake", city, folder / "incoming", context)
    for register in built:
        with db.session() as session:
            registers.build(session, folder / "lake", register)
    app.state.settings.analytics.lake_dir = folder / "lake"
    return folder / "lake"


@pytest.fixture
def later() -> Iterator[Callable[[float], None]]:
    """Move the clock on by some seconds (every thread: the served app too), never by sleeping."""
    travellers: list[time_machine.travel] = []

    def move(seconds: float) -> None:
        traveller = time_machine.travel(datetime.now(UTC) + timedelta(seconds=seconds), tick=True)
        traveller.start()
        travellers.append(traveller)

    yield move
    for traveller in reversed(travellers):
        traveller.stop()

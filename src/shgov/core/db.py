"""Transactional storage: the declarative base, column conventions and the ``Database`` handle.

SQLite (WAL, foreign keys on) is the embedded default; PostgreSQL is used when the URL says so.
There is no module-level engine: ``create_app`` and the CLI build one ``Database`` from settings.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Connection, DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from shgov.core.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table; constraint names are deterministic for migrations."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}  # noqa: RUF012


class TimestampMixin:
    """``created_at`` / ``updated_at`` in UTC, maintained by the ORM."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class UUIDKeyMixin:
    """A UUID primary key, used for every citizen-facing record."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)


class DatabaseBusyError(OperationalError):
    """The database did not let this unit of work write within the bounded wait (a genuinely stuck or
    unavailable database: under normal load writers queue and never see this)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, None, sqlite3.OperationalError(message))


class StaleSnapshotError(Exception):
    """A unit of work that began as a reader tried to write after another writer committed: its reads
    may be outdated, so it must run again from the start as a writer (nothing of it was kept)."""


STRICT_LOOP_VARIABLE = "SHGOV_STRICT_EVENT_LOOP"


class WriteGate:
    """SQLite lets one writer at a time. Inside one process writers queue here, with a bounded wait,
    instead of spinning on SQLite's busy handler; ``commits`` counts the write transactions that ended, so
    a reader can tell whether its snapshot is still the newest.

    Threads wait by blocking; the event loop waits with ``acquire_async``, never by blocking — the
    writer it would wait for may need the loop to finish (its commit is scheduled by the loop)."""

    def __init__(self, wait_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        self._lock = threading.Lock()
        self._mutex = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self.commits = 0

    def acquire(self) -> None:
        """Wait for the turn to write, at most ``wait_seconds``; raise ``DatabaseBusyError`` after that."""
        if _on_event_loop():
            # Blocking here would stall the loop, and with it the writer that holds the turn: run writing
            # code in a worker thread (FastAPI does for plain ``def`` handlers). The test suite refuses it
            # outright, so that every such place is found, not only the ones that meet contention.
            if os.environ.get(STRICT_LOOP_VARIABLE) == "1":
                raise RuntimeError("a unit of work took its write turn on the event loop thread")
            if self._lock.acquire(blocking=False):
                return
            raise StaleSnapshotError("no write turn is free, and the event loop must not wait for one")
        if not self._lock.acquire(timeout=self.wait_seconds):
            raise DatabaseBusyError(f"no turn to write within {self.wait_seconds:g} s")

    async def acquire_async(self) -> None:
        """Wait for the turn without blocking the event loop, at most ``wait_seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_seconds
        while True:
            with self._mutex:
                if self._lock.acquire(blocking=False):
                    return
                woken: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, woken))
            try:
                await asyncio.wait_for(woken, max(0.0, deadline - loop.time()))
            except TimeoutError:
                with self._mutex:
                    if (loop, woken) in self._waiters:
                        self._waiters.remove((loop, woken))
                raise DatabaseBusyError(f"no turn to write within {self.wait_seconds:g} s") from None

    def release(self) -> None:
        """End a write turn (from any thread: a request's unit of work may end on another worker thread)."""
        self.commits += 1
        self._lock.release()
        with self._mutex:
            if self._waiters:
                loop, woken = self._waiters.popleft()
                loop.call_soon_threadsafe(_wake, woken)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_serving_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def serving_loop() -> None:
    """Note that the running event loop serves requests (called per request by ``UnitOfWorkMiddleware``):
    a write turn must never be waited for on its thread."""
    _serving_loops.add(asyncio.get_running_loop())


def _on_event_loop() -> bool:
    try:
        return asyncio.get_running_loop() in _serving_loops
    except RuntimeError:
        return False


class Turn:
    """A write turn taken ahead of the unit of work that will use it (a request waits for it on the event
    loop, then begins its transaction on a worker thread). The first writer transaction of that unit of
    work consumes it; ``release_unused`` gives it back when none did."""

    def __init__(self, gate: WriteGate) -> None:
        self.gate = gate
        self.consumed = False

    def release_unused(self) -> None:
        """Give the turn back unless a transaction took it (that transaction gives it back at its end)."""
        if not self.consumed:
            self.consumed = True
            self.gate.release()


@dataclass
class _Scope:
    """One logical unit of work (a request, a CLI command, a job): a writer connection it holds lets a
    nested ``Database.session(write=True)`` join it through a savepoint instead of waiting for itself."""

    connection: Connection | None = None


_scope: ContextVar[_Scope | None] = ContextVar("shgov_db_scope", default=None)


@contextmanager
def unit_of_work_scope() -> Iterator[None]:
    """Mark the code inside as one logical unit of work (the web app wraps every request in one)."""
    token = _scope.set(_Scope())
    try:
        yield
    finally:
        _scope.reset(token)


IMMEDIATE = "shgov_sqlite_immediate"
TURN = "shgov_turn"
_GATE = "shgov_gate"
_SEEN = "shgov_seen"
_SCOPE = "shgov_scope"
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")
_gates: weakref.WeakKeyDictionary[Engine, WriteGate] = weakref.WeakKeyDictionary()


def _sqlite_connect(wait_seconds: float) -> Callable[[Any, Any], None]:
    def connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling breaks SAVEPOINT and transactional DDL: turn it off; the
        # listeners below emit BEGIN, COMMIT and ROLLBACK themselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Only other processes (a CLI command beside the server) make SQLite itself wait.
        cursor.execute(f"PRAGMA busy_timeout={int(wait_seconds * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return connect


def _take_turn(gate: WriteGate, connection: Connection) -> None:
    turn: Turn | None = connection.get_execution_options().get(TURN)
    if turn is not None and not turn.consumed:
        turn.consumed = True
    else:
        gate.acquire()
    connection.info[_GATE] = gate
    scope = _scope.get()
    if scope is not None and scope.connection is None:
        scope.connection = connection
        connection.info[_SCOPE] = scope


def _end_turn(connection: Connection) -> None:
    gate: WriteGate | None = connection.info.pop(_GATE, None)
    scope: _Scope | None = connection.info.pop(_SCOPE, None)
    if scope is not None and scope.connection is connection:
        scope.connection = None
    if gate is not None:
        gate.release()


def _sqlite_listeners(engine: Engine, gate: WriteGate) -> None:
    """The transaction discipline of SQLite, in one place.

    A unit of work that says it will write begins as a writer: it takes this process's write turn, then
    SQLite's write lock (``BEGIN IMMEDIATE``), so it can never find its snapshot outdated at its first
    write. A reader begins deferred and takes no turn; should it write after all, it takes the turn at
    its first write statement — and when another writer committed since it began, its reads may be
    stale and it raises ``StaleSnapshotError`` to be run again as a writer (see ``core.http.UnitOfWorkMiddleware``)."""

    def begin(connection: Connection) -> None:
        if connection.get_execution_options().get(IMMEDIATE):
            _take_turn(gate, connection)
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                _end_turn(connection)
                raise
        else:
            connection.info[_SEEN] = gate.commits
            connection.exec_driver_sql("BEGIN")

    def before_execute(connection: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        if _GATE in connection.info or not statement.lstrip()[:7].upper().startswith(_WRITES):
            return
        if not connection.in_transaction():
            return
        _take_turn(gate, connection)
        if gate.commits != connection.info.get(_SEEN, gate.commits):
            _end_turn(connection)
            raise StaleSnapshotError("another writer committed since this unit of work began reading")

    def finish(verb: str) -> Callable[[Connection], None]:
        def end(connection: Connection) -> None:
            # COMMIT / ROLLBACK here, then give the turn back: the driver's own commit() that follows
            # finds no open transaction and does nothing.
            try:
                raw = connection.connection.dbapi_connection
                if raw is not None and raw.in_transaction:
                    raw.execute(verb)
            finally:
                connection.info.pop(_SEEN, None)
                _end_turn(connection)

        return end

    event.listen(engine, "connect", _sqlite_connect(gate.wait_seconds))
    event.listen(engine, "begin", begin)
    event.listen(engine, "before_cursor_execute", before_execute)
    event.listen(engine, "commit", finish("COMMIT"))
    event.listen(engine, "rollback", finish("ROLLBACK"))


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10, write_wait_seconds: float = 15.0) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL mode, foreign keys and the writers' discipline."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})
        gate = _gates[engine] = WriteGate(write_wait_seconds)
        _sqlite_listeners(engine, gate)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, echo=echo, pool_size=pool_size, pool_pre_ping=True)


class Database:
    """The engine plus a session factory, and hooks that run after a successful commit."""

    def __init__(self, bind: Engine | Connection) -> None:
        self.bind = bind
        self.engine: Engine = bind if isinstance(bind, Engine) else bind.engine
        # Bound to an outer connection (tests): commits become savepoint releases, so the test's
        # transaction can still roll everything back.
        if isinstance(bind, Connection):
            self._factory = sessionmaker(bind=bind, expire_on_commit=False, join_transaction_mode="create_savepoint")
        else:
            self._factory = sessionmaker(bind=bind, expire_on_commit=False)
        self._gate = _gates.get(self.engine) if isinstance(bind, Engine) else None
        # Writers' connections carry the option, so they begin as writers when first used, not before.
        self._writer_bind = self.engine.execution_options(**{IMMEDIATE: True}) if self._gate else None
        self._after_commit: list[Callable[[Session], None]] = []
        event.listen(self._factory, "after_commit", self._run_after_commit)
        # One connection cannot interleave units of work (their savepoints would cross): whoever shares it
        # from several threads (a test's server, its event streams and the test itself) takes turns here.
        # A plain lock, not an RLock: a request's turn may end on another thread than it began on.
        self.turns: threading.Lock | None = threading.Lock() if isinstance(bind, Connection) else None

    @classmethod
    def from_url(
        cls, url: str, *, echo: bool = False, pool_size: int = 10, write_wait_seconds: float = 15.0
    ) -> Database:
        """Open the database at ``url``."""
        return cls(make_engine(url, echo=echo, pool_size=pool_size, write_wait_seconds=write_wait_seconds))

    @property
    def dialect(self) -> str:
        """The backend name: ``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def on_commit(self, hook: Callable[[Session], None]) -> None:
        """Register ``hook`` to run after every successful commit of a session from this database."""
        self._after_commit.append(hook)

    def _run_after_commit(self, session: Session) -> None:
        for hook in self._after_commit:
            hook(session)

    async def take_turn(self) -> Turn | None:
        """Wait on the event loop for a write turn, for a unit of work to begin with (None: no gate here)."""
        if self._gate is None:
            return None
        await self._gate.acquire_async()
        return Turn(self._gate)

    def new_session(self, *, write: bool = True, turn: Turn | None = None) -> Session:
        """A new session; the caller commits or rolls back and closes it. See ``session`` for ``write``;
        ``turn`` is a write turn already taken for it (``take_turn``)."""
        if not write or self._gate is None:
            return self._factory()
        scope = _scope.get()
        held = scope.connection if scope is not None else None
        if held is not None and held.info.get(_GATE) is self._gate and held.in_transaction():
            # This unit of work already holds the write turn: join it rather than wait for itself.
            return self._factory(bind=held, join_transaction_mode="create_savepoint")
        if turn is not None:
            session = self._factory(bind=self._writer_bind)
            session.connection(execution_options={TURN: turn})  # begins now, on the turn already taken
            return session
        return self._factory(bind=self._writer_bind)

    @contextmanager
    def session(self, *, write: bool = True, turn: Turn | None = None) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any exception.

        ``write=True`` (the default) begins it as a writer: on SQLite it waits its turn to write up
        front, never failing on a snapshot another writer outdated. ``write=False`` begins a reader,
        which may still write but raises ``StaleSnapshotError`` when that is no longer safe."""
        token = _scope.set(_Scope()) if _scope.get() is None else None
        try:
            session = self.new_session(write=write, turn=turn)
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
        finally:
            if token is not None:
                try:
                    _scope.reset(token)
                except ValueError:  # ended in another context (a generator dependency closed on another thread)
                    _scope.set(None)

    @contextmanager
    def one_at_a_time(self) -> Iterator[None]:
        """Hold the shared connection's turn (see ``turns``) for a unit of work begun outside a request;
        nothing to wait for on an engine, whose sessions each get their own connection."""
        if self.turns is None:
            yield
            return
        with self.turns:
            yield

    def ping(self) -> None:
        """Run a trivial query; raises if the database does not answer."""
        with self._factory() as session:
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close pooled connections (only when this handle owns the engine)."""
        if isinstance(self.bind, Engine):
            self.bind.dispose()


def open_database(settings: Settings) -> Database:
    """The database the settings name (``settings.database``: url, echo, pool size, write wait)."""
    conf = settings.database
    return Database.from_url(
        conf.url, echo=conf.echo, pool_size=conf.pool_size, write_wait_seconds=conf.write_wait_seconds
    )


class ChangeCounter:
    """A process-wide count of the writes to some tables, for in-memory caches that must drop what they
    hold when those rows change: a cache remembers the value it was filled at and refills when it moved.

    ORM flushes and ORM-enabled bulk ``update``/``delete`` of the models count; so does ``bump()`` for
    changes the cache learns of otherwise (an event from another context). Other processes are not
    told: their caches must also expire by time."""

    def __init__(self, *models: type[Base]) -> None:
        self.models = models
        self.tables = frozenset(m.__table__ for m in models)
        self.value = 0
        event.listen(Session, "after_flush", self._after_flush)
        event.listen(Session, "do_orm_execute", self._on_execute)

    def bump(self) -> None:
        """Count a change."""
        self.value += 1

    def _after_flush(self, session: Session, _context: Any) -> None:
        for collection in (session.new, session.dirty, session.deleted):
            if any(isinstance(obj, self.models) for obj in collection):
                self.bump()
                return

    def _on_execute(self, state: Any) -> None:
        if (state.is_update or state.is_delete) and getattr(state.statement, "table", None) in self.tables:
            self.bump()

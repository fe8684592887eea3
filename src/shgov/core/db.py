"""Transactional storage: the declarative base, column conventions and the ``Database`` handle.

SQLite (WAL, foreign keys on) is the embedded default; PostgreSQL is used when the URL says so.
There is no module-level engine: ``create_app`` and the CLI build one ``Database`` from settings.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Connection, DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

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


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT and transactional DDL: turn it off and let
    # SQLAlchemy emit BEGIN itself (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


IMMEDIATE = "shgov_sqlite_immediate"


def _sqlite_begin(connection: Connection) -> None:
    # A unit of work that will write takes SQLite's write lock at once (BEGIN IMMEDIATE): one that read
    # first could not write later if another writer committed meanwhile (a stale WAL snapshot fails at
    # once, without waiting for the busy timeout).
    immediate = connection.get_execution_options().get(IMMEDIATE)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL mode, foreign keys and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
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
        self._after_commit: list[Callable[[Session], None]] = []
        event.listen(self._factory, "after_commit", self._run_after_commit)

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False, pool_size: int = 10) -> Database:
        """Open the database at ``url``."""
        return cls(make_engine(url, echo=echo, pool_size=pool_size))

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

    def new_session(self) -> Session:
        """A new session; the caller commits or rolls back and closes it."""
        return self._factory()

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on any exception. ``write`` says it will write
        (on SQLite it then waits for the write lock up front instead of failing on a stale snapshot)."""
        session = self._factory()
        if write and self.dialect == "sqlite" and isinstance(self.bind, Engine):
            session.connection(execution_options={IMMEDIATE: True})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        """Run a trivial query; raises if the database does not answer."""
        with self._factory() as session:
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close pooled connections (only when this handle owns the engine)."""
        if isinstance(self.bind, Engine):
            self.bind.dispose()


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

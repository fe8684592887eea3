"""Storage conventions: SQLite pragmas, aware UTC timestamps, savepoints on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Connection, select, text, update
from sqlalchemy.exc import StatementError

from shgov.core.audit.models import AuditHead
from shgov.core.db import ChangeCounter, Database, make_engine
from shgov.core.events import OutboxEvent


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_timestamps_come_back_timezone_aware_in_utc(db: Database) -> None:
    shanghai = timezone(timedelta(hours=8))
    with db.session() as session:
        session.add(OutboxEvent(type="a.b", payload={}, occurred_at=datetime(2026, 10, 1, 8, 0, tzinfo=shanghai)))
    with db.session() as session:
        stored = session.scalars(select(OutboxEvent)).one().occurred_at
    assert stored == datetime(2026, 10, 1, 0, 0, tzinfo=UTC)
    assert stored.tzinfo is not None


def test_naive_timestamps_are_refused(db: Database) -> None:
    with pytest.raises(StatementError, match="naive"), db.session() as session:
        session.add(OutboxEvent(type="a.b", payload={}, occurred_at=datetime(2026, 10, 1, 8, 0)))  # noqa: DTZ001
        session.flush()


def test_a_failed_unit_of_work_leaves_nothing_behind(db: Database) -> None:
    with pytest.raises(ZeroDivisionError), db.session() as session:
        session.add(OutboxEvent(type="a.b", payload={"n": 1}))
        session.flush()
        _ = 1 / 0
    with db.session() as session:
        assert session.scalars(select(OutboxEvent)).all() == []


def test_the_database_answers_a_ping(db: Database, connection: Connection) -> None:
    db.ping()
    assert connection.execute(text("SELECT 1")).scalar() == 1


def test_a_change_counter_moves_on_writes_to_its_tables_only(db: Database) -> None:
    counter = ChangeCounter(OutboxEvent)
    with db.session() as session:
        session.add(OutboxEvent(type="a.b", payload={}))
        session.flush()
        added = counter.value
        assert added > 0
        session.add(AuditHead(id=99, last_seq=0, last_hash="0" * 64))  # another table: no change counted
        session.flush()
        assert counter.value == added
        session.execute(update(OutboxEvent).values(type="a.c"))  # a bulk update counts too
        assert counter.value > added
        session.rollback()

"""SQLite's writers' discipline: writers never fail because another write is running, a reader whose snapshot
went stale is run again, nested units of work join, and a stuck database answers 503 once, with an incident."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from shgov.core.db import Database, DatabaseBusyError, StaleSnapshotError
from shgov.core.deps import SessionDep
from shgov.core.errors import ProblemResponder, install_error_handlers
from shgov.core.http import UnitOfWorkMiddleware


@pytest.fixture
def counter_db(tmp_path: Path) -> Iterator[Database]:
    db = Database.from_url(f"sqlite:///{tmp_path / 'w.db'}", write_wait_seconds=30)
    with db.session() as session:
        session.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        session.execute(text("INSERT INTO counter VALUES (1, 0)"))
    yield db
    db.dispose()


def value(db: Database) -> int:
    with db.session(write=False) as session:
        return int(session.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one())


def test_writers_that_read_first_never_fail_and_lose_no_update(counter_db: Database) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        for _ in range(100):
            try:
                with counter_db.session() as session:
                    n = session.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one()
                    session.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert value(counter_db) == 800


def test_a_reader_may_write_while_its_snapshot_is_current_and_is_stopped_once_it_is_not(counter_db: Database) -> None:
    with counter_db.session(write=False) as session:
        session.execute(text("SELECT n FROM counter")).all()
        session.execute(text("UPDATE counter SET n = n + 1"))
    assert value(counter_db) == 1

    with pytest.raises(StaleSnapshotError), counter_db.session(write=False) as session:
        session.execute(text("SELECT n FROM counter")).all()
        done = threading.Thread(target=lambda: _bump(counter_db))
        done.start()
        done.join()
        session.execute(text("UPDATE counter SET n = n + 100"))
    assert value(counter_db) == 2  # the other writer's change, and nothing of the stale reader's


def _bump(db: Database) -> None:
    with db.session() as session:
        session.execute(text("UPDATE counter SET n = n + 1"))


def test_a_nested_writer_joins_the_unit_of_work_instead_of_waiting_for_itself(counter_db: Database) -> None:
    with counter_db.session() as outer:
        outer.execute(text("UPDATE counter SET n = n + 1"))
        with counter_db.session() as inner:
            inner.execute(text("UPDATE counter SET n = n + 10"))
    assert value(counter_db) == 11
    with pytest.raises(RuntimeError), counter_db.session() as outer:
        outer.execute(text("SELECT n FROM counter")).all()  # a writer holds its turn from its first statement
        with counter_db.session() as inner:
            inner.execute(text("UPDATE counter SET n = n + 10"))
        raise RuntimeError("the outer unit of work fails")
    assert value(counter_db) == 11  # the joined change went with it


def test_a_writer_that_cannot_get_its_turn_is_told_so_after_the_bounded_wait(tmp_path: Path) -> None:
    db = Database.from_url(f"sqlite:///{tmp_path / 'b.db'}", write_wait_seconds=0.2)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with db.session() as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        with pytest.raises(DatabaseBusyError), db.session() as session:
            session.execute(text("SELECT 1"))
    finally:
        release.set()
        holder.join()
    db.dispose()


def make_app(db: Database) -> FastAPI:
    app = FastAPI()
    app.state.db = db
    install_error_handlers(app, ProblemResponder())
    calls: list[str] = []
    app.state.calls = calls

    @app.get("/count")
    def count(session: SessionDep) -> dict[str, int]:
        # Reads, lets another writer commit (the first time only), then writes: a reader gone stale.
        n = int(session.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one())
        calls.append("run")
        if len(calls) == 1:
            _bump(db)
        session.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})
        return {"n": n + 1}

    @app.post("/busy")
    def busy(session: SessionDep) -> dict[str, bool]:
        raise DatabaseBusyError("no turn to write within 15 s")

    app.add_middleware(UnitOfWorkMiddleware)
    return app


def call(app: FastAPI, method: str, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path)

    return asyncio.run(go())


def test_a_get_whose_snapshot_went_stale_is_run_again_as_a_writer(counter_db: Database) -> None:
    app = make_app(counter_db)
    first = call(app, "GET", "/count")
    again = call(app, "GET", "/count")
    assert first.status_code == 200, first.text
    assert first.json() == {"n": 2}  # the other writer's 1, then this request's, run a second time
    assert again.json() == {"n": 3}
    assert app.state.calls == ["run", "run", "run"]  # one rerun, and the endpoint now begins as a writer


def test_an_unavailable_database_answers_503_and_logs_one_line_with_the_incident(
    counter_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(counter_db)
    with caplog.at_level(logging.ERROR, logger="shgov.errors"):
        answer = call(app, "POST", "/busy")
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/problem+json")
    lines = [r for r in caplog.records if r.name == "shgov.errors"]
    assert len(lines) == 1
    assert lines[0].exc_info is None
    incident = lines[0].__dict__["incident"]
    assert incident in lines[0].getMessage()
    assert incident in answer.json()["detail"]

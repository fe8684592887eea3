"""FastAPI dependencies shared by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session
from starlette.requests import Request

from shgov.core.analytics import Analytics
from shgov.core.db import Database, Turn
from shgov.core.files import FileStore
from shgov.core.http import request_writes
from shgov.core.settings import Settings


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    """The app's database handle."""
    db: Database = request.app.state.db
    return db


def get_analytics(request: Request) -> Analytics:
    """The app's DuckDB analytics factory."""
    analytics: Analytics = request.app.state.analytics
    return analytics


def get_file_store(settings: Annotated[Settings, Depends(get_settings)]) -> FileStore:
    """The store of uploaded files under the data folder."""
    return FileStore(settings.data_dir / "files")


async def write_turn(request: Request, db: Annotated[Database, Depends(get_database)]) -> AsyncIterator[Turn | None]:
    """For a request that will write, its write turn, waited for on the event loop without blocking it
    (None for readers and where the database needs no turns); given back if no transaction used it."""
    turn = await db.take_turn() if request_writes(request) else None
    try:
        yield turn
    finally:
        if turn is not None:
            turn.release_unused()


def get_session(
    request: Request,
    db: Annotated[Database, Depends(get_database)],
    turn: Annotated[Turn | None, Depends(write_turn, scope="function")],
) -> Iterator[Session]:
    """A unit of work per request: committed when the handler returns, rolled back on error. It begins
    as a writer, on the turn already taken, when the request will write (``request_writes``), else as a
    reader.

    The session is also kept on ``request.state.unit_of_work`` so that request-level helpers (the audit
    of a request) write into the same transaction as the change they describe."""
    with db.session(write=request_writes(request), turn=turn) as session:
        request.state.unit_of_work = session
        try:
            yield session
        finally:
            request.state.unit_of_work = None


# scope="function": the unit of work commits before the response is sent, so a client never hears
# "created" about a change that then fails to commit.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
AnalyticsDep = Annotated[Analytics, Depends(get_analytics)]
FileStoreDep = Annotated[FileStore, Depends(get_file_store)]

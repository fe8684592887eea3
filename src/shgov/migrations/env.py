"""Alembic environment: runs on the connection the caller passes (or the configured URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from shgov.contexts import import_models
from shgov.core.db import Base, make_engine
from shgov.migrations import include_object

import_models()
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    """Migrate the given connection, or open one from ``sqlalchemy.url``."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection or sqlalchemy.url given to the migrations")
    engine = make_engine(url)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


run()

"""Alembic migrations of the transactional database, and the helpers the CLI and tests use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from shgov.contexts import import_models
from shgov.core.db import Base

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic config for this package, bound to ``connection`` or ``url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` on ``connection``."""
    command.upgrade(alembic_config(connection), revision)


def head_revision() -> str | None:
    """The newest revision in the scripts."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None when never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


# Objects no model declares: full-text indexes (and FTS5's own tables), made by the migrations by hand; the
# benefits service's copies of register versions (benefit_copy_*, with their indexes), made at run time.
UNMANAGED_PREFIXES = ("catalog_fts", "benefit_copy_")
UNMANAGED_INDEXES = frozenset({"ix_catalog_search_fts"})
UNMANAGED_COLUMNS = frozenset({"search_vector"})


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Whether autogenerate and ``differences`` compare an object (not the hand-made search indexes)."""
    if type_ == "table" and name and name.startswith(UNMANAGED_PREFIXES):
        return False
    if type_ == "index" and str(getattr(getattr(obj, "table", None), "name", "")).startswith(UNMANAGED_PREFIXES):
        return False
    if type_ == "column" and name in UNMANAGED_COLUMNS:
        return False
    return not (type_ == "index" and name in UNMANAGED_INDEXES)


def differences(connection: Connection) -> list[Any]:
    """What the models declare that the migrated database lacks (or vice versa); empty when in sync."""
    import_models()
    context = MigrationContext.configure(connection, opts={"compare_type": True, "include_object": include_object})
    return list(compare_metadata(context, Base.metadata))

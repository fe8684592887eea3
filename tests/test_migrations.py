"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

from shgov import migrations
from shgov.contexts import import_models
from shgov.core.db import Base


def test_the_migrated_database_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        assert migrations.current_revision(conn) == migrations.head_revision()
        assert migrations.differences(conn) == []


def test_every_model_table_is_created_by_the_migrations(engine: Engine) -> None:
    import_models()
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_a_change_to_the_models_without_a_migration_is_detected(engine: Engine) -> None:
    from sqlalchemy import Column, Integer, Table

    extra = Table("unmigrated_probe", Base.metadata, Column("id", Integer, primary_key=True))
    try:
        with engine.connect() as conn:
            diffs = migrations.differences(conn)
        assert any(diff[0] == "add_table" and diff[1].name == "unmigrated_probe" for diff in diffs)
    finally:
        Base.metadata.remove(extra)

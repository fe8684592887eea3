"""catalog (一目录 + 三清单) and its full-text search index

Revision ID: 0008_catalog
Revises: 0007_dispute_attachments
Create Date: 2026-11-24 13:05:17.103174
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shgov.core.db

revision: str = "0008_catalog"
down_revision: str | None = "0007_dispute_attachments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalog_duties",
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column("resource_code", sa.String(length=40), nullable=False),
        sa.Column("update_cycle", sa.String(length=12), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_duties")),
        sa.UniqueConstraint(
            "department_code", "resource_code", name=op.f("uq_catalog_duties_department_code_resource_code")
        ),
    )
    with op.batch_alter_table("catalog_duties", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_duties_department_code"), ["department_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_catalog_duties_resource_code"), ["resource_code"], unique=False)

    op.create_table(
        "catalog_key_scenarios",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_catalog_key_scenarios")),
    )
    op.create_table(
        "catalog_negative",
        sa.Column("resource_code", sa.String(length=40), nullable=False),
        sa.Column("item", sa.String(length=63), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_negative")),
        sa.UniqueConstraint("resource_code", "item", name=op.f("uq_catalog_negative_resource_code_item")),
    )
    with op.batch_alter_table("catalog_negative", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_negative_resource_code"), ["resource_code"], unique=False)

    op.create_table(
        "catalog_resources",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("class_code", sa.String(length=1), nullable=False),
        sa.Column("item_code", sa.String(length=2), nullable=False),
        sa.Column("category_code", sa.String(length=3), nullable=False),
        sa.Column("detail_code", sa.String(length=6), nullable=False),
        sa.Column("provider_department_code", sa.String(length=40), nullable=False),
        sa.Column("tenant_code", sa.String(length=12), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("format_class", sa.String(length=20), nullable=False),
        sa.Column("format", sa.String(length=40), nullable=False),
        sa.Column("sharing_type", sa.String(length=16), nullable=False),
        sa.Column("sharing_conditions", sa.Text(), nullable=False),
        sa.Column("sharing_method", sa.String(length=16), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("open_type", sa.String(length=16), nullable=False),
        sa.Column("open_conditions", sa.Text(), nullable=False),
        sa.Column("update_cycle", sa.String(length=12), nullable=False),
        sa.Column("release_date", sa.Date(), nullable=True),
        sa.Column("related_codes", sa.JSON(), nullable=False),
        sa.Column("aggregation_mode", sa.String(length=12), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("maintainer", sa.String(length=120), nullable=False),
        sa.Column("lake_resource", sa.String(length=63), nullable=True),
        sa.Column("register_code", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_resources")),
        sa.UniqueConstraint("code", name=op.f("uq_catalog_resources_code")),
        sa.UniqueConstraint("lake_resource", name=op.f("uq_catalog_resources_lake_resource")),
        sa.UniqueConstraint("register_code", name=op.f("uq_catalog_resources_register_code")),
    )
    with op.batch_alter_table("catalog_resources", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_catalog_resources_provider_department_code"), ["provider_department_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_catalog_resources_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_catalog_resources_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "catalog_demands",
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column("tenant_code", sa.String(length=12), nullable=False),
        sa.Column("resource_code", sa.String(length=40), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("scenario", sa.Text(), nullable=False),
        sa.Column("key_scenario_code", sa.String(length=40), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_scenario_code"],
            ["catalog_key_scenarios.code"],
            name=op.f("fk_catalog_demands_key_scenario_code_catalog_key_scenarios"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_demands")),
    )
    with op.batch_alter_table("catalog_demands", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_demands_department_code"), ["department_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_catalog_demands_resource_code"), ["resource_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_catalog_demands_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "catalog_history",
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_name", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("from_status", sa.String(length=12), nullable=True),
        sa.Column("to_status", sa.String(length=12), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["catalog_resources.id"],
            name=op.f("fk_catalog_history_resource_id_catalog_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_history")),
    )
    with op.batch_alter_table("catalog_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_history_resource_id"), ["resource_id"], unique=False)

    op.create_table(
        "catalog_items",
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("data_type", sa.String(length=16), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("is_key", sa.Boolean(), nullable=False),
        sa.Column("sensitivity", sa.String(length=12), nullable=False),
        sa.Column("personal", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["catalog_resources.id"],
            name=op.f("fk_catalog_items_resource_id_catalog_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_items")),
        sa.UniqueConstraint("resource_id", "name", name=op.f("uq_catalog_items_resource_id_name")),
    )
    with op.batch_alter_table("catalog_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_items_resource_id"), ["resource_id"], unique=False)

    op.create_table(
        "catalog_search",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("title_tokens", sa.Text(), nullable=False),
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column("tenant_code", sa.String(length=12), nullable=False),
        sa.Column("sharing_type", sa.String(length=16), nullable=False),
        sa.Column("format_class", sa.String(length=20), nullable=False),
        sa.Column("update_cycle", sa.String(length=12), nullable=False),
        sa.Column("sensitivity", sa.String(length=12), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["catalog_resources.id"],
            name=op.f("fk_catalog_search_resource_id_catalog_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_search")),
        sa.UniqueConstraint("resource_id", name=op.f("uq_catalog_search_resource_id")),
    )
    with op.batch_alter_table("catalog_search", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_search_department_code"), ["department_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_catalog_search_sharing_type"), ["sharing_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_catalog_search_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "catalog_versions",
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("published_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=120), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["catalog_resources.id"],
            name=op.f("fk_catalog_versions_resource_id_catalog_resources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_versions")),
        sa.UniqueConstraint("resource_id", "version", name=op.f("uq_catalog_versions_resource_id_version")),
    )
    with op.batch_alter_table("catalog_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_catalog_versions_resource_id"), ["resource_id"], unique=False)

    # Full-text search: FTS5 on SQLite, a GIN index over to_tsvector on PostgreSQL (see catalog.search).
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE catalog_fts USING fts5(title, document)")
    elif op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE catalog_search ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
            "(setweight(to_tsvector('simple', title_tokens), 'A') || setweight(to_tsvector('simple', document), 'B'))"
            " STORED"
        )
        op.execute("CREATE INDEX ix_catalog_search_fts ON catalog_search USING gin (search_vector)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS catalog_fts")
    elif op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_catalog_search_fts")
        op.execute("ALTER TABLE catalog_search DROP COLUMN IF EXISTS search_vector")
    with op.batch_alter_table("catalog_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_versions_resource_id"))

    op.drop_table("catalog_versions")
    with op.batch_alter_table("catalog_search", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_search_tenant_code"))
        batch_op.drop_index(batch_op.f("ix_catalog_search_sharing_type"))
        batch_op.drop_index(batch_op.f("ix_catalog_search_department_code"))

    op.drop_table("catalog_search")
    with op.batch_alter_table("catalog_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_items_resource_id"))

    op.drop_table("catalog_items")
    with op.batch_alter_table("catalog_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_history_resource_id"))

    op.drop_table("catalog_history")
    with op.batch_alter_table("catalog_demands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_demands_tenant_code"))
        batch_op.drop_index(batch_op.f("ix_catalog_demands_resource_code"))
        batch_op.drop_index(batch_op.f("ix_catalog_demands_department_code"))

    op.drop_table("catalog_demands")
    with op.batch_alter_table("catalog_resources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_resources_tenant_code"))
        batch_op.drop_index(batch_op.f("ix_catalog_resources_status"))
        batch_op.drop_index(batch_op.f("ix_catalog_resources_provider_department_code"))

    op.drop_table("catalog_resources")
    with op.batch_alter_table("catalog_negative", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_negative_resource_code"))

    op.drop_table("catalog_negative")
    op.drop_table("catalog_key_scenarios")
    with op.batch_alter_table("catalog_duties", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_catalog_duties_resource_code"))
        batch_op.drop_index(batch_op.f("ix_catalog_duties_department_code"))

    op.drop_table("catalog_duties")

"""opendata: open datasets published from the catalog and their distributions

Revision ID: 0012_opendata
Revises: 0011_exchange
Create Date: 2026-11-24 15:54:43.408160
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shgov.core.db

revision: str = "0012_opendata"
down_revision: str | None = "0011_exchange"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "opendata_datasets",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("catalog_code", sa.String(length=40), nullable=False),
        sa.Column("catalog_version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column("theme", sa.String(length=20), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("open_type", sa.String(length=16), nullable=False),
        sa.Column("open_conditions", sa.Text(), nullable=False),
        sa.Column("update_cycle", sa.String(length=12), nullable=False),
        sa.Column("lake_resource", sa.String(length=63), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("withdrawn_reason", sa.Text(), nullable=False),
        sa.Column("published_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opendata_datasets")),
        sa.UniqueConstraint("catalog_code", name=op.f("uq_opendata_datasets_catalog_code")),
        sa.UniqueConstraint("name", name=op.f("uq_opendata_datasets_name")),
    )
    with op.batch_alter_table("opendata_datasets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_opendata_datasets_department_code"), ["department_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_opendata_datasets_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_opendata_datasets_theme"), ["theme"], unique=False)

    op.create_table(
        "opendata_resources",
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["opendata_datasets.id"],
            name=op.f("fk_opendata_resources_dataset_id_opendata_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opendata_resources")),
        sa.UniqueConstraint("dataset_id", "format", name=op.f("uq_opendata_resources_dataset_id_format")),
    )
    with op.batch_alter_table("opendata_resources", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_opendata_resources_dataset_id"), ["dataset_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("opendata_resources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opendata_resources_dataset_id"))

    op.drop_table("opendata_resources")
    with op.batch_alter_table("opendata_datasets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opendata_datasets_theme"))
        batch_op.drop_index(batch_op.f("ix_opendata_datasets_state"))
        batch_op.drop_index(batch_op.f("ix_opendata_datasets_department_code"))

    op.drop_table("opendata_datasets")

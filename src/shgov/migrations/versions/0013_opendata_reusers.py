"""opendata reusers: applications for conditional datasets, API keys, usage per dataset and day

Revision ID: 0013_opendata_reusers
Revises: 0012_opendata
Create Date: 2026-11-24 16:16:28.177314
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shgov.core.db

revision: str = "0013_opendata_reusers"
down_revision: str | None = "0012_opendata"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "opendata_keys",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opendata_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_opendata_keys_key_hash")),
    )
    with op.batch_alter_table("opendata_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_opendata_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "opendata_applications",
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("organisation", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("agreement", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=False),
        sa.Column("expires_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["opendata_datasets.id"],
            name=op.f("fk_opendata_applications_dataset_id_opendata_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opendata_applications")),
    )
    with op.batch_alter_table("opendata_applications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_opendata_applications_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_opendata_applications_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_opendata_applications_user_id"), ["user_id"], unique=False)

    op.create_table(
        "opendata_usage",
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["opendata_datasets.id"],
            name=op.f("fk_opendata_usage_dataset_id_opendata_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "day", name=op.f("pk_opendata_usage")),
    )


def downgrade() -> None:
    op.drop_table("opendata_usage")
    with op.batch_alter_table("opendata_applications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opendata_applications_user_id"))
        batch_op.drop_index(batch_op.f("ix_opendata_applications_status"))
        batch_op.drop_index(batch_op.f("ix_opendata_applications_dataset_id"))

    op.drop_table("opendata_applications")
    with op.batch_alter_table("opendata_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_opendata_keys_user_id"))

    op.drop_table("opendata_keys")

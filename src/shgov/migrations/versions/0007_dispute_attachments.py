"""dispute attachments (evidence files)

Revision ID: 0007_dispute_attachments
Revises: 0006_dispute_deadlines
Create Date: 2026-11-24 12:51:14.358531
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shgov.core.db

revision: str = "0007_dispute_attachments"
down_revision: str | None = "0006_dispute_deadlines"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dispute_attachments",
        sa.Column("dispute_id", sa.Uuid(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=60), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("uploaded_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dispute_id"], ["disputes.id"], name=op.f("fk_dispute_attachments_dispute_id_disputes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispute_attachments")),
    )
    with op.batch_alter_table("dispute_attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dispute_attachments_dispute_id"), ["dispute_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dispute_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispute_attachments_dispute_id"))

    op.drop_table("dispute_attachments")

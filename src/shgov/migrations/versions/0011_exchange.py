"""exchange peers and imports (signed cross-level packages)

Revision ID: 0011_exchange
Revises: 0010_sharing_subscriptions
Create Date: 2026-11-24 13:48:01.799599
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shgov.core.db

revision: str = "0011_exchange"
down_revision: str | None = "0010_sharing_subscriptions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exchange_imports",
        sa.Column("package_id", sa.String(length=36), nullable=False),
        sa.Column("node", sa.String(length=80), nullable=False),
        sa.Column("resource", sa.String(length=63), nullable=False),
        sa.Column("parts_total", sa.Integer(), nullable=False),
        sa.Column("parts_done", sa.JSON(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("started_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("package_id", name=op.f("pk_exchange_imports")),
    )
    op.create_table(
        "exchange_peers",
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("public_key", sa.String(length=130), nullable=False),
        sa.Column("tenant_code", sa.String(length=12), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_exchange_peers")),
    )


def downgrade() -> None:
    op.drop_table("exchange_peers")
    op.drop_table("exchange_imports")

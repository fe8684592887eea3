"""opendata key usage: calls per API key and day

Revision ID: 0014_opendata_key_usage
Revises: 0013_opendata_reusers
Create Date: 2026-11-24 16:44:09.266648
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_opendata_key_usage"
down_revision: str | None = "0013_opendata_reusers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "opendata_key_usage",
        sa.Column("key_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["opendata_keys.id"],
            name=op.f("fk_opendata_key_usage_key_id_opendata_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", "day", name=op.f("pk_opendata_key_usage")),
    )


def downgrade() -> None:
    op.drop_table("opendata_key_usage")

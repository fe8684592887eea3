"""免申即享 at scale: which PostgreSQL table holds the copy of each live register version that policies are
evaluated over (the copies themselves are created and dropped by the benefits service); enterprise accounts
found by credit code (a run tells every enterprise it granted).

Revision ID: 0019_benefits_at_scale
Revises: 0018_benefits
Create Date: 2026-11-25 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shgov.core.db

revision: str = "0019_benefits_at_scale"
down_revision: str | None = "0018_benefits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "benefit_register_copies",
        sa.Column("target", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("table_name", sa.String(length=63), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("copied_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target", name=op.f("pk_benefit_register_copies")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_credit_code"), ["credit_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_credit_code"))
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        for (table,) in connection.execute(sa.text("SELECT table_name FROM benefit_register_copies")):
            op.execute(f"DROP TABLE IF EXISTS {table}")
    op.drop_table("benefit_register_copies")

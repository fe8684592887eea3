"""Work orders: look up open, recent orders by cell with one index (cell, status, created_at); drop the
indexes that cost every insert and served no query (channel: five values; status: the prefix of
(status, district_code)).

Revision ID: 0017_workorders_indexes
Revises: 0016_workorders
Create Date: 2026-11-24 09:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_workorders_indexes"
down_revision: str | None = "0016_workorders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_work_orders_cell")
        batch_op.drop_index("ix_work_orders_channel")
        batch_op.drop_index("ix_work_orders_status")
        batch_op.create_index("ix_work_orders_cell_status_created", ["cell", "status", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_work_orders_cell_status_created")
        batch_op.create_index("ix_work_orders_cell", ["cell"], unique=False)
        batch_op.create_index("ix_work_orders_channel", ["channel"], unique=False)
        batch_op.create_index("ix_work_orders_status", ["status"], unique=False)

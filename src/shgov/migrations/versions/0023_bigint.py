"""Numbers that fit the city: money, counters and sequence numbers become 64-bit.

Revision ID: 0023_bigint
Revises: 0022_sensing_warnings
Create Date: 2026-11-26 09:00:00.000000
"""

from collections.abc import Sequence

revision: str = "0023_bigint"
down_revision: str | None = "0022_sensing_warnings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

"""The audit chain is keyed: the head row names the chain key (HMAC-SM3) its records are hashed with.

The key itself stays outside the database (``SHGOV_SECURITY__AUDIT_KEY`` or ``<data_dir>/keys/audit-hmac.key``),
so the migration cannot rehash an existing chain: ``key_id`` starts empty, and the first start after it
(``shgov db upgrade`` or the server) verifies the unkeyed SM3 chain and rehashes it under the key —
``shgov audit rekey`` does the same by hand (see docs/operations.md). The head row is created here when
missing, so concurrent first writers never race to insert it.

Revision ID: 0024_audit_keyed
Revises: 0023_bigint
Create Date: 2026-11-26 12:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import shgov.core.db

revision: str = "0024_audit_keyed"
down_revision: str | None = "0023_bigint"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.add_column("audit_head", sa.Column("key_id", sa.String(length=32), nullable=True))
    head = sa.table(
        "audit_head",
        sa.column("id", sa.Integer),
        sa.column("last_seq", sa.BigInteger),
        sa.column("last_hash", sa.String),
        sa.column("updated_at", shgov.core.db.UTCDateTime(timezone=True)),
    )
    connection = op.get_bind()
    if connection.execute(sa.select(sa.func.count()).select_from(head).where(head.c.id == 1)).scalar() == 0:
        now = datetime.now(UTC)
        connection.execute(sa.insert(head).values(id=1, last_seq=0, last_hash=GENESIS, updated_at=now))


def downgrade() -> None:
    # A keyed chain does not verify as plain SM3 any more: going back needs `shgov audit rekey` reversed,
    # which is not offered. The column goes; the records keep their keyed hashes.
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("key_id")

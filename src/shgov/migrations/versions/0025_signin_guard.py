"""Sign-in guard: failures throttled per key across processes, TOTP second factor, proven identities.

* ``signin_throttle`` counts sign-in failures per key (address; account at an address; account anywhere) for
  every server process alike, with the time until which the key must wait. Failures slow a key down; they
  no longer lock accounts, so ``users.failed_logins`` goes (``locked_until`` stays: an administrator's lock).
* ``users.totp_*``: a staff member's sealed TOTP secret, when it was confirmed and the last time step used.
* ``users.identity_*``: how the 身份证号 / 统一社会信用代码 of an account was proven (OIDC, in-person proofing,
  seed) and by whom. Accounts that carry one already are marked ``system`` (bound before this record existed).

Revision ID: 0025_signin_guard
Revises: 0024_audit_keyed
Create Date: 2026-12-08 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shgov.core.db

revision: str = "0025_signin_guard"
down_revision: str | None = "0024_audit_keyed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "signin_throttle",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", BIGINT, nullable=False),
        sa.Column("last_failure_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("blocked_until", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_signin_throttle")),
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("identity_source", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("identity_bound_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("identity_bound_by", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("totp_secret", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("totp_confirmed_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("totp_last_step", BIGINT, nullable=True))
        batch.drop_column("failed_logins")
    users = sa.table("users", sa.column("identity_source", sa.String), sa.column("id_number"), sa.column("credit_code"))
    op.execute(
        sa.update(users)
        .where(sa.or_(users.c.id_number.is_not(None), users.c.credit_code.is_not(None)))
        .values(identity_source="system")
    )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
        batch.drop_column("totp_last_step")
        batch.drop_column("totp_confirmed_at")
        batch.drop_column("totp_secret")
        batch.drop_column("identity_bound_by")
        batch.drop_column("identity_bound_at")
        batch.drop_column("identity_source")
    op.drop_table("signin_throttle")

"""sharing subscriptions

Revision ID: 0010_sharing_subscriptions
Revises: 0009_sharing
Create Date: 2026-11-24 13:45:38.242471
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shgov.core.db

revision: str = "0010_sharing_subscriptions"
down_revision: str | None = "0009_sharing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sharing_subscriptions",
        sa.Column("grant_id", sa.Uuid(), nullable=False),
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column("resource_code", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("target", sa.String(length=500), nullable=False),
        sa.Column("secret", sa.String(length=120), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["sharing_grants.id"], name=op.f("fk_sharing_subscriptions_grant_id_sharing_grants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_subscriptions")),
    )
    with op.batch_alter_table("sharing_subscriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sharing_subscriptions_department_code"), ["department_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_sharing_subscriptions_grant_id"), ["grant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sharing_subscriptions_resource_code"), ["resource_code"], unique=False)

    op.create_table(
        "sharing_notifications",
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("delivered_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["sharing_subscriptions.id"],
            name=op.f("fk_sharing_notifications_subscription_id_sharing_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_notifications")),
        sa.UniqueConstraint(
            "subscription_id", "event_id", name=op.f("uq_sharing_notifications_subscription_id_event_id")
        ),
    )
    with op.batch_alter_table("sharing_notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sharing_notifications_next_attempt_at"), ["next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sharing_notifications_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_sharing_notifications_subscription_id"), ["subscription_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sharing_notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sharing_notifications_subscription_id"))
        batch_op.drop_index(batch_op.f("ix_sharing_notifications_status"))
        batch_op.drop_index(batch_op.f("ix_sharing_notifications_next_attempt_at"))

    op.drop_table("sharing_notifications")
    with op.batch_alter_table("sharing_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sharing_subscriptions_resource_code"))
        batch_op.drop_index(batch_op.f("ix_sharing_subscriptions_grant_id"))
        batch_op.drop_index(batch_op.f("ix_sharing_subscriptions_department_code"))

    op.drop_table("sharing_subscriptions")

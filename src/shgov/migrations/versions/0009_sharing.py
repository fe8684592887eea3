"""sharing (1515 requests, their history, grants)

Revision ID: 0009_sharing
Revises: 0008_catalog
Create Date: 2026-11-24 13:27:36.068789
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shgov.core.db

revision: str = "0009_sharing"
down_revision: str | None = "0008_catalog"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sharing_requests",
        sa.Column("resource_code", sa.String(length=40), nullable=False),
        sa.Column("owner_department_code", sa.String(length=40), nullable=False),
        sa.Column("owner_tenant_code", sa.String(length=12), nullable=False),
        sa.Column("requester_department_code", sa.String(length=40), nullable=False),
        sa.Column("requester_tenant_code", sa.String(length=12), nullable=False),
        sa.Column("requested_by", sa.Uuid(), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("scenario", sa.Text(), nullable=False),
        sa.Column("key_scenario_code", sa.String(length=40), nullable=True),
        sa.Column("duration_days", sa.Integer(), nullable=False),
        sa.Column("row_scope", sa.JSON(), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("decided_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("grant_id", sa.Uuid(), nullable=True),
        sa.Column("reminded_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_requests")),
    )
    with op.batch_alter_table("sharing_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sharing_requests_owner_department_code"), ["owner_department_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sharing_requests_requester_department_code"), ["requester_department_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sharing_requests_requester_tenant_code"), ["requester_tenant_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_sharing_requests_resource_code"), ["resource_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_sharing_requests_status"), ["status"], unique=False)

    op.create_table(
        "sharing_grants",
        sa.Column("request_id", sa.Uuid(), nullable=True),
        sa.Column("resource_code", sa.String(length=40), nullable=False),
        sa.Column("owner_department_code", sa.String(length=40), nullable=False),
        sa.Column("grantee_department_code", sa.String(length=40), nullable=False),
        sa.Column("grantee_tenant_code", sa.String(length=12), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("plain_items", sa.JSON(), nullable=False),
        sa.Column("row_filter", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("expires_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=False),
        sa.Column("client_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"], ["sharing_requests.id"], name=op.f("fk_sharing_grants_request_id_sharing_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_grants")),
    )
    with op.batch_alter_table("sharing_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sharing_grants_grantee_department_code"), ["grantee_department_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_sharing_grants_owner_department_code"), ["owner_department_code"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_sharing_grants_resource_code"), ["resource_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_sharing_grants_status"), ["status"], unique=False)

    op.create_table(
        "sharing_request_history",
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_name", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["sharing_requests.id"],
            name=op.f("fk_sharing_request_history_request_id_sharing_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sharing_request_history")),
    )
    with op.batch_alter_table("sharing_request_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sharing_request_history_request_id"), ["request_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sharing_request_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sharing_request_history_request_id"))

    op.drop_table("sharing_request_history")
    with op.batch_alter_table("sharing_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sharing_grants_status"))
        batch_op.drop_index(batch_op.f("ix_sharing_grants_resource_code"))
        batch_op.drop_index(batch_op.f("ix_sharing_grants_owner_department_code"))
        batch_op.drop_index(batch_op.f("ix_sharing_grants_grantee_department_code"))

    op.drop_table("sharing_grants")
    with op.batch_alter_table("sharing_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sharing_requests_status"))
        batch_op.drop_index(batch_op.f("ix_sharing_requests_resource_code"))
        batch_op.drop_index(batch_op.f("ix_sharing_requests_requester_tenant_code"))
        batch_op.drop_index(batch_op.f("ix_sharing_requests_requester_department_code"))
        batch_op.drop_index(batch_op.f("ix_sharing_requests_owner_department_code"))

    op.drop_table("sharing_requests")

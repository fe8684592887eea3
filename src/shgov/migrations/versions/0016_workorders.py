"""Work orders: the category tree, routing rules, playbooks, orders, incident tasks and history.

Revision ID: 0016_workorders
Revises: 0015_services_and_cases
Create Date: 2026-11-24 19:35:19.513051
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shgov.core.db

revision: str = "0016_workorders"
down_revision: str | None = "0015_services_and_cases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "wo_categories",
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("parent_code", sa.String(length=20), nullable=True),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_wo_categories")),
    )
    with op.batch_alter_table("wo_categories", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wo_categories_parent_code"), ["parent_code"], unique=False)

    op.create_table(
        "wo_playbooks",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("category_prefix", sa.String(length=20), nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_wo_playbooks")),
    )
    op.create_table(
        "wo_routing_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("category_prefix", sa.String(length=20), nullable=False),
        sa.Column("area_prefix", sa.String(length=20), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("lead_level", sa.String(length=10), nullable=False),
        sa.Column("lead_department_key", sa.String(length=12), nullable=False),
        sa.Column("assisting", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wo_routing_rules")),
    )
    with op.batch_alter_table("wo_routing_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wo_routing_rules_position"), ["position"], unique=False)

    op.create_table(
        "work_orders",
        sa.Column("number", sa.String(length=24), nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=False),
        sa.Column("source_ref", sa.String(length=80), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("category_code", sa.String(length=20), nullable=True),
        sa.Column("category_confidence", sa.Float(), nullable=True),
        sa.Column("classified_by", sa.String(length=12), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lng", sa.Float(), nullable=True),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("district_code", sa.String(length=12), nullable=True),
        sa.Column("township_code", sa.String(length=12), nullable=True),
        sa.Column("community_code", sa.String(length=15), nullable=True),
        sa.Column("grid_code", sa.String(length=20), nullable=True),
        sa.Column("cell", sa.String(length=20), nullable=True),
        sa.Column("tenant_code", sa.String(length=12), nullable=False),
        sa.Column("lead_unit", sa.String(length=40), nullable=True),
        sa.Column("assisting_units", sa.JSON(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("rule_name", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("escalation", sa.Integer(), nullable=False),
        sa.Column("returns", sa.Integer(), nullable=False),
        sa.Column("reopened", sa.Integer(), nullable=False),
        sa.Column("sign_due", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reply_due", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("conclude_due", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("signed_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("replied_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("merged_into", sa.Uuid(), nullable=True),
        sa.Column("media", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("reporter_user_id", sa.Uuid(), nullable=True),
        sa.Column("reporter_name", sa.String(length=100), nullable=False),
        sa.Column("reporter_phone", sa.String(length=20), nullable=False),
        sa.Column("reporter_email", sa.String(length=200), nullable=False),
        sa.Column("token", sa.String(length=40), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merged_into"], ["work_orders.id"], name=op.f("fk_work_orders_merged_into_work_orders")
        ),
        sa.ForeignKeyConstraint(["reporter_user_id"], ["users.id"], name=op.f("fk_work_orders_reporter_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_orders")),
        sa.UniqueConstraint("number", name=op.f("uq_work_orders_number")),
        sa.UniqueConstraint("token", name=op.f("uq_work_orders_token")),
    )
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_orders_category_code"), ["category_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_work_orders_cell"), ["cell"], unique=False)
        batch_op.create_index(batch_op.f("ix_work_orders_channel"), ["channel"], unique=False)
        batch_op.create_index(batch_op.f("ix_work_orders_district_code"), ["district_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_work_orders_lead_unit"), ["lead_unit"], unique=False)
        batch_op.create_index(batch_op.f("ix_work_orders_reporter_user_id"), ["reporter_user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_work_orders_status"), ["status"], unique=False)
        batch_op.create_index("ix_work_orders_status_district", ["status", "district_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_work_orders_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "wo_incident_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("unit", sa.String(length=40), nullable=False),
        sa.Column("due_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("done_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.String(length=120), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["work_orders.id"], name=op.f("fk_wo_incident_tasks_order_id_work_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wo_incident_tasks")),
    )
    with op.batch_alter_table("wo_incident_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wo_incident_tasks_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_wo_incident_tasks_unit"), ["unit"], unique=False)

    op.create_table(
        "work_order_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_name", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("from_status", sa.String(length=12), nullable=True),
        sa.Column("to_status", sa.String(length=12), nullable=False),
        sa.Column("unit", sa.String(length=40), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["work_orders.id"], name=op.f("fk_work_order_events_order_id_work_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_events")),
    )
    with op.batch_alter_table("work_order_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_order_events_order_id"), ["order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("work_order_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_order_events_order_id"))

    op.drop_table("work_order_events")
    with op.batch_alter_table("wo_incident_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wo_incident_tasks_unit"))
        batch_op.drop_index(batch_op.f("ix_wo_incident_tasks_order_id"))

    op.drop_table("wo_incident_tasks")
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_orders_tenant_code"))
        batch_op.drop_index("ix_work_orders_status_district")
        batch_op.drop_index(batch_op.f("ix_work_orders_status"))
        batch_op.drop_index(batch_op.f("ix_work_orders_reporter_user_id"))
        batch_op.drop_index(batch_op.f("ix_work_orders_lead_unit"))
        batch_op.drop_index(batch_op.f("ix_work_orders_district_code"))
        batch_op.drop_index(batch_op.f("ix_work_orders_channel"))
        batch_op.drop_index(batch_op.f("ix_work_orders_cell"))
        batch_op.drop_index(batch_op.f("ix_work_orders_category_code"))

    op.drop_table("work_orders")
    with op.batch_alter_table("wo_routing_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wo_routing_rules_position"))

    op.drop_table("wo_routing_rules")
    op.drop_table("wo_playbooks")
    with op.batch_alter_table("wo_categories", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wo_categories_parent_code"))

    op.drop_table("wo_categories")

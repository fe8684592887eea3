"""Services and cases: service items, the field dictionary, bundles, cases, issued e-licences, notifications.

Revision ID: 0015_services_and_cases
Revises: 0014_opendata_key_usage
Create Date: 2026-11-24 17:48:27.621738
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shgov.core.db

revision: str = "0015_services_and_cases"
down_revision: str | None = "0014_opendata_key_usage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_processes",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("process_id", sa.String(length=60), nullable=False),
        sa.Column("bpmn", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_case_processes")),
    )
    op.create_table(
        "issued_licences",
        sa.Column("licence_no", sa.String(length=40), nullable=False),
        sa.Column("licence_type", sa.String(length=60), nullable=False),
        sa.Column("holder_id", sa.String(length=40), nullable=False),
        sa.Column("holder_name", sa.String(length=200), nullable=False),
        sa.Column("issuer_department", sa.String(length=40), nullable=False),
        sa.Column("issuer_name", sa.String(length=200), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("trust_level", sa.String(length=1), nullable=False),
        sa.Column("particulars", sa.JSON(), nullable=False),
        sa.Column("source_ref", sa.String(length=80), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("issued_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issued_licences")),
        sa.UniqueConstraint("licence_no", name=op.f("uq_issued_licences_licence_no")),
    )
    with op.batch_alter_table("issued_licences", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issued_licences_holder_id"), ["holder_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_issued_licences_issuer_department"), ["issuer_department"], unique=False)

    op.create_table(
        "service_bundles",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("target", sa.String(length=10), nullable=False),
        sa.Column("life_events", sa.JSON(), nullable=False),
        sa.Column("item_codes", sa.JSON(), nullable=False),
        sa.Column("item_rules", sa.JSON(), nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("sections", sa.JSON(), nullable=False),
        sa.Column("accepting_department_key", sa.String(length=12), nullable=False),
        sa.Column("promised_days", sa.Integer(), nullable=False),
        sa.Column("bpmn", sa.Text(), nullable=False),
        sa.Column("process_id", sa.String(length=60), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_bundles")),
        sa.UniqueConstraint("code", name=op.f("uq_service_bundles_code")),
    )
    op.create_table(
        "service_fields",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=60), nullable=False),
        sa.Column("label_en", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("max_length", sa.Integer(), nullable=False),
        sa.Column("prefill", sa.String(length=60), nullable=True),
        sa.Column("personal", sa.Boolean(), nullable=False),
        sa.Column("hint", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_service_fields")),
    )
    op.create_table(
        "service_items",
        sa.Column("code", sa.String(length=36), nullable=False),
        sa.Column("basic_code", sa.String(length=12), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("item_type", sa.String(length=20), nullable=False),
        sa.Column("department_key", sa.String(length=12), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=10), nullable=False),
        sa.Column("case_kind", sa.String(length=10), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("materials", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("statutory_days", sa.Integer(), nullable=False),
        sa.Column("promised_days", sa.Integer(), nullable=False),
        sa.Column("fee", sa.JSON(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("result_licence_type", sa.String(length=60), nullable=True),
        sa.Column("result_validity_years", sa.Integer(), nullable=True),
        sa.Column("life_events", sa.JSON(), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("procedure", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("hours", sa.String(length=200), nullable=False),
        sa.Column("offline", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_items")),
        sa.UniqueConstraint("code", name=op.f("uq_service_items_code")),
    )
    with op.batch_alter_table("service_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_items_basic_code"), ["basic_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_items_department_key"), ["department_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_items_name"), ["name"], unique=False)

    op.create_table(
        "cases",
        sa.Column("number", sa.String(length=24), nullable=False),
        sa.Column("offering_kind", sa.String(length=8), nullable=False),
        sa.Column("offering_code", sa.String(length=40), nullable=False),
        sa.Column("offering_name", sa.String(length=200), nullable=False),
        sa.Column("offering_version", sa.Integer(), nullable=False),
        sa.Column("applicant_kind", sa.String(length=12), nullable=False),
        sa.Column("applicant_key", sa.String(length=40), nullable=False),
        sa.Column("applicant_name", sa.String(length=200), nullable=False),
        sa.Column("applicant_user_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("submitted_by", sa.Uuid(), nullable=True),
        sa.Column("tenant_code", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("form", sa.JSON(), nullable=False),
        sa.Column("prefilled", sa.JSON(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("process_digest", sa.String(length=64), nullable=False),
        sa.Column("process_state", sa.Text(), nullable=False),
        sa.Column("promised_days", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("accepted_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("suspended_on", sa.Date(), nullable=True),
        sa.Column("paused_days", sa.Integer(), nullable=False),
        sa.Column("concluded_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome_note", sa.Text(), nullable=False),
        sa.Column("client_token", sa.String(length=64), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["applicant_user_id"], ["users.id"], name=op.f("fk_cases_applicant_user_id_users")),
        sa.ForeignKeyConstraint(["submitted_by"], ["users.id"], name=op.f("fk_cases_submitted_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("client_token", name=op.f("uq_cases_client_token")),
        sa.UniqueConstraint("number", name=op.f("uq_cases_number")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_applicant_key"), ["applicant_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_applicant_user_id"), ["applicant_user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_offering_code"), ["offering_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link", sa.String(length=300), nullable=False),
        sa.Column("topic", sa.String(length=60), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notifications_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notifications_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_notifications_user_id"), ["user_id"], unique=False)

    op.create_table(
        "case_history",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_name", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("task_key", sa.String(length=60), nullable=True),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_history_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_history")),
    )
    with op.batch_alter_table("case_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_history_case_id"), ["case_id"], unique=False)

    op.create_table(
        "case_materials",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("necessity", sa.String(length=6), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("licence_no", sa.String(length=40), nullable=True),
        sa.Column("trust_level", sa.String(length=1), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("media_type", sa.String(length=40), nullable=True),
        sa.Column("file_name", sa.String(length=200), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("supply_by", sa.Date(), nullable=True),
        sa.Column("supplied_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_materials_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_materials")),
    )
    with op.batch_alter_table("case_materials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_materials_case_id"), ["case_id"], unique=False)

    op.create_table(
        "case_tasks",
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("task_key", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("item_code", sa.String(length=40), nullable=True),
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column("tenant_code", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("claimed_by", sa.Uuid(), nullable=True),
        sa.Column("claimed_name", sa.String(length=120), nullable=False),
        sa.Column("ready_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("completed_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_tasks_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_tasks")),
    )
    with op.batch_alter_table("case_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_tasks_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_tasks_department_code"), ["department_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_tasks_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_tasks_tenant_code"), ["tenant_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_tasks_tenant_code"))
        batch_op.drop_index(batch_op.f("ix_case_tasks_status"))
        batch_op.drop_index(batch_op.f("ix_case_tasks_department_code"))
        batch_op.drop_index(batch_op.f("ix_case_tasks_case_id"))

    op.drop_table("case_tasks")
    with op.batch_alter_table("case_materials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_materials_case_id"))

    op.drop_table("case_materials")
    with op.batch_alter_table("case_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_history_case_id"))

    op.drop_table("case_history")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_user_id"))
        batch_op.drop_index(batch_op.f("ix_notifications_created_at"))

    op.drop_table("notifications")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_tenant_code"))
        batch_op.drop_index(batch_op.f("ix_cases_status"))
        batch_op.drop_index(batch_op.f("ix_cases_offering_code"))
        batch_op.drop_index(batch_op.f("ix_cases_applicant_user_id"))
        batch_op.drop_index(batch_op.f("ix_cases_applicant_key"))

    op.drop_table("cases")
    with op.batch_alter_table("service_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_items_name"))
        batch_op.drop_index(batch_op.f("ix_service_items_department_key"))
        batch_op.drop_index(batch_op.f("ix_service_items_basic_code"))

    op.drop_table("service_items")
    op.drop_table("service_fields")
    op.drop_table("service_bundles")
    with op.batch_alter_table("issued_licences", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issued_licences_issuer_department"))
        batch_op.drop_index(batch_op.f("ix_issued_licences_holder_id"))

    op.drop_table("issued_licences")
    op.drop_table("case_processes")

"""好差评: ratings (immutable), their flags, rectifications of bad ratings with their history, appeals, the
rules officials set, desks with QR codes, invitations and guides flagged for review.

Revision ID: 0020_ratings
Revises: 0019_benefits_at_scale
Create Date: 2026-11-25 01:28:44.891535
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shgov.core.db

revision: str = "0020_ratings"
down_revision: str | None = "0019_benefits_at_scale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rating_desks",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column("tenant_code", sa.String(length=12), nullable=False),
        sa.Column("item_code", sa.String(length=40), nullable=False),
        sa.Column("item_name", sa.String(length=200), nullable=False),
        sa.Column("staff_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_rating_desks")),
    )
    with op.batch_alter_table("rating_desks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rating_desks_department_code"), ["department_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_rating_desks_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "rating_guide_reviews",
        sa.Column("item_code", sa.String(length=40), nullable=False),
        sa.Column("item_name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("bad_ratings", sa.Integer(), nullable=False),
        sa.Column("last_comment", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("item_code", name=op.f("pk_rating_guide_reviews")),
    )
    op.create_table(
        "rating_invitations",
        sa.Column("case_id", sa.String(length=40), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("sent_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "stage", name=op.f("pk_rating_invitations")),
    )
    op.create_table(
        "rating_rules",
        sa.Column("scope", sa.String(length=12), nullable=False),
        sa.Column("contact_days", sa.Integer(), nullable=False),
        sa.Column("rectify_days", sa.Integer(), nullable=False),
        sa.Column("conclude_days", sa.Integer(), nullable=False),
        sa.Column("invite_after_days", sa.Integer(), nullable=False),
        sa.Column("hourly_limit", sa.Integer(), nullable=False),
        sa.Column("burst_minutes", sa.Integer(), nullable=False),
        sa.Column("burst_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_rating_rules")),
    )
    op.create_table(
        "ratings",
        sa.Column("subject_kind", sa.String(length=10), nullable=False),
        sa.Column("subject_ref", sa.String(length=40), nullable=False),
        sa.Column("stage", sa.String(length=60), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("item_code", sa.String(length=40), nullable=False),
        sa.Column("item_name", sa.String(length=200), nullable=False),
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column("tenant_code", sa.String(length=12), nullable=False),
        sa.Column("desk_code", sa.String(length=40), nullable=True),
        sa.Column("served_by", sa.JSON(), nullable=False),
        sa.Column("rater_id", sa.Uuid(), nullable=True),
        sa.Column("device_hash", sa.String(length=64), nullable=True),
        sa.Column("ip_hash", sa.String(length=64), nullable=True),
        sa.Column("replaces_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["rater_id"], ["users.id"], name=op.f("fk_ratings_rater_id_users")),
        sa.ForeignKeyConstraint(["replaces_id"], ["ratings.id"], name=op.f("fk_ratings_replaces_id_ratings")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
        sa.UniqueConstraint(
            "subject_kind",
            "subject_ref",
            "stage",
            "round",
            name=op.f("uq_ratings_subject_kind_subject_ref_stage_round"),
        ),
    )
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ratings_channel"), ["channel"], unique=False)
        batch_op.create_index(batch_op.f("ix_ratings_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_ratings_department_code"), ["department_code"], unique=False)
        batch_op.create_index("ix_ratings_desk_created", ["desk_code", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_ratings_device_hash"), ["device_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_ratings_ip_hash"), ["ip_hash"], unique=False)
        batch_op.create_index("ix_ratings_item_created", ["item_code", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_ratings_rater_id"), ["rater_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ratings_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "rating_flags",
        sa.Column("rating_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rating_id"], ["ratings.id"], name=op.f("fk_rating_flags_rating_id_ratings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rating_flags")),
    )
    with op.batch_alter_table("rating_flags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rating_flags_rating_id"), ["rating_id"], unique=False)

    op.create_table(
        "rectifications",
        sa.Column("rating_id", sa.Uuid(), nullable=False),
        sa.Column("department_code", sa.String(length=40), nullable=False),
        sa.Column("tenant_code", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("opened_on", sa.Date(), nullable=False),
        sa.Column("contact_due", sa.Date(), nullable=False),
        sa.Column("rectify_due", sa.Date(), nullable=False),
        sa.Column("conclude_due", sa.Date(), nullable=False),
        sa.Column("contacted_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("verdict", sa.String(length=10), nullable=True),
        sa.Column("verification", sa.Text(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("measures", sa.Text(), nullable=False),
        sa.Column("responsible_unit", sa.String(length=200), nullable=False),
        sa.Column("rectified_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("feedback", sa.Text(), nullable=False),
        sa.Column("answered_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("concluded_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("supervised_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rerating_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rating_id"], ["ratings.id"], name=op.f("fk_rectifications_rating_id_ratings")),
        sa.ForeignKeyConstraint(["rerating_id"], ["ratings.id"], name=op.f("fk_rectifications_rerating_id_ratings")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rectifications")),
        sa.UniqueConstraint("rating_id", name=op.f("uq_rectifications_rating_id")),
    )
    with op.batch_alter_table("rectifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rectifications_department_code"), ["department_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_rectifications_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_rectifications_tenant_code"), ["tenant_code"], unique=False)

    op.create_table(
        "rating_appeals",
        sa.Column("rating_id", sa.Uuid(), nullable=False),
        sa.Column("rectification_id", sa.Uuid(), nullable=False),
        sa.Column("grounds", sa.String(length=10), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("filed_by", sa.Uuid(), nullable=True),
        sa.Column("filed_at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("decided_by", sa.Uuid(), nullable=True),
        sa.Column("decided_at", shgov.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["rating_id"], ["ratings.id"], name=op.f("fk_rating_appeals_rating_id_ratings")),
        sa.ForeignKeyConstraint(
            ["rectification_id"], ["rectifications.id"], name=op.f("fk_rating_appeals_rectification_id_rectifications")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rating_appeals")),
    )
    with op.batch_alter_table("rating_appeals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rating_appeals_rating_id"), ["rating_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rating_appeals_rectification_id"), ["rectification_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rating_appeals_status"), ["status"], unique=False)

    op.create_table(
        "rectification_history",
        sa.Column("rectification_id", sa.Uuid(), nullable=False),
        sa.Column("at", shgov.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("actor_name", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("from_status", sa.String(length=12), nullable=True),
        sa.Column("to_status", sa.String(length=12), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rectification_id"],
            ["rectifications.id"],
            name=op.f("fk_rectification_history_rectification_id_rectifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rectification_history")),
    )
    with op.batch_alter_table("rectification_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rectification_history_rectification_id"), ["rectification_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("rectification_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rectification_history_rectification_id"))

    op.drop_table("rectification_history")
    with op.batch_alter_table("rating_appeals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rating_appeals_status"))
        batch_op.drop_index(batch_op.f("ix_rating_appeals_rectification_id"))
        batch_op.drop_index(batch_op.f("ix_rating_appeals_rating_id"))

    op.drop_table("rating_appeals")
    with op.batch_alter_table("rectifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rectifications_tenant_code"))
        batch_op.drop_index(batch_op.f("ix_rectifications_status"))
        batch_op.drop_index(batch_op.f("ix_rectifications_department_code"))

    op.drop_table("rectifications")
    with op.batch_alter_table("rating_flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rating_flags_rating_id"))

    op.drop_table("rating_flags")
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ratings_tenant_code"))
        batch_op.drop_index(batch_op.f("ix_ratings_rater_id"))
        batch_op.drop_index("ix_ratings_item_created")
        batch_op.drop_index(batch_op.f("ix_ratings_ip_hash"))
        batch_op.drop_index(batch_op.f("ix_ratings_device_hash"))
        batch_op.drop_index("ix_ratings_desk_created")
        batch_op.drop_index(batch_op.f("ix_ratings_department_code"))
        batch_op.drop_index(batch_op.f("ix_ratings_created_at"))
        batch_op.drop_index(batch_op.f("ix_ratings_channel"))

    op.drop_table("ratings")
    op.drop_table("rating_rules")
    op.drop_table("rating_invitations")
    op.drop_table("rating_guide_reviews")
    with op.batch_alter_table("rating_desks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rating_desks_tenant_code"))
        batch_op.drop_index(batch_op.f("ix_rating_desks_department_code"))

    op.drop_table("rating_desks")

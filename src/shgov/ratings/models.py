"""Tables of the ratings context: immutable ratings, their flags, rectifications of bad ratings with their
history, appeals, the rules officials set, desks (QR codes), invitations and guides flagged for review."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, TimestampMixin, UUIDKeyMixin, utcnow
from shgov.core.numbers import BigInt


class Rating(UUIDKeyMixin, Base):
    """One rating as given (never changed or deleted: flags, rectifications and appeals refer to it)."""

    __tablename__ = "ratings"
    __table_args__ = (
        # 一事一评 / 一次一评: one rating per subject and stage (a re-rating after feedback is round 2)
        UniqueConstraint("subject_kind", "subject_ref", "stage", "round"),
        Index("ix_ratings_desk_created", "desk_code", "created_at"),
        Index("ix_ratings_item_created", "item_code", "created_at"),
    )

    subject_kind: Mapped[str] = mapped_column(String(10))  # case | workorder | desk
    subject_ref: Mapped[str] = mapped_column(String(40))  # case id, order id or desk code
    stage: Mapped[str] = mapped_column(String(60))  # accept | conclude | followup | a desk visit
    round: Mapped[int] = mapped_column(default=1)
    channel: Mapped[str] = mapped_column(String(10), index=True)
    level: Mapped[int]  # 5 非常满意 … 1 非常不满意
    scores: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)  # indicator → level
    comment: Mapped[str] = mapped_column(Text, default="")
    item_code: Mapped[str] = mapped_column(String(40))
    item_name: Mapped[str] = mapped_column(String(200))
    department_code: Mapped[str] = mapped_column(String(40), index=True)
    tenant_code: Mapped[str] = mapped_column(String(12), index=True)
    desk_code: Mapped[str | None] = mapped_column(String(40))
    served_by: Mapped[list[str]] = mapped_column(JSON, default=list)  # staff user ids who handled it
    rater_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    device_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    ip_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    replaces_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ratings.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class RatingFlag(UUIDKeyMixin, Base):
    """Why a rating looks manipulated (a burst on one desk or item, one device rating again and again). A
    flagged rating still counts and is shown as flagged; only an approved appeal excludes a rating."""

    __tablename__ = "rating_flags"

    rating_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ratings.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(20))  # burst | repeat
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Rectification(UUIDKeyMixin, TimestampMixin, Base):
    """The closed loop on one bad rating: contact, verify, rectify, answer, conclude (or an appeal)."""

    __tablename__ = "rectifications"

    rating_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ratings.id"), unique=True)
    department_code: Mapped[str] = mapped_column(String(40), index=True)
    tenant_code: Mapped[str] = mapped_column(String(12), index=True)
    status: Mapped[str] = mapped_column(String(12), index=True)
    opened_on: Mapped[date]
    contact_due: Mapped[date]
    rectify_due: Mapped[date]
    conclude_due: Mapped[date]
    contacted_at: Mapped[datetime | None]
    verdict: Mapped[str | None] = mapped_column(String(10))  # valid | mistaken | malicious
    verification: Mapped[str] = mapped_column(Text, default="")
    cause: Mapped[str] = mapped_column(Text, default="")
    measures: Mapped[str] = mapped_column(Text, default="")
    responsible_unit: Mapped[str] = mapped_column(String(200), default="")
    rectified_at: Mapped[datetime | None]
    feedback: Mapped[str] = mapped_column(Text, default="")
    answered_at: Mapped[datetime | None]
    concluded_at: Mapped[datetime | None]
    supervised_at: Mapped[datetime | None]
    rerating_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ratings.id"))


class RectificationEvent(UUIDKeyMixin, Base):
    """One step of a rectification (never changed or deleted)."""

    __tablename__ = "rectification_history"

    rectification_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rectifications.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None]
    actor_name: Mapped[str] = mapped_column(String(120), default="")
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(12))
    to_status: Mapped[str] = mapped_column(String(12))
    note: Mapped[str] = mapped_column(Text, default="")


class RatingAppeal(UUIDKeyMixin, Base):
    """A department's request to exclude a mistaken or malicious rating, decided by a supervisor."""

    __tablename__ = "rating_appeals"

    rating_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ratings.id"), index=True)
    rectification_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rectifications.id"), index=True)
    grounds: Mapped[str] = mapped_column(String(10))  # mistaken | malicious
    evidence: Mapped[str] = mapped_column(Text)
    filed_by: Mapped[uuid.UUID | None]
    filed_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(10), index=True)  # filed | approved | rejected
    decided_by: Mapped[uuid.UUID | None]
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str] = mapped_column(Text, default="")


class RatingRule(Base):
    """What officials set per tenant ("*" = everywhere unless a tenant has its own): the closed loop's
    deadlines in working days, the invitation delay, and the anti-manipulation thresholds."""

    __tablename__ = "rating_rules"

    scope: Mapped[str] = mapped_column(String(12), primary_key=True)
    contact_days: Mapped[int] = mapped_column(default=1)
    rectify_days: Mapped[int] = mapped_column(default=5)
    conclude_days: Mapped[int] = mapped_column(default=15)
    invite_after_days: Mapped[int] = mapped_column(default=3)
    hourly_limit: Mapped[int] = mapped_column(default=10)
    burst_minutes: Mapped[int] = mapped_column(default=10)
    burst_count: Mapped[int] = mapped_column(default=20)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Desk(Base):
    """A window or desk with its QR code: ratings of a visit attach to it."""

    __tablename__ = "rating_desks"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    department_code: Mapped[str] = mapped_column(String(40), index=True)
    tenant_code: Mapped[str] = mapped_column(String(12), index=True)
    item_code: Mapped[str] = mapped_column(String(40), default="")
    item_name: Mapped[str] = mapped_column(String(200), default="")
    staff_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # who serves there (may not rate it)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RatingInvitation(Base):
    """An invitation to rate a case stage that was left unrated (sent once)."""

    __tablename__ = "rating_invitations"

    case_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    stage: Mapped[str] = mapped_column(String(20), primary_key=True)
    user_id: Mapped[uuid.UUID | None]
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


class GuideReview(TimestampMixin, Base):
    """A service item whose guide raters found inaccurate (办事指南精确度 rated bad): to be reviewed."""

    __tablename__ = "rating_guide_reviews"

    item_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    item_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default="open")  # open | reviewed
    bad_ratings: Mapped[int] = mapped_column(BigInt, default=0)
    last_comment: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str] = mapped_column(Text, default="")

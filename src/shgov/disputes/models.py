"""Disputes and their append-only history."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, TimestampMixin, UUIDKeyMixin, utcnow
from shgov.core.numbers import BigInt


class Dispute(UUIDKeyMixin, TimestampMixin, Base):
    """A claim that a register value is wrong, with the decision of the department that owns it."""

    __tablename__ = "disputes"

    register: Mapped[str] = mapped_column(String(40))
    record_key: Mapped[str] = mapped_column(String(40), index=True)
    element: Mapped[str] = mapped_column(String(63))
    current_value: Mapped[str | None] = mapped_column(Text)
    proposed_value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    filer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    filer_kind: Mapped[str] = mapped_column(String(12))
    filer_department_code: Mapped[str | None] = mapped_column(String(40))
    source_resource: Mapped[str] = mapped_column(String(63))
    department_code: Mapped[str] = mapped_column(String(40), index=True)
    tenant_code: Mapped[str] = mapped_column(String(12), index=True)
    status: Mapped[str] = mapped_column(String(12), index=True)
    deadline: Mapped[date] = mapped_column(Date)
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(Text)
    corrected_value: Mapped[str | None] = mapped_column(Text)
    correction_load_id: Mapped[uuid.UUID | None]


class DisputeEvent(UUIDKeyMixin, Base):
    """One step in a dispute's life (never changed or deleted)."""

    __tablename__ = "dispute_history"

    dispute_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("disputes.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None]
    actor_name: Mapped[str] = mapped_column(String(120), default="")
    from_status: Mapped[str | None] = mapped_column(String(12))
    to_status: Mapped[str] = mapped_column(String(12))
    note: Mapped[str] = mapped_column(Text, default="")


class DisputeDeadline(Base):
    """How many working days the authoritative department has, per register element ("*" = any element)."""

    __tablename__ = "dispute_deadlines"

    register: Mapped[str] = mapped_column(String(40), primary_key=True)
    element: Mapped[str] = mapped_column(String(63), primary_key=True)
    working_days: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DisputeAttachment(UUIDKeyMixin, Base):
    """A file the filer gave as evidence (stored by digest in the file store; never changed)."""

    __tablename__ = "dispute_attachments"

    dispute_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("disputes.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(60))
    size: Mapped[int] = mapped_column(BigInt)  # bytes
    name: Mapped[str] = mapped_column(String(120))
    uploaded_by: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

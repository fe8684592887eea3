"""Tables of the cases context: cases, their department tasks, materials, history and process specs."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, TimestampMixin, UUIDKeyMixin, utcnow
from shgov.core.numbers import BigInt


class Case(UUIDKeyMixin, TimestampMixin, Base):
    """An application for a bundle or an item; once accepted, a case (办件)."""

    __tablename__ = "cases"

    number: Mapped[str] = mapped_column(String(24), unique=True)
    offering_kind: Mapped[str] = mapped_column(String(8))  # bundle | item
    offering_code: Mapped[str] = mapped_column(String(40), index=True)
    offering_name: Mapped[str] = mapped_column(String(200))
    offering_version: Mapped[int]
    applicant_kind: Mapped[str] = mapped_column(String(12))  # person | enterprise
    applicant_key: Mapped[str] = mapped_column(String(40), index=True)  # ID number / credit code
    applicant_name: Mapped[str] = mapped_column(String(200))
    applicant_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))  # online | window | kiosk
    submitted_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    tenant_code: Mapped[str] = mapped_column(String(12), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    form: Mapped[dict[str, Any]]
    prefilled: Mapped[list[str]] = mapped_column(JSON, default=list)
    items: Mapped[list[str]] = mapped_column(JSON)  # the item codes this application takes part in
    process_digest: Mapped[str] = mapped_column(String(64))
    process_state: Mapped[str] = mapped_column(Text)
    promised_days: Mapped[int]
    due_on: Mapped[date | None]
    accepted_at: Mapped[datetime | None]
    suspended_on: Mapped[date | None]
    paused_days: Mapped[int] = mapped_column(default=0)
    concluded_at: Mapped[datetime | None]
    outcome_note: Mapped[str] = mapped_column(Text, default="")
    client_token: Mapped[str | None] = mapped_column(String(64), unique=True)


class CaseTask(UUIDKeyMixin, Base):
    """A step of a case's process for one department (acceptance or an item's task)."""

    __tablename__ = "case_tasks"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    task_key: Mapped[str] = mapped_column(String(60))  # the BPMN task id
    name: Mapped[str] = mapped_column(String(200))
    item_code: Mapped[str | None] = mapped_column(String(40))
    department_code: Mapped[str] = mapped_column(String(40), index=True)
    tenant_code: Mapped[str] = mapped_column(String(12), index=True)
    status: Mapped[str] = mapped_column(String(12), index=True)  # ready, claimed, returned, done, rejected, cancelled
    claimed_by: Mapped[uuid.UUID | None]
    claimed_name: Mapped[str] = mapped_column(String(120), default="")
    ready_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_on: Mapped[date]
    completed_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(Text, default="")


class CaseMaterial(UUIDKeyMixin, Base):
    """A material of a case: a reused licence, an uploaded file, or one still owed (容缺)."""

    __tablename__ = "case_materials"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(120))
    name: Mapped[str] = mapped_column(String(100))
    necessity: Mapped[str] = mapped_column(String(6))
    source: Mapped[str] = mapped_column(String(10))  # licence | upload | pending | none
    licence_no: Mapped[str | None] = mapped_column(String(40))
    trust_level: Mapped[str | None] = mapped_column(String(1))
    digest: Mapped[str | None] = mapped_column(String(64))
    media_type: Mapped[str | None] = mapped_column(String(40))
    file_name: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int | None] = mapped_column(BigInt)  # bytes
    pages: Mapped[int | None]
    supply_by: Mapped[date | None]
    supplied_at: Mapped[datetime | None]


class CaseEvent(UUIDKeyMixin, Base):
    """One step in a case's life (never changed or deleted)."""

    __tablename__ = "case_history"

    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None]
    actor_name: Mapped[str] = mapped_column(String(120), default="")
    action: Mapped[str] = mapped_column(String(30))
    task_key: Mapped[str | None] = mapped_column(String(60))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")


class CaseProcess(Base):
    """A BPMN text cases were started with, kept by digest so running cases keep their own version."""

    __tablename__ = "case_processes"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    process_id: Mapped[str] = mapped_column(String(60))
    bpmn: Mapped[str] = mapped_column(Text)

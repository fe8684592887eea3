"""Tables of 免申即享: policies and their versions, evaluation runs, grants and the grants' history."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shgov.core.db import Base, TimestampMixin, UUIDKeyMixin, utcnow
from shgov.core.numbers import BigInt


class Policy(TimestampMixin, Base):
    """A benefit policy; what it says is in its versions, one of which may be active."""

    __tablename__ = "benefit_policies"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    target: Mapped[str] = mapped_column(String(20))  # person | enterprise
    department_code: Mapped[str] = mapped_column(String(40), index=True)
    latest_version: Mapped[int] = mapped_column(default=0)
    active_version: Mapped[int | None]  # None: a draft, or retired


class PolicyVersion(Base):
    """One saved text of a policy; never changed after it is saved (a change is a new version)."""

    __tablename__ = "benefit_policy_versions"
    __table_args__ = (UniqueConstraint("policy_code", "version"),)

    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    policy_code: Mapped[str] = mapped_column(ForeignKey("benefit_policies.code"), index=True)
    version: Mapped[int]
    name: Mapped[str] = mapped_column(String(120))
    legal_basis: Mapped[str] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(10))  # auto (免申即享) | invite (政策找人) | apply (申请)
    period: Mapped[str] = mapped_column(String(10))  # once | year | month: how often one entity may get it
    effective_from: Mapped[date]
    effective_to: Mapped[date | None]
    conditions: Mapped[list[str]] = mapped_column(JSON)
    amount: Mapped[str] = mapped_column(Text)
    budget_fen: Mapped[int | None] = mapped_column(BigInt)  # the cap of a period's grants, in fen
    created_by: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PolicyRun(UUIDKeyMixin, Base):
    """One evaluation of a policy over its population (or the entities a register change touched)."""

    __tablename__ = "benefit_runs"

    policy_code: Mapped[str] = mapped_column(ForeignKey("benefit_policies.code"), index=True)
    version: Mapped[int]
    kind: Mapped[str] = mapped_column(String(12))  # scheduled | event | manual
    period: Mapped[str] = mapped_column(String(10))
    as_of: Mapped[date]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(10), default="running")  # running | done | failed
    evaluated: Mapped[int] = mapped_column(BigInt, default=0)
    qualified: Mapped[int] = mapped_column(BigInt, default=0)
    granted: Mapped[int] = mapped_column(BigInt, default=0)  # new grants or invitations of this run
    already: Mapped[int] = mapped_column(BigInt, default=0)  # qualified, but granted in the period before
    over_budget: Mapped[int] = mapped_column(BigInt, default=0)
    total_fen: Mapped[int] = mapped_column(BigInt, default=0)
    error: Mapped[str] = mapped_column(Text, default="")


class BenefitGrant(UUIDKeyMixin, TimestampMixin, Base):
    """A benefit given (or an invitation sent) to one entity for one period of a policy — at most one."""

    __tablename__ = "benefit_grants"
    __table_args__ = (UniqueConstraint("policy_code", "period_key", "entity_key"),)

    policy_code: Mapped[str] = mapped_column(ForeignKey("benefit_policies.code"), index=True)
    version: Mapped[int]
    period_key: Mapped[str] = mapped_column(String(10))  # "once", "2026", "2026-11"
    target: Mapped[str] = mapped_column(String(20))
    entity_key: Mapped[str] = mapped_column(String(40), index=True)
    amount_fen: Mapped[int] = mapped_column(BigInt)
    status: Mapped[str] = mapped_column(String(12))  # granted | invited | declined | appealed | reversed
    trace: Mapped[dict[str, Any]] = mapped_column(JSON)  # what the conditions saw, for the explanation
    trace_digest: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("benefit_runs.id"))


class GrantEvent(Base):
    """One step of a grant's append-only history."""

    __tablename__ = "benefit_grant_events"

    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    grant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("benefit_grants.id", ondelete="CASCADE"), index=True)
    # never loaded: it makes the unit of work insert the grant before its history
    grant: Mapped[BenefitGrant] = relationship(lazy="raise")
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(120), default="")
    action: Mapped[str] = mapped_column(String(12))
    from_status: Mapped[str | None] = mapped_column(String(12))
    to_status: Mapped[str] = mapped_column(String(12))
    note: Mapped[str] = mapped_column(Text, default="")


class RegisterCopy(Base):
    """The PostgreSQL table holding a copy of a live register version, which policies are evaluated over
    when the transactions live in PostgreSQL (the embedded deployment reads the Parquet files instead)."""

    __tablename__ = "benefit_register_copies"

    target: Mapped[str] = mapped_column(String(20), primary_key=True)  # person | enterprise
    version: Mapped[int]
    source: Mapped[str] = mapped_column(Text)  # the Parquet folder copied
    table_name: Mapped[str] = mapped_column(String(63))
    rows: Mapped[int] = mapped_column(BigInt)
    copied_at: Mapped[datetime] = mapped_column(default=utcnow)

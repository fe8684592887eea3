"""What the benefits API takes and gives."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class PolicyIn(BaseModel):
    """A policy's text and settings, saved as its next version."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=2, max_length=40)
    name: str = Field(min_length=1, max_length=120)
    target: Literal["person", "enterprise"]
    department_code: str = Field(min_length=1, max_length=40)
    legal_basis: str = Field(min_length=1, max_length=4000)
    mode: Literal["auto", "invite", "apply"]
    period: Literal["once", "year", "month"]
    effective_from: date
    effective_to: date | None = None
    conditions: list[str] = Field(min_length=1, max_length=40)
    amount: str = Field(default="0", max_length=4000)
    budget_fen: int | None = Field(default=None, ge=0)


class VersionOut(BaseModel):
    """One saved version of a policy."""

    model_config = ConfigDict(from_attributes=True)

    version: int
    name: str
    legal_basis: str
    mode: str
    period: str
    effective_from: date
    effective_to: date | None
    conditions: list[str]
    amount: str
    budget_fen: int | None
    created_by: str
    created_at: datetime


class PolicyOut(BaseModel):
    """A policy, its active version and (for its managers) every version."""

    code: str
    name: str
    target: str
    department_code: str
    latest_version: int
    active_version: int | None
    current: VersionOut
    versions: list[VersionOut] = []


class DryRunOut(BaseModel):
    """How many would qualify and the total, before activation."""

    code: str
    version: int
    as_of: date
    evaluated: int
    qualified: int
    missing: int
    total_fen: int
    budget_fen: int | None
    within_budget: bool


class TraceLineOut(BaseModel):
    """One condition and whether it held: pass, fail, or missing (缺少数据)."""

    text: str
    outcome: Literal["pass", "fail", "missing"]


class TraceOut(BaseModel):
    """为什么符合/不符合."""

    code: str
    name: str
    version: int
    as_of: date
    found: bool
    in_force: bool
    eligible: bool
    missing: bool
    amount_fen: int | None
    amount: str
    conditions: list[TraceLineOut]
    values: list[dict[str, Any]]


class RunIn(BaseModel):
    """Run the active version now (for today, or for the date given)."""

    model_config = ConfigDict(extra="forbid")

    as_of: date | None = None
    keys: list[str] | None = Field(default=None, max_length=10_000)


class RunOut(BaseModel):
    """What a run did."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    policy_code: str
    version: int
    kind: str
    period: str
    as_of: date
    status: str  # queued | running | done | failed | stopped
    started_at: datetime
    finished_at: datetime | None
    evaluated: int
    qualified: int
    granted: int
    already: int
    over_budget: int
    total_fen: int
    error: str


class GrantOut(BaseModel):
    """A grant or invitation, with the reason it was made."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    policy_code: str
    version: int
    period_key: str
    target: str
    entity_key: str
    amount_fen: int
    status: str
    trace: dict[str, Any]
    trace_digest: str
    created_at: datetime


class ReasonIn(BaseModel):
    """Why (declining may leave it empty)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)

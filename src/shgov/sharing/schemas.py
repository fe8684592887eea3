"""The shapes of what the sharing API takes and answers (Pydantic models), shared with its pages."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shgov.sharing import service as sharing


class RequestIn(BaseModel):
    """A request for another department's data."""

    model_config = ConfigDict(extra="forbid")

    resource_code: str = Field(min_length=3, max_length=40)
    items: list[str] = Field(min_length=1, max_length=500)
    purpose: str = Field(min_length=2, max_length=2000)
    scenario: str = Field(min_length=2, max_length=2000)
    key_scenario_code: str | None = None
    duration_days: int = Field(default=365, ge=1, le=sharing.MAX_DURATION_DAYS)
    row_scope: dict[str, str] = Field(default_factory=dict, max_length=5)


class DecisionIn(BaseModel):
    """Approve (optionally fewer items, some plain, a rate, certain clients), refuse with a reason, withdraw."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["approve", "refuse", "withdraw"]
    note: str = Field(default="", max_length=4000)
    items: list[str] | None = None
    plain_items: list[str] = Field(default_factory=list)
    rate_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    client_ids: list[str] = Field(default_factory=list, max_length=50)


class HistoryOut(BaseModel):
    """One step of a request."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor_name: str
    action: str
    from_status: str | None
    to_status: str
    note: str


class RequestOut(BaseModel):
    """A request as requester, owner and centre see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    resource_code: str
    owner_department_code: str
    requester_department_code: str
    items: list[str]
    purpose: str
    scenario: str
    key_scenario_code: str | None
    duration_days: int
    row_scope: dict[str, Any]
    tier: int
    status: str
    deadline: date
    overdue: bool = False
    decided_at: datetime | None
    decision_note: str | None
    grant_id: uuid.UUID | None
    escalated_at: datetime | None
    created_at: datetime
    history: list[HistoryOut] = []


class GrantOut(BaseModel):
    """A grant."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    request_id: uuid.UUID | None
    resource_code: str
    owner_department_code: str
    grantee_department_code: str
    items: list[str]
    plain_items: list[str]
    row_filter: dict[str, Any]
    purpose: str
    expires_at: datetime
    rate_per_minute: int
    client_ids: list[str]
    status: str
    status_reason: str


class RevokeIn(BaseModel):
    """Why a grant ends."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=4, max_length=2000)


class BatchIn(BaseModel):
    """Up to 1,000 keys."""

    model_config = ConfigDict(extra="forbid")

    keys: list[str] = Field(min_length=1, max_length=sharing.MAX_BATCH)
    fields: list[str] | None = None


class SubscriptionIn(BaseModel):
    """Where to hear of changes to the records a grant covers."""

    model_config = ConfigDict(extra="forbid")

    grant_id: uuid.UUID
    kind: Literal["webhook", "nats"]
    target: str = Field(min_length=3, max_length=500)


class SubscriptionOut(BaseModel):
    """A subscription (the secret is shown only when it is made)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    grant_id: uuid.UUID
    resource_code: str
    kind: str
    target: str
    status: str
    created_at: datetime
    secret: str | None = None


class NotificationOut(BaseModel):
    """A notification on the dead-letter list."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    subscription_id: uuid.UUID
    payload: dict[str, Any]
    attempts: int
    last_error: str
    created_at: datetime


class RecordOut(BaseModel):
    """One record through the gateway."""

    resource: str
    items: list[str] = Field(description="the items returned")
    masked: list[str] = Field(description="the items masked (not granted plain)")
    record: dict[str, Any]

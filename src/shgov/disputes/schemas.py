"""The shapes of what the disputes API takes and answers (Pydantic models), shared with its pages."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Evidence(BaseModel):
    """A piece of evidence: a named document reference or a note."""

    name: str = Field(min_length=1, max_length=200)
    reference: str = Field(default="", max_length=500)


class DisputeIn(BaseModel):
    """A dispute to file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    register_code: Literal["person", "enterprise"] = Field(alias="register")
    record_key: str = Field(min_length=5, max_length=40)
    element: str = Field(min_length=1, max_length=63)
    proposed_value: str | None = Field(default=None, max_length=500)
    reason: str = Field(min_length=2, max_length=2000)
    evidence: list[Evidence] = Field(default_factory=list, max_length=20)


class DecisionIn(BaseModel):
    """A department's step on a dispute."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["verify", "correct", "reject"]
    reason: str = Field(default="", max_length=2000)
    corrected_value: str | None = Field(default=None, max_length=500)


class HistoryOut(BaseModel):
    """One step."""

    at: datetime
    actor_name: str
    from_status: str | None
    to_status: str
    note: str


class AttachmentOut(BaseModel):
    """An evidence file (download it from ``href``)."""

    id: uuid.UUID
    name: str
    media_type: str
    size: int
    digest: str
    created_at: datetime
    href: str


class DisputeOut(BaseModel):
    """A dispute as its filer and its department see it."""

    model_config = ConfigDict(serialize_by_alias=True)

    id: uuid.UUID
    register_code: str = Field(validation_alias="register", serialization_alias="register")
    record_key: str
    element: str
    current_value: str | None
    proposed_value: str | None
    reason: str
    evidence: list[dict[str, Any]]
    filer_kind: str
    department_code: str
    status: str
    deadline: date
    overdue: bool
    decided_at: datetime | None
    decision_reason: str | None
    corrected_value: str | None
    created_at: datetime
    values_withheld: bool = Field(
        default=False,
        description="true when the caller may not read the register record: the values, and the personal "
        "numbers in the texts, are left out",
    )
    attachments: list[AttachmentOut] = []
    history: list[HistoryOut] = []


class DeadlineIn(BaseModel):
    """A deadline rule."""

    model_config = ConfigDict(extra="forbid")

    working_days: int = Field(ge=1, le=60)


class DeadlineOut(DeadlineIn):
    """A deadline rule and what it applies to (``*``: every element of the register)."""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    register_code: str = Field(serialization_alias="register")
    element: str

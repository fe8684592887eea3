"""Request and response bodies of the ratings API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Level = int  # 1…5, checked by the service with the field named in the problem


class RatingIn(BaseModel):
    """A rating: the level, the channel it is given on, the indicators of that channel and a comment."""

    model_config = ConfigDict(extra="forbid")

    level: Level
    channel: str = Field(max_length=10)
    scores: dict[str, int] = Field(default_factory=dict, max_length=8)
    comment: str = ""


class CaseRatingIn(RatingIn):
    """A rating of one stage of the caller's case."""

    stage: Literal["accept", "conclude"] = "conclude"


class RatingOut(BaseModel):
    """A rating as its rater and the rated department see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    subject_kind: str
    subject_ref: str
    stage: str
    round: int
    channel: str
    level: int
    scores: dict[str, int]
    comment: str
    item_code: str
    item_name: str
    department_code: str
    tenant_code: str
    desk_code: str | None
    created_at: datetime
    flags: list[str] = []
    rectification_id: uuid.UUID | None = None


class StepIn(BaseModel):
    """A department's step on a rectification."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["contact", "verify", "appeal", "rectify", "answer", "conclude"]
    note: str = Field(default="", max_length=2000)
    verdict: Literal["valid", "mistaken", "malicious"] | None = None
    cause: str = Field(default="", max_length=2000)
    measures: str = Field(default="", max_length=2000)
    responsible_unit: str = Field(default="", max_length=200)
    evidence: str = Field(default="", max_length=2000)


class AppealDecisionIn(BaseModel):
    """A supervisor's decision on an appeal."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    note: str = Field(max_length=2000)


class HistoryOut(BaseModel):
    """One step of a rectification."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor_name: str
    action: str
    from_status: str | None
    to_status: str
    note: str


class RectificationOut(BaseModel):
    """A rectification, its deadlines and what is overdue."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    rating_id: uuid.UUID
    department_code: str
    tenant_code: str
    status: str
    opened_on: date
    contact_due: date
    rectify_due: date
    conclude_due: date
    verdict: str | None
    verification: str
    cause: str
    measures: str
    responsible_unit: str
    feedback: str
    supervised_at: datetime | None
    concluded_at: datetime | None
    rerating_id: uuid.UUID | None
    overdue: list[str] = []
    rating: RatingOut | None = None
    history: list[HistoryOut] = []


class RulesIn(BaseModel):
    """Rules to change (the others stay)."""

    model_config = ConfigDict(extra="forbid")

    contact_days: int | None = None
    rectify_days: int | None = None
    conclude_days: int | None = None
    invite_after_days: int | None = None
    hourly_limit: int | None = None
    burst_minutes: int | None = None
    burst_count: int | None = None


class RulesOut(BaseModel):
    """The rules of a tenant ("*": city-wide)."""

    model_config = ConfigDict(from_attributes=True)

    scope: str
    contact_days: int
    rectify_days: int
    conclude_days: int
    invite_after_days: int
    hourly_limit: int
    burst_minutes: int
    burst_count: int


class DeskIn(BaseModel):
    """A desk (window) and its QR code."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=2, max_length=200)
    department_code: str = Field(min_length=2, max_length=40)
    tenant_code: str = Field(min_length=2, max_length=12)
    item_code: str = Field(default="", max_length=40)
    item_name: str = Field(default="", max_length=200)
    staff_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)


class StatRow(BaseModel):
    """One group's figures."""

    dimension: str
    key: str
    name: str
    ratings: int
    satisfied: int
    bad: int
    satisfaction_rate: float
    bad_rate: float
    average: float
    indicators: dict[str, float | None]


class OnTimeOut(BaseModel):
    """Rectification timeliness of a department ("*": all)."""

    key: str
    due: int
    on_time: int
    rate: float


class PublicStats(BaseModel):
    """What is published: the figures by district, channel and month, and rectification timeliness."""

    total: StatRow | None
    rows: list[StatRow]
    on_time: OnTimeOut | None


class GuideReviewOut(BaseModel):
    """An item whose guide raters found inaccurate."""

    model_config = ConfigDict(from_attributes=True)

    item_code: str
    item_name: str
    status: str
    bad_ratings: int
    last_comment: str
    note: str


class GuideReviewIn(BaseModel):
    """What the review of an item's guide found or corrected."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(max_length=2000)


class UnratedOut(BaseModel):
    """A concluded case that waits for its applicant's rating."""

    model_config = ConfigDict(from_attributes=True)

    case_id: uuid.UUID
    number: str
    offering_name: str
    status: str
    concluded_at: datetime | None

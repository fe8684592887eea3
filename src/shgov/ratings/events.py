"""The events of 好差评: a rating given, a service guide flagged by bad ratings and reviewed, and the closed loop
of a bad rating — a rectification opened, each step taken on it, put under supervision when overdue, and the
supervisor's decision on an appeal."""

from __future__ import annotations

import uuid

from shgov.core.events import DomainEvent

# The department's steps on a rectification (the workflow in ``service.TRANSITIONS``).
RECTIFICATION_STEPS = ("contact", "verify", "appeal", "rectify", "answer", "conclude")


class RatingGiven(DomainEvent):
    """A rating (1–5) of a service, a desk or a follow-up, through a channel."""

    EVENT_TYPE = "ratings.rating.given"
    rating: uuid.UUID
    level: int
    item: str | None
    channel: str


class GuideFlagged(DomainEvent):
    """Bad ratings of an item mention its guide often enough for the department to review it."""

    EVENT_TYPE = "ratings.guide.flagged"
    item: str
    bad_ratings: int


class GuideReviewed(DomainEvent):
    """The department reviewed the flagged guide of an item."""

    EVENT_TYPE = "ratings.guide.reviewed"
    item: str


class RectificationOpened(DomainEvent):
    """A bad rating opened a rectification (差评整改) for a department."""

    EVENT_TYPE = "ratings.rectification.opened"
    rectification: uuid.UUID
    department: str


class RectificationStep(DomainEvent):
    """The department took a step on a rectification; ``status`` is where it stands now."""

    EVENT_TYPE = "ratings.rectification.*"
    TYPES = tuple(f"ratings.rectification.{s}" for s in RECTIFICATION_STEPS)
    FROM_TYPE = "action"
    action: str
    rectification: uuid.UUID
    status: str


class RectificationSupervised(DomainEvent):
    """A rectification missed deadlines (``missed``) and is under supervision now."""

    EVENT_TYPE = "ratings.rectification.supervised"
    rectification: uuid.UUID
    department: str
    missed: list[str]


class AppealDecided(DomainEvent):
    """A supervisor decided a department's appeal against a rating (approve: excluded; reject: rectify)."""

    EVENT_TYPE = "ratings.appeal.decided"
    rectification: uuid.UUID
    decision: str

"""The events of applications (办件): submitted, concluded."""

from __future__ import annotations

import uuid

from shgov.core.events import DomainEvent


class CaseSubmitted(DomainEvent):
    """An application was submitted for an offering (an item or a 一件事 bundle) through a channel."""

    EVENT_TYPE = "cases.case.submitted"
    case_id: uuid.UUID
    offering: str
    channel: str


class CaseConcluded(DomainEvent):
    """An application's process ended (every task done): the applicant may now rate it."""

    EVENT_TYPE = "cases.case.concluded"
    case_id: uuid.UUID
    offering: str

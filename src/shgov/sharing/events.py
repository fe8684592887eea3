"""The events of 1515 sharing: requests filed, decided, reminded and escalated; grants issued, re-checked
against the catalog and revoked."""

from __future__ import annotations

import uuid
from datetime import date

from shgov.core.events import DomainEvent


class RequestFiled(DomainEvent):
    """A department asked for a resource (``tier`` 1: granted at once; 2 and 3: the owner decides)."""

    EVENT_TYPE = "sharing.request.filed"
    request: uuid.UUID
    tier: int
    resource: str


class RequestDecided(DomainEvent):
    """The owning department decided a request."""

    EVENT_TYPE = "sharing.request.decided"
    request: uuid.UUID
    status: str


class RequestReminder(DomainEvent):
    """A request waits for its owner's decision and the deadline comes near."""

    EVENT_TYPE = "sharing.request.reminder"
    request: uuid.UUID
    deadline: date


class RequestEscalated(DomainEvent):
    """A request passed its deadline undecided: escalated above the owner."""

    EVENT_TYPE = "sharing.request.escalated"
    request: uuid.UUID
    owner: str


class GrantIssued(DomainEvent):
    """A grant was made for a request."""

    EVENT_TYPE = "sharing.grant.issued"
    grant: uuid.UUID
    request: uuid.UUID


class GrantRechecked(DomainEvent):
    """A grant was brought in line with the catalog (items on the negative list taken out, or suspended)."""

    EVENT_TYPE = "sharing.grant.rechecked"
    grant: uuid.UUID
    status: str


class GrantRevoked(DomainEvent):
    """A grant was revoked."""

    EVENT_TYPE = "sharing.grant.revoked"
    grant: uuid.UUID

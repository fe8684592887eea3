"""The events of 免申即享: policies activated and retired, runs requested and done, and what happened to a
grant (declined by its holder, appealed, reversed or upheld by staff)."""

from __future__ import annotations

import uuid
from datetime import date

from shgov.core.events import DomainEvent


class PolicyActivated(DomainEvent):
    """A version of a policy became the active one."""

    EVENT_TYPE = "benefits.policy.activated"
    code: str
    version: int


class PolicyRetired(DomainEvent):
    """A policy stopped: no more runs; the grants made stay."""

    EVENT_TYPE = "benefits.policy.retired"
    code: str


class RunRequested(DomainEvent):
    """A city-wide run was queued (from the API or a page); it starts when this event is delivered."""

    EVENT_TYPE = "benefits.run.requested"
    run_id: uuid.UUID
    code: str
    as_of: date
    kind: str
    requested_by: str | None = None


class RunDone(DomainEvent):
    """A run finished: how many it granted, and the total in fen."""

    EVENT_TYPE = "benefits.run.done"
    code: str
    run_id: uuid.UUID
    granted: int
    total_fen: int


class GrantChange(DomainEvent):
    """What happened to one grant of a policy."""

    grant_id: uuid.UUID
    code: str


class GrantDeclined(GrantChange):
    """The holder declined an invitation or a grant."""

    EVENT_TYPE = "benefits.grant.declined"


class GrantAppealed(GrantChange):
    """The holder disputes the amount or the decision."""

    EVENT_TYPE = "benefits.grant.appealed"


class GrantReversed(GrantChange):
    """Staff reversed a grant on appeal."""

    EVENT_TYPE = "benefits.grant.reversed"


class GrantUpheld(GrantChange):
    """Staff kept a grant as it was, answering the appeal."""

    EVENT_TYPE = "benefits.grant.upheld"

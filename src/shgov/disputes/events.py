"""The events of disputes (异议): filed, decided."""

from __future__ import annotations

import uuid

from shgov.core.events import DomainEvent


class DisputeFiled(DomainEvent):
    """A dispute about a register value was filed; ``department`` holds the authoritative source."""

    EVENT_TYPE = "disputes.dispute.filed"
    dispute: uuid.UUID
    department: str


class DisputeDecided(DomainEvent):
    """The authoritative department decided a dispute (``status``: upheld or rejected)."""

    EVENT_TYPE = "disputes.dispute.decided"
    dispute: uuid.UUID
    filer: uuid.UUID
    status: str

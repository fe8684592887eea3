"""The events of work orders: one received (from any channel), and each step taken on it — by its unit, by
the operations centre, by the system (escalation) or by the reporter (the rating of the answer)."""

from __future__ import annotations

import uuid

from shgov.core.events import DomainEvent

# Every action of the workflow (``service.TRANSITIONS``): each is published as ``workorders.order.<action>``.
ORDER_ACTIONS = (
    "classify",
    "sign",
    "return",
    "redispatch",
    "transfer",
    "extend",
    "reply",
    "close",
    "visit",
    "reopen",
    "rate",
    "supervise",
    "escalate",
    "merge",
)


class OrderReceived(DomainEvent):
    """A work order came in through a channel (hotline, 随申拍, patrol, sensor, Open311)."""

    EVENT_TYPE = "workorders.order.received"
    order_id: uuid.UUID
    channel: str


class OrderStep(DomainEvent):
    """A step was taken on a work order; ``status`` is where it stands now. The follow-up (``visit``) and the
    reporter's rating (``rate``) carry the satisfaction, the channel and the unit, for 好差评."""

    EVENT_TYPE = "workorders.order.*"
    TYPES = tuple(f"workorders.order.{a}" for a in ORDER_ACTIONS)
    FROM_TYPE = "action"
    action: str
    order_id: uuid.UUID
    status: str
    satisfaction: int | None = None
    channel: str | None = None
    unit: str | None = None

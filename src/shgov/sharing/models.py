"""Tables of sharing: requests (1515) with their history, and grants."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, TimestampMixin, UUIDKeyMixin, utcnow
from shgov.core.numbers import BigInt


class SharingRequest(UUIDKeyMixin, TimestampMixin, Base):
    """A department's request for items of a catalog resource, with its 1515 tier and deadline."""

    __tablename__ = "sharing_requests"

    resource_code: Mapped[str] = mapped_column(String(40), index=True)
    owner_department_code: Mapped[str] = mapped_column(String(40), index=True)
    owner_tenant_code: Mapped[str] = mapped_column(String(12))
    requester_department_code: Mapped[str] = mapped_column(String(40), index=True)
    requester_tenant_code: Mapped[str] = mapped_column(String(12), index=True)
    requested_by: Mapped[uuid.UUID | None]
    items: Mapped[list[str]] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(Text)
    scenario: Mapped[str] = mapped_column(Text)
    key_scenario_code: Mapped[str | None] = mapped_column(String(40))
    duration_days: Mapped[int]
    row_scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tier: Mapped[int]  # 1, 5 or 15 (working days)
    status: Mapped[str] = mapped_column(String(16), index=True)
    deadline: Mapped[date] = mapped_column(Date)
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)
    grant_id: Mapped[uuid.UUID | None]
    reminded_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]


class SharingRequestEvent(UUIDKeyMixin, Base):
    """One step of a request (never changed or deleted)."""

    __tablename__ = "sharing_request_history"

    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sharing_requests.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None]
    actor_name: Mapped[str] = mapped_column(String(120), default="")
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")


class Grant(UUIDKeyMixin, TimestampMixin, Base):
    """What a department may read of a resource through the gateway, until when, how fast, by which clients."""

    __tablename__ = "sharing_grants"

    request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sharing_requests.id"))
    resource_code: Mapped[str] = mapped_column(String(40), index=True)
    owner_department_code: Mapped[str] = mapped_column(String(40), index=True)
    grantee_department_code: Mapped[str] = mapped_column(String(40), index=True)
    grantee_tenant_code: Mapped[str] = mapped_column(String(12))
    items: Mapped[list[str]] = mapped_column(JSON)
    plain_items: Mapped[list[str]] = mapped_column(JSON, default=list)
    row_filter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    purpose: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime]
    rate_per_minute: Mapped[int] = mapped_column(default=600)
    client_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(12), index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")


class Subscription(UUIDKeyMixin, TimestampMixin, Base):
    """A grantee's wish to hear of changes to the records its grant covers: a webhook or a NATS subject."""

    __tablename__ = "sharing_subscriptions"

    grant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sharing_grants.id"), index=True)
    department_code: Mapped[str] = mapped_column(String(40), index=True)
    resource_code: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # webhook | nats
    target: Mapped[str] = mapped_column(String(500))
    # The HMAC key of webhook signatures (shown once, when the subscription is made).
    secret: Mapped[str] = mapped_column(String(120), default="")
    status: Mapped[str] = mapped_column(String(12), default="active")


class Notification(UUIDKeyMixin, Base):
    """One change to tell one subscriber, until it is delivered — or given up on (the dead-letter list)."""

    __tablename__ = "sharing_notifications"
    __table_args__ = (UniqueConstraint("subscription_id", "event_id"),)

    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sharing_subscriptions.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[uuid.UUID]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), index=True)  # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExchangePeer(TimestampMixin, Base):
    """A node whose signed packages this node accepts (its SM2 public key)."""

    __tablename__ = "exchange_peers"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(130))
    tenant_code: Mapped[str] = mapped_column(String(12), default="")


class ExchangeImport(Base):
    """A package being or having been imported: the parts done, so an interrupted import resumes."""

    __tablename__ = "exchange_imports"

    package_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    node: Mapped[str] = mapped_column(String(80))
    resource: Mapped[str] = mapped_column(String(63))
    parts_total: Mapped[int] = mapped_column(BigInt)
    parts_done: Mapped[list[str]] = mapped_column(JSON, default=list)
    rows: Mapped[int] = mapped_column(BigInt, default=0)
    status: Mapped[str] = mapped_column(String(12))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

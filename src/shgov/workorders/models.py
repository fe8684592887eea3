"""Tables of work orders (一网统管): the category tree, routing rules, orders and their history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shgov.core.db import Base, TimestampMixin, UUIDKeyMixin, utcnow
from shgov.core.numbers import BigInt


class Category(Base):
    """A node of the three-level category tree; leaves carry the time limits and the Open311 service."""

    __tablename__ = "wo_categories"

    code: Mapped[str] = mapped_column(String(20), primary_key=True)  # e.g. 03, 03.02, 03.02.001
    parent_code: Mapped[str | None] = mapped_column(String(20), index=True)
    level: Mapped[int]
    name: Mapped[str] = mapped_column(String(60))
    name_en: Mapped[str] = mapped_column(String(100), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Time limits (working days; sign-within in working hours); a leaf inherits its parents' when unset.
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    urgent: Mapped[bool] = mapped_column(default=False)
    # Open311 service-definition attributes (variable, code, datatype, required, order, description, values).
    attributes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True)


class RoutingRule(Base):
    """An ordered dispatch rule: category × area × keywords → lead unit and assisting units (first match wins)."""

    __tablename__ = "wo_routing_rules"

    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    position: Mapped[int] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(String(100))
    category_prefix: Mapped[str] = mapped_column(String(20), default="")  # "" matches every category
    area_prefix: Mapped[str] = mapped_column(String(20), default="")  # a division code prefix, "" everywhere
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)  # any of them in the text; [] always
    lead_level: Mapped[str] = mapped_column(String(10))  # city | district | township
    lead_department_key: Mapped[str] = mapped_column(String(12))  # e.g. cgzf; "street" = the township office
    assisting: Mapped[list[str]] = mapped_column(JSON, default=list)  # department keys, same level
    active: Mapped[bool] = mapped_column(default=True)


class WorkOrder(UUIDKeyMixin, TimestampMixin, Base):
    """A problem reported by a call, a photo, a patrol, a sensor or an Open311 client."""

    __tablename__ = "work_orders"
    __table_args__ = (
        Index("ix_work_orders_status_district", "status", "district_code"),
        # the duplicate check looks up open, recent orders by cell: with the cell first the planner never
        # prefers the status index, which matches nearly every open order
        Index("ix_work_orders_cell_status_created", "cell", "status", "created_at"),
    )

    number: Mapped[str] = mapped_column(String(24), unique=True)
    channel: Mapped[str] = mapped_column(String(12))  # hotline | photo | patrol | sensor | open311
    source_ref: Mapped[str] = mapped_column(String(80), default="")
    description: Mapped[str] = mapped_column(Text)
    category_code: Mapped[str | None] = mapped_column(String(20), index=True)
    category_confidence: Mapped[float | None] = mapped_column(Float)
    classified_by: Mapped[str] = mapped_column(String(12), default="")  # model | reporter | triage | rule
    urgent: Mapped[bool] = mapped_column(default=False)
    lat: Mapped[float | None] = mapped_column(Float)
    lng: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str] = mapped_column(String(300), default="")
    district_code: Mapped[str | None] = mapped_column(String(12), index=True)
    township_code: Mapped[str | None] = mapped_column(String(12))
    community_code: Mapped[str | None] = mapped_column(String(15))
    grid_code: Mapped[str | None] = mapped_column(String(20))
    cell: Mapped[str | None] = mapped_column(String(20))
    tenant_code: Mapped[str] = mapped_column(String(12), index=True)
    lead_unit: Mapped[str | None] = mapped_column(String(40), index=True)
    assisting_units: Mapped[list[str]] = mapped_column(JSON, default=list)
    rule_id: Mapped[int | None] = mapped_column(BigInt)
    rule_name: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[str] = mapped_column(String(12))  # indexed first in (status, district_code)
    escalation: Mapped[int] = mapped_column(default=0)  # levels it has been raised above its first unit
    returns: Mapped[int] = mapped_column(default=0)
    reopened: Mapped[int] = mapped_column(default=0)
    sign_due: Mapped[datetime | None]
    reply_due: Mapped[datetime | None]
    conclude_due: Mapped[datetime | None]
    signed_at: Mapped[datetime | None]
    replied_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    reply: Mapped[str] = mapped_column(Text, default="")
    satisfaction: Mapped[int | None]  # 1 (very unsatisfied) … 5 (very satisfied)
    merged_into: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("work_orders.id"))
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # stored photos: digest, type
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reporter_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    reporter_name: Mapped[str] = mapped_column(String(100), default="")
    reporter_phone: Mapped[str] = mapped_column(String(20), default="")
    reporter_email: Mapped[str] = mapped_column(String(200), default="")
    token: Mapped[str | None] = mapped_column(String(40), unique=True)  # Open311 token, until an id is known


class WorkOrderEvent(Base):
    """One step of an order's append-only history."""

    __tablename__ = "work_order_events"

    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), index=True)
    # never loaded (lazy="raise"): it tells the unit of work to insert the order before the rows that refer to it
    order: Mapped[WorkOrder] = relationship(lazy="raise")
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None]
    actor_name: Mapped[str] = mapped_column(String(120), default="")
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(12))
    to_status: Mapped[str] = mapped_column(String(12))
    unit: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(Text, default="")


class Playbook(Base):
    """高效处置一件事: an incident type that opens parallel tasks for several units at once, each with its limit."""

    __tablename__ = "wo_playbooks"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    category_prefix: Mapped[str] = mapped_column(String(20))
    # [{key, name, level, department_key, hours}]
    tasks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(default=True)


class IncidentTask(Base):
    """One unit's part of an incident opened by a playbook; the incident is answered when all are done."""

    __tablename__ = "wo_incident_tasks"

    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("work_orders.id", ondelete="CASCADE"), index=True)
    # never loaded (lazy="raise"): it tells the unit of work to insert the order before the rows that refer to it
    order: Mapped[WorkOrder] = relationship(lazy="raise")
    key: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(String(40), index=True)
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(10), default="open")  # open | done
    done_at: Mapped[datetime | None]
    done_by: Mapped[str] = mapped_column(String(120), default="")
    note: Mapped[str] = mapped_column(Text, default="")

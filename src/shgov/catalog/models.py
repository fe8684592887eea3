"""Tables of the catalog: resources with their data items, published versions and history; the three
lists (demand, duty, negative); key scenarios; and the search index."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, TimestampMixin, UUIDKeyMixin, utcnow
from shgov.core.numbers import BigInt


class CatalogResource(UUIDKeyMixin, TimestampMixin, Base):
    """A data resource (信息资源) with the national core metadata; the row is the working copy, the
    versions table holds what was published."""

    __tablename__ = "catalog_resources"

    code: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    # 信息资源分类: 类 (1 digit) / 项 (2) / 目 (3) / 细目 (0–6)
    class_code: Mapped[str] = mapped_column(String(1))
    item_code: Mapped[str] = mapped_column(String(2))
    category_code: Mapped[str] = mapped_column(String(3))
    detail_code: Mapped[str] = mapped_column(String(6), default="")
    provider_department_code: Mapped[str] = mapped_column(String(40), index=True)
    tenant_code: Mapped[str] = mapped_column(String(12), index=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    format_class: Mapped[str] = mapped_column(String(20))
    format: Mapped[str] = mapped_column(String(40), default="")
    sharing_type: Mapped[str] = mapped_column(String(16))
    sharing_conditions: Mapped[str] = mapped_column(Text, default="")
    sharing_method: Mapped[str] = mapped_column(String(16))
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    open_type: Mapped[str] = mapped_column(String(16))
    open_conditions: Mapped[str] = mapped_column(Text, default="")
    update_cycle: Mapped[str] = mapped_column(String(12))
    release_date: Mapped[date | None] = mapped_column(Date)
    related_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    aggregation_mode: Mapped[str] = mapped_column(String(12))
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    maintainer: Mapped[str] = mapped_column(String(120), default="")
    # The lake resource whose deliveries this entry describes (its items are that resource's schema).
    lake_resource: Mapped[str | None] = mapped_column(String(63), unique=True)
    # A base register this entry describes (person, enterprise, licence, address): aggregated by definition.
    register_code: Mapped[str | None] = mapped_column(String(20), unique=True)
    status: Mapped[str] = mapped_column(String(12), index=True)
    version: Mapped[int] = mapped_column(default=0)


class CatalogItem(UUIDKeyMixin, Base):
    """A data item (信息项) of a resource's working copy: the fields grants are made on."""

    __tablename__ = "catalog_items"
    __table_args__ = (UniqueConstraint("resource_id", "name"),)

    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_resources.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    name: Mapped[str] = mapped_column(String(63))
    title: Mapped[str] = mapped_column(String(120))
    data_type: Mapped[str] = mapped_column(String(16))
    required: Mapped[bool] = mapped_column(default=False)
    is_key: Mapped[bool] = mapped_column(default=False)
    sensitivity: Mapped[str] = mapped_column(String(12))
    personal: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str] = mapped_column(Text, default="")


class CatalogVersion(UUIDKeyMixin, Base):
    """A published version of a resource: the metadata and items exactly as published (never changed)."""

    __tablename__ = "catalog_versions"
    __table_args__ = (UniqueConstraint("resource_id", "version"),)

    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_resources.id", ondelete="CASCADE"), index=True)
    version: Mapped[int]
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by: Mapped[str] = mapped_column(String(120), default="")


class CatalogEvent(UUIDKeyMixin, Base):
    """One step in a resource's life (never changed or deleted)."""

    __tablename__ = "catalog_history"

    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_resources.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[uuid.UUID | None]
    actor_name: Mapped[str] = mapped_column(String(120), default="")
    action: Mapped[str] = mapped_column(String(20))
    from_status: Mapped[str | None] = mapped_column(String(12))
    to_status: Mapped[str] = mapped_column(String(12))
    note: Mapped[str] = mapped_column(Text, default="")


class KeyScenario(TimestampMixin, Base):
    """An application scenario on the key-scenario list (重点工作应用场景清单)."""

    __tablename__ = "catalog_key_scenarios"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")


class DemandEntry(UUIDKeyMixin, TimestampMixin, Base):
    """需求清单: department X needs items Y (of resource R, when it knows one) for scenario Z."""

    __tablename__ = "catalog_demands"

    department_code: Mapped[str] = mapped_column(String(40), index=True)
    tenant_code: Mapped[str] = mapped_column(String(12), index=True)
    resource_code: Mapped[str | None] = mapped_column(String(40), index=True)
    items: Mapped[list[str]] = mapped_column(JSON)
    scenario: Mapped[str] = mapped_column(Text)
    key_scenario_code: Mapped[str | None] = mapped_column(ForeignKey("catalog_key_scenarios.code"))


class DutyEntry(UUIDKeyMixin, TimestampMixin, Base):
    """责任清单: department D must provide resource R at an update cycle."""

    __tablename__ = "catalog_duties"
    __table_args__ = (UniqueConstraint("department_code", "resource_code"),)

    department_code: Mapped[str] = mapped_column(String(40), index=True)
    resource_code: Mapped[str] = mapped_column(String(40), index=True)
    update_cycle: Mapped[str] = mapped_column(String(12))
    note: Mapped[str] = mapped_column(Text, default="")


class NegativeEntry(UUIDKeyMixin, TimestampMixin, Base):
    """负面清单: a resource (``item`` empty) or one of its items that is not shared, with the legal basis."""

    __tablename__ = "catalog_negative"
    __table_args__ = (UniqueConstraint("resource_code", "item"),)

    resource_code: Mapped[str] = mapped_column(String(40), index=True)
    item: Mapped[str] = mapped_column(String(63), default="")
    legal_basis: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, default="")


class CatalogSearchEntry(Base):
    """What search sees of a published resource: the tokenised text and the facet values."""

    __tablename__ = "catalog_search"

    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_resources.id", ondelete="CASCADE"), unique=True)
    document: Mapped[str] = mapped_column(Text)
    title_tokens: Mapped[str] = mapped_column(Text)
    department_code: Mapped[str] = mapped_column(String(40), index=True)
    tenant_code: Mapped[str] = mapped_column(String(12), index=True)
    sharing_type: Mapped[str] = mapped_column(String(16), index=True)
    format_class: Mapped[str] = mapped_column(String(20))
    update_cycle: Mapped[str] = mapped_column(String(12))
    sensitivity: Mapped[str] = mapped_column(String(12))

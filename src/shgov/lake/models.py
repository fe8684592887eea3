"""Tables of the lake: resources with their declared schema, and the lineage of every load."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, TimestampMixin, UUIDKeyMixin
from shgov.core.numbers import BigInt


class LakeResource(TimestampMixin, Base):
    """A dataset a department delivers: its schema, key, quality rules and current version."""

    __tablename__ = "lake_resources"

    code: Mapped[str] = mapped_column(String(63), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    department_code: Mapped[str] = mapped_column(String(40), index=True)
    tenant_code: Mapped[str] = mapped_column(String(12), index=True)
    update_cycle_days: Mapped[int] = mapped_column(default=1)
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    key: Mapped[list[str]] = mapped_column(JSON)
    updated_column: Mapped[str | None] = mapped_column(String(63))
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    current_version: Mapped[int] = mapped_column(default=0)
    current_load_id: Mapped[uuid.UUID | None]
    quality_score: Mapped[float | None]


class LakeLoad(UUIDKeyMixin, Base):
    """One delivery of a resource and what became of it (lineage)."""

    __tablename__ = "lake_loads"
    __table_args__ = (Index("ix_lake_loads_resource_digest", "resource_code", "digest"),)

    resource_code: Mapped[str] = mapped_column(ForeignKey("lake_resources.code"), index=True)
    department_code: Mapped[str] = mapped_column(String(40), index=True)
    tenant_code: Mapped[str] = mapped_column(String(12), index=True)
    source: Mapped[str] = mapped_column(String(500))
    source_format: Mapped[str] = mapped_column(String(16))
    encoding: Mapped[str | None] = mapped_column(String(20))
    digest: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(12), index=True)
    version: Mapped[int | None]
    rows_in: Mapped[int] = mapped_column(BigInt, default=0)
    rows_out: Mapped[int] = mapped_column(BigInt, default=0)
    rows_quarantined: Mapped[int] = mapped_column(BigInt, default=0)
    rows_total: Mapped[int] = mapped_column(BigInt, default=0)
    quality_score: Mapped[float | None]
    rule_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    loaded_by: Mapped[str] = mapped_column(String(120), default="")
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]

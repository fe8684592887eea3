"""Tables of divisions and grids."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, utcnow

LEVELS = ("city", "district", "township", "community")
CODE_LENGTHS = {"city": 6, "district": 6, "township": 9, "community": 12}


class Region(Base):
    """An administrative division with its official code (NBS 统计用区划代码)."""

    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    level: Mapped[str] = mapped_column(String(12), index=True)
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("regions.code"), index=True)
    # GeoJSON geometry in WGS-84 / CGCS2000 (districts only).
    boundary: Mapped[dict[str, Any] | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Grid(Base):
    """A management grid: one H3 cell bound to a community, with its 15-digit GB/T 30428 code."""

    __tablename__ = "grids"

    code: Mapped[str] = mapped_column(String(15), primary_key=True)
    cell: Mapped[str] = mapped_column(String(16), unique=True)
    community_code: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    name: Mapped[str] = mapped_column(String(80), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

"""Tables of the registers: one row per build (version) with its per-element lineage and conflicts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, UUIDKeyMixin


class RegisterBuild(UUIDKeyMixin, Base):
    """One version of one register: when it was built, from which loads, and what disagreed."""

    __tablename__ = "register_builds"
    __table_args__ = (UniqueConstraint("register", "version"),)

    register: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[int]
    built_at: Mapped[datetime] = mapped_column(index=True)
    rows: Mapped[int]
    changed: Mapped[int]
    # element → {resource, department, load_id, version}: where each element's values came from.
    lineage: Mapped[dict[str, Any]]
    # element → number of records where another department's value differs from the authoritative one.
    conflicts: Mapped[dict[str, Any]]
    built_by: Mapped[str] = mapped_column(String(120), default="")

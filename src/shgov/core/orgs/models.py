"""Tables of tenants and departments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, utcnow


class Tenant(Base):
    """A data-isolation boundary: the city or one of its districts (code = division code)."""

    __tablename__ = "tenants"

    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(12))  # city | district
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("tenants.code"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Department(Base):
    """A government department of a tenant; district departments point at their municipal counterpart."""

    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(20), index=True)
    name: Mapped[str] = mapped_column(String(120))
    short_name: Mapped[str] = mapped_column(String(40))
    tenant_code: Mapped[str] = mapped_column(ForeignKey("tenants.code"), index=True)
    counterpart_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

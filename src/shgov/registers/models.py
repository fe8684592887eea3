"""Tables of the registers: one row per build (version) with its per-element lineage and conflicts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, UUIDKeyMixin, utcnow
from shgov.core.numbers import BigInt


class RegisterBuild(UUIDKeyMixin, Base):
    """One version of one register: when it was built, from which loads, and what disagreed."""

    __tablename__ = "register_builds"
    __table_args__ = (UniqueConstraint("register", "version"),)

    register: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[int]
    built_at: Mapped[datetime] = mapped_column(index=True)
    rows: Mapped[int] = mapped_column(BigInt)
    changed: Mapped[int] = mapped_column(BigInt)
    # element → {resource, department, load_id, version}: where each element's values came from.
    lineage: Mapped[dict[str, Any]]
    # element → number of records where another department's value differs from the authoritative one.
    conflicts: Mapped[dict[str, Any]]
    built_by: Mapped[str] = mapped_column(String(120), default="")


class IssuedLicence(UUIDKeyMixin, Base):
    """An e-licence issued by SH-GOV itself (统一发证), signed with SM2; part of the licence register."""

    __tablename__ = "issued_licences"

    licence_no: Mapped[str] = mapped_column(String(40), unique=True)
    licence_type: Mapped[str] = mapped_column(String(60))
    holder_id: Mapped[str] = mapped_column(String(40), index=True)
    holder_name: Mapped[str] = mapped_column(String(200))
    issuer_department: Mapped[str] = mapped_column(String(40), index=True)
    issuer_name: Mapped[str] = mapped_column(String(200))
    issued_on: Mapped[date]
    expires_on: Mapped[date | None]
    trust_level: Mapped[str] = mapped_column(String(1), default="A")
    # What the licence says beyond its header (e.g. the child's name and birth date), as signed.
    particulars: Mapped[dict[str, Any]]
    source_ref: Mapped[str] = mapped_column(String(80), default="")  # e.g. the case that produced it
    payload: Mapped[str] = mapped_column(Text)  # the canonical JSON that was signed
    signature: Mapped[str] = mapped_column(String(128))  # SM2 r‖s, hex
    key_id: Mapped[str] = mapped_column(String(16))
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(Text)

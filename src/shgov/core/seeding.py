"""Which demo data has been seeded, so that seeding never runs twice over the same data."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, Session, mapped_column

from shgov.core.db import Base, utcnow


class SeedRecord(Base):
    """One seeded part of the demo city (a context's demo data)."""

    __tablename__ = "seed_records"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    seeded_at: Mapped[datetime] = mapped_column(default=utcnow)


def already_seeded(session: Session, name: str) -> bool:
    """True when ``name`` has been seeded before."""
    return session.get(SeedRecord, name) is not None


def mark_seeded(session: Session, name: str) -> None:
    """Record that ``name`` is seeded (in the same transaction as the data)."""
    session.add(SeedRecord(name=name))

"""Tables of the open-data portal: the open datasets published from the catalog and their
distributions (one per download format)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, TimestampMixin, UUIDKeyMixin
from shgov.core.numbers import BigInt


class OpenDataset(UUIDKeyMixin, TimestampMixin, Base):
    """A catalog entry opened to the public: its metadata as published, without personal items.

    ``id`` is the CKAN package id and ``name`` its URL name; ``created_at`` / ``updated_at`` are
    CKAN's ``metadata_created`` / ``metadata_modified``."""

    __tablename__ = "opendata_datasets"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    catalog_code: Mapped[str] = mapped_column(String(40), unique=True)
    catalog_version: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    notes: Mapped[str] = mapped_column(Text, default="")
    department_code: Mapped[str] = mapped_column(String(40), index=True)
    theme: Mapped[str] = mapped_column(String(20), index=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    open_type: Mapped[str] = mapped_column(String(16))  # unconditional | conditional
    open_conditions: Mapped[str] = mapped_column(Text, default="")
    update_cycle: Mapped[str] = mapped_column(String(12))
    lake_resource: Mapped[str] = mapped_column(String(63))
    # The data dictionary: the open items only (name, title, type, description).
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(12), index=True)  # active | withdrawn
    withdrawn_reason: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime]


class OpenResource(UUIDKeyMixin, Base):
    """A distribution of a dataset: its data in one format (the CKAN resource); every one of a
    dataset is also its DataStore table."""

    __tablename__ = "opendata_resources"
    __table_args__ = (UniqueConstraint("dataset_id", "format"),)

    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("opendata_datasets.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    format: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class OpenApplication(UUIDKeyMixin, TimestampMixin, Base):
    """A reuser's application for a dataset open on conditions: purpose, the agreement accepted, the
    publisher's decision and, when approved, until when the rows may be read."""

    __tablename__ = "opendata_applications"

    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("opendata_datasets.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(index=True)
    organisation: Mapped[str] = mapped_column(String(200), default="")
    purpose: Mapped[str] = mapped_column(Text)
    agreement: Mapped[str] = mapped_column(Text)  # the conditions as accepted, word for word
    status: Mapped[str] = mapped_column(String(12), index=True)  # pending | approved | refused | withdrawn
    decided_by: Mapped[uuid.UUID | None]
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime | None]


class OpenKey(UUIDKeyMixin, Base):
    """A reuser's API key (stored as its SHA-256), with its own rate limit and expiry."""

    __tablename__ = "opendata_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    rate_per_minute: Mapped[int] = mapped_column(default=600)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class OpenUsage(Base):
    """Calls and downloads of a dataset on a day (UTC), counted in memory and added up here."""

    __tablename__ = "opendata_usage"

    dataset_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("opendata_datasets.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    calls: Mapped[int] = mapped_column(BigInt, default=0)
    downloads: Mapped[int] = mapped_column(BigInt, default=0)


class OpenKeyUsage(Base):
    """Calls made with an API key on a day (UTC), for the reuser's account page."""

    __tablename__ = "opendata_key_usage"

    key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("opendata_keys.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    calls: Mapped[int] = mapped_column(BigInt, default=0)

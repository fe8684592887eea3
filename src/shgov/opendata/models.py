"""Tables of the open-data portal: the open datasets published from the catalog and their
distributions (one per download format)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, TimestampMixin, UUIDKeyMixin


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

"""Tables of the sensing context: device types (what they measure, the valid ranges) and devices (where
they are, who owns them)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, utcnow


class DeviceType(Base):
    """A kind of sensor and its measures: ``[{code, name, unit, min, max}]``."""

    __tablename__ = "sensor_device_types"

    code: Mapped[str] = mapped_column(String(30), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    name_en: Mapped[str] = mapped_column(String(60), default="")
    measures: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    interval_seconds: Mapped[int] = mapped_column(default=60)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Device(Base):
    """A sensor in the city: its type, owner, place (district → township → community → grid) and status."""

    __tablename__ = "sensor_devices"
    # two indexes only: every index costs a bulk import of millions of rows dearly
    __table_args__ = (
        Index("ix_sensor_devices_area", "tenant_code", "type_code"),
        Index("ix_sensor_devices_department", "department_code"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type_code: Mapped[str] = mapped_column(ForeignKey("sensor_device_types.code"))
    department_code: Mapped[str] = mapped_column(String(40))
    tenant_code: Mapped[str] = mapped_column(String(12))  # the district
    township_code: Mapped[str | None] = mapped_column(String(12))
    community_code: Mapped[str | None] = mapped_column(String(12))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    lng: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(12), default="active")  # active | maintenance | retired
    name: Mapped[str] = mapped_column(String(120), default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SensorWarning(Base):
    """A warning of a vital sign in an area: opened at a grade, escalated or eased (with hysteresis), cleared
    when the value is back to normal; one open warning per indicator and area."""

    __tablename__ = "sensor_warnings"
    __table_args__ = (Index("ix_sensor_warnings_open", "status", "indicator_code", "area_code"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    indicator_code: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(12), default="threshold")  # threshold | anomaly | seasonal
    tenant_code: Mapped[str] = mapped_column(String(12))  # the district
    area_code: Mapped[str] = mapped_column(String(15))
    grade: Mapped[str] = mapped_column(String(8))  # blue | yellow | orange | red
    peak_grade: Mapped[str] = mapped_column(String(8))
    value: Mapped[float] = mapped_column(Float)
    peak_value: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(10), default="open")  # open | cleared
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    workorder_id: Mapped[uuid.UUID | None]
    workorder_number: Mapped[str | None] = mapped_column(String(30))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    cleared_at: Mapped[datetime | None]

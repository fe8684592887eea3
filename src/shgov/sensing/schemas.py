"""Request and response bodies of the sensing API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class MeasureOut(BaseModel):
    """One quantity a device type reports."""

    code: str
    name: str
    unit: str
    min: float
    max: float


class DeviceTypeOut(BaseModel):
    """A kind of sensor."""

    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    name_en: str
    interval_seconds: int
    measures: list[MeasureOut]


class DeviceOut(BaseModel):
    """A device and where it is."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    type_code: str
    name: str
    department_code: str
    tenant_code: str
    township_code: str | None
    community_code: str | None
    grid_code: str | None
    lng: float
    lat: float
    status: str
    updated_at: datetime


class DevicePage(BaseModel):
    """A page of devices and how many match."""

    total: int
    items: list[DeviceOut]


class RefusedOut(BaseModel):
    """A refused row of an import."""

    row: int
    device_id: str
    reason: str


class DeviceImportOut(BaseModel):
    """What an import did."""

    rows: int
    created: int
    updated: int
    refused: int
    refusals: list[RefusedOut]
    written: bool
    seconds: float

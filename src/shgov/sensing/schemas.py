"""Request and response bodies of the sensing API."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class MeasureOut(BaseModel):
    """One quantity a device type reports."""

    code: str
    name: str
    unit: str
    min: float
    max: float
    state: bool = False  # a 0/1 state (open, alarm …), not a quantity


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


class IngestOut(BaseModel):
    """What became of a batch of readings."""

    accepted: int
    refused: int
    reasons: dict[str, int]
    examples: list[dict[str, object]]


class StatsOut(BaseModel):
    """The ingest node's counters since it started."""

    node: str
    batches: int
    accepted: int
    refused: dict[str, int]
    late: int
    flushed_segments: int
    flushed_rows: int
    devices: int
    lag_ms_p50: float | None
    lag_ms_p95: float | None


class RejectOut(BaseModel):
    """A refused reading (or unreadable message) kept in the reject store."""

    received: datetime
    source: str
    device_id: str | None
    ts: datetime | None
    measure: str | None
    value: float | None
    raw: str | None
    reason: str


class SeriesPoint(BaseModel):
    """One window of a measure over an area."""

    start: datetime
    readings: int
    mean: float | None
    low: float | None
    high: float | None


class SeriesOut(BaseModel):
    """A measure of a device type over an area and a period, window by window."""

    type: str
    measure: str
    unit: str
    area: str
    every: str
    points: list[SeriesPoint]


class IndicatorValue(BaseModel):
    """A vital sign in one district now."""

    district: str
    value: float | None
    grade: str | None
    devices_reporting: int


class IndicatorOut(BaseModel):
    """A vital sign of the city, district by district."""

    code: str
    name: str
    name_en: str
    unit: str
    type: str
    measure: str
    formula: str
    thresholds: list[float]
    values: list[IndicatorValue]


class WarningOut(BaseModel):
    """A warning of a vital sign, a device anomaly or a seasonal area anomaly in a district."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    indicator_code: str
    kind: str
    area_code: str
    grade: str
    peak_grade: str
    value: float
    peak_value: float
    status: str
    evidence: dict[str, object]
    history: list[dict[str, object]]
    workorder_number: str | None
    opened_at: datetime
    updated_at: datetime
    cleared_at: datetime | None

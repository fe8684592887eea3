"""Request and response models of the lake API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel


class ResourceOut(BaseModel):
    """A lake resource with its schema and state."""

    code: str
    title: str
    department_code: str
    tenant_code: str
    update_cycle_days: int
    columns: list[dict[str, Any]]
    key: list[str]
    updated_column: str | None
    rules: list[dict[str, Any]]
    current_version: int
    quality_score: float | None


class LoadOut(BaseModel):
    """A load's lineage."""

    id: uuid.UUID
    resource_code: str
    department_code: str
    source: str
    source_format: str
    encoding: str | None
    digest: str
    mode: str
    status: str
    version: int | None
    rows_in: int
    rows_out: int
    rows_quarantined: int
    rows_total: int
    quality_score: float | None
    rule_counts: dict[str, Any]
    error: str | None
    loaded_by: str
    started_at: datetime
    finished_at: datetime | None


class LoadResultOut(BaseModel):
    """What a load did."""

    load_id: uuid.UUID
    resource_code: str
    status: str
    version: int
    rows_in: int
    rows_out: int
    rows_quarantined: int
    rows_total: int
    quality_score: float
    rule_counts: dict[str, int]
    digest: str
    encoding: str | None
    message: str


class QuarantinePage(BaseModel):
    """A page of quarantined rows."""

    total: int
    offset: int
    rows: list[dict[str, Any]]


class QualityOut(BaseModel):
    """Quality scores per resource and per department."""

    resources: dict[str, float | None]
    departments: dict[str, float]

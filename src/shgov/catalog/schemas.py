"""Request and response models of the catalog API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ItemIn(BaseModel):
    """A data item (信息项)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63, description="machine name: letters, digits and _")
    title: str = Field(min_length=1, max_length=120, description="中文名称")
    data_type: str = "string"
    required: bool = False
    is_key: bool = False
    sensitivity: Literal["general", "important", "core"] = "general"
    personal: bool = False
    description: str = Field(default="", max_length=2000)


class ResourceIn(BaseModel):
    """A catalog entry as its department writes it (the code is assigned by the catalog)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    class_code: str = Field(pattern=r"^[123]$")
    item_code: str = Field(pattern=r"^\d{2}$")
    category_code: str = Field(pattern=r"^\d{3}$")
    detail_code: str = Field(default="", pattern=r"^\d{0,6}$")
    provider_department_code: str = Field(min_length=3, max_length=40)
    tenant_code: str = Field(min_length=6, max_length=12)
    summary: str = Field(default="", max_length=4000)
    format_class: str
    format: str = Field(default="", max_length=40)
    sharing_type: str
    sharing_conditions: str = Field(default="", max_length=4000)
    sharing_method: str
    legal_basis: str = Field(default="", max_length=4000)
    open_type: str
    open_conditions: str = Field(default="", max_length=4000)
    update_cycle: str
    release_date: date | None = None
    related_codes: list[str] = Field(default_factory=list, max_length=50)
    aggregation_mode: str = "incremental"
    keywords: list[str] = Field(default_factory=list, max_length=30)
    maintainer: str = Field(default="", max_length=120)
    lake_resource: str | None = Field(default=None, max_length=63)
    items: list[ItemIn] = Field(min_length=1, max_length=500)


class ItemOut(ItemIn):
    """A data item as stored."""

    model_config = ConfigDict(from_attributes=True)


class ResourceOut(BaseModel):
    """A catalog entry (its working copy) with its items."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    version: int
    status: str
    title: str
    class_code: str
    item_code: str
    category_code: str
    detail_code: str
    provider_department_code: str
    tenant_code: str
    summary: str
    format_class: str
    format: str
    sharing_type: str
    sharing_conditions: str
    sharing_method: str
    legal_basis: str
    open_type: str
    open_conditions: str
    update_cycle: str
    release_date: date | None
    related_codes: list[str]
    aggregation_mode: str
    keywords: list[str]
    maintainer: str
    lake_resource: str | None
    register_code: str | None
    created_at: datetime
    updated_at: datetime
    items: list[ItemOut] = []


class HitOut(BaseModel):
    """A search hit: the entry's summary fields and its score."""

    code: str
    title: str
    summary: str
    provider_department_code: str
    sharing_type: str
    format_class: str
    update_cycle: str
    version: int
    score: float


class SearchOut(BaseModel):
    """A page of search results."""

    total: int
    offset: int
    limit: int
    words: list[str]
    facets: dict[str, dict[str, int]]
    results: list[HitOut]


class TransitionIn(BaseModel):
    """A step along the entry's life."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["submit", "approve", "return", "revise", "retire"]
    note: str = Field(default="", max_length=2000)


class EventOut(BaseModel):
    """One step of an entry's history."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor_name: str
    action: str
    from_status: str | None
    to_status: str
    note: str


class VersionOut(BaseModel):
    """A published version."""

    model_config = ConfigDict(from_attributes=True)

    version: int
    published_at: datetime
    published_by: str
    snapshot: dict[str, Any]


class DemandIn(BaseModel):
    """A need for the demand list."""

    model_config = ConfigDict(extra="forbid")

    department_code: str = Field(min_length=3, max_length=40)
    tenant_code: str = Field(min_length=6, max_length=12)
    items: list[str] = Field(min_length=1, max_length=200)
    scenario: str = Field(min_length=2, max_length=2000)
    resource_code: str | None = None
    key_scenario_code: str | None = None


class DutyIn(BaseModel):
    """A delivery duty."""

    model_config = ConfigDict(extra="forbid")

    department_code: str = Field(min_length=3, max_length=40)
    resource_code: str
    update_cycle: str
    note: str = Field(default="", max_length=2000)


class NegativeIn(BaseModel):
    """A negative-list entry (``item`` empty: the whole resource)."""

    model_config = ConfigDict(extra="forbid")

    resource_code: str
    item: str = Field(default="", max_length=63)
    legal_basis: str = Field(min_length=2, max_length=4000)
    note: str = Field(default="", max_length=2000)


class DemandOut(DemandIn):
    """A demand-list entry."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime


class DutyOut(DutyIn):
    """A duty-list entry."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime


class NegativeOut(NegativeIn):
    """A negative-list entry."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime

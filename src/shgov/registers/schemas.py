"""The shapes of what the registers API takes and answers (Pydantic models), shared with its pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class BatchIn(BaseModel):
    """Several keys at once."""

    keys: list[str] = Field(min_length=1, max_length=1000)
    fields: list[str] | None = None
    as_of: datetime | None = None


class BuildOut(BaseModel):
    """A register build."""

    model_config = ConfigDict(serialize_by_alias=True)

    register_code: str = Field(validation_alias="register", serialization_alias="register")
    version: int
    built_at: datetime | None = None
    rows: int
    changed: int
    conflicts: dict[str, int]
    lineage: dict[str, Any]

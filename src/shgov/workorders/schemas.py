"""The shapes of what the workorders API takes and answers (Pydantic models), shared with its pages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile as StarletteUpload

from shgov.core.bounded import bounded_json
from shgov.core.errors import InvalidError
from shgov.core.files import read_upload
from shgov.core.i18n import N_
from shgov.workorders.service import MAX_PHOTOS, Upload


class ReportIn(BaseModel):
    """A report from the hotline (an agent), a patrol (an inspector) or a sensor (a system client)."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["hotline", "patrol", "sensor"]
    description: str = Field(min_length=1, max_length=4000)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)
    address: str = Field(default="", max_length=300)
    category_code: str | None = Field(default=None, max_length=20)
    urgent: bool = False
    caller_name: str = Field(default="", max_length=100)
    caller_phone: str = Field(default="", max_length=20)
    source_ref: str = Field(default="", max_length=80)
    # what a sensor or a category's questions add: small by nature (a 9 MB object was once accepted)
    attributes: Annotated[dict[str, Any], bounded_json(max_bytes=8 * 1024, max_depth=4)] = {}


class StepIn(BaseModel):
    """A step on an order."""

    model_config = ConfigDict(extra="forbid")

    action: Literal[
        "sign",
        "return",
        "extend",
        "reply",
        "classify",
        "redispatch",
        "transfer",
        "supervise",
        "close",
        "visit",
        "reopen",
        "merge",
        "rate",
    ]
    note: str = Field(default="", max_length=4000)
    category_code: str | None = Field(default=None, max_length=20)
    unit: str | None = Field(default=None, max_length=40)
    days: int = Field(default=0, ge=0, le=60)
    satisfaction: int | None = Field(default=None, ge=1, le=5)
    target: uuid.UUID | None = None


class OrderOut(BaseModel):
    """An order as staff see it (the reporter's details masked unless the caller may read them)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: str
    channel: str
    status: str
    description: str
    category_code: str | None
    category_confidence: float | None
    classified_by: str
    urgent: bool
    lat: float | None
    lng: float | None
    address: str
    district_code: str | None
    township_code: str | None
    community_code: str | None
    grid_code: str | None
    lead_unit: str | None
    assisting_units: list[str]
    rule_name: str
    escalation: int
    sign_due: datetime | None
    reply_due: datetime | None
    conclude_due: datetime | None
    reply: str
    satisfaction: int | None
    reporter_name: str
    reporter_phone: str
    created_at: datetime
    flag: str = ""
    tasks: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []


class BatchIn(BaseModel):
    """Up to 1,000 reports from patrols or sensors in one call."""

    model_config = ConfigDict(extra="forbid")

    reports: list[ReportIn] = Field(min_length=1, max_length=1000)


class RuleIn(BaseModel):
    """A routing rule: the orders it takes (empty conditions match all) and the units it gives them to."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=2, max_length=100)
    category_prefix: str = Field(default="", max_length=20)
    area_prefix: str = Field(default="", max_length=20)
    keywords: list[str] = Field(default=[], max_length=50)
    lead_level: Literal["city", "district", "township"]
    lead_department_key: str = Field(min_length=1, max_length=12)
    assisting: list[str] = Field(default=[], max_length=10)
    active: bool = True


class RuleOut(RuleIn):
    """A stored rule and its place in the order."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    position: int


class TaskDone(BaseModel):
    """How a unit handled its part of an incident."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=2, max_length=4000)


async def read_photos(items: list[Any], settings: Any) -> list[Upload]:
    """The photos of a multipart form (empty file inputs skipped), each refused when over the upload limit."""
    files = [f for f in items if isinstance(f, StarletteUpload) and (f.filename or f.size)]
    if len(files) > MAX_PHOTOS:
        raise InvalidError(N_("Upload at most {count} photos"), field="photos", count=MAX_PHOTOS)
    uploads = []
    for upload in files:
        try:
            data = await read_upload(upload, settings.max_upload_bytes, "photos")
        except InvalidError as exc:
            limit = settings.max_upload_bytes / 1024 / 1024
            raise InvalidError(
                N_('The photo "{name}" is over the limit of {limit:.1f} MB'),
                field="photos",
                name=upload.filename,
                limit=limit,
            ) from exc
        uploads.append(Upload(data, upload.filename or "photo"))
    return uploads

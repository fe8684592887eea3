"""The shapes of what the cases API takes and answers (Pydantic models), shared with its pages."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.requests import Request

from shgov.cases import service as cases
from shgov.cases.models import Case
from shgov.core.errors import InvalidError
from shgov.core.files import read_upload
from shgov.core.i18n import N_
from shgov.core.identity.permissions import Principal
from shgov.core.ids import mask_personal, mask_text, may_read_personal, reveal


class CaseOut(BaseModel):
    """A case as its applicant and its departments see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: str
    offering_kind: str
    offering_code: str
    offering_name: str
    applicant_kind: str
    applicant_key: str
    applicant_name: str
    channel: str
    status: str
    form: dict[str, Any]
    prefilled: list[str]
    items: list[str]
    due_on: date | None
    accepted_at: datetime | None
    concluded_at: datetime | None
    paused_days: int
    outcome_note: str
    created_at: datetime
    tasks: list[dict[str, Any]] = []
    materials: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    licences: list[dict[str, Any]] = []


class TaskAction(BaseModel):
    """A department's step on a task."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["claim", "approve", "return", "reject"]
    note: str = Field(default="", max_length=2000)


class VerifyIn(BaseModel):
    """A scanned licence code."""

    code: str = Field(min_length=10, max_length=4000)


class RevokeIn(BaseModel):
    """Why a licence is revoked."""

    reason: str = Field(min_length=2, max_length=500)


def case_out(session: Session, principal: Principal, case: Case, settings: Any) -> CaseOut:
    """A case with tasks, materials, history and licences; personal data masked for anyone but the applicant."""
    out = CaseOut.model_validate(case)
    entitled = cases.is_applicant(session, principal, case) or may_read_personal(principal, case.tenant_code)
    if not entitled:
        out.form = {k: mask_personal(v, k) for k, v in case.form.items()}
        out.applicant_key = str(mask_personal(case.applicant_key, "id_number"))
        out.outcome_note = mask_text(case.outcome_note)
    warn = settings.services.warn_working_days
    out.tasks = [
        {
            "id": str(t.id),
            "key": t.task_key,
            "name": t.name,
            "department": t.department_code,
            "status": t.status,
            "due_on": t.due_on.isoformat(),
            "flag": cases.flag(t.due_on, warn) if t.status in cases.OPEN_TASK else "",
            "note": reveal(t.note, entitled),
        }
        for t in cases.tasks_of(session, case.id)
    ]
    out.materials = [
        {
            "key": m.key,
            "name": m.name,
            "necessity": m.necessity,
            "source": m.source,
            "licence_no": m.licence_no,
            "trust_level": m.trust_level,
            "file_name": m.file_name,
            "pages": m.pages,
            "supply_by": m.supply_by.isoformat() if m.supply_by else None,
        }
        for m in cases.materials(session, case.id)
    ]
    out.history = [
        {
            "at": h.at.isoformat(),
            "actor": h.actor_name,
            "action": h.action,
            "from": h.from_status,
            "to": h.to_status,
            "note": reveal(h.note, entitled),
        }
        for h in cases.history(session, case.id)
    ]
    # a licence names its holder by 身份证号: shown in full to the applicant (and the entitled) only
    out.licences = [
        {
            **row,
            "holder_id": reveal(row["holder_id"], entitled, "holder_id"),
            "issued_on": str(row["issued_on"]),
            "expires_on": str(row["expires_on"]) if row["expires_on"] else None,
        }
        for row in cases.licences(session, case)
    ]
    return out


async def read_application(request: Request, max_bytes: int) -> tuple[dict[str, str], dict[str, cases.Upload]]:
    """The text fields (without the CSRF token) and the ``material:<key>`` files of a multipart form."""
    form = await request.form()
    values: dict[str, str] = {}
    uploads: dict[str, cases.Upload] = {}
    for name, value in form.multi_items():
        if isinstance(value, StarletteUpload):
            if name.startswith("material:") and (value.filename or value.size):
                key = name.removeprefix("material:")
                try:
                    data = await read_upload(value, max_bytes, name)
                except InvalidError as exc:
                    limit = f"{max_bytes / 1024 / 1024:.1f}".rstrip("0").rstrip(".")
                    raise InvalidError(
                        N_(
                            "“{filename}” is over the {limit} MB limit; please compress it or split it and upload again"
                        ),
                        field=name,
                        filename=value.filename,
                        limit=limit,
                    ) from exc
                uploads[key] = cases.Upload(value.filename or "", data)
        elif name != "csrf_token":  # the browser's CSRF token is not part of the application
            values[name] = value
    return values, uploads

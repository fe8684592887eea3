"""The disputes API: file, follow and decide disputes about register values."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from shgov.core.deps import FileStoreDep, SessionDep, SettingsDep
from shgov.core.errors import Problem
from shgov.core.files import file_response, read_upload
from shgov.core.http import JsonRoute
from shgov.core.identity.deps import CurrentPrincipal, audit
from shgov.core.identity.permissions import Principal
from shgov.core.identity.service import get_user
from shgov.core.regions.api import IndexDep
from shgov.disputes import service as disputes
from shgov.disputes.models import Dispute
from shgov.lake import service as lake
from shgov.registers import service as registers

router = APIRouter(prefix="/api/v1/disputes", tags=["disputes"], route_class=JsonRoute)


class Evidence(BaseModel):
    """A piece of evidence: a named document reference or a note."""

    name: str = Field(min_length=1, max_length=200)
    reference: str = Field(default="", max_length=500)


class DisputeIn(BaseModel):
    """A dispute to file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    register_code: Literal["person", "enterprise"] = Field(alias="register")
    record_key: str = Field(min_length=5, max_length=40)
    element: str = Field(min_length=1, max_length=63)
    proposed_value: str | None = Field(default=None, max_length=500)
    reason: str = Field(min_length=2, max_length=2000)
    evidence: list[Evidence] = Field(default_factory=list, max_length=20)


class DecisionIn(BaseModel):
    """A department's step on a dispute."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["verify", "correct", "reject"]
    reason: str = Field(default="", max_length=2000)
    corrected_value: str | None = Field(default=None, max_length=500)


class HistoryOut(BaseModel):
    """One step."""

    at: datetime
    actor_name: str
    from_status: str | None
    to_status: str
    note: str


class AttachmentOut(BaseModel):
    """An evidence file (download it from ``href``)."""

    id: uuid.UUID
    name: str
    media_type: str
    size: int
    digest: str
    created_at: datetime
    href: str


class DisputeOut(BaseModel):
    """A dispute as its filer and its department see it."""

    model_config = ConfigDict(serialize_by_alias=True)

    id: uuid.UUID
    register_code: str = Field(validation_alias="register", serialization_alias="register")
    record_key: str
    element: str
    current_value: str | None
    proposed_value: str | None
    reason: str
    evidence: list[dict[str, Any]]
    filer_kind: str
    department_code: str
    status: str
    deadline: date
    overdue: bool
    decided_at: datetime | None
    decision_reason: str | None
    corrected_value: str | None
    created_at: datetime
    attachments: list[AttachmentOut] = []
    history: list[HistoryOut] = []


def _out(session: SessionDep, dispute: Dispute, with_history: bool = False) -> DisputeOut:
    out = DisputeOut.model_validate(
        {
            **{c: getattr(dispute, c) for c in DisputeOut.model_fields if hasattr(dispute, c)},
            "register": dispute.register,
            "overdue": disputes.is_overdue(dispute),
            "history": [],
        }
    )
    if with_history:
        out.attachments = [
            AttachmentOut(
                id=a.id,
                name=a.name,
                media_type=a.media_type,
                size=a.size,
                digest=a.digest,
                created_at=a.created_at,
                href=f"/api/v1/disputes/{dispute.id}/evidence/{a.id}",
            )
            for a in disputes.attachments(session, dispute.id)
        ]
        out.history = [
            HistoryOut.model_validate(h, from_attributes=True) for h in disputes.history(session, dispute.id)
        ]
    return out


@router.post("", response_model=DisputeOut, status_code=201)
def file(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    body: DisputeIn,
    principal: CurrentPrincipal,
) -> DisputeOut:
    """File a dispute: citizens about their own record, departments about data they use."""
    user = get_user(session, principal.user_id)
    reader = registers.shared_reader(settings.lake_dir)
    filing = disputes.Filing(
        body.register_code,
        body.record_key,
        body.element,
        body.proposed_value,
        body.reason,
        [e.model_dump() for e in body.evidence],
    )
    dispute = disputes.file_dispute(
        session,
        reader,
        principal,
        filing,
        default_deadline_days=settings.dispute_deadline_days,
        id_number_of_filer=(user.id_number or user.credit_code) if user else None,
    )
    audit(
        request,
        principal,
        "disputes.dispute.file",
        object_type="dispute",
        object_id=str(dispute.id),
        details={"register": body.register_code, "element": body.element, "department": dispute.department_code},
    )
    return _out(session, dispute, with_history=True)


@router.get("", response_model=list[DisputeOut])
def list_disputes(session: SessionDep, principal: CurrentPrincipal, overdue: bool = False) -> list[DisputeOut]:
    """Disputes the caller filed or whose department they serve; ``overdue=true`` for the late ones."""
    return [_out(session, d) for d in disputes.visible_disputes(session, principal, overdue)]


def _dispute(session: SessionDep, principal: Principal, dispute_id: uuid.UUID) -> Dispute:
    dispute = disputes.get_dispute(session, dispute_id)
    if dispute is None or not disputes.may_see(principal, dispute):
        raise Problem("not-found", detail="No such dispute.")
    return dispute


class DeadlineIn(BaseModel):
    """A deadline rule."""

    model_config = ConfigDict(extra="forbid")

    working_days: int = Field(ge=1, le=60)


class DeadlineOut(DeadlineIn):
    """A deadline rule and what it applies to (``*``: every element of the register)."""

    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    register_code: str = Field(serialization_alias="register")
    element: str


@router.get("/deadlines", response_model=list[DeadlineOut])
def deadlines(session: SessionDep, principal: CurrentPrincipal) -> list[DeadlineOut]:
    """The deadline rules (disputes not covered get SHGOV_DISPUTE_DEADLINE_DAYS working days)."""
    return [
        DeadlineOut(register_code=r.register, element=r.element, working_days=r.working_days)
        for r in disputes.list_deadlines(session)
    ]


@router.put("/deadlines/{register}/{element}", response_model=DeadlineOut)
def set_deadline(
    request: Request, session: SessionDep, register: str, element: str, body: DeadlineIn, principal: CurrentPrincipal
) -> DeadlineOut:
    """Set how many working days departments have for disputes on an element (``*``: the whole register)."""
    if not principal.has_action(disputes.DEADLINE_MANAGE) or not principal.city_wide(disputes.DEADLINE_MANAGE):
        raise Problem("forbidden", detail="Dispute deadlines are set city-wide.")
    rule = disputes.set_deadline(session, register, element, body.working_days)
    audit(
        request,
        principal,
        "disputes.deadline.set",
        object_type="deadline",
        object_id=f"{register}.{element}",
        details={"working_days": body.working_days},
    )
    return DeadlineOut(register_code=rule.register, element=rule.element, working_days=rule.working_days)


@router.get("/{dispute_id}", response_model=DisputeOut)
def one(session: SessionDep, principal: CurrentPrincipal, dispute_id: uuid.UUID) -> DisputeOut:
    """A dispute with its history."""
    return _out(session, _dispute(session, principal, dispute_id), with_history=True)


@router.post("/{dispute_id}/evidence", response_model=DisputeOut, status_code=201)
async def add_evidence(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    store: FileStoreDep,
    dispute_id: uuid.UUID,
    file: Annotated[list[UploadFile], File(description="PDF, JPEG or PNG files (multipart field 'file')")],
    principal: CurrentPrincipal,
) -> DisputeOut:
    """Add evidence files to an open dispute the caller filed (at most 5 per dispute; all or none)."""
    dispute = _dispute(session, principal, dispute_id)
    files = [(f.filename or "", await read_upload(f, settings.max_upload_bytes)) for f in file]
    added = disputes.attach(session, store, dispute, principal, files, settings.max_upload_bytes)
    audit(
        request,
        principal,
        "disputes.evidence.add",
        object_type="dispute",
        object_id=str(dispute_id),
        details={"files": [a.digest for a in added]},
    )
    return _out(session, dispute, with_history=True)


@router.get("/{dispute_id}/evidence/{attachment_id}")
def evidence(
    request: Request,
    session: SessionDep,
    store: FileStoreDep,
    dispute_id: uuid.UUID,
    attachment_id: uuid.UUID,
    principal: CurrentPrincipal,
) -> Response:
    """Download an evidence file: its filer and the department the dispute is routed to."""
    dispute, found = disputes.evidence_file(session, principal, dispute_id, attachment_id)
    audit(
        request,
        principal,
        "disputes.evidence.read",
        object_type="dispute",
        object_id=str(dispute_id),
        tenant_code=dispute.tenant_code,
        details={"file": found.digest},
    )
    return file_response(store, found.digest, found.media_type, found.name)


@router.post("/{dispute_id}/decisions", response_model=DisputeOut)
def decide(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    dispute_id: uuid.UUID,
    body: DecisionIn,
    principal: CurrentPrincipal,
) -> DisputeOut:
    """Verify, correct (changes the source and the register) or reject with a written reason."""
    dispute = _dispute(session, principal, dispute_id)
    context = lake.make_context(settings.lake_dir, lake.region_codes(index))
    decided = disputes.decide(
        session,
        settings.lake_dir,
        dispute,
        principal,
        body.action,
        reason=body.reason,
        corrected_value=body.corrected_value,
        context=context,
    )
    audit(
        request,
        principal,
        f"disputes.dispute.{body.action}",
        object_type="dispute",
        object_id=str(dispute_id),
        details={"status": decided.status},
    )
    return _out(session, decided, with_history=True)

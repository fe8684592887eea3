"""The disputes API: file, follow and decide disputes about register values."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from shgov.core.deps import FileStoreDep, SessionDep, SettingsDep
from shgov.core.errors import Problem
from shgov.core.files import file_response, read_upload
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_
from shgov.core.identity.deps import CurrentPrincipal, access, audit
from shgov.core.identity.permissions import Principal
from shgov.core.identity.service import find_user
from shgov.core.ids import mask_personal, mask_text
from shgov.core.regions.api import IndexDep
from shgov.core.settings import Settings
from shgov.disputes import service as disputes
from shgov.disputes.access import may_see_dispute
from shgov.disputes.models import Dispute
from shgov.disputes.schemas import (
    AttachmentOut,
    DeadlineIn,
    DeadlineOut,
    DecisionIn,
    DisputeIn,
    DisputeOut,
    HistoryOut,
)
from shgov.lake import service as lake
from shgov.registers import service as registers

router = APIRouter(prefix="/api/v1/disputes", tags=["disputes"], route_class=JsonRoute)


def _out(
    session: SessionDep,
    principal: Principal,
    dispute: Dispute,
    readable: set[uuid.UUID],
    with_history: bool = False,
) -> DisputeOut:
    """A dispute for ``principal``: register values only when ``readable`` holds it (see
    ``disputes.readable_values``); a filer still sees the value they proposed."""
    withheld = dispute.id not in readable
    out = DisputeOut.model_validate(
        {
            **{c: getattr(dispute, c) for c in DisputeOut.model_fields if hasattr(dispute, c)},
            "register": dispute.register,
            "overdue": disputes.is_overdue(dispute),
            "history": [],
        }
    )
    if withheld:
        out.values_withheld = True
        out.current_value = out.corrected_value = None
        if dispute.filer_id != principal.user_id:
            out.proposed_value = None
        out.reason = mask_text(dispute.reason)
        out.decision_reason = mask_text(dispute.decision_reason) if dispute.decision_reason else None
        out.evidence = mask_personal(dispute.evidence)
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
        if withheld:
            for h in out.history:
                h.note = mask_text(h.note)
    return out


def _readable(session: SessionDep, settings: Settings, principal: Principal, rows: list[Dispute]) -> set[uuid.UUID]:
    return disputes.readable_values(session, registers.shared_reader(settings.lake_dir), principal, rows)


@router.post("", response_model=DisputeOut, status_code=201)
def file(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    body: DisputeIn,
    principal: CurrentPrincipal,
) -> DisputeOut:
    """File a dispute: citizens about their own record, departments about data they use."""
    user = find_user(session, principal.user_id)
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
    return _out(session, principal, dispute, _readable(session, settings, principal, [dispute]), with_history=True)


@router.get("", response_model=list[DisputeOut])
def list_disputes(
    session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal, overdue: bool = False
) -> list[DisputeOut]:
    """Disputes the caller filed or whose department they serve; ``overdue=true`` for the late ones."""
    rows = disputes.visible_disputes(session, principal, overdue)
    readable = _readable(session, settings, principal, rows)
    return [_out(session, principal, d, readable) for d in rows]


def _dispute(session: SessionDep, principal: Principal, dispute_id: uuid.UUID) -> Dispute:
    return access(session, principal, disputes.find_dispute(session, dispute_id), may_see_dispute)


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
        raise Problem("forbidden", detail=N_("Dispute deadlines are set city-wide."))
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
def one(session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal, dispute_id: uuid.UUID) -> DisputeOut:
    """A dispute with its history."""
    dispute = _dispute(session, principal, dispute_id)
    return _out(session, principal, dispute, _readable(session, settings, principal, [dispute]), with_history=True)


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
    return _out(session, principal, dispute, _readable(session, settings, principal, [dispute]), with_history=True)


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
    return _out(session, principal, decided, _readable(session, settings, principal, [decided]), with_history=True)

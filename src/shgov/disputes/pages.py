"""Pages of disputes: the filer's (file and follow) and the department's (verify, correct, reject)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from shgov.core.calendar.service import city_today
from shgov.core.deps import FileStoreDep, SessionDep, SettingsDep
from shgov.core.errors import DomainError, Problem
from shgov.core.files import file_response, read_upload
from shgov.core.i18n import N_, request_locale
from shgov.core.identity.deps import SignedInPage, audit
from shgov.core.identity.service import find_user
from shgov.core.ids import masked_view
from shgov.core.regions.api import IndexDep
from shgov.disputes import service as disputes
from shgov.disputes.access import DisputePage
from shgov.lake import service as lake
from shgov.registers import service as registers
from shgov.web.pages import PageMessage, TemplatesDep, web_user
from shgov.web.templating import NavItem

router = APIRouter(include_in_schema=False, dependencies=[Depends(web_user)])

NAV = [
    (
        "citizens",
        NavItem(
            "disputes",
            N_("Report wrong data about me"),
            "/disputes",
            N_("Tell the department that holds it; follow the correction."),
        ),
    ),
    (
        "data",
        NavItem(
            "disputes-dept",
            N_("Disputes about our data"),
            "/data/disputes",
            N_("Verify, correct or reject disputes routed to your department."),
        ),
    ),
]


@router.get("/disputes", response_class=HTMLResponse)
def mine(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    who: SignedInPage,
    error: PageMessage = None,
    element: Annotated[str, Query(max_length=63)] = "",
) -> Response:
    """The disputes the visitor filed, and a form to file one about their own record (``element``
    preselects the value, e.g. from a prefilled form field)."""
    filed = [d for d in disputes.visible_disputes(session, who) if d.filer_id == who.user_id]
    elements = [e for e in registers.REGISTERS["person"].elements if e.source is not None]
    return templates.render(
        request,
        "disputes/mine.html",
        {
            "disputes": filed,
            "files": {d.id: disputes.attachments(session, d.id) for d in filed},
            "max_mb": round(settings.max_upload_bytes / 1024 / 1024, 1),
            "elements": elements,
            "error": error,
            "today": city_today(),
            "chosen": element,
        },
    )


@router.post("/disputes")
async def file(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    who: SignedInPage,
    element: Annotated[str, Form(max_length=63)],
    reason: Annotated[str, Form(min_length=2, max_length=2000)],
    store: FileStoreDep,
    proposed_value: Annotated[str, Form(max_length=500)] = "",
    evidence: Annotated[list[UploadFile | str] | None, File()] = None,
) -> Response:
    """File a dispute about the visitor's own person record, with evidence files if any."""
    user = find_user(session, who.user_id)
    key = (user.id_number if user else None) or ""
    filing = disputes.Filing("person", key, element, proposed_value or None, reason, [])
    try:
        # With no file chosen a client sends an empty part, or a plain empty field: neither is evidence.
        files = [
            (f.filename or "", await read_upload(f, settings.max_upload_bytes, "evidence"))
            for f in evidence or []
            if isinstance(f, StarletteUpload) and (f.filename or f.size)
        ]
        dispute = disputes.file_dispute(
            session,
            registers.shared_reader(settings.lake_dir),
            who,
            filing,
            default_deadline_days=settings.dispute_deadline_days,
            id_number_of_filer=key,
        )
        disputes.attach(session, store, dispute, who, files, settings.max_upload_bytes)
    except DomainError as exc:
        # Nothing of a refused filing stays: the dispute and its rows go with the transaction.
        session.rollback()
        return mine(request, templates, session, settings, who, error=exc.text(request_locale(request)))
    audit(request, who, "disputes.dispute.file", object_type="dispute", object_id=str(dispute.id))
    return RedirectResponse("/disputes", status_code=303)


@router.get("/disputes/{dispute_id}/evidence/{attachment_id}")
def evidence_file(
    request: Request,
    session: SessionDep,
    store: FileStoreDep,
    who: SignedInPage,
    dispute_id: uuid.UUID,
    attachment_id: uuid.UUID,
) -> Response:
    """An evidence file, for its filer and the department the dispute is routed to."""
    dispute, found = disputes.evidence_file(session, who, dispute_id, attachment_id)
    audit(
        request,
        who,
        "disputes.evidence.read",
        object_type="dispute",
        object_id=str(dispute_id),
        tenant_code=dispute.tenant_code,
        details={"file": found.digest},
    )
    return file_response(store, found.digest, found.media_type, found.name)


@router.get("/data/disputes", response_class=HTMLResponse)
def routed(
    request: Request, templates: TemplatesDep, session: SessionDep, settings: SettingsDep, who: SignedInPage
) -> Response:
    """Disputes routed to the departments the visitor serves, overdue ones first."""
    if not who.has_action(disputes.READ):
        raise Problem("forbidden", detail=N_("This page is for departments that own data."))
    rows = [
        d
        for d in disputes.visible_disputes(session, who)
        if d.filer_id != who.user_id or who.has_action(disputes.DECIDE)
    ]
    rows.sort(key=lambda d: (not disputes.is_overdue(d), d.status not in disputes.OPEN, d.deadline))
    files = {d.id: disputes.attachments(session, d.id) for d in rows}
    readable = disputes.readable_values(session, registers.shared_reader(settings.lake_dir), who, rows)
    return templates.render(
        request,
        "disputes/routed.html",
        {
            "disputes": [masked_view(d, ("reason", "decision_reason"), d.id in readable) for d in rows],
            "readable": readable,
            "is_overdue": disputes.is_overdue,
            "open": disputes.OPEN,
            "files": files,
        },
    )


@router.post("/data/disputes/{dispute_id}")
async def decide(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    who: SignedInPage,
    dispute_id: uuid.UUID,
    dispute: DisputePage,
    action: Annotated[str, Form(pattern="^(verify|correct|reject)$")],
    reason: Annotated[str, Form(max_length=2000)] = "",
    corrected_value: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """A department's decision from the page."""
    context = lake.make_context(settings.lake_dir, lake.region_codes(index))
    disputes.decide(
        session,
        settings.lake_dir,
        dispute,
        who,
        action,
        reason=reason,
        corrected_value=corrected_value or None,
        context=context,
    )
    audit(request, who, f"disputes.dispute.{action}", object_type="dispute", object_id=str(dispute_id))
    return RedirectResponse("/data/disputes", status_code=303)

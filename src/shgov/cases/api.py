"""The cases API: prepare, submit, follow and handle cases; verify e-licences."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from shgov.cases import presence
from shgov.cases import service as cases
from shgov.cases.access import VisibleCase, VisibleLicence, VisibleTask
from shgov.cases.schemas import (
    CaseOut,
    RevokeIn,
    TaskAction,
    VerifyIn,
    case_out,
    read_application,
)
from shgov.core.deps import FileStoreDep, SessionDep, SettingsDep
from shgov.core.errors import ForbiddenError, Problem
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_
from shgov.core.identity.deps import CurrentPrincipal, audit
from shgov.core.identity.service import find_user
from shgov.core.ids import mask_personal
from shgov.registers import service as registers
from shgov.services import service as services

router = APIRouter(prefix="/api/v1", tags=["cases"], route_class=JsonRoute)


@router.get("/offerings/{kind}/{code}/prepare")
def prepare(
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    kind: str,
    code: str,
    applicant: Annotated[str | None, Query(max_length=18)] = None,
    identity_name: Annotated[str, Query(max_length=60, description="window staff: the applicant's name")] = "",
    identity_code: Annotated[str, Query(max_length=12, description="window staff: the applicant's window code")] = "",
    presence_ticket: Annotated[
        str, Query(alias="presence", max_length=120, description="window staff: the ticket of a passed check")
    ] = "",
) -> dict[str, Any]:
    """The form prefilled for the caller, or for the applicant at the window: staff give the applicant's ID
    number and their name as registered or the window code from their account (checked, limited to the
    staff's reach and audited); the answer's ``presence`` ticket spares the check for the rest of the form."""
    proof = presence.Proof(identity_name.strip(), identity_code.strip(), presence_ticket.strip())
    who = cases.applicant_for(session, principal, applicant, settings=settings, proof=proof)
    prep = cases.prepare(session, settings, services.offering(session, kind, code), who)
    return {
        "presence": presence.issue_ticket(settings, principal, who.key) if applicant else None,
        "sections": [
            {
                "code": s.code,
                "title": s.title,
                "show_if": s.show_if,
                "require_if": s.require_if,
                "fields": [vars(f) for f in s.fields],
            }
            for s in prep.sections
        ],
        "prefilled": prep.prefilled,
        "materials": [
            {
                "key": p.need.key,
                "name": p.need.name,
                "necessity": p.need.necessity,
                "licence_no": p.licence["licence_no"] if p.licence else None,
                "trust_level": p.licence.get("trust_level") if p.licence else None,
            }
            for p in prep.materials
        ],
        "precheck": {
            "passed": prep.precheck.passed,
            "conditions": [
                {"item": n, "message": f.message, "met": f.met, "seen": f.seen} for n, f in prep.precheck.findings
            ],
        },
    }


@router.post("/offerings/{kind}/{code}/applications", response_model=CaseOut, status_code=201)
async def apply(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    store: FileStoreDep,
    principal: CurrentPrincipal,
    kind: str,
    code: str,
) -> CaseOut:
    """Submit an application (multipart: form fields, ``material:<key>`` files, ``client_token``,
    ``channel``; window staff add ``applicant`` and ``identity_checked``)."""
    values, uploads = await read_application(request, settings.max_upload_bytes)
    case = cases.submit_application(session, settings, store, principal, kind, code, values, uploads)
    audit(
        request,
        principal,
        "cases.case.submit",
        object_type="case",
        object_id=str(case.id),
        details={"channel": case.channel},
    )
    return case_out(session, principal, case, settings)


@router.get("/window-code")
def my_window_code(session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """The six-digit code a citizen shows at a window to prove they are there (valid about five minutes)."""
    user = find_user(session, principal.user_id)
    if principal.kind != "citizen" or user is None or not user.id_number:
        raise ForbiddenError(N_("window codes are for citizens with a verified identity"), field="principal")
    code, expires = presence.window_code(settings, user.id)
    return {"code": code, "expires_at": expires.isoformat()}


@router.get("/cases", response_model=list[CaseOut])
def mine(session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal) -> list[CaseOut]:
    """The caller's own applications."""
    return [case_out(session, principal, c, settings) for c in cases.cases_of(session, principal)]


@router.get("/cases/{case_id}", response_model=CaseOut)
def read(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    case: VisibleCase,
    case_id: uuid.UUID,
) -> CaseOut:
    """One case (its applicant, submitter and departments only)."""
    if case.applicant_user_id != principal.user_id:
        audit(
            request,
            principal,
            "cases.case.read",
            object_type="case",
            object_id=str(case.id),
            tenant_code=case.tenant_code,
        )
    return case_out(session, principal, case, settings)


@router.post("/cases/{case_id}/correction", response_model=CaseOut)
async def correct(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    store: FileStoreDep,
    principal: CurrentPrincipal,
    case: VisibleCase,
    case_id: uuid.UUID,
) -> CaseOut:
    """The applicant answers a return for correction (changed fields and/or files)."""
    cases.require_applicant(session, principal, case)
    values, uploads = await read_application(request, settings.max_upload_bytes)
    cases.resubmit(session, settings, store, case, principal, values, uploads)
    return case_out(session, principal, case, settings)


@router.post("/cases/{case_id}/materials", response_model=CaseOut)
async def supply(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    store: FileStoreDep,
    principal: CurrentPrincipal,
    case: VisibleCase,
    case_id: uuid.UUID,
) -> CaseOut:
    """The applicant hands in materials owed (容缺)."""
    cases.require_applicant(session, principal, case)
    _values, uploads = await read_application(request, settings.max_upload_bytes)
    cases.supply(session, settings, store, case, principal, uploads)
    return case_out(session, principal, case, settings)


@router.get("/worklist")
def worklist(
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    status: Annotated[str, Query(pattern="^(open|ready|claimed|returned|done|rejected|cancelled)$")] = "open",
    item: Annotated[str, Query(max_length=40)] = "",
    flag: Annotated[str, Query(pattern="^(|overdue|due_soon)$")] = "",
) -> list[dict[str, Any]]:
    """The tasks of the caller's departments, most urgent first."""
    if not principal.has_action(cases.HANDLE):
        raise Problem("forbidden", detail=N_("The worklist is for department staff."))
    rows = cases.worklist(
        session, principal, status=status, item_code=item, flagged=flag, warn_days=settings.services.warn_working_days
    )
    return [
        {
            "id": str(t.id),
            "case_id": str(c.id),
            "case_number": c.number,
            "offering": c.offering_name,
            "task": t.name,
            "key": t.task_key,
            "department": t.department_code,
            "status": t.status,
            "claimed_by": t.claimed_name,
            "due_on": t.due_on.isoformat(),
            "flag": f,
            "applicant": str(mask_personal(c.applicant_name, "name")),
        }
        for t, c, f in rows
    ]


@router.post("/tasks/{task_id}", response_model=CaseOut)
def act(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    task: VisibleTask,
    task_id: uuid.UUID,
    body: TaskAction,
) -> CaseOut:
    """Claim, approve, return for correction or reject a task (403 for a task of another department)."""
    case = cases.act(session, settings, task, principal, body.action, body.note)
    audit(
        request,
        principal,
        f"cases.task.{body.action}",
        object_type="case",
        object_id=str(case.id),
        tenant_code=task.tenant_code,
        details={"task": task.task_key},
    )
    return case_out(session, principal, case, settings)


# -- e-licences: verification is public by design --------------------------------------------------


@router.post("/licences/verify")
def verify(request: Request, session: SessionDep, settings: SettingsDep, body: VerifyIn) -> dict[str, Any]:
    """Check a licence code: signature, expiry and revocation (public, audited)."""
    result = registers.verify_licence(session, settings, body.code)
    audit(
        request,
        None,
        "registers.licence.verify",
        outcome="ok" if result.valid else "refused",
        object_type="licence",
        object_id=str((result.header or {}).get("no", "")),
    )
    return {
        "valid": result.valid,
        "signature_valid": result.signature_valid,
        "revoked": result.revoked,
        "expired": result.expired,
        "reason": result.reason,
        "licence": result.header,
    }


@router.get("/licences/public-key")
def public_key(settings: SettingsDep) -> dict[str, str]:
    """The SM2 public key that verifies licence codes offline (public)."""
    key_id, public = registers.licence_public_key(settings)
    return {"key_id": key_id, "algorithm": "SM2 with SM3, user ID 1234567812345678", "public_key": public}


@router.get("/licences/revoked")
def revoked(session: SessionDep) -> list[dict[str, str]]:
    """Revoked licence numbers, for offline verifiers to cache (public)."""
    return [{"licence_no": no, "revoked_at": at.isoformat()} for no, at in registers.revoked_licences(session)]


@router.post("/licences/{licence_no}/revoke")
def revoke(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    licence: VisibleLicence,
    licence_no: str,
    body: RevokeIn,
) -> dict[str, Any]:
    """Revoke an issued licence (its issuing department)."""
    if not principal.allows(
        registers.LICENCE_REVOKE, licence.issuer_department.split(".")[0], licence.issuer_department
    ):
        raise ForbiddenError(N_("only the issuing department revokes a licence"), field="licence_no")
    registers.revoke_licence(session, licence.licence_no, body.reason)
    audit(request, principal, "registers.licence.revoke", object_type="licence", object_id=licence_no)
    return {"licence_no": licence_no, "revoked": True}


@router.get("/licences/{licence_no}.pdf")
def pdf(
    request: Request, settings: SettingsDep, principal: CurrentPrincipal, licence: VisibleLicence, licence_no: str
) -> Response:
    """The licence as PDF (its holder, or staff who may read licences)."""
    audit(request, principal, "registers.licence.read", object_type="licence", object_id=licence_no)
    return Response(
        registers.licence_pdf(licence, f"{settings.web.public_url}/licences/verify"),
        media_type="application/pdf",
        headers={"content-disposition": f'inline; filename="{licence_no}.pdf"'},
    )

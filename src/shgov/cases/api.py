"""The cases API: prepare, submit, follow and handle cases; verify e-licences."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.responses import Response

from shgov.cases import service as cases
from shgov.cases.models import Case
from shgov.core.deps import FileStoreDep, SessionDep, SettingsDep
from shgov.core.errors import ForbiddenError, InvalidError, NotFoundError, Problem
from shgov.core.files import FileStore, read_upload
from shgov.core.http import JsonRoute
from shgov.core.identity.deps import CurrentPrincipal, audit
from shgov.core.identity.permissions import Principal
from shgov.core.identity.service import get_user
from shgov.core.ids import mask_personal
from shgov.core.settings import Settings
from shgov.registers import service as registers
from shgov.services import service as services

router = APIRouter(prefix="/api/v1", tags=["cases"], route_class=JsonRoute)


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


def case_out(session: SessionDep, principal: Principal, case: Case, settings: Any) -> CaseOut:
    """A case with tasks, materials, history and licences; personal data masked for anyone but the applicant."""
    out = CaseOut.model_validate(case)
    if not cases.is_applicant(session, principal, case):
        out.form = {k: mask_personal(v, k) for k, v in case.form.items()}
        out.applicant_key = str(mask_personal(case.applicant_key, "id_number"))
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
            "note": t.note,
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
            "note": h.note,
        }
        for h in cases.history(session, case.id)
    ]
    out.licences = [
        {**row, "issued_on": str(row["issued_on"]), "expires_on": str(row["expires_on"]) if row["expires_on"] else None}
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
                        f"《{value.filename}》超过 {limit} MB 的上限，请压缩或分页后重新上传", field=name
                    ) from exc
                uploads[key] = cases.Upload(value.filename or "", data)
        elif name != "csrf_token":  # the browser's CSRF token is not part of the application
            values[name] = value
    return values, uploads


def submit_application(
    session: Session,
    settings: Settings,
    store: FileStore,
    principal: Principal,
    kind: str,
    code: str,
    values: dict[str, str],
    uploads: dict[str, cases.Upload],
) -> Case:
    """Submit a read application form: window staff name the ``applicant`` and confirm ``identity_checked``."""
    on_behalf = values.pop("applicant", None) or None
    channel = values.pop("channel", "window" if on_behalf else "online")
    if on_behalf and values.pop("identity_checked", "") not in ("1", "true", "on"):
        raise InvalidError("请先核验申请人的身份证件", field="identity_checked")
    token = values.pop("client_token", None) or None
    return cases.submit(
        session,
        settings,
        store,
        services.offering(session, kind, code),
        cases.applicant_for(session, principal, on_behalf),
        values,
        uploads,
        channel=channel,
        actor=principal,
        client_token=token,
    )


@router.get("/offerings/{kind}/{code}/prepare")
def prepare(
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    kind: str,
    code: str,
    applicant: Annotated[str | None, Query(max_length=18)] = None,
) -> dict[str, Any]:
    """The form prefilled for the caller (or the person at the window), the materials, the pre-check."""
    who = cases.applicant_for(session, principal, applicant)
    prep = cases.prepare(session, settings, services.offering(session, kind, code), who)
    return {
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
    case = submit_application(session, settings, store, principal, kind, code, values, uploads)
    audit(
        request,
        principal,
        "cases.case.submit",
        object_type="case",
        object_id=str(case.id),
        details={"channel": case.channel},
    )
    return case_out(session, principal, case, settings)


def _visible(session: SessionDep, principal: Principal, case_id: uuid.UUID) -> Case:
    case = cases.get_case(session, case_id)
    if not cases.may_see(session, principal, case):
        raise NotFoundError("no such case", field="case_id")
    return case


@router.get("/cases", response_model=list[CaseOut])
def mine(session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal) -> list[CaseOut]:
    """The caller's own applications."""
    return [case_out(session, principal, c, settings) for c in cases.cases_of(session, principal)]


@router.get("/cases/{case_id}", response_model=CaseOut)
def read(
    request: Request, session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal, case_id: uuid.UUID
) -> CaseOut:
    """One case (its applicant, submitter and departments only)."""
    case = _visible(session, principal, case_id)
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
    case_id: uuid.UUID,
) -> CaseOut:
    """The applicant answers a return for correction (changed fields and/or files)."""
    case = _visible(session, principal, case_id)
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
    case_id: uuid.UUID,
) -> CaseOut:
    """Hand in materials owed (容缺)."""
    case = _visible(session, principal, case_id)
    _values, uploads = await read_application(request, settings.max_upload_bytes)
    cases.supply(session, settings, store, case, principal, uploads)
    return case_out(session, principal, case, settings)


class TaskAction(BaseModel):
    """A department's step on a task."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["claim", "approve", "return", "reject"]
    note: str = Field(default="", max_length=2000)


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
        raise Problem("forbidden", detail="The worklist is for department staff.")
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
    task_id: uuid.UUID,
    body: TaskAction,
) -> CaseOut:
    """Claim, approve, return for correction or reject a task."""
    task = cases.get_task(session, task_id)
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


class VerifyIn(BaseModel):
    """A scanned licence code."""

    code: str = Field(min_length=10, max_length=4000)


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


class RevokeIn(BaseModel):
    """Why a licence is revoked."""

    reason: str = Field(min_length=2, max_length=500)


@router.post("/licences/{licence_no}/revoke")
def revoke(
    request: Request, session: SessionDep, principal: CurrentPrincipal, licence_no: str, body: RevokeIn
) -> dict[str, Any]:
    """Revoke an issued licence (its issuing department)."""
    licence = registers.issued_licence(session, licence_no)
    if licence is None:
        raise NotFoundError(f"no licence {licence_no}", field="licence_no")
    if not principal.allows(
        registers.LICENCE_REVOKE, licence.issuer_department.split(".")[0], licence.issuer_department
    ):
        raise ForbiddenError("only the issuing department revokes a licence", field="licence_no")
    registers.revoke_licence(session, licence_no, body.reason)
    audit(request, principal, "registers.licence.revoke", object_type="licence", object_id=licence_no)
    return {"licence_no": licence_no, "revoked": True}


@router.get("/licences/{licence_no}.pdf")
def pdf(
    request: Request, session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal, licence_no: str
) -> Response:
    """The licence as PDF (its holder, or staff who may read licences)."""
    licence = registers.issued_licence(session, licence_no)
    user = get_user(session, principal.user_id)
    own = licence is not None and user is not None and licence.holder_id in (user.id_number, user.credit_code)
    if licence is None or not (
        own
        or principal.allows(registers.LICENCE_READ, licence.issuer_department.split(".")[0], licence.issuer_department)
    ):
        raise NotFoundError(f"no licence {licence_no}", field="licence_no")
    audit(request, principal, "registers.licence.read", object_type="licence", object_id=licence_no)
    return Response(
        registers.licence_pdf(licence, f"{settings.web.public_url}/licences/verify"),
        media_type="application/pdf",
        headers={"content-disposition": f'inline; filename="{licence_no}.pdf"'},
    )

"""Pages of cases: the apply form (online, window, kiosk), my cases and inbox, the staff worklist, the
public licence verification page and the kiosk's start page."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from shgov.cases import presence
from shgov.cases import service as cases
from shgov.cases.access import CasePage, TaskPage
from shgov.cases.schemas import case_out, read_application
from shgov.core import notify
from shgov.core.deps import FileStoreDep, SessionDep, SettingsDep
from shgov.core.errors import DomainError, InvalidError, NotFoundError, Problem
from shgov.core.files import file_response
from shgov.core.i18n import N_, request_locale
from shgov.core.identity.deps import SignedInPage, audit, page_principal, safe_next
from shgov.core.identity.permissions import Principal
from shgov.core.ids import IdentifierError, mask_personal, validate_id_number
from shgov.core.qr import qr_svg
from shgov.core.settings import Settings
from shgov.registers import service as registers
from shgov.services import service as services
from shgov.web.pages import PageMessage, TemplatesDep, WebUser, web_user
from shgov.web.templating import MODE_COOKIE, NavItem, Templates, request_mode

router = APIRouter(include_in_schema=False, dependencies=[Depends(web_user)])

NAV = [
    (
        "citizens",
        NavItem("my-cases", N_("My applications"), "/my/cases", N_("Follow your cases, answer returns, get licences.")),
    ),
    ("citizens", NavItem("inbox", N_("My messages"), "/my/inbox", N_("Every step of your cases, as it happens."))),
    (
        "citizens",
        NavItem(
            "licence-verify",
            N_("Verify an e-licence"),
            "/licences/verify",
            N_("Scan or paste the code of an e-licence to check that it is genuine and valid."),
        ),
    ),
    ("citizens", NavItem("kiosk", N_("Self-service kiosk"), "/kiosk", N_("Large buttons for touch screens."))),
    (
        "staff",
        NavItem(
            "worklist",
            N_("Worklist"),
            "/staff/worklist",
            N_("Your department's tasks: claim, approve, return, reject."),
        ),
    ),
    (
        "staff",
        NavItem(
            "window", N_("Apply at the window"), "/staff/window", N_("Check the applicant's ID and fill the same form.")
        ),
    ),
]

TASK_LABELS = {
    "ready": N_("waiting"),
    "claimed": N_("being handled"),
    "done": N_("done"),
    "returned": N_("returned for correction"),
    "rejected": N_("rejected"),
    "cancelled": N_("cancelled"),
}
FLAG_LABELS = {"overdue": N_("overdue"), "due_soon": N_("due soon")}
ACTION_LABELS = {
    "submit": N_("submitted"),
    "accept": N_("accepted"),
    "claim": N_("claimed"),
    "approve": N_("approved"),
    "return": N_("returned for correction"),
    "resubmit": N_("correction handed in"),
    "supply": N_("material handed in"),
    "reject": N_("rejected"),
    "conclude": N_("licences issued, concluded"),
}
LABELS = {
    "status_labels": cases.STATUS_LABELS,
    "task_labels": TASK_LABELS,
    "flag_labels": FLAG_LABELS,
    "action_labels": ACTION_LABELS,
}


STAFF_ONLY = N_("This page is for department staff.")
WindowStaff = Annotated[Principal, Depends(page_principal(cases.APPLY_FOR, STAFF_ONLY))]
Handler = Annotated[Principal, Depends(page_principal(cases.HANDLE, STAFF_ONLY))]


# -- the apply form ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Material:
    """A material row of the form: the plan, and a stable DOM id for its file input."""

    plan: cases.MaterialPlan
    dom_id: str
    accept: str


def _materials(plans: list[cases.MaterialPlan]) -> list[Material]:
    media = {"pdf": ".pdf,application/pdf", "jpg": ".jpg,.jpeg,image/jpeg", "png": ".png,image/png"}
    return [
        Material(
            p,
            "mat-" + hashlib.sha256(p.need.key.encode()).hexdigest()[:12],
            ",".join(media[k] for k in p.need.kinds if k in media),
        )
        for p in plans
    ]


def _channel(request: Request, applicant: str | None) -> str:
    if applicant:
        return "window"
    return "kiosk" if request_mode(request) == "kiosk" else "online"


def _form_context(
    request: Request,
    session: Session,
    settings: Settings,
    principal: Principal,
    kind: str,
    code: str,
    posted: dict[str, str] | None,
    *,
    applicant: str | None = None,
    proof: presence.Proof | None = None,
) -> dict[str, Any]:
    """Everything the form shows: sections with their values, prefill marks, materials, pre-check."""
    offer = services.offering(session, kind, code)
    if proof is None and posted is not None:
        proof = presence.Proof.from_values(posted)
    who = cases.applicant_for(session, principal, applicant, settings=settings, proof=proof)
    ctx = cases.context(session, settings)
    prep = cases.prepare(session, settings, offer, who, ctx=ctx)
    raw = {k: "" if v is None else str(v) for k, v in prep.prefilled.items()}
    if posted is not None:
        raw.update(
            {k: v for k, v in posted.items() if not k.startswith("material:") and k not in presence.PROOF_FIELDS}
        )
    result = services.evaluate_form(prep.sections, raw)
    if posted is not None:
        prep = cases.prepare(session, settings, offer, who, result.values, ctx)
    return {
        "offer": offer,
        "sections": prep.sections,
        "visible": set(result.visible),
        "forced": set(result.forced),
        "values": raw,
        "prefilled": {k: str(v) for k, v in prep.prefilled.items()},
        "controls": services.controlling_fields(offer, prep.sections),
        "materials": _materials(prep.materials),
        "precheck": prep.precheck,
        "form_errors": result.messages(request_locale(request)) if posted is not None else {},
        "applicant": applicant or "",
        # the passed check, carried by the form so the applicant is not asked again for it
        "presence": presence.issue_ticket(settings, principal, who.key) if applicant else "",
        "channel": _channel(request, applicant),
        "max_mb": round(settings.max_upload_bytes / 1024 / 1024, 1),
    }


def _apply_page(
    request: Request,
    templates: Templates,
    session: Session,
    settings: Settings,
    principal: Principal,
    kind: str,
    code: str,
    posted: dict[str, str] | None = None,
    *,
    applicant: str | None = None,
    proof: presence.Proof | None = None,
    error: DomainError | None = None,
) -> Response:
    context = _form_context(request, session, settings, principal, kind, code, posted, applicant=applicant, proof=proof)
    field_errors = dict(context["form_errors"])
    text = error.text(request_locale(request)) if error is not None else None
    if error is not None and error.field:
        field_errors.setdefault(error.field.removeprefix("form."), text)
    context.update(
        error=text,
        field_errors=field_errors,
        client_token=(posted or {}).get("client_token") or secrets.token_urlsafe(16),
    )
    return templates.render(request, "cases/apply.html", context, status_code=422 if error else 200)


@router.get("/apply/{kind}/{code}", response_class=HTMLResponse)
def apply_form(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    who: SignedInPage,
    kind: str,
    code: str,
) -> Response:
    """The one form of a bundle or item, prefilled for the signed-in applicant."""
    try:
        return _apply_page(request, templates, session, settings, who, kind, code)
    except DomainError as exc:
        if exc.field == "applicant":  # e.g. a staff account: the window page applies on someone's behalf
            return (
                RedirectResponse("/staff/window", status_code=303)
                if who.has_action(cases.APPLY_FOR)
                else _refusal(request, templates, exc)
            )
        raise


def _refusal(request: Request, templates: Templates, exc: DomainError) -> Response:
    return templates.render(
        request, "cases/refused.html", {"message": exc.text(request_locale(request))}, status_code=403
    )


@router.post("/apply/{kind}/{code}/refresh", response_class=HTMLResponse)
async def refresh_form(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    who: SignedInPage,
    kind: str,
    code: str,
) -> Response:
    """HTMX: the parts of the form that depend on answers (conditional sections, materials, pre-check)."""
    form = await request.form()
    posted = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    applicant = posted.get("applicant") or None
    context = _form_context(request, session, settings, who, kind, code, posted, applicant=applicant)
    context.update(field_errors={}, form_errors={})
    return templates.render(request, "cases/refresh.html", context)


@router.post("/apply/{kind}/{code}", response_class=HTMLResponse)
async def apply(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    store: FileStoreDep,
    who: SignedInPage,
    kind: str,
    code: str,
) -> Response:
    """Submit: every check runs first; a refused application writes nothing and shows why."""
    form = await request.form()
    posted = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    try:
        values, uploads = await read_application(request, settings.max_upload_bytes)
        case = cases.submit_application(session, settings, store, who, kind, code, values, uploads)
    except DomainError as exc:
        session.rollback()
        return _apply_page(
            request, templates, session, settings, who, kind, code, posted, applicant=posted.get("applicant"), error=exc
        )
    audit(
        request, who, "cases.case.submit", object_type="case", object_id=str(case.id), details={"channel": case.channel}
    )
    return RedirectResponse(f"/cases/{case.id}?submitted=1", status_code=303)


# -- the window: staff apply on behalf of someone whose ID they checked ----------------------------


def _offerings(session: Session) -> list[tuple[str, str]]:
    bundles = [(f"bundle/{b.code}", b.name) for b in services.list_bundles(session) if b.status == "active"]
    items = [
        (f"item/{i.code}", f"{i.name}（{services.department_name(i.department_key)}）")
        for i in services.list_items(session)
        if i.status == "active" and i.target == "person" and i.channels.get("window")
    ]
    return bundles + items


@router.get("/staff/window", response_class=HTMLResponse)
def window(
    request: Request, templates: TemplatesDep, session: SessionDep, who: WindowStaff, error: PageMessage = None
) -> Response:
    """Start an application at the window: the offering, the applicant's ID number, the identity check."""
    context = {"offerings": _offerings(session), "error": error}
    return templates.render(request, "cases/window.html", context, status_code=422 if error else 200)


@router.post("/staff/window", response_class=HTMLResponse)
def window_start(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    who: WindowStaff,
    offering: Annotated[str, Form(max_length=60)],
    applicant: Annotated[str, Form(max_length=18)],
    identity_checked: Annotated[str, Form(max_length=5)] = "",
    identity_name: Annotated[str, Form(max_length=60)] = "",
    identity_code: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """The applicant's form, prefilled from the registers, once their ID has been checked against the person
    at the window: their name as registered, or the window code their own account shows (``cases.presence``)."""
    kind, _, code = offering.partition("/")
    locale = request_locale(request)
    try:
        validate_id_number(applicant)
    except IdentifierError as exc:
        wrong = InvalidError(N_("The ID number is not valid: {reason}"), field="applicant", reason=exc)
        return window(request, templates, session, who, error=wrong.text(locale))
    if identity_checked not in ("1", "on", "true"):
        unchecked = InvalidError(
            N_("Please check the applicant's identity card first, and tick the box that says so"),
            field="identity_checked",
        )
        return window(request, templates, session, who, error=unchecked.text(locale))
    proof = presence.Proof(identity_name.strip(), identity_code.strip())
    try:
        page = _apply_page(request, templates, session, settings, who, kind, code, applicant=applicant, proof=proof)
    except DomainError as exc:
        if exc.field not in ("applicant", *presence.PROOF_FIELDS):
            raise
        return window(request, templates, session, who, error=exc.text(locale))
    audit(request, who, "cases.window.start", object_type="offering", object_id=offering)
    return page


# -- my cases, a case, the inbox ---------------------------------------------------------------------


@router.get("/my/cases", response_class=HTMLResponse)
def my_cases(request: Request, templates: TemplatesDep, session: SessionDep, who: SignedInPage) -> Response:
    """The visitor's applications, newest first."""
    return templates.render(request, "cases/mine.html", {"cases": cases.cases_of(session, who), **LABELS})


def _signed_in(principal: Principal | None) -> Principal:
    """The visitor of a page whose object dependency ran: it sent anyone without a session to sign in."""
    assert principal is not None  # noqa: S101 - the access dependency answered otherwise
    return principal


def _case_page(
    request: Request,
    templates: Templates,
    session: Session,
    settings: Settings,
    who: Principal,
    case: cases.Case,
    *,
    error: str | None = None,
) -> Response:
    """A case the caller may see (checked by ``CasePage``/``TaskPage`` before)."""
    view = case_out(session, who, case, settings)
    own = cases.is_applicant(session, who, case)
    codes = {}
    if own:
        for row in view.licences:
            licence = registers.issued_licence(session, row["licence_no"])
            if licence is not None:
                code = registers.licence_code(licence)
                codes[row["licence_no"]] = (code, qr_svg(code))
    handling = {
        t["id"]
        for t in view.tasks
        if t["status"] in cases.OPEN_TASK and who.allows(cases.HANDLE, t["department"].split(".")[0], t["department"])
    }
    context: dict[str, Any] = {
        "case": view,
        "own": own,
        "codes": codes,
        "handling": handling,
        "error": error,
        "max_mb": round(settings.max_upload_bytes / 1024 / 1024, 1),
        **LABELS,
    }
    if own and case.status == "correction":
        offer = cases.offering_of(session, case)
        sections = services.form_for(session, offer)
        result = services.evaluate_form(sections, {k: "" if v is None else str(v) for k, v in case.form.items()})
        context.update(
            sections=[s for s in sections if s.code in result.visible and s.code != "applicant"],
            values={k: "" if v is None else str(v) for k, v in case.form.items()},
            returns=[t for t in view.tasks if t["status"] == "returned"],
            needs=_materials(
                [cases.MaterialPlan(n, None) for n in services.materials_for([offer.item(c) for c in case.items])]
            ),
        )
    if not own:
        audit(request, who, "cases.case.read", object_type="case", object_id=str(case.id), tenant_code=case.tenant_code)
    return templates.render(request, "cases/case.html", context, status_code=422 if error else 200)


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_page(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    principal: WebUser,
    case: CasePage,
    case_id: uuid.UUID,
) -> Response:
    """A case: progress, history, materials, licences (with QR); a correction form when one is asked for."""
    return _case_page(request, templates, session, settings, _signed_in(principal), case)


@router.post("/cases/{case_id}/correction", response_class=HTMLResponse)
async def correction(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    store: FileStoreDep,
    principal: WebUser,
    case: CasePage,
    case_id: uuid.UUID,
) -> Response:
    """The applicant hands in a correction (补正)."""
    return await _applicant_step(
        request, templates, session, settings, store, _signed_in(principal), case, "correction"
    )


@router.post("/cases/{case_id}/materials", response_class=HTMLResponse)
async def supply(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    store: FileStoreDep,
    principal: WebUser,
    case: CasePage,
    case_id: uuid.UUID,
) -> Response:
    """The applicant hands in a material owed (容缺)."""
    return await _applicant_step(request, templates, session, settings, store, _signed_in(principal), case, "supply")


async def _applicant_step(
    request: Request,
    templates: Templates,
    session: Session,
    settings: Settings,
    store: FileStoreDep,
    who: Principal,
    case: cases.Case,
    step: str,
) -> Response:
    cases.require_applicant(session, who, case)  # those who only see the case are refused (403)
    case_id = case.id
    try:
        values, uploads = await read_application(request, settings.max_upload_bytes)
        if step == "correction":
            cases.resubmit(session, settings, store, case, who, values, uploads)
        else:
            cases.supply(session, settings, store, case, who, uploads)
    except DomainError as exc:
        session.rollback()
        return _case_page(request, templates, session, settings, who, case, error=exc.text(request_locale(request)))
    return RedirectResponse(f"/cases/{case_id}", status_code=303)


@router.get("/cases/{case_id}/materials/{key:path}")
def material_file(
    request: Request,
    session: SessionDep,
    store: FileStoreDep,
    principal: WebUser,
    case: CasePage,
    case_id: uuid.UUID,
    key: str,
) -> Response:
    """An uploaded material, for the applicant and the departments handling the case."""
    who = _signed_in(principal)
    found = next((m for m in cases.materials(session, case.id) if m.key == key and m.digest), None)
    if found is None or found.digest is None:
        raise NotFoundError(N_("no such material file"), field="key")
    audit(
        request,
        who,
        "cases.material.read",
        object_type="case",
        object_id=str(case.id),
        tenant_code=case.tenant_code,
        details={"material": found.name},
    )
    return file_response(store, found.digest, found.media_type or "application/octet-stream", found.file_name or key)


@router.get("/my/inbox", response_class=HTMLResponse)
def inbox(request: Request, templates: TemplatesDep, session: SessionDep, who: SignedInPage) -> Response:
    """The visitor's notices, newest first."""
    return templates.render(request, "cases/inbox.html", {"notices": notify.inbox(session, who.user_id)})


@router.post("/my/inbox/read")
def inbox_read(request: Request, session: SessionDep, who: SignedInPage) -> Response:
    """Mark every notice as read."""
    notify.mark_read(session, who.user_id)
    return RedirectResponse("/my/inbox", status_code=303)


# -- the staff worklist -----------------------------------------------------------------------------


@router.get("/staff/worklist", response_class=HTMLResponse)
def worklist(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    who: Handler,
    status: Annotated[str, Query(pattern="^(open|ready|claimed|returned|done|rejected|cancelled)$")] = "open",
    item: Annotated[str, Query(max_length=40)] = "",
    flag: Annotated[str, Query(pattern="^(|overdue|due_soon)$")] = "",
    error: PageMessage = None,
) -> Response:
    """The department's tasks, most urgent first, with the steps staff take on them."""
    rows = cases.worklist(
        session, who, status=status, item_code=item, flagged=flag, warn_days=settings.services.warn_working_days
    )
    return templates.render(
        request,
        "cases/worklist.html",
        {
            "rows": rows,
            "status": status,
            "item": item,
            "flag": flag,
            "error": error,
            "statuses": ("open", *TASK_LABELS),
            "items": sorted({t.item_code for t, _c, _f in rows if t.item_code}),
            "me": who.user_id,
            "masked": {c.id: mask_personal(c.applicant_name, "name") for _t, c, _f in rows},
            **LABELS,
        },
        status_code=422 if error else 200,
    )


@router.post("/staff/tasks/{task_id}")
def task_step(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    principal: WebUser,
    task: TaskPage,
    task_id: uuid.UUID,
    action: Annotated[str, Form(pattern="^(claim|approve|return|reject)$")],
    note: Annotated[str, Form(max_length=2000)] = "",
    next_path: Annotated[str, Form(alias="next", max_length=300)] = "/staff/worklist",
) -> Response:
    """Claim, approve, return for correction or reject a task from the worklist or the case page."""
    who = _signed_in(principal)
    if not who.has_action(cases.HANDLE):
        raise Problem("forbidden", detail=STAFF_ONLY)
    try:
        case = cases.act(session, settings, task, who, action, note)
    except DomainError as exc:
        session.rollback()
        locale = request_locale(request)
        if next_path.startswith("/cases/"):
            shown = cases.find_case(session, task.case_id)
            assert shown is not None  # noqa: S101 - a task's case exists (foreign key); TaskPage checked it
            return _case_page(request, templates, session, settings, who, shown, error=exc.text(locale))
        return worklist(request, templates, session, settings, who, error=exc.text(locale))
    audit(
        request,
        who,
        f"cases.task.{action}",
        object_type="case",
        object_id=str(case.id),
        tenant_code=task.tenant_code,
        details={"task": task.task_key},
    )
    return RedirectResponse(safe_next(next_path), status_code=303)


# -- public: licence verification and the kiosk ------------------------------------------------------


def _verify_page(request: Request, templates: Templates, session: Session, settings: Settings, code: str) -> Response:
    result = registers.verify_licence(session, settings, code.strip()) if code.strip() else None
    if result is not None:
        audit(
            request,
            None,
            "registers.licence.verify",
            outcome="ok" if result.valid else "refused",
            object_type="licence",
            object_id=str((result.header or {}).get("no", "")),
        )
    key_id, public_key = registers.licence_public_key(settings)
    return templates.render(
        request,
        "cases/verify.html",
        {"code": code, "result": result, "key_id": key_id, "public_key": public_key},
    )


@router.get("/licences/verify", response_class=HTMLResponse)
def verify_form(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    code: Annotated[str, Query(max_length=4000)] = "",
) -> Response:
    """Check an e-licence by its code: paste it, or scan its QR with the camera or from a picture (public)."""
    return _verify_page(request, templates, session, settings, code)


@router.post("/licences/verify", response_class=HTMLResponse)
def verify(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    code: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """The verdict on a pasted or scanned code (public)."""
    return _verify_page(request, templates, session, settings, code)


@router.get("/kiosk", response_class=HTMLResponse)
def kiosk(request: Request, templates: TemplatesDep, session: SessionDep, principal: WebUser) -> Response:
    """A self-service kiosk's start page: large buttons; the visitor is signed out after a spell idle."""
    bundles = [b for b in services.list_bundles(session) if b.status == "active"]
    items = [i for i in services.list_items(session) if i.status == "active" and i.channels.get("kiosk")][:12]
    if request_mode(request) != "kiosk":
        # Opening the kiosk page switches the terminal into kiosk mode for every later page.
        response = RedirectResponse("/kiosk", status_code=303)
        response.set_cookie(MODE_COOKIE, "kiosk", max_age=365 * 24 * 3600, samesite="lax")
        return response
    return templates.render(request, "cases/kiosk.html", {"bundles": bundles, "items": items})

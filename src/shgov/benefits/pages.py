"""Pages of 免申即享: the 市民主页 / 企业专属网页 (benefits with their reasons, what else one may get and why
not, licences and applications in one place) and the policy workbench (write, check, test against a
person or enterprise, dry-run, activate, run)."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from shgov.benefits import service as benefits
from shgov.cases import service as cases
from shgov.core.bounded import whole_number
from shgov.core.calendar.service import city_today
from shgov.core.deps import SessionDep, SettingsDep
from shgov.core.errors import DomainError, NotFoundError
from shgov.core.i18n import N_, request_locale
from shgov.core.identity.deps import SignedInPage, audit, page_principal
from shgov.core.identity.permissions import Principal
from shgov.core.ids import mask_personal
from shgov.core.numbers import INT64_MAX
from shgov.core.settings import Settings
from shgov.registers import service as registers
from shgov.web.pages import TemplatesDep, web_user
from shgov.web.templating import NavItem, Templates

router = APIRouter(include_in_schema=False, dependencies=[Depends(web_user)])

NAV = [
    (
        "citizens",
        NavItem(
            "my-benefits",
            N_("My benefits"),
            "/my/benefits",
            N_("What you receive without applying, what else you may get, and why."),
        ),
    ),
    (
        "staff",
        NavItem(
            "benefit-policies",
            N_("Benefit policies"),
            "/ops/benefits",
            N_("Write policies as rules, test them on a person, dry-run, activate and run."),
        ),
    ),
]
STATUS_LABELS = {
    "granted": N_("benefit given"),
    "invited": N_("invited to apply"),
    "declined": N_("declined"),
    "appealed": N_("appealed"),
    "reversed": N_("reversed"),
}
OUTCOME_LABELS = {"pass": N_("met"), "fail": N_("not met"), "missing": N_("missing data")}
LABELS = {
    "status_labels": STATUS_LABELS,
    "outcome_labels": OUTCOME_LABELS,
    "mode_labels": benefits.MODES,
    "period_labels": benefits.PERIODS,
}
MANAGERS_ONLY = "Benefit policies are written by their departments' policy managers."


# -- 市民主页 / 企业专属网页 -----------------------------------------------------------------------------------


def _home(
    request: Request,
    templates: Templates,
    session: Session,
    settings: Settings,
    who: Principal,
    error: str | None = None,
) -> Response:
    holder = benefits.holder_key(session, who)
    context: dict[str, Any] = {"holder": holder, "error": error, **LABELS}
    if holder is not None:
        target, key = holder
        grants = benefits.grants_for(session, target, key)
        names = {p.code: p.name for p in benefits.list_policies(session)}
        given = {g.policy_code for g in grants}
        try:
            traces = benefits.explain_all(session, settings.lake_dir, target, key, city_today())
        except NotFoundError:
            traces = []  # the registers are not built yet
        try:
            licences = registers.licences_of(session, registers.shared_reader(settings.lake_dir), key)
        except NotFoundError:
            licences = []
        context.update(
            grants=grants,
            names=names,
            others=sorted(
                (t for t in traces if t.code not in given), key=lambda t: (not t.eligible, not t.missing, t.code)
            ),
            licences=licences,
            cases=cases.cases_of(session, who)[:20],
        )
    return templates.render(request, "benefits/home.html", context)


@router.get("/my/benefits", response_class=HTMLResponse)
def my_benefits(
    request: Request, templates: TemplatesDep, session: SessionDep, settings: SettingsDep, who: SignedInPage
) -> Response:
    """The holder's benefits with the reasons, the other policies with why (not), licences and cases."""
    return _home(request, templates, session, settings, who)


@router.post("/my/benefits/{grant_id}", response_class=HTMLResponse)
def my_benefit_step(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    who: SignedInPage,
    grant_id: uuid.UUID,
    action: Annotated[str, Form(pattern="^(decline|appeal)$")],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Decline a benefit or appeal it."""
    try:
        if action == "decline":
            benefits.decline(session, who, grant_id, reason)
        else:
            benefits.appeal(session, who, grant_id, reason)
    except DomainError as exc:
        session.rollback()
        return _home(request, templates, session, settings, who, exc.text(request_locale(request)))
    audit(request, who, f"benefits.grant.{action}", object_type="benefit_grant", object_id=str(grant_id))
    return RedirectResponse("/my/benefits", status_code=303)


@router.get("/my/benefits/{grant_id}")
def my_benefit(grant_id: uuid.UUID) -> Response:
    """Notices link to a grant: it is shown on the holder's page."""
    return RedirectResponse(f"/my/benefits#grant-{grant_id}", status_code=303)


# -- the policy workbench -----------------------------------------------------------------------------------


# A policy manager (a visitor without a session is sent to sign in).
Manager = Annotated[Principal, Depends(page_principal(benefits.MANAGE, MANAGERS_ONLY))]


@router.get("/ops/benefits", response_class=HTMLResponse)
def policies_page(request: Request, templates: TemplatesDep, session: SessionDep, who: Manager) -> Response:
    """Every policy with its active and latest version."""
    policies = [benefits.get_version(session, p.code) for p in benefits.list_policies(session)]
    return templates.render(request, "benefits/policies.html", {"policies": policies, **LABELS})


def _form_of(found: benefits.Found | None) -> dict[str, Any]:
    if found is None:
        return {"target": "person", "mode": "auto", "period": "year", "conditions": "", "amount": "0"}
    v = found.version
    return {
        "code": found.policy.code,
        "name": v.name,
        "target": found.policy.target,
        "department_code": found.policy.department_code,
        "legal_basis": v.legal_basis,
        "mode": v.mode,
        "period": v.period,
        "effective_from": v.effective_from.isoformat(),
        "effective_to": v.effective_to.isoformat() if v.effective_to else "",
        "conditions": "\n".join(v.conditions),
        "amount": v.amount,
        "budget_yuan": f"{v.budget_fen / 100:.2f}" if v.budget_fen is not None else "",
    }


def _workbench(
    request: Request,
    templates: Templates,
    session: Session,
    settings: Settings,
    who: Principal,
    code: str | None,
    form: dict[str, Any] | None = None,
    error: DomainError | None = None,
    result: dict[str, Any] | None = None,
) -> Response:
    found = benefits.get_version(session, code) if code else None
    context: dict[str, Any] = {
        "found": found,
        "form": form or _form_of(found),
        "error": error,
        "versions": benefits.versions_of(session, code) if code else [],
        "appeals": [
            (g, mask_personal(g.entity_key, "id_number"), why) for g, why in benefits.appealed_grants(session, code)
        ]
        if code and who.allows(benefits.REVERSE, None, found.policy.department_code if found else None)
        else [],
        "schema": benefits.register_schema(session),
        "today": city_today().isoformat(),
        **(result or {}),
        **LABELS,
    }
    return templates.render(request, "benefits/workbench.html", context)


@router.get("/ops/benefits/new", response_class=HTMLResponse)
def new_policy(
    request: Request, templates: TemplatesDep, session: SessionDep, settings: SettingsDep, who: Manager
) -> Response:
    """An empty policy to write."""
    return _workbench(request, templates, session, settings, who, None)


@router.get("/ops/benefits/{code}", response_class=HTMLResponse)
def policy_page(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    who: Manager,
    code: str,
    test_key: Annotated[str, Query(max_length=40)] = "",
    dry: Annotated[str, Query(max_length=1)] = "",
    as_of: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    """A policy's latest text to edit, its versions, and the results of a test or a dry run."""
    result: dict[str, Any] = {}
    try:
        day = _date_field(as_of, "as_of") or city_today()
        latest = benefits.latest_version(session, code)
        number = latest.version.version if latest else None
        if test_key.strip():
            result["trace"] = benefits.explain(session, settings.lake_dir, code, test_key, day, number)
            audit(
                request,
                who,
                "benefits.policy.explain",
                object_type="benefit_policy",
                object_id=code,
                details={"entity_key": test_key.strip()},
            )
        if dry:
            result["dry"] = benefits.dry_run(session, settings.lake_dir, code, day, number)
    except DomainError as exc:
        return _workbench(request, templates, session, settings, who, code, error=exc)
    result["test_key"], result["as_of"] = test_key, as_of
    return _workbench(request, templates, session, settings, who, code, result=result)


def _date_field(value: str, field: str) -> date | None:
    """A date typed into a form (YYYY-MM-DD), None when empty."""
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise DomainError(N_("Please write the date as YYYY-MM-DD"), field=field) from exc


def _grant_id(form: dict[str, str]) -> uuid.UUID:
    try:
        return uuid.UUID(form.get("grant_id", ""))
    except ValueError as exc:
        raise NotFoundError(N_("no such grant"), field="grant_id") from exc


def _fen(yuan: str, field: str) -> int:
    """An amount in yuan typed into a form, in fen: exact (no float), at most two decimals, within 64 bits."""
    try:
        fen = Decimal(yuan) * 100
        if not fen.is_finite() or fen != fen.to_integral_value() or not 0 <= fen <= INT64_MAX:
            raise ArithmeticError(yuan)
    except ArithmeticError as exc:  # decimal's InvalidOperation and Overflow are ArithmeticErrors
        raise DomainError(N_("The budget is an amount in yuan, with at most two decimals"), field=field) from exc
    return int(fen)


def _spec(form: dict[str, str]) -> benefits.PolicySpec:
    def day(name: str) -> date | None:
        return _date_field(form.get(name, ""), name)

    budget = form.get("budget_yuan", "").strip()
    budget_fen = _fen(budget, "budget_yuan") if budget else None
    start = day("effective_from")
    if start is None:
        raise DomainError(N_("Please enter the date the policy takes effect"), field="effective_from")
    return benefits.PolicySpec(
        code=form.get("code", "").strip(),
        name=form.get("name", "").strip(),
        target=form.get("target", ""),
        department_code=form.get("department_code", "").strip(),
        legal_basis=form.get("legal_basis", ""),
        mode=form.get("mode", ""),
        period=form.get("period", ""),
        effective_from=start,
        effective_to=day("effective_to"),
        conditions=[line.strip() for line in form.get("conditions", "").splitlines() if line.strip()],
        amount=form.get("amount", "").strip() or "0",
        budget_fen=budget_fen,
    )


@router.post("/ops/benefits", response_class=HTMLResponse)
async def policy_change(
    request: Request, templates: TemplatesDep, session: SessionDep, settings: SettingsDep, who: Manager
) -> Response:
    """Save a new version (``op=save``), activate a version, retire the policy, or run it now."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    op, code = form.get("op", "save"), form.get("code", "").strip()
    known = benefits.latest_version(session, code) is not None
    queued: uuid.UUID | None = None
    try:
        if op == "save":
            spec = _spec(form)
            if not who.allows(benefits.MANAGE, None, spec.department_code):
                raise DomainError(N_("You may only write policies of your own department"), field="department_code")
            benefits.save_policy(session, benefits.register_schema(session), spec, who.username)
            message = "saved"
        else:
            found = benefits.get_version(session, code)
            if not who.allows(benefits.MANAGE, None, found.policy.department_code):
                raise DomainError(N_("This policy belongs to another department"), field="code")
            if op == "activate":
                benefits.activate(session, code, whole_number(form.get("version"), "version") or 0)
            elif op == "retire":
                benefits.retire(session, code)
            elif op == "run":  # queued: written outside this request, which would hold the writer for it all
                queued = benefits.request_run(session, code, city_today(), who.username).id
            elif op in ("reverse", "uphold"):
                decide = benefits.reverse if op == "reverse" else benefits.uphold
                decide(session, who, _grant_id(form), form.get("reason", ""))
            else:
                raise NotFoundError(N_("no operation {op!r}"), field="op", op=op)
            message = op
    except DomainError as exc:
        session.rollback()
        return _workbench(request, templates, session, settings, who, code if known else None, form, exc)
    details = {"run_id": str(queued), "queued": True} if queued else None
    audit(request, who, f"benefits.policy.{op}", object_type="benefit_policy", object_id=code, details=details)
    if queued:
        return RedirectResponse(f"/ops/benefits/{code}/runs/{queued}", status_code=303)
    return RedirectResponse(f"/ops/benefits/{code}?done={message}", status_code=303)


RUN_STATUS_LABELS = {
    "queued": N_("queued"),
    "running": N_("running"),
    "done": N_("finished"),
    "failed": N_("failed"),
    "stopped": N_("stopped before finishing"),
}


@router.get("/ops/benefits/{code}/runs/{run_id}", response_class=HTMLResponse)
def run_page(
    request: Request, templates: TemplatesDep, session: SessionDep, who: Manager, code: str, run_id: uuid.UUID
) -> Response:
    """A run's status and progress (the page refreshes itself until the run has finished)."""
    found = benefits.get_version(session, code)
    record = benefits.get_run(session, run_id)
    if record.policy_code != code or not who.allows(benefits.MANAGE, None, found.policy.department_code):
        raise NotFoundError(N_("no such run"), field="run_id")
    context = {"found": found, "run": record, "run_status_labels": RUN_STATUS_LABELS}
    return templates.render(request, "benefits/run.html", context)

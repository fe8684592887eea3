"""Pages of work orders: 随申拍 and my reports for citizens; the 12345 operator's form, the inspector's
patrol report, the units' and the centre's order pages, the routing-rule editor and the live dashboard."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from shgov.core.bounded import whole_number
from shgov.core.deps import DatabaseDep, FileStoreDep, SessionDep, SettingsDep
from shgov.core.errors import DomainError, InvalidError, NotFoundError, Problem
from shgov.core.files import file_response
from shgov.core.i18n import N_, request_locale
from shgov.core.identity.deps import CurrentPrincipal, SignedInPage, audit, page_principal
from shgov.core.identity.permissions import Principal
from shgov.core.ids import masked_view, may_read_personal, reveal
from shgov.core.regions.api import IndexDep
from shgov.core.regions.service import RegionIndex
from shgov.core.settings import Settings
from shgov.web.pages import PageMessage, TemplatesDep, live_events, web_user
from shgov.web.templating import NavItem, Templates
from shgov.workorders import overview
from shgov.workorders import service as workorders
from shgov.workorders.access import OrderPage, may_see_order
from shgov.workorders.models import WorkOrder
from shgov.workorders.schemas import read_photos

router = APIRouter(include_in_schema=False, dependencies=[Depends(web_user)])

NAV = [
    ("citizens", NavItem("report", N_("Report a city problem"), "/report", N_("Photograph it, say where, follow it."))),
    ("citizens", NavItem("my-reports", N_("My reports"), "/my/reports", N_("See the answers and rate them."))),
    (
        "operations",
        NavItem(
            "ops-dashboard",
            N_("Operations dashboard"),
            "/ops/dashboard",
            N_("Orders on the map, overdue lists, hot spots, on-time and satisfaction rates, live."),
        ),
    ),
    (
        "operations",
        NavItem("ops-orders", N_("Work orders"), "/ops/orders", N_("Triage, sign, handle, reply, close, follow up.")),
    ),
    (
        "operations",
        NavItem(
            "hotline", N_("12345 hotline form"), "/ops/hotline", N_("Take a call with category and duplicate hints.")
        ),
    ),
    ("operations", NavItem("patrol", N_("Patrol report"), "/ops/patrol", N_("Inspectors report what they find."))),
    (
        "operations",
        NavItem("rules", N_("Routing rules"), "/ops/rules", N_("Which unit gets which orders, tried in order.")),
    ),
]

ACTION_LABELS = {
    "accept": N_("received"),
    "classify": N_("classified and dispatched"),
    "redispatch": N_("dispatched again"),
    "transfer": N_("transferred"),
    "sign": N_("signed for"),
    "return": N_("returned by the unit"),
    "extend": N_("more time granted"),
    "reply": N_("replied"),
    "supervise": N_("supervised"),
    "close": N_("closed"),
    "visit": N_("followed up"),
    "rate": N_("rated by the reporter"),
    "reopen": N_("reopened"),
    "merge": N_("merged"),
    "escalate": N_("escalated"),
    "note": N_("note from the system"),
}
SATISFACTION = {
    5: N_("very satisfied"),
    4: N_("satisfied"),
    3: N_("neutral"),
    2: N_("unsatisfied"),
    1: N_("very unsatisfied"),
}
FLAG_LABELS = {"overdue": N_("overdue"), "due_soon": N_("due soon")}
LABELS = {
    "status_labels": workorders.STATUS_LABELS,
    "action_labels": ACTION_LABELS,
    "satisfaction_labels": SATISFACTION,
    "flag_labels": FLAG_LABELS,
}
OPS_ONLY = N_("This page is for the operations centre and its units.")
Dispatcher = Annotated[Principal, Depends(page_principal(workorders.DISPATCH, OPS_ONLY))]
Inspector = Annotated[Principal, Depends(page_principal(workorders.HANDLE, OPS_ONLY))]
RuleManager = Annotated[
    Principal, Depends(page_principal(workorders.MANAGE, N_("Routing rules are edited by their managers.")))
]
LIVE_POLL_SECONDS = 3.0
STATUS_PATTERN = "^(open|" + "|".join(workorders.STATUS_LABELS) + ")$"


def _ops(who: SignedInPage) -> Principal:
    """Staff of the centre or of a unit (a visitor without a session is sent to sign in)."""
    return _staff(who)


def _staff(who: Principal) -> Principal:
    """The visitor, when staff of the centre or of a unit; 403 otherwise."""
    if not (who.has_action(workorders.DISPATCH) or who.has_action(workorders.HANDLE)):
        raise Problem("forbidden", detail=OPS_ONLY)
    return who


Ops = Annotated[Principal, Depends(_ops)]


def _categories(session: Session) -> list[tuple[str, str]]:
    return [(c.code, c.name) for c in workorders.categories(session, leaves_only=True)]


def _category_names(session: Session) -> dict[str, str]:
    return {c.code: c.name for c in workorders.categories(session)}


# -- citizens: 随申拍 and my reports ------------------------------------------------------------------------


@router.get("/report", response_class=HTMLResponse)
def report_form(request: Request, templates: TemplatesDep, who: SignedInPage) -> Response:
    """随申拍: photos, words and the place, from a phone."""
    return templates.render(request, "workorders/report.html", {"posted": {}, "error": None, "field": None})


def _posted(form: Any) -> dict[str, str]:
    """A form's text fields to show again after a refusal (never its CSRF token)."""
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


REPORT_PAGES = {"photo": "workorders/report.html", "patrol": "workorders/patrol.html"}


async def _take_report(
    request: Request,
    templates: Templates,
    session: Session,
    settings: Settings,
    index: RegionIndex,
    store: Any,
    who: Principal,
    channel: str,
) -> WorkOrder | Response:
    """A photo or patrol report taken in (and audited), or its form shown again with the reason."""
    form = await request.form()
    try:
        uploads = await read_photos(form.getlist("photos"), settings)
        report = workorders.reporter_report(session, who, channel, _posted(form))
        if channel == "patrol":
            report.attributes = {"inspector": who.display_name}
        order = workorders.photo_report(
            session, settings, index, store, who, report, uploads, photos_required=channel == "photo"
        )
    except DomainError as exc:
        session.rollback()
        context: dict[str, Any] = {
            "posted": _posted(form),
            "error": exc.text(request_locale(request)),
            "field": exc.field,
        }
        if channel == "patrol":
            context["categories"] = _categories(session)
        return templates.render(request, REPORT_PAGES[channel], context, status_code=422)
    audit(request, who, "workorders.order.create", object_type="work_order", object_id=str(order.id))
    return order


@router.post("/report", response_class=HTMLResponse)
async def report_submit(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    store: FileStoreDep,
    who: SignedInPage,
) -> Response:
    """Take the report in; a refused one is shown again with the reason and nothing is kept."""
    order = await _take_report(request, templates, session, settings, index, store, who, "photo")
    if isinstance(order, Response):
        return order
    return RedirectResponse(f"/my/reports/{order.id}?received=1", status_code=303)


@router.get("/my/reports", response_class=HTMLResponse)
def my_reports(request: Request, templates: TemplatesDep, session: SessionDep, who: SignedInPage) -> Response:
    """The visitor's reports, newest first."""
    orders = workorders.reported_by(session, who.user_id)
    context = {"orders": orders, "categories": _category_names(session), **LABELS}
    return templates.render(request, "workorders/mine.html", context)


# Free text of an order that may carry a caller's phone or ID (masked for staff not entitled to them).
ORDER_TEXT = ("description", "address", "reply")
ORDER_PAGE = "workorders/order.html"


def _order_page(
    request: Request,
    templates: Templates,
    session: Session,
    settings: Settings,
    index: RegionIndex,
    who: Principal,
    order: WorkOrder,
    template: str,
    error: str | None = None,
) -> Response:
    events = workorders.history(session, order.id)
    places = [index.get(c) for c in (order.district_code, order.township_code, order.community_code) if c]
    entitled = workorders.is_reporter(who, order) or may_read_personal(who, order.tenant_code)
    context: dict[str, Any] = {
        "order": masked_view(order, ORDER_TEXT, entitled),
        "events": [masked_view(e, ("note",), entitled) for e in events],
        "place": " · ".join(p.name for p in places if p),
        "category": _category_names(session).get(order.category_code or "", ""),
        "units": workorders.unit_names(session, [order.lead_unit, *order.assisting_units]),
        "actions": workorders.actions_for(who, order, settings),
        "tasks": workorders.incident_tasks(session, order.id),
        "flag": workorders.deadline_flag(order, settings.workorders.warn_hours),
        "channel": workorders.CHANNELS[order.channel].label if order.channel in workorders.CHANNELS else order.channel,
        "error": error,
        **LABELS,
    }
    if template == ORDER_PAGE:
        context.update(
            categories=_categories(session),
            reporter_name=reveal(order.reporter_name, entitled, "name"),
            reporter_phone=reveal(order.reporter_phone, entitled, "phone"),
            duplicates=_duplicates(session, settings, order),
            task_units={t.key for t in context["tasks"] if who.allows(workorders.HANDLE, *_unit_scope(t.unit))},
            departments=workorders.transfer_targets(session, settings, order),
        )
    return templates.render(request, template, context, status_code=422 if error else 200)


def _unit_scope(unit: str) -> tuple[str, str]:
    return workorders.unit_tenant(unit), unit


def _duplicates(session: Session, settings: Settings, order: WorkOrder) -> list[workorders.Duplicate]:
    if order.lat is None or order.lng is None or order.status not in workorders.OPEN:
        return []
    return workorders.likely_duplicates(
        session, settings, order.lat, order.lng, order.description, order.category_code, exclude=order.id
    )


@router.get("/my/reports/{order_id}", response_class=HTMLResponse)
def my_report(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    order: OrderPage,
    who: CurrentPrincipal,
    order_id: uuid.UUID,
) -> Response:
    """One of the visitor's reports: where it is, the answer, and the rating once answered."""
    return _order_page(request, templates, session, settings, index, who, order, "workorders/my_report.html")


@router.post("/my/reports/{order_id}", response_class=HTMLResponse)
def my_report_step(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    order: OrderPage,
    who: CurrentPrincipal,
    order_id: uuid.UUID,
    action: Annotated[str, Form(pattern="^(rate|reopen)$")],
    satisfaction: Annotated[str, Form(max_length=2)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """The reporter rates the answer or, unsatisfied, asks once for the problem to be handled again."""
    score = int(satisfaction) if satisfaction.isdigit() else None
    try:
        workorders.act(session, settings, order, who, workorders.Step(action, note=note, satisfaction=score))
    except DomainError as exc:
        session.rollback()  # the order is read again, as it was before the step
        reason = exc.text(request_locale(request))
        return _order_page(
            request, templates, session, settings, index, who, order, "workorders/my_report.html", reason
        )
    audit(request, who, f"workorders.order.{action}", object_type="work_order", object_id=str(order.id))
    return RedirectResponse(f"/my/reports/{order.id}", status_code=303)


@router.get("/workorders/{order_id}/photos/{n}")
def photo(store: FileStoreDep, order: OrderPage, order_id: uuid.UUID, n: int) -> Response:
    """A photo of an order, for those who may see the order."""
    if not 0 <= n < len(order.media):
        raise NotFoundError(N_("no such photo"), field="n")
    media = order.media[n]
    if "digest" not in media:
        # A photo an Open311 client gave by its address stays on that host: this route neither fetches it
        # nor redirects to it (which would make it an open redirect); the order's page links it directly.
        raise NotFoundError(N_("this photo is kept elsewhere, at the address the reporter gave"), field="n")
    return file_response(store, media["digest"], media["media_type"], media.get("name", "photo"))


# -- staff: orders, the hotline form, patrols -------------------------------------------------------------


@router.get("/ops/orders", response_class=HTMLResponse)
def orders(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    who: Ops,
    status: Annotated[str, Query(pattern=STATUS_PATTERN)] = "open",
    flag: Annotated[str, Query(pattern="^(|overdue|due_soon)$")] = "",
) -> Response:
    """The orders of the visitor's unit, or of the district's (or city's) centre, most urgent first."""
    rows = []
    for order in workorders.orders_for(session, who, settings, status):
        mark = workorders.deadline_flag(order, settings.workorders.warn_hours)
        if flag and mark != flag:
            continue
        rows.append((order, mark))
    rows.sort(key=lambda r: ({"overdue": 0, "due_soon": 1}.get(r[1], 2), r[0].created_at))
    districts = {o.district_code: index.get(o.district_code) for o, _f in rows if o.district_code}
    context = {
        "rows": [(masked_view(o, ORDER_TEXT, may_read_personal(who, o.tenant_code)), f) for o, f in rows],
        "status": status,
        "flag": flag,
        "statuses": ("open", *workorders.STATUS_LABELS),
        "categories": _category_names(session),
        "districts": {c: r.name for c, r in districts.items() if r},
        "units": workorders.unit_names(session, [o.lead_unit for o, _f in rows]),
        **LABELS,
    }
    return templates.render(request, "workorders/orders.html", context)


@router.get("/ops/orders/{order_id}", response_class=HTMLResponse)
def order_page(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    order: OrderPage,
    principal: CurrentPrincipal,
    order_id: uuid.UUID,
    error: PageMessage = None,
) -> Response:
    """An order with its photos, history, incident tasks, duplicate hints and the steps the visitor may take."""
    who = _staff(principal)
    return _order_page(request, templates, session, settings, index, who, order, ORDER_PAGE, error)


@router.post("/ops/orders/{order_id}", response_class=HTMLResponse)
def order_step(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    order: OrderPage,
    principal: CurrentPrincipal,
    order_id: uuid.UUID,
    action: Annotated[str, Form(max_length=12)],
    note: Annotated[str, Form(max_length=4000)] = "",
    category_code: Annotated[str, Form(max_length=20)] = "",
    unit: Annotated[str, Form(max_length=40)] = "",
    days: Annotated[str, Form(max_length=3)] = "",
    satisfaction: Annotated[str, Form(max_length=2)] = "",
    target: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Take a step; a refused one re-shows the order with the reason."""
    who = _staff(principal)
    try:
        step = workorders.Step(
            action,
            note=note,
            category_code=category_code or None,
            unit=unit or None,
            days=int(days) if days.isdigit() else 0,
            satisfaction=int(satisfaction) if satisfaction.isdigit() else None,
            target=_merge_target(session, who, target),
        )
        workorders.act(session, settings, order, who, step)
    except DomainError as exc:
        session.rollback()  # the order is read again, as it was before the step
        return _order_page(
            request, templates, session, settings, index, who, order, ORDER_PAGE, exc.text(request_locale(request))
        )
    audit(
        request,
        who,
        f"workorders.order.{action}",
        object_type="work_order",
        object_id=str(order.id),
        tenant_code=order.tenant_code,
    )
    return RedirectResponse(f"/ops/orders/{order.id}", status_code=303)


def _merge_target(session: Session, who: Principal, value: str) -> uuid.UUID | None:
    """A merge target by id or by order number; an order the visitor may not see is answered as one that does
    not exist (the merge itself checks the target again, for the API too)."""
    value = value.strip()
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        found = workorders.order_by_number(session, value)
        if found is None or not may_see_order(session, who, found):
            raise NotFoundError(N_("There is no work order numbered {number}"), field="target", number=value) from None
        return found.id


@router.post("/ops/orders/{order_id}/tasks/{key}", response_class=HTMLResponse)
def task_done(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    order: OrderPage,
    principal: CurrentPrincipal,
    order_id: uuid.UUID,
    key: str,
    note: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    """A unit reports its part of an incident done."""
    who = _staff(principal)
    try:
        workorders.complete_task(session, settings, order, key, who, note)
    except DomainError as exc:
        session.rollback()  # the order is read again, as it was before the report
        return _order_page(
            request, templates, session, settings, index, who, order, ORDER_PAGE, exc.text(request_locale(request))
        )
    audit(request, who, "workorders.task.complete", object_type="work_order", object_id=str(order.id))
    return RedirectResponse(f"/ops/orders/{order.id}", status_code=303)


def _hotline_page(
    request: Request, templates: Templates, session: Session, posted: dict[str, str], error: DomainError | None = None
) -> Response:
    context = {
        "posted": posted,
        "categories": _categories(session),
        "error": error.text(request_locale(request)) if error else None,
        "field": error.field if error else None,
    }
    return templates.render(request, "workorders/hotline.html", context, status_code=422 if error else 200)


@router.get("/ops/hotline", response_class=HTMLResponse)
def hotline(request: Request, templates: TemplatesDep, session: SessionDep, who: Dispatcher) -> Response:
    """The 12345 agent's form: the caller, the problem, the place; hints appear while typing."""
    return _hotline_page(request, templates, session, {})


@router.get("/ops/hotline/hints", response_class=HTMLResponse)
def hotline_hints(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    who: Dispatcher,
    description: Annotated[str, Query(max_length=4000)] = "",
    address: Annotated[str, Query(max_length=300)] = "",
    lat: Annotated[str, Query(max_length=20)] = "",
    lng: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """Category suggestions and likely duplicates for what the agent has typed so far (an HTMX fragment)."""
    names = _category_names(session)
    text_ = description.strip()
    suggestions = (
        [(c, names.get(c, c), p) for c, p in workorders.suggest(settings, f"{text_} {address}")] if text_ else []
    )
    place = None
    duplicates: list[workorders.Duplicate] = []
    try:
        if lat.strip() or lng.strip() or address.strip():
            place = workorders.locate(
                index, float(lat) if lat.strip() else None, float(lng) if lng.strip() else None, address
            )
    except (DomainError, ValueError):
        place = None
    if place is not None and place.lat is not None and place.lng is not None and len(text_) >= 4:
        best = suggestions[0][0] if suggestions else None
        duplicates = workorders.likely_duplicates(session, settings, place.lat, place.lng, text_, best)
    context = {
        "suggestions": suggestions,
        "duplicates": duplicates,
        "place": place,
        "place_names": [r.name for r in (index.get(c) for c in _codes(place)) if r],
        "triage": settings.workorders.triage_confidence,
    }
    return templates.render(request, "workorders/_hints.html", context)


def overview_time(data: dict[str, Any]) -> datetime:
    """When the dashboard's figures were computed."""
    return datetime.fromisoformat(data["generated_at"])


def _codes(place: workorders.Place | None) -> list[str]:
    if place is None:
        return []
    return [c for c in (place.district_code, place.township_code, place.community_code) if c]


@router.post("/ops/hotline", response_class=HTMLResponse)
async def hotline_submit(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    who: Dispatcher,
) -> Response:
    """Take the call in as an order (located, classified unless the agent chose, dispatched or queued)."""
    form = await request.form()
    posted = _posted(form)
    try:
        report = workorders.reporter_report(session, who, "hotline", posted)
        report.reporter_user_id = None  # the caller, not the agent, is the reporter
        report.reporter_name = posted.get("caller_name", "").strip()[:100]
        report.reporter_phone = posted.get("caller_phone", "").strip()[:20]
        report.urgent = posted.get("urgent") in ("1", "on", "true")
        if report.reporter_phone and not report.reporter_phone.replace("-", "").isdigit():
            raise InvalidError(N_("The caller's phone number may contain only digits"), field="caller_phone")
        order = workorders.intake(session, settings, index, report, who)
    except DomainError as exc:
        session.rollback()
        return _hotline_page(request, templates, session, posted, exc)
    audit(request, who, "workorders.order.create", object_type="work_order", object_id=str(order.id))
    return RedirectResponse(f"/ops/orders/{order.id}", status_code=303)


@router.get("/ops/patrol", response_class=HTMLResponse)
def patrol(request: Request, templates: TemplatesDep, session: SessionDep, who: Inspector) -> Response:
    """The inspector's report from the street: the category, the words, the place, photos if any."""
    context: dict[str, Any] = {"posted": {}, "error": None, "field": None, "categories": _categories(session)}
    return templates.render(request, "workorders/patrol.html", context)


@router.post("/ops/patrol", response_class=HTMLResponse)
async def patrol_submit(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    store: FileStoreDep,
    who: Inspector,
) -> Response:
    """Take the inspector's report in."""
    order = await _take_report(request, templates, session, settings, index, store, who, "patrol")
    if isinstance(order, Response):
        return order
    target = f"/ops/orders/{order.id}" if may_see_order(session, who, order) else "/ops/patrol?sent=1"
    return RedirectResponse(target, status_code=303)


# -- the routing-rule editor -----------------------------------------------------------------------------


def _rules_page(
    request: Request,
    templates: Templates,
    session: Session,
    settings: Settings,
    index: RegionIndex,
    who: Principal,
    error: DomainError | None = None,
    trial: dict[str, Any] | None = None,
) -> Response:
    context = {
        "rules": workorders.all_rules(session),
        "can_edit": who.has_action(workorders.MANAGE),
        "levels": workorders.LEVELS,
        "categories": _categories(session),
        "departments": workorders.department_keys(session, settings),
        "error": error.text(request_locale(request)) if error else None,
        "field": error.field if error else None,
        "trial": trial,
    }
    return templates.render(request, "workorders/rules.html", context, status_code=422 if error else 200)


@router.get("/ops/rules", response_class=HTMLResponse)
def rules_page(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    who: Dispatcher,
    try_category: Annotated[str, Query(max_length=20)] = "",
    try_area: Annotated[str, Query(max_length=15)] = "",
    try_text: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    """The rules in the order they are tried, an editor for each, and a form to try them on an order."""
    trial = None
    if try_category:
        try:
            found = workorders.try_route(session, settings, index, try_category, try_text, try_area)
        except DomainError as exc:
            return _rules_page(request, templates, session, settings, index, who, exc)
        names = workorders.unit_names(session, [found.lead_unit, *found.assisting_units])
        trial = {
            "rule": found.rule,
            "lead": names.get(found.lead_unit or "", ""),
            "assisting": [names.get(u, u) for u in found.assisting_units],
            "category": try_category,
            "area": try_area,
            "text": try_text,
        }
    return _rules_page(request, templates, session, settings, index, who, trial=trial)


def _spec(form: dict[str, str]) -> workorders.RuleSpec:
    def words(name: str) -> list[str]:
        return [w for w in form.get(name, "").replace("，", ",").replace("、", ",").split(",") if w.strip()]

    return workorders.RuleSpec(
        name=form.get("name", ""),
        lead_level=form.get("lead_level", ""),
        lead_department_key=form.get("lead_department_key", ""),
        category_prefix=form.get("category_prefix", ""),
        area_prefix=form.get("area_prefix", ""),
        keywords=words("keywords"),
        assisting=words("assisting"),
        active=form.get("active") in ("1", "on", "true"),
    )


@router.post("/ops/rules", response_class=HTMLResponse)
async def rules_change(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    who: RuleManager,
) -> Response:
    """Save a new or changed rule, move one, or delete one (``op``: save, up, down, delete)."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    op = form.get("op", "save")
    rule_id: int | None = None
    try:
        rule_id = whole_number(form.get("rule_id"), "rule_id")
        if op == "save":
            rule = workorders.save_rule(session, settings, index, _spec(form), rule_id)
            rule_id = rule.id
        elif rule_id is None:
            raise NotFoundError(N_("no such rule"), field="rule_id")
        elif op in ("up", "down"):
            workorders.move_rule(session, rule_id, -1 if op == "up" else 1)
        elif op == "delete":
            workorders.delete_rule(session, rule_id)
        else:
            raise NotFoundError(N_("no operation {op!r}"), field="op", op=op)
    except DomainError as exc:
        session.rollback()
        return _rules_page(request, templates, session, settings, index, who, exc)
    audit(request, who, f"workorders.rule.{op}", object_type="routing_rule", object_id=str(rule_id))
    return RedirectResponse(f"/ops/rules#rule-{rule_id}", status_code=303)


# -- the operations dashboard (城运中心) ----------------------------------------------------------------


@router.get("/ops/dashboard", response_class=HTMLResponse)
def dashboard(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    who: Dispatcher,
    district: Annotated[str | None, Query(max_length=12)] = None,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> Response:
    """The city (or one district) at a glance: the map, counts by status, overdue orders, hot spots, and the
    on-time and satisfaction rates by area and unit; the page follows changes live."""
    scope = workorders.centre_district(who, district)
    region = index.get(scope) if scope else None
    if scope and region is None:
        raise NotFoundError(N_("no district {code}"), field="district", code=scope)
    data = overview.as_json(session, index, overview.overview(session, settings, index, scope, days))
    context = {
        "data": data,
        "region": region,
        "days": days,
        "city_wide": who.city_wide(workorders.DISPATCH),
        "generated": overview_time(data),
        "categories": _category_names(session),
        **LABELS,
    }
    return templates.render(request, "workorders/dashboard.html", context)


@router.get("/ops/dashboard/stream")
async def dashboard_stream(
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    index: IndexDep,
    who: Dispatcher,
    district: Annotated[str | None, Query(max_length=12)] = None,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> Response:
    """Server-sent events: the dashboard's data again whenever an order of the scope changes."""
    scope = workorders.centre_district(who, district)
    seen: tuple[int, str] | None = None

    def fresh() -> dict[str, Any] | None:
        nonlocal seen
        with db.session(write=False) as session:  # closed before the message goes out: no session waits on a client
            stamp = overview.version(session, scope)
            if stamp == seen:
                return None
            seen = stamp
            return overview.as_json(session, index, overview.overview(session, settings, index, scope, days))

    return live_events(request, "overview", fresh, LIVE_POLL_SECONDS)

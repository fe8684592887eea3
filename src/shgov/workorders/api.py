"""The work-orders API: intake from the hotline, patrols and sensors, the handling steps, category
suggestions; and Open311 GeoReport v2 under ``/open311/v2/``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from shgov.core.deps import FileStoreDep, SessionDep, SettingsDep
from shgov.core.errors import ForbiddenError, NotFoundError
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_, request_locale
from shgov.core.identity.deps import CurrentPrincipal, audit
from shgov.core.identity.permissions import Principal
from shgov.core.ids import mask_personal, mask_text, may_read_personal, reveal
from shgov.core.regions.api import IndexDep
from shgov.workorders import open311, overview
from shgov.workorders import service as workorders
from shgov.workorders.access import VisibleOrder
from shgov.workorders.models import WorkOrder
from shgov.workorders.schemas import (
    BatchIn,
    OrderOut,
    ReportIn,
    RuleIn,
    RuleOut,
    StepIn,
    TaskDone,
    read_photos,
)

router = APIRouter(tags=["workorders"])
router.include_router(open311.router)
api = APIRouter(prefix="/api/v1/workorders", tags=["workorders"], route_class=JsonRoute)


def order_out(
    session: SessionDep, principal: Principal, order: WorkOrder, settings: Any, full: bool = False
) -> OrderOut:
    """An order for the caller; the reporter's name and phone are masked for anyone but the reporter."""
    out = OrderOut.model_validate(order)
    entitled = workorders.is_reporter(principal, order) or may_read_personal(principal, order.tenant_code)
    if not entitled:
        # the reporter's details, and whatever personal numbers the free text carries (a caller's phone, an ID)
        out.reporter_name = str(mask_personal(order.reporter_name, "name"))
        out.reporter_phone = str(mask_personal(order.reporter_phone, "phone"))
        out.description = mask_text(order.description)
        out.address = mask_text(order.address)
        out.reply = mask_text(order.reply)
    out.flag = workorders.deadline_flag(order, settings.workorders.warn_hours)
    if full:
        out.tasks = [
            {
                "key": t.key,
                "name": t.name,
                "unit": t.unit,
                "status": t.status,
                "due_at": t.due_at.isoformat(),
                "note": reveal(t.note, entitled),
            }
            for t in workorders.incident_tasks(session, order.id)
        ]
        out.history = [
            {
                "at": e.at.isoformat(),
                "actor": e.actor_name,
                "action": e.action,
                "from": e.from_status,
                "to": e.to_status,
                "unit": e.unit,
                "note": reveal(e.note, entitled),
            }
            for e in workorders.history(session, order.id)
        ]
    return out


CHANNEL_ACTIONS = {"hotline": workorders.DISPATCH, "patrol": workorders.HANDLE, "sensor": workorders.DISPATCH}


@api.post("", response_model=OrderOut, status_code=201)
def create(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    principal: CurrentPrincipal,
    body: ReportIn,
) -> OrderOut:
    """Take a report in from the hotline, a patrol or a sensor; it is located, classified and dispatched."""
    if not principal.has_action(CHANNEL_ACTIONS[body.channel]):
        raise ForbiddenError(N_("this account does not take {channel} reports"), field="channel", channel=body.channel)
    order = workorders.intake(session, settings, index, _report(body), principal)
    audit(request, principal, "workorders.order.create", object_type="work_order", object_id=str(order.id))
    return order_out(session, principal, order, settings, full=True)


@api.post("/batch")
def create_many(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    principal: CurrentPrincipal,
    body: BatchIn,
) -> list[dict[str, Any]]:
    """Take many reports in at once (classified together); each answer says created (with its number and
    status) or refused (with the field and the reason) — a refused report never stops the others."""
    for i, report in enumerate(body.reports):
        if not principal.has_action(CHANNEL_ACTIONS[report.channel]):
            raise ForbiddenError(
                N_("reports[{index}]: this account does not take {channel} reports"),
                field="channel",
                index=i,
                channel=report.channel,
            )
    outcomes = workorders.intake_many(session, settings, index, [_report(r) for r in body.reports], principal)
    answers: list[dict[str, Any]] = []
    locale = request_locale(request)
    for i, outcome in enumerate(outcomes):
        answer: dict[str, Any] = {"index": i}
        if outcome.order is not None:
            answer.update(id=str(outcome.order.id), number=outcome.order.number, status=outcome.order.status)
        if outcome.error is not None:
            answer["error"] = {"field": f"reports[{i}].{outcome.error.field}", "message": outcome.error.text(locale)}
        answers.append(answer)
    created = sum(1 for o in outcomes if o.order is not None)
    audit(request, principal, "workorders.order.create_many", object_type="work_order", details={"created": created})
    return answers


def _report(body: ReportIn) -> workorders.Report:
    return workorders.Report(
        channel=body.channel,
        description=body.description,
        lat=body.lat,
        lng=body.lng,
        address=body.address,
        category_code=body.category_code,
        urgent=body.urgent,
        attributes=body.attributes,
        reporter_name=body.caller_name,
        reporter_phone=body.caller_phone,
        source_ref=body.source_ref,
    )


@api.post("/photo", response_model=OrderOut, status_code=201)
async def photo_report(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    store: FileStoreDep,
    principal: CurrentPrincipal,
) -> OrderOut:
    """随申拍: a citizen's photos and words (multipart: ``description``, ``photos`` 1–5, and ``lat``/``lng`` or
    ``address``; without them the first photo's EXIF GPS position is used)."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    uploads = await read_photos(form.getlist("photos"), settings)
    order = workorders.photo_report(
        session,
        settings,
        index,
        store,
        principal,
        workorders.reporter_report(session, principal, "photo", values),
        uploads,
    )
    audit(request, principal, "workorders.order.create", object_type="work_order", object_id=str(order.id))
    return order_out(session, principal, order, settings, full=True)


@api.get("/duplicates")
def duplicates(
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lng: Annotated[float, Query(ge=-180, le=180)],
    text: Annotated[str, Query(min_length=1, max_length=4000)],
    category_code: Annotated[str | None, Query(max_length=20)] = None,
) -> list[dict[str, Any]]:
    """Open orders nearby with similar text (hints while an agent types)."""
    if not principal.has_action(workorders.DISPATCH) and not principal.has_action(workorders.HANDLE):
        raise ForbiddenError(N_("duplicate hints are for operators and units"), field="text")
    found = workorders.likely_duplicates(session, settings, lat, lng, text, category_code)
    return [{"id": str(d.order_id), "number": d.number, "metres": d.metres, "similarity": d.similarity} for d in found]


@api.get("/hotspots")
def hotspots(
    session: SessionDep,
    principal: CurrentPrincipal,
    days: Annotated[int, Query(ge=1, le=90)] = 7,
    min_count: Annotated[int, Query(ge=2, le=1000)] = 3,
    district: Annotated[str | None, Query(max_length=12)] = None,
) -> list[dict[str, Any]]:
    """Hot spots of the last ``days``: place × category clusters (a district operator sees the district)."""
    scope = workorders.centre_district(principal, district)
    since = datetime.now(UTC) - timedelta(days=days)
    return [vars(h) for h in workorders.hot_spots(session, since, min_count, scope)]


@api.get("/overview")
def centre_overview(
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    principal: CurrentPrincipal,
    district: Annotated[str | None, Query(max_length=12)] = None,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> dict[str, Any]:
    """The operations centre's picture: open orders by status and area, overdue orders, hot spots, on-time
    and satisfaction rates by area and unit (the city by district, or one district by township)."""
    scope = workorders.centre_district(principal, district)
    if scope is not None and index.get(scope) is None:
        raise NotFoundError(N_("no district {code}"), field="district", code=scope)
    return overview.as_json(session, index, overview.overview(session, settings, index, scope, days))


@api.get("/suggest")
def suggest(
    settings: SettingsDep, principal: CurrentPrincipal, text: Annotated[str, Query(min_length=1, max_length=4000)]
) -> list[dict[str, Any]]:
    """The likely categories of a text while an agent types (confidence 0–1)."""
    return [{"category_code": c, "confidence": round(p, 4)} for c, p in workorders.suggest(settings, text)]


def _rules_manager(principal: Principal) -> Principal:
    if not principal.has_action(workorders.MANAGE):
        raise ForbiddenError(N_("routing rules are edited by their managers"), field="rules")
    return principal


@api.get("/rules", response_model=list[RuleOut])
def list_rules(session: SessionDep, principal: CurrentPrincipal) -> list[RuleOut]:
    """Every routing rule in the order they are tried (first match wins)."""
    if not principal.has_action(workorders.DISPATCH) and not principal.has_action(workorders.MANAGE):
        raise ForbiddenError(N_("routing rules are for the operations centre"), field="rules")
    return [RuleOut.model_validate(r) for r in workorders.all_rules(session)]


@api.post("/rules", response_model=RuleOut, status_code=201)
def create_rule(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    principal: CurrentPrincipal,
    body: RuleIn,
) -> RuleOut:
    """Add a rule; it is tried after the others until moved."""
    _rules_manager(principal)
    rule = workorders.save_rule(session, settings, index, workorders.RuleSpec(**body.model_dump()))
    audit(request, principal, "workorders.rule.create", object_type="routing_rule", object_id=str(rule.id))
    return RuleOut.model_validate(rule)


@api.put("/rules/{rule_id}", response_model=RuleOut)
def update_rule(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    principal: CurrentPrincipal,
    rule_id: int,
    body: RuleIn,
) -> RuleOut:
    """Change a rule in place (its position stays)."""
    _rules_manager(principal)
    rule = workorders.save_rule(session, settings, index, workorders.RuleSpec(**body.model_dump()), rule_id)
    audit(request, principal, "workorders.rule.update", object_type="routing_rule", object_id=str(rule.id))
    return RuleOut.model_validate(rule)


@api.post("/rules/{rule_id}/move", response_model=list[RuleOut])
def move_rule(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    rule_id: int,
    offset: Annotated[int, Query(ge=-1000, le=1000)],
) -> list[RuleOut]:
    """Move a rule earlier (negative ``offset``) or later; answers the new order."""
    _rules_manager(principal)
    ordered = workorders.move_rule(session, rule_id, offset)
    audit(request, principal, "workorders.rule.move", object_type="routing_rule", object_id=str(rule_id))
    return [RuleOut.model_validate(r) for r in ordered]


@api.delete("/rules/{rule_id}", status_code=204)
def delete_rule(request: Request, session: SessionDep, principal: CurrentPrincipal, rule_id: int) -> None:
    """Remove a rule."""
    _rules_manager(principal)
    workorders.delete_rule(session, rule_id)
    audit(request, principal, "workorders.rule.delete", object_type="routing_rule", object_id=str(rule_id))


@api.get("/rules/try")
def try_rules(
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    principal: CurrentPrincipal,
    category_code: Annotated[str, Query(min_length=1, max_length=20)],
    text: Annotated[str, Query(max_length=4000)] = "",
    area: Annotated[str, Query(max_length=15)] = "",
) -> dict[str, Any]:
    """Which rule would take an order of this category, text and place, and which units would get it."""
    if not principal.has_action(workorders.DISPATCH) and not principal.has_action(workorders.MANAGE):
        raise ForbiddenError(N_("routing rules are for the operations centre"), field="rules")
    trial = workorders.try_route(session, settings, index, category_code, text, area)
    return {
        "rule": RuleOut.model_validate(trial.rule).model_dump() if trial.rule else None,
        "lead_unit": trial.lead_unit,
        "assisting_units": trial.assisting_units,
    }


@api.get("", response_model=list[OrderOut])
def listing(
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    status: Annotated[str, Query(max_length=12)] = "open",
) -> list[OrderOut]:
    """The orders the caller may see: their unit's, or their district's operations centre's."""
    return [
        order_out(session, principal, o, settings) for o in workorders.orders_for(session, principal, settings, status)
    ]


@api.get("/{order_id}", response_model=OrderOut)
def read(
    session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal, order: VisibleOrder, order_id: uuid.UUID
) -> OrderOut:
    """One order with its history."""
    return order_out(session, principal, order, settings, full=True)


@api.post("/{order_id}/steps", response_model=OrderOut)
def step(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    order: VisibleOrder,
    order_id: uuid.UUID,
    body: StepIn,
) -> OrderOut:
    """Sign, return, extend, reply (the unit); classify, re-dispatch, transfer, supervise, close, record the
    follow-up, reopen, merge (the operations centre)."""
    workorders.act(session, settings, order, principal, workorders.Step(**body.model_dump()))
    audit(
        request,
        principal,
        f"workorders.order.{body.action}",
        object_type="work_order",
        object_id=str(order.id),
        tenant_code=order.tenant_code,
    )
    return order_out(session, principal, order, settings, full=True)


@api.post("/{order_id}/tasks/{key}", response_model=OrderOut)
def complete_task(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    order: VisibleOrder,
    order_id: uuid.UUID,
    key: str,
    body: TaskDone,
) -> OrderOut:
    """A unit reports its part of an incident (高效处置一件事) done; the last one answers the incident."""
    workorders.complete_task(session, settings, order, key, principal, body.note)
    audit(request, principal, "workorders.task.complete", object_type="work_order", object_id=str(order.id))
    return order_out(session, principal, order, settings, full=True)


router.include_router(api)

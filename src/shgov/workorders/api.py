"""The work-orders API: intake from the hotline, patrols and sensors, the handling steps, category
suggestions; and Open311 GeoReport v2 under ``/open311/v2/``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile as StarletteUpload

from shgov.core.deps import FileStoreDep, SessionDep, SettingsDep
from shgov.core.errors import ForbiddenError, InvalidError, NotFoundError
from shgov.core.files import read_upload
from shgov.core.http import JsonRoute
from shgov.core.identity.deps import CurrentPrincipal, audit
from shgov.core.identity.permissions import Principal
from shgov.core.identity.service import get_user
from shgov.core.ids import mask_personal
from shgov.core.regions.api import IndexDep
from shgov.workorders import open311, overview
from shgov.workorders import service as workorders
from shgov.workorders.models import WorkOrder

router = APIRouter(tags=["workorders"])
router.include_router(open311.router)
api = APIRouter(prefix="/api/v1/workorders", tags=["workorders"], route_class=JsonRoute)


class ReportIn(BaseModel):
    """A report from the hotline (an agent), a patrol (an inspector) or a sensor (a system client)."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["hotline", "patrol", "sensor"]
    description: str = Field(min_length=1, max_length=4000)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)
    address: str = Field(default="", max_length=300)
    category_code: str | None = Field(default=None, max_length=20)
    urgent: bool = False
    caller_name: str = Field(default="", max_length=100)
    caller_phone: str = Field(default="", max_length=20)
    source_ref: str = Field(default="", max_length=80)
    attributes: dict[str, Any] = {}


class StepIn(BaseModel):
    """A step on an order."""

    model_config = ConfigDict(extra="forbid")

    action: Literal[
        "sign",
        "return",
        "extend",
        "reply",
        "classify",
        "redispatch",
        "transfer",
        "supervise",
        "close",
        "visit",
        "reopen",
        "merge",
        "rate",
    ]
    note: str = Field(default="", max_length=4000)
    category_code: str | None = Field(default=None, max_length=20)
    unit: str | None = Field(default=None, max_length=40)
    days: int = Field(default=0, ge=0, le=60)
    satisfaction: int | None = Field(default=None, ge=1, le=5)
    target: uuid.UUID | None = None


class OrderOut(BaseModel):
    """An order as staff see it (the reporter's details masked unless the caller may read them)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: str
    channel: str
    status: str
    description: str
    category_code: str | None
    category_confidence: float | None
    classified_by: str
    urgent: bool
    lat: float | None
    lng: float | None
    address: str
    district_code: str | None
    township_code: str | None
    community_code: str | None
    grid_code: str | None
    lead_unit: str | None
    assisting_units: list[str]
    rule_name: str
    escalation: int
    sign_due: datetime | None
    reply_due: datetime | None
    conclude_due: datetime | None
    reply: str
    satisfaction: int | None
    reporter_name: str
    reporter_phone: str
    created_at: datetime
    flag: str = ""
    tasks: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []


def order_out(
    session: SessionDep, principal: Principal, order: WorkOrder, settings: Any, full: bool = False
) -> OrderOut:
    """An order for the caller; the reporter's name and phone are masked for anyone but the reporter."""
    out = OrderOut.model_validate(order)
    if order.reporter_user_id != principal.user_id:
        out.reporter_name = str(mask_personal(order.reporter_name, "name"))
        out.reporter_phone = str(mask_personal(order.reporter_phone, "phone"))
    out.flag = workorders.deadline_flag(order, settings.workorders.warn_hours)
    if full:
        out.tasks = [
            {
                "key": t.key,
                "name": t.name,
                "unit": t.unit,
                "status": t.status,
                "due_at": t.due_at.isoformat(),
                "note": t.note,
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
                "note": e.note,
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
        raise ForbiddenError(f"this account does not take {body.channel} reports", field="channel")
    order = workorders.intake(session, settings, index, _report(body), principal)
    audit(request, principal, "workorders.order.create", object_type="work_order", object_id=str(order.id))
    return order_out(session, principal, order, settings, full=True)


class BatchIn(BaseModel):
    """Up to 1,000 reports from patrols or sensors in one call."""

    model_config = ConfigDict(extra="forbid")

    reports: list[ReportIn] = Field(min_length=1, max_length=1000)


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
            raise ForbiddenError(f"reports[{i}]: this account does not take {report.channel} reports", field="channel")
    outcomes = workorders.intake_many(session, settings, index, [_report(r) for r in body.reports], principal)
    answers: list[dict[str, Any]] = []
    for i, outcome in enumerate(outcomes):
        answer: dict[str, Any] = {"index": i}
        if outcome.order is not None:
            answer.update(id=str(outcome.order.id), number=outcome.order.number, status=outcome.order.status)
        if outcome.error is not None:
            answer["error"] = {"field": f"reports[{i}].{outcome.error.field}", "message": outcome.error.message}
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
        session, settings, index, store, principal, reporter_report(session, principal, "photo", values), uploads
    )
    audit(request, principal, "workorders.order.create", object_type="work_order", object_id=str(order.id))
    return order_out(session, principal, order, settings, full=True)


async def read_photos(items: list[Any], settings: Any) -> list[workorders.Upload]:
    """The photos of a multipart form (empty file inputs skipped), each refused when over the upload limit."""
    files = [f for f in items if isinstance(f, StarletteUpload) and (f.filename or f.size)]
    if len(files) > workorders.MAX_PHOTOS:
        raise InvalidError(f"最多上传 {workorders.MAX_PHOTOS} 张照片", field="photos")
    uploads = []
    for upload in files:
        try:
            data = await read_upload(upload, settings.max_upload_bytes, "photos")
        except InvalidError as exc:
            limit = settings.max_upload_bytes / 1024 / 1024
            raise InvalidError(f"照片“{upload.filename}”超过 {limit:.1f} MB 的上限", field="photos") from exc
        uploads.append(workorders.Upload(data, upload.filename or "photo"))
    return uploads


def reporter_report(
    session: SessionDep, principal: Principal, channel: str, values: dict[str, str]
) -> workorders.Report:
    """A signed-in person's report from form fields (``description``, ``lat``, ``lng``, ``address``,
    ``category_code``), with their name and phone for the answer."""
    user = get_user(session, principal.user_id)
    return workorders.Report(
        channel=channel,
        description=values.get("description", ""),
        lat=_number(values.get("lat"), "lat"),
        lng=_number(values.get("lng"), "lng"),
        address=values.get("address", "")[:300],
        category_code=values.get("category_code") or None,
        reporter_user_id=principal.user_id,
        reporter_name=principal.display_name,
        reporter_phone=(user.phone or "") if user else "",
    )


def _number(value: str | None, name: str) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise InvalidError(f"{name} 应为数字（WGS-84 经纬度）", field=name) from exc


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
        raise ForbiddenError("duplicate hints are for operators and units", field="text")
    found = workorders.likely_duplicates(session, settings, lat, lng, text, category_code)
    return [{"id": str(d.order_id), "number": d.number, "metres": d.metres, "similarity": d.similarity} for d in found]


def centre_district(principal: Principal, district: str | None) -> str | None:
    """The district an operations-centre view shows: any (or the city, None) for a city-wide operator, and
    always the operator's own for a district's."""
    if not principal.has_action(workorders.DISPATCH):
        raise ForbiddenError("this view is for the operations centre", field="district")
    if principal.city_wide(workorders.DISPATCH):
        return district or None
    tenants = [t for t in principal.tenants_for(workorders.DISPATCH) or () if t]
    if district in tenants:
        return district
    if len(tenants) != 1:
        raise ForbiddenError("name the district you serve", field="district")
    return tenants[0]


@api.get("/hotspots")
def hotspots(
    session: SessionDep,
    principal: CurrentPrincipal,
    days: Annotated[int, Query(ge=1, le=90)] = 7,
    min_count: Annotated[int, Query(ge=2, le=1000)] = 3,
    district: Annotated[str | None, Query(max_length=12)] = None,
) -> list[dict[str, Any]]:
    """Hot spots of the last ``days``: place × category clusters (a district operator sees the district)."""
    scope = centre_district(principal, district)
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
    scope = centre_district(principal, district)
    if scope is not None and index.get(scope) is None:
        raise NotFoundError(f"no district {scope}", field="district")
    return overview.as_json(session, index, overview.overview(session, settings, index, scope, days))


@api.get("/suggest")
def suggest(
    settings: SettingsDep, principal: CurrentPrincipal, text: Annotated[str, Query(min_length=1, max_length=4000)]
) -> list[dict[str, Any]]:
    """The likely categories of a text while an agent types (confidence 0–1)."""
    return [{"category_code": c, "confidence": round(p, 4)} for c, p in workorders.suggest(settings, text)]


class RuleIn(BaseModel):
    """A routing rule: the orders it takes (empty conditions match all) and the units it gives them to."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=2, max_length=100)
    category_prefix: str = Field(default="", max_length=20)
    area_prefix: str = Field(default="", max_length=20)
    keywords: list[str] = Field(default=[], max_length=50)
    lead_level: Literal["city", "district", "township"]
    lead_department_key: str = Field(min_length=1, max_length=12)
    assisting: list[str] = Field(default=[], max_length=10)
    active: bool = True


class RuleOut(RuleIn):
    """A stored rule and its place in the order."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    position: int


def _rules_manager(principal: Principal) -> Principal:
    if not principal.has_action(workorders.MANAGE):
        raise ForbiddenError("routing rules are edited by their managers", field="rules")
    return principal


@api.get("/rules", response_model=list[RuleOut])
def list_rules(session: SessionDep, principal: CurrentPrincipal) -> list[RuleOut]:
    """Every routing rule in the order they are tried (first match wins)."""
    if not principal.has_action(workorders.DISPATCH) and not principal.has_action(workorders.MANAGE):
        raise ForbiddenError("routing rules are for the operations centre", field="rules")
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
        raise ForbiddenError("routing rules are for the operations centre", field="rules")
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


def _visible(session: SessionDep, principal: Principal, order_id: uuid.UUID, settings: Any) -> WorkOrder:
    order = workorders.get_order(session, order_id)
    if not workorders.may_see(principal, order, settings):
        raise NotFoundError("no such work order", field="order_id")
    return order


@api.get("/{order_id}", response_model=OrderOut)
def read(session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal, order_id: uuid.UUID) -> OrderOut:
    """One order with its history."""
    return order_out(session, principal, _visible(session, principal, order_id, settings), settings, full=True)


@api.post("/{order_id}/steps", response_model=OrderOut)
def step(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    order_id: uuid.UUID,
    body: StepIn,
) -> OrderOut:
    """Sign, return, extend, reply (the unit); classify, re-dispatch, transfer, supervise, close, record the
    follow-up, reopen, merge (the operations centre)."""
    order = _visible(session, principal, order_id, settings)
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


class TaskDone(BaseModel):
    """How a unit handled its part of an incident."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=2, max_length=4000)


@api.post("/{order_id}/tasks/{key}", response_model=OrderOut)
def complete_task(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    order_id: uuid.UUID,
    key: str,
    body: TaskDone,
) -> OrderOut:
    """A unit reports its part of an incident (高效处置一件事) done; the last one answers the incident."""
    order = _visible(session, principal, order_id, settings)
    workorders.complete_task(session, settings, order, key, principal, body.note)
    audit(request, principal, "workorders.task.complete", object_type="work_order", object_id=str(order.id))
    return order_out(session, principal, order, settings, full=True)


router.include_router(api)

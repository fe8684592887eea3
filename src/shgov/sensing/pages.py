"""Pages of 城市运行数字体征: the live vital-signs dashboard (the city map coloured by an indicator's grade,
every district's value, the open warnings, the trend; kept live by server-sent events), the device list with
its map, and a device's page (where it is, its latest values, its last day of readings)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from shgov.core.deps import DatabaseDep, SessionDep, SettingsDep
from shgov.core.errors import InvalidError, NotFoundError
from shgov.core.i18n import N_, gettext, request_locale
from shgov.core.identity.deps import page_principal
from shgov.core.identity.permissions import Principal
from shgov.core.regions.api import IndexDep
from shgov.core.regions.service import RegionIndex
from shgov.sensing import indicators as vital
from shgov.sensing import service as sensing
from shgov.sensing import watch
from shgov.sensing.models import SensorWarning
from shgov.sensing.pipeline import Pipeline
from shgov.sensing.runtime import runtime_of
from shgov.web.pages import TemplatesDep, live_events, web_user
from shgov.web.templating import NavItem

router = APIRouter(include_in_schema=False, dependencies=[Depends(web_user)])

NAV = [
    (
        "operations",
        NavItem(
            "vitals",
            N_("City vital signs"),
            "/ops/vitals",
            N_("Sensor indicators by district on the map, warnings and trends, live."),
        ),
    ),
    (
        "operations",
        NavItem("devices", N_("Sensing devices"), "/ops/devices", N_("Every sensor: where it is, what it reports.")),
    ),
]
GRADE_LABELS = {"blue": N_("blue"), "yellow": N_("yellow"), "orange": N_("orange"), "red": N_("red")}
VITALS_ONLY = N_("The vital signs are for the operations centre and the districts' administrators.")
DEVICES_ONLY = N_("The device registry is for the operations centre and the devices' owners.")
VitalsReader = Annotated[Principal, Depends(page_principal(sensing.INDICATORS, VITALS_ONLY))]
DevicesReader = Annotated[Principal, Depends(page_principal(sensing.READ, DEVICES_ONLY))]
LIVE_POLL_SECONDS = 2.0


def _pipeline(request: Request) -> Pipeline:
    return runtime_of(request).pipeline()


KIND_LABELS = {"anomaly": N_("Device anomaly"), "seasonal": N_("Unusual for the time of day")}


def _warning_labels(session: Any, locale: str) -> Callable[[SensorWarning], str]:
    """Names warnings: a vital sign by its name; a device or seasonal anomaly by its kind, type and measure."""
    names = {i.code: i.name if locale.startswith("zh") else i.name_en or i.name for i in vital.load()}
    measures: dict[str, str] = {}
    for kind in sensing.list_types(session):
        type_name = kind.name if locale.startswith("zh") else kind.name_en or kind.name
        for m in kind.measures:
            measures[f"{kind.code}.{m['code']}"] = f"{type_name} · {m['name']}"

    def label(w: SensorWarning) -> str:
        if w.kind in KIND_LABELS:
            what = w.indicator_code.partition(":")[2]
            return f"{gettext(KIND_LABELS[w.kind], locale)}：{measures.get(what, what)}"
        return names.get(w.indicator_code, w.indicator_code)

    return label


def _warnings_json(
    warnings: list[SensorWarning], index: RegionIndex, label: Callable[[SensorWarning], str]
) -> list[dict[str, Any]]:
    rows = []
    for w in warnings:
        area = index.get(w.area_code)
        rows.append(
            {
                "id": str(w.id),
                "indicator": label(w),
                "kind": w.kind,
                "area": area.name if area else w.area_code,
                "grade": w.grade,
                "value": round(w.value, 2),
                "workorder_id": str(w.workorder_id) if w.workorder_id else None,
                "workorder_number": w.workorder_number,
                "updated_at": w.updated_at.isoformat(),
                "devices": [d["device_id"] for d in (w.evidence.get("devices") or [])[:5]],
            }
        )
    return rows


def _snapshot(request: Request, session: Any, who: Principal, index: RegionIndex) -> dict[str, Any]:
    runtime = runtime_of(request)
    stamp = runtime.stamp()  # taken first: a change while this is computed is sent again
    data = sensing.vitals(
        runtime.readings(), runtime.pipeline().version, index, lambda d: who.allows(sensing.INDICATORS, d)
    )
    found = watch.visible_warnings(session, who, sensing.INDICATORS, status="open", limit=100)
    data["warnings"] = _warnings_json(found, index, _warning_labels(session, request_locale(request)))
    data["stamp"] = stamp
    return data


@router.get("/ops/vitals", response_class=HTMLResponse)
def vitals(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    index: IndexDep,
    who: VitalsReader,
    indicator: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """The city's vital signs on the map, district by district, with the open warnings and a trend."""
    data = _snapshot(request, session, who, index)
    codes = [i["code"] for i in data["indicators"]]
    chosen = indicator if indicator in codes else codes[0]
    if indicator and indicator not in codes:
        raise NotFoundError(N_("no indicator {indicator!r}"), field="indicator", indicator=indicator)
    # the trend starts with the whole city for the centre, with their (first) district for a district
    first = data["indicators"][0]["districts"][0] if data["indicators"][0]["districts"] else None
    home = None if who.city_wide(sensing.INDICATORS) or first is None else first
    generated = datetime.fromisoformat(data["generated_at"])
    context = {"data": data, "chosen": chosen, "grade_labels": GRADE_LABELS, "home": home, "generated": generated}
    return templates.render(request, "sensing/vitals.html", context)


@router.get("/ops/vitals/stream")
async def vitals_stream(
    request: Request,
    db: DatabaseDep,
    index: IndexDep,
    who: VitalsReader,
    since: Annotated[str, Query(max_length=80)] = "",
) -> Response:
    """Server-sent events: the vital signs and warnings again whenever readings or warnings change (``since``:
    the stamp of what the page already shows)."""
    runtime = runtime_of(request)
    seen = since

    def fresh() -> dict[str, Any] | None:
        nonlocal seen
        if runtime.stamp() == seen:  # the database is read only when something changed
            return None
        with db.session(write=False) as session:
            data = _snapshot(request, session, who, index)
        seen = data["stamp"]
        return data

    return live_events(request, "vitals", fresh, LIVE_POLL_SECONDS)


@router.get("/ops/vitals/trend")
def vitals_trend(
    request: Request,
    settings: SettingsDep,
    who: VitalsReader,
    indicator: Annotated[str, Query(max_length=40)],
    district: Annotated[str | None, Query(max_length=12)] = None,
    hours: Annotated[int, Query(ge=1, le=24 * 31)] = 24,
) -> Response:
    """The measure behind an indicator over the last hours (the city or one district), for the trend chart."""
    chosen = next((i for i in vital.load() if i.code == indicator), None)
    if chosen is None:
        raise InvalidError(N_("no indicator {indicator!r}"), field="indicator", indicator=indicator)
    if not (who.city_wide(sensing.INDICATORS) or (district and who.allows(sensing.INDICATORS, district))):
        raise InvalidError(N_("choose one of your districts"), field="district")
    _pipeline(request).flush()
    until = datetime.now(UTC)
    windows = sensing.history(
        request.app.state.analytics,
        settings.timezone,
        chosen.type_code,
        chosen.measure,
        level="district" if district else None,
        area=district,
        since=until - timedelta(hours=hours),
        until=until,
        every="minute" if hours <= 6 else "hour",
    )
    points = [[w.start.isoformat(), w.mean, w.high] for w in windows]
    return JSONResponse({"indicator": chosen.code, "measure": chosen.measure, "district": district, "points": points})


# -- devices ----------------------------------------------------------------------------------------------


@router.get("/ops/devices", response_class=HTMLResponse)
def devices(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    index: IndexDep,
    who: DevicesReader,
    district: Annotated[str | None, Query(max_length=12)] = None,
    type: Annotated[str | None, Query(max_length=30)] = None,
    status: Annotated[str | None, Query(pattern="^(active|maintenance|retired)?$")] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """The devices the visitor may see, filtered, on a map and in a table, 200 at a time."""
    size = 200
    total, found = sensing.list_devices(
        session,
        who,
        district=district or None,
        type_code=type or None,
        status=status or None,
        limit=size,
        offset=(page - 1) * size,
    )
    kinds = {t.code: t.name for t in sensing.list_types(session)}
    points = [{"id": d.id, "lng": d.lng, "lat": d.lat, "type": d.type_code} for d in found]
    districts = [d for d in index.children_of(index.city.code if index.city else None)]
    context = {
        "devices": found,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // size)),
        "kinds": kinds,
        "points": points,
        "districts": districts,
        "filters": {"district": district or "", "type": type or "", "status": status or ""},
        "names": {d.code: d.name for d in districts},
    }
    return templates.render(request, "sensing/devices.html", context)


@router.get("/ops/devices/{device_id}", response_class=HTMLResponse)
def device(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    index: IndexDep,
    who: DevicesReader,
    device_id: str,
) -> Response:
    """A device: where it is (on the map), who owns it, its latest values and its last day of readings."""
    found = sensing.get_device(session, who, device_id)
    kind = sensing.get_type(session, found.type_code)
    since = datetime.now(UTC) - timedelta(hours=24)
    _pipeline(request).flush()
    places = [index.get(c) for c in (found.tenant_code, found.township_code, found.community_code) if c]
    context = {
        "device": found,
        "kind": kind,
        "latest": sensing.latest_of(_pipeline(request), found.id, runtime_of(request).overlay()),
        "readings": sensing.device_readings(request.app.state.analytics, found.id, since),
        "places": [p for p in places if p is not None],
    }
    return templates.render(request, "sensing/device.html", context)

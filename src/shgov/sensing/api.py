"""The sensing API: device types, devices (listed, read, imported in bulk), readings from gateways, the
ingest counters, the reject store and the history of a measure over an area."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from shgov.core.deps import SessionDep, SettingsDep
from shgov.core.errors import FieldError, InvalidError, Problem
from shgov.core.files import read_upload
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_
from shgov.core.identity.deps import CurrentPrincipal, audit
from shgov.core.regions.api import IndexDep
from shgov.sensing import service as sensing
from shgov.sensing import watch
from shgov.sensing.pipeline import Pipeline
from shgov.sensing.readings import JSON, decode
from shgov.sensing.runtime import runtime_of
from shgov.sensing.schemas import (
    DeviceImportOut,
    DeviceOut,
    DevicePage,
    DeviceTypeOut,
    IndicatorOut,
    IndicatorValue,
    IngestOut,
    RefusedOut,
    RejectOut,
    SeriesOut,
    SeriesPoint,
    StatsOut,
    WarningOut,
)

router = APIRouter(prefix="/api/v1/sensing", tags=["sensing"], route_class=JsonRoute)


@router.get("/types", response_model=list[DeviceTypeOut])
def types(session: SessionDep, principal: CurrentPrincipal) -> list[DeviceTypeOut]:
    """Every device type with its measures, units and valid ranges."""
    return [DeviceTypeOut.model_validate(t) for t in sensing.list_types(session)]


@router.get("/devices", response_model=DevicePage)
def devices(
    session: SessionDep,
    principal: CurrentPrincipal,
    district: Annotated[str | None, Query(max_length=12)] = None,
    type: Annotated[str | None, Query(max_length=30)] = None,
    status: Annotated[str | None, Query(pattern="^(active|maintenance|retired)$")] = None,
    grid: Annotated[str | None, Query(max_length=15)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DevicePage:
    """The devices the caller may see, filtered, a page at a time."""
    if not principal.has_action(sensing.READ):
        raise Problem("forbidden", detail=N_("Seeing devices needs sensing.devices.read."))
    total, page = sensing.list_devices(
        session, principal, district=district, type_code=type, status=status, grid=grid, limit=limit, offset=offset
    )
    return DevicePage(total=total, items=[DeviceOut.model_validate(d) for d in page])


@router.get("/devices/{device_id}", response_model=DeviceOut)
def device(session: SessionDep, principal: CurrentPrincipal, device_id: str) -> DeviceOut:
    """One device."""
    return DeviceOut.model_validate(sensing.get_device(session, principal, device_id))


@router.post("/devices/import", response_model=DeviceImportOut)
async def import_devices(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    index: IndexDep,
    principal: CurrentPrincipal,
    file: Annotated[UploadFile, File(description="CSV (UTF-8) or Parquet: device_id, type, department, lng, lat")],
    partial: bool = False,
) -> DeviceImportOut:
    """Add or update devices from a file. Every row is checked first; one refused row refuses the file (422,
    every refused row listed) unless ``partial=true``, which writes the good rows and lists the others."""
    if not principal.has_action(sensing.MANAGE):
        raise Problem("forbidden", detail=N_("Importing devices needs sensing.devices.manage."))
    data = await read_upload(file, settings.max_upload_bytes)
    frame = sensing.read_devices(file.filename or "", data, max_rows=sensing.MAX_UPLOADED_ROWS)
    result = sensing.import_devices(session, index, frame, principal, partial=partial)
    out = DeviceImportOut(
        rows=result.rows,
        created=result.created,
        updated=result.updated,
        refused=result.refused,
        refusals=[RefusedOut(row=r.row, device_id=r.device_id, reason=r.reason) for r in result.refusals],
        written=result.written,
        seconds=round(result.seconds, 3),
    )
    if not result.written:
        raise Problem(
            "validation-failed",
            detail=N_("{refused} of {rows} rows refused; nothing was imported"),
            params={"refused": result.refused, "rows": result.rows},
            errors=[FieldError("file", f"row {r.row}: {r.reason}") for r in result.refusals[:50]],
            extra={"refusals": [r.model_dump() for r in out.refusals]},
        )
    runtime_of(request).registry_changed()
    audit(
        request,
        principal,
        "sensing.devices.import",
        object_type="devices",
        details={"created": result.created, "updated": result.updated, "refused": result.refused},
    )
    return out


# -- readings -------------------------------------------------------------------------------------------


def _pipeline(request: Request) -> Pipeline:
    return runtime_of(request).pipeline()


@router.post("/readings", response_model=IngestOut, status_code=202)
async def readings(request: Request, settings: SettingsDep, principal: CurrentPrincipal) -> JSONResponse:
    """Take a gateway batch (JSON array, or ``application/x-shgov-readings``, see docs/sensing.md). Answers
    202 once the batch is on disk, with what was accepted and why the rest was refused (kept in the reject
    store); 422 when nothing in it could be accepted."""
    if not principal.has_action(sensing.WRITE):
        raise Problem("forbidden", detail=N_("Sending readings needs sensing.readings.write (a gateway's role)."))
    body = await request.body()
    if len(body) > 8 * settings.max_upload_bytes:
        raise InvalidError(N_("a batch is at most {limit:,} bytes"), field="body", limit=8 * settings.max_upload_bytes)
    pipeline = _pipeline(request)
    source = f"http:{principal.username}"
    try:
        batch = decode(body, request.headers.get("content-type", JSON))
    except InvalidError:
        await run_in_threadpool(pipeline.log_unreadable, source, body, "unreadable batch")
        raise

    def allowed(district: str, department: str) -> bool:
        return principal.allows(sensing.WRITE, district, department)

    result = await run_in_threadpool(lambda: pipeline.ingest(batch, source, allowed=allowed))
    out = IngestOut(accepted=result.accepted, refused=result.refused, reasons=result.reasons, examples=result.examples)
    if result.accepted == 0 and result.refused:
        raise Problem(
            "validation-failed",
            detail=N_("none of the {refused} readings was accepted; they are kept in the reject store"),
            params={"refused": result.refused},
            errors=[FieldError("body", f"{reason}: {count}") for reason, count in result.reasons.items()],
            extra=out.model_dump(mode="json"),
        )
    return JSONResponse(out.model_dump(mode="json"), status_code=202)


@router.get("/stats", response_model=StatsOut)
def stats(request: Request, principal: CurrentPrincipal) -> StatsOut:
    """This process's ingest counters: readings accepted and refused by reason, storage, lag."""
    if not principal.city_wide(sensing.READ):
        raise Problem("forbidden", detail=N_("The ingest counters are for the city's operators."))
    pipeline = _pipeline(request)
    lags = sorted(pipeline.stats.lag_ms)
    return StatsOut(
        node=pipeline.node,
        batches=pipeline.stats.batches,
        accepted=pipeline.stats.accepted,
        refused=dict(pipeline.stats.refused),
        late=pipeline.stats.late,
        flushed_segments=pipeline.stats.flushed_segments,
        flushed_rows=pipeline.stats.flushed_rows,
        devices=len(pipeline.registry.ids),
        lag_ms_p50=lags[len(lags) // 2] if lags else None,
        lag_ms_p95=lags[int(len(lags) * 0.95)] if lags else None,
    )


@router.get("/rejects", response_model=list[RejectOut])
def rejects(
    request: Request,
    principal: CurrentPrincipal,
    day: Annotated[date | None, Query(description="UTC day received (default: today)")] = None,
    reason: Annotated[str | None, Query(max_length=80)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[RejectOut]:
    """The reject store: refused readings and unreadable messages of a day, newest first."""
    if not principal.city_wide(sensing.READ):
        raise Problem("forbidden", detail=N_("The reject store is for the city's operators."))
    _pipeline(request).flush()
    found = sensing.rejects(request.app.state.analytics, day or datetime.now(UTC).date(), reason, limit)
    return [RejectOut.model_validate(row) for row in found]


@router.get("/history", response_model=SeriesOut)
def history(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    type: Annotated[str, Query(max_length=30)],
    measure: Annotated[str, Query(max_length=40)],
    level: Annotated[str | None, Query(pattern="^(district|township|grid)$")] = None,
    area: Annotated[str | None, Query(max_length=15)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    every: Annotated[str, Query(pattern="^(minute|hour|day)$")] = "hour",
) -> SeriesOut:
    """A measure of a device type over an area and a period (default: the last 7 days, hourly), e.g. the
    water level in 浦东新区: ``?type=water_level&measure=depth_cm&level=district&area=310115``."""
    kind = sensing.get_type(session, type)
    unit = next((str(m["unit"]) for m in kind.measures if m["code"] == measure), None)
    if unit is None:
        raise InvalidError(N_("{type} does not measure {measure!r}"), field="measure", type=type, measure=measure)
    if (level is None) != (area is None):
        raise InvalidError(N_("give both the level and the area, or neither (the whole city)"), field="area")
    district = _district_of(request, level, area)
    if not (principal.city_wide(sensing.INDICATORS) or (district and principal.allows(sensing.INDICATORS, district))):
        raise Problem("forbidden", detail=N_("You may see the history of your own districts only."))
    until = until or datetime.now(UTC)
    since = since or until - timedelta(days=7)
    if since.tzinfo is None or until.tzinfo is None:
        raise InvalidError(N_("times need their UTC offset"), field="since")
    _pipeline(request).flush()
    windows = sensing.history(
        request.app.state.analytics,
        settings.timezone,
        type,
        measure,
        level=level,
        area=area,
        since=since,
        until=until,
        every=every,
    )
    return SeriesOut(
        type=type,
        measure=measure,
        unit=unit,
        area=area or settings.city_code,
        every=every,
        points=[SeriesPoint(**vars(w)) for w in windows],
    )


@router.get("/indicators", response_model=list[IndicatorOut])
def indicators(request: Request, index: IndexDep, principal: CurrentPrincipal) -> list[IndicatorOut]:
    """The city's vital signs now, in every district the caller may see, with their warning grade."""
    if not principal.has_action(sensing.INDICATORS):
        raise Problem("forbidden", detail=N_("The vital signs need sensing.indicators.read."))
    runtime = runtime_of(request)
    now = sensing.vitals(
        runtime.readings(),
        runtime.pipeline().version,
        index,
        lambda district: principal.allows(sensing.INDICATORS, district),
        digits=3,
    )
    return [
        IndicatorOut(
            **{k: v for k, v in i.items() if k != "districts"},
            values=[
                IndicatorValue(
                    district=row["code"], value=row["value"], grade=row["grade"], devices_reporting=row["reporting"]
                )
                for row in i["districts"]
            ],
        )
        for i in now["indicators"]
    ]


@router.get("/warnings", response_model=list[WarningOut])
def warnings(
    session: SessionDep,
    principal: CurrentPrincipal,
    status: Annotated[str | None, Query(pattern="^(open|cleared)$")] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[WarningOut]:
    """The warnings of the caller's districts, most severe first."""
    if not principal.has_action(sensing.INDICATORS):
        raise Problem("forbidden", detail=N_("Warnings need sensing.indicators.read."))
    found = watch.visible_warnings(session, principal, sensing.INDICATORS, status=status, limit=limit)
    return [WarningOut.model_validate(w) for w in found]


def _district_of(request: Request, level: str | None, area: str | None) -> str | None:
    """The district an area lies in (division codes start with their district's six digits)."""
    if level is None or area is None:
        return None
    district = area[:6]
    index = request.app.state.region_index
    if index is not None and index.get(district) is None:
        raise InvalidError(N_("no district {district!r}"), field="area", district=district)
    return district

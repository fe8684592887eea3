"""The sensing API: device types, devices (listed, read, imported in bulk)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from starlette.requests import Request

from shgov.core.deps import SessionDep, SettingsDep
from shgov.core.errors import FieldError, Problem
from shgov.core.files import read_upload
from shgov.core.http import JsonRoute
from shgov.core.identity.deps import CurrentPrincipal, audit
from shgov.core.regions.api import IndexDep
from shgov.sensing import service as sensing
from shgov.sensing.schemas import DeviceImportOut, DeviceOut, DevicePage, DeviceTypeOut, RefusedOut

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
        raise Problem("forbidden", detail="Seeing devices needs sensing.devices.read.")
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
        raise Problem("forbidden", detail="Importing devices needs sensing.devices.manage.")
    frame = sensing.read_devices(file.filename or "", await read_upload(file, settings.max_upload_bytes))
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
            detail=f"{result.refused} of {result.rows} rows refused; nothing was imported",
            errors=[FieldError("file", f"row {r.row}: {r.reason}") for r in result.refusals[:50]],
            extra={"refusals": [r.model_dump() for r in out.refusals]},
        )
    audit(
        request,
        principal,
        "sensing.devices.import",
        object_type="devices",
        details={"created": result.created, "updated": result.updated, "refused": result.refused},
    )
    return out

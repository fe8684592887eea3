"""The lake API: resources, loads (归集) with lineage, quarantined rows and quality scores."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shgov.core.deps import DatabaseDep, SessionDep, SettingsDep
from shgov.core.errors import Problem, problem_response
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_, request_locale
from shgov.core.identity.deps import CurrentPrincipal, access, audit, require_action
from shgov.core.identity.permissions import Principal
from shgov.core.regions.api import IndexDep
from shgov.lake import schemas
from shgov.lake import service as lake
from shgov.lake.access import VisibleLoad, find_resource, may_see

router = APIRouter(prefix="/api/v1/lake", tags=["lake"], route_class=JsonRoute)


@router.get("/resources", response_model=list[schemas.ResourceOut])
def resources(
    session: SessionDep, principal: Annotated[Principal, Depends(require_action(lake.LOAD_READ))]
) -> list[schemas.ResourceOut]:
    """Resources the caller may see, with schema, version and quality score."""
    return [
        schemas.ResourceOut.model_validate(r, from_attributes=True)
        for r in lake.list_resources(session)
        if may_see(session, principal, r)
    ]


@router.post("/resources/{code}/loads", response_model=schemas.LoadResultOut, status_code=201)
async def create_load(
    request: Request,
    code: str,
    db: DatabaseDep,
    settings: SettingsDep,
    index: IndexDep,
    principal: CurrentPrincipal,
    file: Annotated[UploadFile, File(description="CSV (UTF-8 or GBK), XLSX, JSON Lines or Parquet")],
    mode: Annotated[str, Form(pattern="^(full|incremental)$")] = "full",
) -> Response:
    """Load a delivery of ``code``; 201 with the result, 200 when the same file was loaded before."""
    with db.session(write=False) as session:
        row = access(session, principal, find_resource(session, code), may_see)
        if not principal.allows_on(lake.LOAD_CREATE, row):
            raise Problem(
                "forbidden",
                detail=N_("This needs the permission {action} for this object."),
                params={"action": lake.LOAD_CREATE},
            )
        department = row.department_code
    name = Path(file.filename or "delivery").name
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        source = lake.Source(path=path, name=name)
        context = lake.make_context(settings.lake_dir, lake.region_codes(index))
        try:
            result = lake.deliver(
                db,
                settings.lake_dir,
                code,
                source,
                department_code=department,
                mode=mode,
                context=context,
                loaded_by=principal.username,
            )
        except lake.LoadError as exc:
            audit(
                request,
                principal,
                "lake.load.create",
                outcome="failed",
                object_type="resource",
                object_id=code,
                details={"error": exc.message},
            )
            # Answered, not raised: the failure's lineage must be kept, not rolled back with the request.
            return problem_response(request, exc.to_problem(request_locale(request)))
    audit(
        request,
        principal,
        "lake.load.create",
        object_type="resource",
        object_id=code,
        details={
            "load": str(result.load_id),
            "status": result.status,
            "rows_in": result.rows_in,
            "quarantined": result.rows_quarantined,
        },
    )
    body = schemas.LoadResultOut(**vars(result)).model_dump(mode="json")
    return JSONResponse(body, status_code=201 if result.status == "succeeded" else 200)


@router.get("/loads", response_model=list[schemas.LoadOut])
def loads(
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_action(lake.LOAD_READ))],
    resource: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[schemas.LoadOut]:
    """Lineage of loads, newest first."""
    return [
        schemas.LoadOut.model_validate(r, from_attributes=True)
        for r in lake.list_loads(session, resource, limit=limit)
        if may_see(session, principal, r)
    ]


@router.get("/loads/{load_id}", response_model=schemas.LoadOut)
def one_load(row: VisibleLoad, load_id: uuid.UUID) -> schemas.LoadOut:
    """One load's lineage."""
    return schemas.LoadOut.model_validate(row, from_attributes=True)


@router.get("/loads/{load_id}/quarantine", response_model=schemas.QuarantinePage)
def quarantine(
    request: Request,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    row: VisibleLoad,
    load_id: uuid.UUID,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> schemas.QuarantinePage:
    """The rows a load quarantined, with the rules they broke (audited: they may hold personal data)."""
    total, rows = lake.quarantined_rows(settings.lake_dir, row.resource_code, row.id, offset, limit)
    audit(
        request,
        principal,
        "lake.quarantine.read",
        object_type="load",
        object_id=str(load_id),
        tenant_code=row.tenant_code,
        details={"rows": len(rows)},
    )
    return schemas.QuarantinePage(total=total, offset=offset, rows=rows)


@router.get("/quality/trend")
def trend(
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_action(lake.LOAD_READ))],
    resource: str | None = None,
    limit: Annotated[int, Query(ge=1, le=365)] = 30,
) -> dict[str, list[dict[str, object]]]:
    """Quality score of each visible resource's loads over time."""
    visible = {r.code for r in lake.list_resources(session) if may_see(session, principal, r)}
    return {
        code: [{"at": at.isoformat(), "score": score} for at, score in points]
        for code, points in lake.quality_trend(session, resource, limit).items()
        if code in visible
    }


@router.get("/quality", response_model=schemas.QualityOut)
def quality(
    session: SessionDep, principal: Annotated[Principal, Depends(require_action(lake.LOAD_READ))]
) -> schemas.QualityOut:
    """Quality score per resource (latest load) and per department."""
    rows = [r for r in lake.list_resources(session) if may_see(session, principal, r)]
    departments = {
        d: s for d, s in lake.department_scores(session).items() if any(r.department_code == d for r in rows)
    }
    return schemas.QualityOut(resources={r.code: r.quality_score for r in rows}, departments=departments)

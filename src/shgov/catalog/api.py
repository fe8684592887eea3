"""The catalog API: search, entries and their life, import/export, the three lists and their report.

An entry's code (信息资源代码) holds a slash — ``301001/00003`` — and is addressed as two path
segments: ``/api/v1/catalog/resources/301001/00003``.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Query, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from shgov.catalog import service as catalog
from shgov.catalog.schemas import (
    DemandIn,
    DemandOut,
    DutyIn,
    DutyOut,
    EventOut,
    HitOut,
    ItemOut,
    NegativeIn,
    NegativeOut,
    ResourceIn,
    ResourceOut,
    SearchOut,
    TransitionIn,
    VersionOut,
)
from shgov.core.deps import SessionDep, SettingsDep
from shgov.core.errors import Problem
from shgov.core.files import read_upload
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_
from shgov.core.identity.deps import CurrentPrincipal, audit
from shgov.core.identity.permissions import Principal
from shgov.core.openapi import XLSX, file_answer

router = APIRouter(prefix="/api/v1/catalog", tags=["catalog"], route_class=JsonRoute)
Multi = Annotated[list[str] | None, Query()]


def _reader(principal: Principal) -> None:
    if not principal.has_action(catalog.READ):
        raise Problem("forbidden", detail=N_("The catalog is for staff of departments and districts."))


def _entry(session: SessionDep, principal: Principal, prefix: str, serial: str) -> catalog.CatalogResource:
    resource = catalog.get_resource(session, f"{prefix}/{serial}")
    if not catalog.visible(principal, resource):
        raise Problem("not-found", detail=N_("No such catalog entry."))
    return resource


def _out(session: SessionDep, resource: catalog.CatalogResource) -> ResourceOut:
    out = ResourceOut.model_validate(resource)
    out.items = [ItemOut.model_validate(i) for i in catalog.items_of(session, resource.id)]
    return out


def _data(body: ResourceIn) -> catalog.ResourceData:
    return catalog.ResourceData(
        **body.model_dump(exclude={"items"}), items=[catalog.ItemData(**i.model_dump()) for i in body.items]
    )


@router.get("/resources", response_model=SearchOut)
def search(
    session: SessionDep,
    principal: CurrentPrincipal,
    q: Annotated[str, Query(max_length=200)] = "",
    department: Multi = None,
    tenant: Multi = None,
    sharing_type: Multi = None,
    format_class: Multi = None,
    update_cycle: Multi = None,
    sensitivity: Multi = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> SearchOut:
    """Chinese full-text search over published entries, with facet counts (repeat a facet to OR values)."""
    _reader(principal)
    filters = {
        "department_code": department or [],
        "tenant_code": tenant or [],
        "sharing_type": sharing_type or [],
        "format_class": format_class or [],
        "update_cycle": update_cycle or [],
        "sensitivity": sensitivity or [],
    }
    page = catalog.search(session, q, filters, offset, limit)
    return SearchOut(
        total=page.total,
        offset=offset,
        limit=limit,
        words=page.words,
        facets=page.facets,
        results=[
            HitOut(
                code=h.resource.code,
                title=h.resource.title,
                summary=h.resource.summary,
                provider_department_code=h.resource.provider_department_code,
                sharing_type=h.resource.sharing_type,
                format_class=h.resource.format_class,
                update_cycle=h.resource.update_cycle,
                version=h.resource.version,
                score=round(h.score, 4),
            )
            for h in page.hits
        ],
    )


@router.get("/entries", response_model=list[ResourceOut])
def entries(
    session: SessionDep,
    principal: CurrentPrincipal,
    status: Literal["draft", "review", "published", "retired"] | None = None,
    department: str | None = None,
) -> list[ResourceOut]:
    """Every entry the caller may see, drafts included (their own department's, or all for reviewers)."""
    _reader(principal)
    return [_out(session, r) for r in catalog.list_resources(session, principal, status, department)]


@router.post("/resources", response_model=ResourceOut, status_code=201)
def create(request: Request, session: SessionDep, body: ResourceIn, principal: CurrentPrincipal) -> ResourceOut:
    """Write a new draft entry for the caller's department."""
    resource = catalog.create_resource(session, principal, _data(body))
    audit(request, principal, "catalog.resource.create", object_type="catalog_resource", object_id=resource.code)
    return _out(session, resource)


@router.get("/export", response_class=Response, responses=file_answer("text/csv", XLSX))
def export(
    session: SessionDep,
    principal: CurrentPrincipal,
    format: Literal["csv", "xlsx"] = "csv",
    status: Literal["draft", "review", "published", "retired"] | None = None,
) -> Response:
    """The entries the caller may see as CSV (UTF-8 with BOM) or XLSX, in the import's columns."""
    _reader(principal)
    rows = catalog.export_rows(session, catalog.list_resources(session, principal, status))
    if format == "xlsx":
        body = catalog.export_xlsx(rows)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    else:
        body, media = catalog.export_csv(rows), "text/csv; charset=utf-8"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="catalog.{format}"'})


@router.post("/import", status_code=201)
async def import_file(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="CSV (UTF-8 or GBK) or XLSX with the export's columns")],
    principal: CurrentPrincipal,
) -> dict[str, list[str]]:
    """Create or change drafts from a file; one bad row refuses the whole file, naming the row."""
    rows = catalog.read_import(await read_upload(file, settings.max_upload_bytes), file.filename or "")
    result = catalog.import_rows(session, principal, rows)
    audit(
        request,
        principal,
        "catalog.resource.import",
        object_type="catalog",
        details={"created": len(result.created), "updated": len(result.updated)},
    )
    return {"created": result.created, "updated": result.updated}


@router.get("/resources/{prefix}/{serial}", response_model=ResourceOut)
def one(session: SessionDep, principal: CurrentPrincipal, prefix: str, serial: str) -> ResourceOut:
    """An entry's working copy with its items."""
    return _out(session, _entry(session, principal, prefix, serial))


@router.put("/resources/{prefix}/{serial}", response_model=ResourceOut)
def change(
    request: Request, session: SessionDep, prefix: str, serial: str, body: ResourceIn, principal: CurrentPrincipal
) -> ResourceOut:
    """Change a draft."""
    resource = _entry(session, principal, prefix, serial)
    catalog.update_resource(session, principal, resource, _data(body))
    audit(request, principal, "catalog.resource.edit", object_type="catalog_resource", object_id=resource.code)
    return _out(session, resource)


@router.post("/resources/{prefix}/{serial}/transitions", response_model=ResourceOut)
def step(
    request: Request, session: SessionDep, prefix: str, serial: str, body: TransitionIn, principal: CurrentPrincipal
) -> ResourceOut:
    """Submit, approve (publish), return with a reason, revise or retire an entry."""
    resource = _entry(session, principal, prefix, serial)
    catalog.transition(session, principal, resource, body.action, body.note)
    audit(
        request,
        principal,
        f"catalog.resource.{body.action}",
        object_type="catalog_resource",
        object_id=resource.code,
        details={"status": resource.status, "version": resource.version},
    )
    return _out(session, resource)


@router.get("/resources/{prefix}/{serial}/history", response_model=list[EventOut])
def entry_history(session: SessionDep, principal: CurrentPrincipal, prefix: str, serial: str) -> list[EventOut]:
    """Every step of an entry, oldest first."""
    resource = _entry(session, principal, prefix, serial)
    return [EventOut.model_validate(e) for e in catalog.history(session, resource.id)]


@router.get("/resources/{prefix}/{serial}/versions", response_model=list[VersionOut])
def entry_versions(session: SessionDep, principal: CurrentPrincipal, prefix: str, serial: str) -> list[VersionOut]:
    """Every published version, newest first, each exactly as published."""
    resource = _entry(session, principal, prefix, serial)
    return [VersionOut.model_validate(v) for v in catalog.versions(session, resource.id)]


@router.get("/resources/{prefix}/{serial}/shareable")
def shareable(
    session: SessionDep,
    principal: CurrentPrincipal,
    prefix: str,
    serial: str,
    items: Annotated[str | None, Query(description="comma-separated item names; all when omitted")] = None,
) -> dict[str, Any]:
    """Which items of the live version may be shared, and which the negative list refuses (with its basis)."""
    resource = _entry(session, principal, prefix, serial)
    wanted = [i.strip() for i in items.split(",") if i.strip()] if items else None
    return asdict(catalog.shareable_items(session, resource.code, wanted))


# -- the three lists -------------------------------------------------------------------------------------


@router.get("/demands", response_model=list[DemandOut])
def demand_list(session: SessionDep, principal: CurrentPrincipal) -> list[DemandOut]:
    """The demand list (需求清单)."""
    _reader(principal)
    return [DemandOut.model_validate(d) for d in catalog.demands(session)]


@router.post("/demands", response_model=DemandOut, status_code=201)
def add_demand(request: Request, session: SessionDep, body: DemandIn, principal: CurrentPrincipal) -> DemandOut:
    """State a department's need: items, scenario, and the resource when known."""
    entry = catalog.add_demand(
        session,
        principal,
        body.department_code,
        body.tenant_code,
        body.items,
        body.scenario,
        body.resource_code,
        body.key_scenario_code,
    )
    audit(request, principal, "catalog.demand.add", object_type="catalog_demand", object_id=str(entry.id))
    return DemandOut.model_validate(entry)


@router.get("/duties", response_model=list[DutyOut])
def duty_list(session: SessionDep, principal: CurrentPrincipal) -> list[DutyOut]:
    """The duty list (责任清单)."""
    _reader(principal)
    return [DutyOut.model_validate(d) for d in catalog.duties(session)]


@router.post("/duties", response_model=DutyOut, status_code=201)
def add_duty(request: Request, session: SessionDep, body: DutyIn, principal: CurrentPrincipal) -> DutyOut:
    """Assign a delivery duty (the big-data centre)."""
    entry = catalog.add_duty(session, principal, body.department_code, body.resource_code, body.update_cycle, body.note)
    audit(request, principal, "catalog.duty.add", object_type="catalog_duty", object_id=str(entry.id))
    return DutyOut.model_validate(entry)


@router.get("/negative", response_model=list[NegativeOut])
def negative(session: SessionDep, principal: CurrentPrincipal) -> list[NegativeOut]:
    """The negative list (负面清单), each entry with its legal basis."""
    _reader(principal)
    return [NegativeOut.model_validate(n) for n in catalog.negative_list(session)]


@router.post("/negative", response_model=NegativeOut, status_code=201)
def add_negative(request: Request, session: SessionDep, body: NegativeIn, principal: CurrentPrincipal) -> NegativeOut:
    """Put a resource or an item on the negative list."""
    entry = catalog.add_negative(session, principal, body.resource_code, body.item, body.legal_basis, body.note)
    audit(request, principal, "catalog.negative.add", object_type="catalog_negative", object_id=str(entry.id))
    return NegativeOut.model_validate(entry)


@router.delete("/{kind}/{entry_id}", status_code=204)
def remove(
    request: Request,
    session: SessionDep,
    kind: Literal["demands", "duties", "negative"],
    entry_id: uuid.UUID,
    principal: CurrentPrincipal,
) -> Response:
    """Take an entry off a list."""
    catalog.remove_entry(session, principal, kind, entry_id)
    audit(request, principal, f"catalog.{kind}.remove", object_type="catalog_list", object_id=str(entry_id))
    return Response(status_code=204)


@router.get("/report")
def report(session: SessionDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """The lists checked: demands nothing satisfies (gaps), demands for negative-listed items, overdue duties."""
    _reader(principal)
    return asdict(catalog.report(session))


@router.get("/key-scenarios")
def scenarios(session: SessionDep, principal: CurrentPrincipal) -> list[dict[str, str]]:
    """The key-scenario list (重点工作应用场景清单) that 1515's one-day tier refers to."""
    _reader(principal)
    return [{"code": s.code, "name": s.name, "description": s.description} for s in catalog.key_scenarios(session)]

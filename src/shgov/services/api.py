"""The services API: search, guides, items and bundles (admin import/export), the field dictionary."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from shgov.core.deps import SessionDep, SettingsDep
from shgov.core.errors import InvalidError, Problem
from shgov.core.files import read_upload
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_
from shgov.core.identity.deps import CurrentPrincipal, audit
from shgov.core.identity.permissions import Principal
from shgov.core.openapi import file_answer
from shgov.services import service as services
from shgov.services.schemas import SearchHit

router = APIRouter(prefix="/api/v1/services", tags=["services"], route_class=JsonRoute)


def _admin(principal: Principal) -> None:
    if not principal.has_action(services.MANAGE):
        raise Problem("forbidden", detail=N_("Managing service items needs services.item.manage."))


@router.get("/search", response_model=list[SearchHit])
def search(
    session: SessionDep,
    q: Annotated[str, Query(max_length=100)] = "",
    life_event: Annotated[str, Query(max_length=20)] = "",
    target: Annotated[str, Query(pattern="^(|person|enterprise)$")] = "",
) -> list[dict[str, Any]]:
    """Items and bundles by keyword and/or life situation (public: the guide is for everyone)."""
    return services.search(session, q, life_event, target)


@router.get("/items")
def items(session: SessionDep, department: Annotated[str, Query(max_length=12)] = "") -> list[dict[str, Any]]:
    """Every item in the import format (public: the implementation list is published)."""
    return [row for row in services.export_items(session) if not department or row["department_key"] == department]


@router.get("/items/{code}")
def item(session: SessionDep, code: str) -> dict[str, Any]:
    """One item (its guide data)."""
    found = services.get_item(session, code)
    return {c: getattr(found, c) for c in services.EXPORT_COLUMNS} | {"version": found.version}


@router.get("/export", response_class=Response, responses=file_answer("application/json", "text/csv"))
def export(
    session: SessionDep, principal: CurrentPrincipal, format: Annotated[str, Query(pattern="^(json|csv)$")] = "json"
) -> Response:
    """All items as JSON or CSV (the import format)."""
    _admin(principal)
    rows = services.export_items(session)
    if format == "csv":
        return Response(
            "\ufeff" + services.items_to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="service-items.csv"'},
        )
    return Response(json.dumps(rows, ensure_ascii=False), media_type="application/json")


@router.post("/import")
async def import_items(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    file: Annotated[UploadFile, File()],
) -> dict[str, int]:
    """Import items from CSV or JSON, all or nothing."""
    _admin(principal)
    data = await read_upload(file, settings.max_upload_bytes, "file")
    rows = services.parse_items_file(file.filename or "", data)
    counts = services.import_items(session, rows)
    audit(request, principal, "services.item.import", object_type="service_items", details=counts)
    return counts


@router.get("/bundles")
def bundles(session: SessionDep) -> list[dict[str, Any]]:
    """Every bundle with its items (public)."""
    return [
        {
            "code": b.code,
            "name": b.name,
            "description": b.description,
            "items": b.item_codes,
            "promised_days": b.promised_days,
            "version": b.version,
            "status": b.status,
        }
        for b in services.list_bundles(session)
    ]


@router.put("/bundles/{code}")
def put_bundle(
    request: Request, session: SessionDep, principal: CurrentPrincipal, code: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Create or replace a bundle (items + sections + BPMN XML in ``bpmn``): checked, never run as code."""
    _admin(principal)
    if body.get("code", code) != code:
        raise InvalidError(N_("the code in the body differs from the path"), field="code")
    bundle = services.save_bundle(session, {**body, "code": code})
    audit(request, principal, "services.bundle.save", object_type="bundle", object_id=code)
    return {"code": bundle.code, "version": bundle.version}


@router.get("/offerings/{kind}/{code}/guide")
def guide(session: SessionDep, kind: str, code: str) -> dict[str, Any]:
    """一次告知: the merged conditions and materials of a bundle or item."""
    found = services.guide(services.offering(session, kind, code))
    return {
        "name": found.offer.name,
        "description": found.offer.description,
        "conditions": found.conditions,
        "materials": [vars(m) for m in found.materials],
        "promised_days": found.offer.promised_days,
        "channels": found.channels,
        "fees": found.fees,
        "visits": found.visits,
        "items": [
            {
                "code": i.code,
                "name": i.name,
                "department": services.department_name(i.department_key),
                "promised_days": i.promised_days,
                "statutory_days": i.statutory_days,
                "result_licence_type": i.result_licence_type,
            }
            for i in found.items
        ],
    }


@router.get("/consistency")
def consistency(session: SessionDep, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """线上线下一致: items whose service-hall definition differs from the online one."""
    _admin(principal)
    return services.inconsistencies(session)


@router.get("/fields")
def fields(session: SessionDep) -> list[dict[str, Any]]:
    """The shared field dictionary."""
    return [
        {c.name: getattr(f, c.name) for c in f.__table__.columns} for f in services.field_dictionary(session).values()
    ]

"""Pages of services: search by keyword or life situation, guides (办事指南), and the admin's bundles page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, UploadFile
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from shgov.core.deps import SessionDep, SettingsDep
from shgov.core.errors import DomainError, Problem
from shgov.core.files import read_upload
from shgov.core.i18n import N_, request_locale
from shgov.core.identity.deps import audit, page_principal
from shgov.core.identity.permissions import Principal
from shgov.services import service as services
from shgov.web.pages import TemplatesDep, web_user
from shgov.web.templating import NavItem

router = APIRouter(include_in_schema=False, dependencies=[Depends(web_user)])
MANAGERS_ONLY = "Managing service items needs services.item.manage."
Manager = Annotated[Principal, Depends(page_principal(services.MANAGE, MANAGERS_ONLY))]

NAV = [
    (
        "citizens",
        NavItem(
            "services",
            N_("Find a service"),
            "/services",
            N_("Search by keyword or life situation; read what to prepare; apply once for a bundle."),
        ),
    ),
    (
        "data",
        NavItem(
            "services-admin",
            N_("Service items and bundles"),
            "/data/services",
            N_("Add 一件事 bundles (JSON + BPMN), import items, check online/offline consistency."),
        ),
    ),
]


@router.get("/services", response_class=HTMLResponse)
def search_page(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    q: Annotated[str, Query(max_length=100)] = "",
    life_event: Annotated[str, Query(max_length=20)] = "",
    target: Annotated[str, Query(pattern="^(|person|enterprise)$")] = "",
) -> Response:
    """Search services by keyword and life situation (public)."""
    hits = services.search(session, q, life_event, target) if (q or life_event or target) else []
    bundles = [b for b in services.list_bundles(session) if b.status == "active"]
    return templates.render(
        request,
        "services/search.html",
        {
            "q": q,
            "life_event": life_event,
            "target": target,
            "life_events": services.LIFE_EVENTS,
            "hits": hits,
            "searched": bool(q or life_event or target),
            "bundles": bundles,
        },
    )


@router.get("/services/{kind}/{code}", response_class=HTMLResponse)
def guide_page(request: Request, templates: TemplatesDep, session: SessionDep, kind: str, code: str) -> Response:
    """办事指南 of an item, or the one merged guide (一次告知) of a bundle (public)."""
    if kind not in ("items", "bundles"):
        raise Problem("not-found", detail=N_("No {kind}."), params={"kind": kind})
    offer = services.offering(session, kind.removesuffix("s"), code)
    return templates.render(
        request,
        "services/guide.html",
        {
            "guide": services.guide(offer),
            "department_name": services.department_name,
            "channel_labels": services.CHANNEL_LABELS,
        },
    )


def _admin_page(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    *,
    error: str | None = None,
    message: str | None = None,
    status_code: int = 200,
) -> Response:
    return templates.render(
        request,
        "services/admin.html",
        {
            "bundles": services.list_bundles(session),
            "item_count": len(services.list_items(session)),
            "differences": services.inconsistencies(session),
            "error": error,
            "message": message,
        },
        status_code=status_code,
    )


@router.get("/data/services", response_class=HTMLResponse)
def admin(request: Request, templates: TemplatesDep, session: SessionDep, who: Manager) -> Response:
    """Bundles and their versions, the upload forms and the online/offline consistency list."""
    return _admin_page(request, templates, session)


@router.post("/data/services/bundles")
async def upload_bundles(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    who: Manager,
    definition: Annotated[UploadFile, File()],
    bpmn: Annotated[list[UploadFile | str] | None, File()] = None,
) -> Response:
    """Add or replace bundles from a JSON definition and its BPMN files: all are checked, all or none saved."""
    try:
        data = await read_upload(definition, settings.max_upload_bytes, "definition")
        files = {
            (f.filename or "").rsplit("/", 1)[-1]: await read_upload(f, settings.max_upload_bytes, "bpmn")
            for f in bpmn or []
            if isinstance(f, StarletteUpload) and (f.filename or f.size)
        }
        saved = [services.save_bundle(session, entry) for entry in services.parse_bundles(data, files)]
    except DomainError as exc:
        session.rollback()
        return _admin_page(request, templates, session, error=exc.text(request_locale(request)), status_code=422)
    for bundle in saved:
        audit(request, who, "services.bundle.save", object_type="bundle", object_id=bundle.code)
    return RedirectResponse("/data/services?saved=" + ",".join(b.code for b in saved), status_code=303)


@router.post("/data/services/items")
async def upload_items(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    who: Manager,
    file: Annotated[UploadFile, File()],
) -> Response:
    """Import service items from a CSV or JSON export, all or nothing."""
    try:
        data = await read_upload(file, settings.max_upload_bytes, "file")
        counts = services.import_items(session, services.parse_items_file(file.filename or "", data))
    except DomainError as exc:
        session.rollback()
        return _admin_page(request, templates, session, error=exc.text(request_locale(request)), status_code=422)
    audit(request, who, "services.item.import", object_type="service_items", details=counts)
    return RedirectResponse(f"/data/services?created={counts['created']}&updated={counts['updated']}", 303)

"""Pages of the catalog: search with facets, an entry with its items, versions and history (and the
review actions), and the three lists with their report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from shgov.catalog import service as catalog
from shgov.catalog.builtin import (
    FORMAT_CLASSES,
    OPEN_TYPES,
    SENSITIVITY,
    SHARING_METHODS,
    SHARING_TYPES,
    UPDATE_CYCLES,
)
from shgov.core.deps import SessionDep
from shgov.core.errors import Problem
from shgov.core.i18n import N_
from shgov.core.identity.deps import SignedInPage, audit
from shgov.core.identity.permissions import Principal
from shgov.core.orgs.service import list_departments
from shgov.web.pages import TemplatesDep, web_user
from shgov.web.templating import NavItem

router = APIRouter(include_in_schema=False, dependencies=[Depends(web_user)])

NAV = [
    (
        "data",
        NavItem(
            "catalog",
            N_("Data catalog"),
            "/data/catalog",
            N_("Find every department's data resources; demand, duty and negative lists."),
        ),
    )
]
LABELS = {
    "sharing_type": SHARING_TYPES,
    "open_type": OPEN_TYPES,
    "format_class": FORMAT_CLASSES,
    "sharing_method": SHARING_METHODS,
    "update_cycle": {k: v[0] for k, v in UPDATE_CYCLES.items()},
    "sensitivity": SENSITIVITY,
}
# Names of the steps, as the page's buttons and history show them (the catalogue translates them).
ACTION_NAMES = (N_("create"), N_("edit"), N_("submit"), N_("approve"), N_("return"), N_("revise"), N_("retire"))
FACET_TITLES = {
    "department_code": N_("Department"),
    "tenant_code": N_("Tenant"),
    "sharing_type": N_("Sharing type"),
    "format_class": N_("Format"),
    "update_cycle": N_("Update cycle"),
    "sensitivity": N_("Sensitivity"),
}


def _reader(who: SignedInPage) -> Principal:
    """The visitor, when they may read the catalog; 403 otherwise."""
    if not who.has_action(catalog.READ):
        raise Problem("forbidden", detail=N_("The catalog is for staff of departments and districts."))
    return who


Reader = Annotated[Principal, Depends(_reader)]


def _entry(session: SessionDep, who: Principal, prefix: str, serial: str) -> catalog.CatalogResource:
    resource = catalog.get_resource(session, f"{prefix}/{serial}")
    if not catalog.visible(who, resource):
        raise Problem("not-found", detail=N_("No such catalog entry."))
    return resource


def _names(session: SessionDep) -> dict[str, str]:
    return {d.code: d.short_name for d in list_departments(session)}


@router.get("/data/catalog", response_class=HTMLResponse)
def search_page(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    who: Reader,
    q: Annotated[str, Query(max_length=200)] = "",
    department_code: Annotated[list[str] | None, Query()] = None,
    sharing_type: Annotated[list[str] | None, Query()] = None,
    format_class: Annotated[list[str] | None, Query()] = None,
    update_cycle: Annotated[list[str] | None, Query()] = None,
    sensitivity: Annotated[list[str] | None, Query()] = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    """Search the published catalog; facets narrow the results."""
    filters = {
        "department_code": department_code or [],
        "sharing_type": sharing_type or [],
        "format_class": format_class or [],
        "update_cycle": update_cycle or [],
        "sensitivity": sensitivity or [],
    }
    page = catalog.search(session, q, filters, offset, 20)
    return templates.render(
        request,
        "catalog/search.html",
        {
            "q": q,
            "page": page,
            "filters": filters,
            "offset": offset,
            "labels": LABELS | {"department_code": _names(session)},
            "facet_titles": FACET_TITLES,
            "drafts": [r for r in catalog.list_resources(session, who) if r.status in ("draft", "review")],
        },
    )


@router.get("/data/catalog/lists", response_class=HTMLResponse)
def lists_page(request: Request, templates: TemplatesDep, session: SessionDep, who: Reader) -> Response:
    """The demand, duty and negative lists, and what checking them found."""
    return templates.render(
        request,
        "catalog/lists.html",
        {
            "demands": catalog.demands(session),
            "duties": catalog.duties(session),
            "negative": catalog.negative_list(session),
            "report": catalog.report(session),
            "scenarios": {s.code: s.name for s in catalog.key_scenarios(session)},
            "names": _names(session),
            "cycles": LABELS["update_cycle"],
        },
    )


@router.get("/data/catalog/{prefix}/{serial}", response_class=HTMLResponse)
def entry_page(
    request: Request, templates: TemplatesDep, session: SessionDep, who: Reader, prefix: str, serial: str
) -> Response:
    """An entry: metadata, data items, published versions, history and the actions the visitor may take."""
    resource = _entry(session, who, prefix, serial)
    negative = {n.item: n.legal_basis for n in catalog.negative_list(session) if n.resource_code == resource.code}
    reviewer = who.allows(catalog.REVIEW, resource.tenant_code)
    editor = who.allows(catalog.EDIT, resource.tenant_code, resource.provider_department_code)
    actions = [
        a for a in catalog.TRANSITIONS.get(resource.status, {}) if (reviewer if a in catalog.REVIEW_ACTIONS else editor)
    ]
    return templates.render(
        request,
        "catalog/entry.html",
        {
            "r": resource,
            "items": catalog.items_of(session, resource.id),
            "versions": catalog.versions(session, resource.id),
            "history": catalog.history(session, resource.id),
            "negative": negative,
            "actions": actions,
            "labels": LABELS,
            "names": _names(session),
        },
    )


@router.post("/data/catalog/{prefix}/{serial}")
def entry_action(
    request: Request,
    session: SessionDep,
    who: Reader,
    prefix: str,
    serial: str,
    action: Annotated[str, Form(pattern="^(submit|approve|return|revise|retire)$")],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Take a step on an entry from its page."""
    resource = _entry(session, who, prefix, serial)
    catalog.transition(session, who, resource, action, note)
    audit(request, who, f"catalog.resource.{action}", object_type="catalog_resource", object_id=resource.code)
    return RedirectResponse(f"/data/catalog/{prefix}/{serial}", status_code=303)

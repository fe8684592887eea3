"""Pages of the open-data portal, public: home with search and counts, search results with facets, a
dataset (metadata, data dictionary, a preview table paged, sorted and filtered on the server, downloads,
API examples) and a publisher's datasets."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from shgov.core.db import utcnow
from shgov.core.deps import SessionDep, SettingsDep
from shgov.core.errors import DomainError, Problem
from shgov.core.i18n import N_, request_locale
from shgov.core.identity.delegation import require_credential
from shgov.core.identity.deps import SignedInPage, audit
from shgov.core.identity.permissions import Principal
from shgov.opendata import service as opendata
from shgov.web.pages import TemplatesDep, WebUser, web_user
from shgov.web.templating import NavItem

router = APIRouter(include_in_schema=False, dependencies=[Depends(web_user)])

NAV = [
    (
        "citizens",
        NavItem(
            "opendata",
            N_("Open data"),
            "/opendata",
            N_("Public data of the city's departments: search, preview, download, or call the API."),
        ),
    ),
    (
        "data",
        NavItem("opendata", N_("Open data"), "/opendata", N_("What the city opens to the public, and how it is used.")),
    ),
]
FACET_TITLES = {
    "organization": N_("Publisher"),
    "groups": N_("Theme"),
    "res_format": N_("Format"),
    "open_type": N_("Openness"),
    "update_cycle": N_("Update cycle"),
}
# Update cycles as the facet shows them (English msgids; the catalogue gives 实时, 每日 …).
CYCLE_NAMES = {
    "realtime": N_("Real time"),
    "daily": N_("Daily"),
    "weekly": N_("Weekly"),
    "monthly": N_("Monthly"),
    "quarterly": N_("Quarterly"),
    "half_yearly": N_("Every half year"),
    "yearly": N_("Yearly"),
    "other": N_("Other"),
}
OPEN_TYPE_NAMES = {"unconditional": N_("Open to all"), "conditional": N_("Open on conditions")}
# Statuses of applications and keys, as the account page shows them (the catalogue translates them).
STATUS_NAMES = (N_("pending"), N_("approved"), N_("refused"), N_("withdrawn"), N_("revoked"), N_("expired"))
PAGE_SIZE = 20
PREVIEW_ROWS = 20


def _labels(request: Request) -> dict[str, dict[str, str]]:
    english = request_locale(request) == "en"
    return {
        "organization": dict(opendata.portal(request.app.state.runtimes).index.publishers),
        "groups": {code: en if english else zh for code, (zh, en) in opendata.THEMES.items()},
        "open_type": dict(OPEN_TYPE_NAMES),
        "update_cycle": dict(CYCLE_NAMES),
    }


@router.get("/opendata", response_class=HTMLResponse)
def home(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    q: Annotated[str, Query(max_length=200)] = "",
    organization: Annotated[list[str] | None, Query()] = None,
    groups: Annotated[list[str] | None, Query()] = None,
    res_format: Annotated[list[str] | None, Query()] = None,
    open_type: Annotated[list[str] | None, Query()] = None,
    update_cycle: Annotated[list[str] | None, Query()] = None,
    start: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> Response:
    """The portal: search with facets over the open datasets, and what the city opens."""
    filters = {
        "organization": organization or [],
        "groups": groups or [],
        "res_format": res_format or [],
        "open_type": open_type or [],
        "update_cycle": update_cycle or [],
    }
    fq = " ".join(f'{name}:"{value}"' for name, values in filters.items() for value in values if '"' not in value)
    docs = opendata.portal(request.app.state.runtimes).index.docs(session, str(request.base_url))
    found = opendata.search(
        docs, q=q, fq=fq, rows=PAGE_SIZE, start=start, facet_fields=list(FACET_TITLES), facet_limit=-1
    )
    return templates.render(
        request,
        "opendata/home.html",
        {
            "q": q,
            "found": found,
            "filters": filters,
            "start": start,
            "page_size": PAGE_SIZE,
            "facet_titles": FACET_TITLES,
            "labels": _labels(request),
            "total_datasets": len(docs),
            "total_publishers": len({d.facets["organization"][0] for d in docs}),
        },
    )


@router.get("/opendata/stats", response_class=HTMLResponse)
def stats_page(request: Request, templates: TemplatesDep, session: SessionDep) -> Response:
    """Public statistics: the most used datasets and the calls and downloads per day (30 days)."""
    # in a unit of work of its own: this page's stays a reader
    opendata.portal(request.app.state.runtimes).usage.flush()
    return templates.render(
        request,
        "opendata/stats.html",
        {"top": opendata.most_used(session), "days": opendata.daily_usage(session)},
    )


@router.get("/opendata/account", response_class=HTMLResponse)
def account_page(request: Request, templates: TemplatesDep, session: SessionDep, who: SignedInPage) -> Response:
    """A reuser's API keys and applications (and, for publishers, the applications to decide)."""
    return _account(request, templates, session, who, new_key=None)


def _account(
    request: Request, templates: TemplatesDep, session: SessionDep, who: Principal, new_key: str | None
) -> Response:
    # in a unit of work of its own: the page's session only reads
    opendata.portal(request.app.state.runtimes).usage.flush()
    return templates.render(
        request,
        "opendata/account.html",
        {
            "keys": opendata.keys_of(session, who.user_id),
            "key_calls": opendata.key_calls(session, who.user_id),
            "applications": opendata.applications_of(session, who.user_id),
            "to_decide": opendata.applications_to_decide(session, who),
            "new_key": new_key,
            "now": utcnow(),
        },
    )


@router.post("/opendata/account/keys", response_class=HTMLResponse)
def create_key(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    who: SignedInPage,
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Make an API key; the page shows it this once."""
    # A key stands for its maker and carries nothing of its own: the one delegation check says so.
    require_credential(who, who.user_id)
    key, raw = opendata.create_key(session, who.user_id, name)
    audit(request, who, "opendata.key.create", object_type="opendata_key", object_id=str(key.id))
    return _account(request, templates, session, who, new_key=raw)


@router.post("/opendata/account/keys/{key_id}/revoke")
def revoke_key(request: Request, session: SessionDep, who: SignedInPage, key_id: uuid.UUID) -> Response:
    """End one of the reuser's keys."""
    opendata.revoke_key(session, who.user_id, key_id)
    audit(request, who, "opendata.key.revoke", object_type="opendata_key", object_id=str(key_id))
    return RedirectResponse("/opendata/account", status_code=303)


@router.post("/opendata/applications/{application_id}")
def decide_application(
    request: Request,
    session: SessionDep,
    who: SignedInPage,
    application_id: uuid.UUID,
    action: Annotated[str, Form(max_length=10)],
    note: Annotated[str, Form(max_length=2000)] = "",
    days: Annotated[int, Form(ge=1, le=1098)] = opendata.APPLICATION_DAYS,
) -> Response:
    """The publisher approves or refuses an application."""
    application = opendata.get_application(session, application_id)
    opendata.decide(session, who, application, action, note, days)
    audit(
        request,
        who,
        f"opendata.application.{action}",
        object_type="opendata_application",
        object_id=str(application_id),
        details={"dataset": str(application.dataset_id), "days": days if action == "approve" else None},
    )
    return RedirectResponse("/opendata/account", status_code=303)


@router.get("/opendata/org/{name}", response_class=HTMLResponse)
def organization_page(request: Request, templates: TemplatesDep, session: SessionDep, name: str) -> Response:
    """A publishing department and its open datasets."""
    org = next((o for o in opendata.organizations(session).values() if o.name == name), None)
    datasets = [d for d in opendata.active_datasets(session) if org and d.department_code == org.department_code]
    if org is None or not datasets:
        raise Problem("not-found", detail=N_("No such publisher of open data."))
    return templates.render(
        request, "opendata/organization.html", {"org": org, "datasets": datasets, "themes": opendata.THEMES}
    )


@router.get("/opendata/{name}", response_class=HTMLResponse)
def dataset_page(
    request: Request, templates: TemplatesDep, session: SessionDep, principal: WebUser, name: str
) -> Response:
    """A dataset: metadata, data dictionary, preview, downloads and API examples."""
    try:
        dataset = opendata.get_dataset(session, name)
    except DomainError as exc:
        raise Problem("not-found", detail=N_("No such open dataset.")) from exc
    resources = opendata.resources_of(session, [dataset.id])[dataset.id]
    org = opendata.organization_of(session, dataset.department_code)
    base = str(request.base_url).rstrip("/")
    rid = str(resources[0].id) if resources else ""
    mine = opendata.approved(session, principal.user_id, dataset.id) if principal else None
    sql_example = json.dumps({"sql": f'SELECT count(*) FROM "{rid}"'}, ensure_ascii=False)  # noqa: S608 - shown
    return templates.render(
        request,
        "opendata/dataset.html",
        {
            "dataset": dataset,
            "resources": resources,
            "org": org,
            "theme": opendata.THEMES[dataset.theme],
            "open_type_names": OPEN_TYPE_NAMES,
            "base": base,
            "resource_id": rid,
            "readable": dataset.open_type == "unconditional" or mine is not None,
            "chartable": [i for i in dataset.items if i["type"] in opendata.CHARTABLE],
            "signed_in": principal is not None,
            "examples": [
                f"curl '{base}/api/3/action/datastore_search?resource_id={rid}&limit=5'",
                f"curl -X POST {base}/api/3/action/datastore_search_sql -H 'Content-Type: application/json'"
                f" -d '{sql_example}'",
                f'from ckanapi import RemoteCKAN\nportal = RemoteCKAN("{base}")\n'
                f'portal.action.datastore_search(resource_id="{rid}", limit=5)',
            ],
        },
    )


@router.post("/opendata/{name}/apply")
def apply(
    request: Request,
    session: SessionDep,
    who: SignedInPage,
    name: str,
    purpose: Annotated[str, Form(max_length=2000)] = "",
    organisation: Annotated[str, Form(max_length=200)] = "",
    accept: Annotated[bool, Form()] = False,
) -> Response:
    """A signed-in reuser applies for a dataset open on conditions."""
    dataset = opendata.get_dataset(session, name)
    application = opendata.apply(session, who.user_id, dataset, purpose, organisation, accept)
    audit(request, who, "opendata.application.file", object_type="opendata_application", object_id=str(application.id))
    return RedirectResponse("/opendata/account", status_code=303)


@router.get("/opendata/{name}/preview", response_class=HTMLResponse)
def preview(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    principal: WebUser,
    name: str,
    q: Annotated[str, Query(max_length=200)] = "",
    sort: Annotated[str, Query(max_length=80)] = "",
    desc: bool = False,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    """A page of the dataset's rows (the HTMX fragment of the dataset page; a full page without it)."""
    try:
        dataset = opendata.get_dataset(session, name)
        opendata.readable(session, dataset, principal.user_id if principal else None)
    except DomainError as exc:
        raise Problem("not-found", detail=N_("No preview of this dataset.")) from exc
    columns = [i["name"] for i in dataset.items]
    order = f"{sort} {'desc' if desc else 'asc'}" if sort in columns else None
    rows: dict[str, Any] = opendata.store_for(settings).search(
        dataset, "", q=q or None, sort=order, limit=PREVIEW_ROWS, offset=offset, include_total=True
    )
    context = {
        "dataset": dataset,
        "rows": rows,
        "q": q,
        "sort": sort if order else "",
        "desc": desc,
        "offset": offset,
        "size": PREVIEW_ROWS,
    }
    fragment = request.headers.get("hx-request") == "true"
    return templates.render(request, "opendata/preview.html" if fragment else "opendata/preview_page.html", context)

"""CKAN's Action API over the open datasets: ``/api/3/action/{name}`` and ``/api/action/{name}``, GET with
query parameters or POST with a JSON body, answered in CKAN's envelope with CKAN's error types, so that
CKAN clients (``ckanapi`` and the like) work unchanged. Public by design: it serves open data only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from shgov.core.deps import get_database, get_settings
from shgov.core.errors import DomainError, ForbiddenError, InvalidError, NotFoundError, Problem, render
from shgov.core.i18n import N_, request_locale
from shgov.core.identity.deps import SESSION_COOKIE
from shgov.core.identity.service import user_for_web_session
from shgov.core.numbers import INT64_MAX
from shgov.core.openapi import own_errors
from shgov.core.ratelimit import RateLimited
from shgov.core.settings import Settings
from shgov.opendata import dcat
from shgov.opendata import service as opendata

router = APIRouter(tags=["open data: CKAN Action API"])
CKAN_ERRORS = own_errors("CKAN errors: {success: false, error: {__type, message}}.", "application/json")


@dataclass(frozen=True)
class Call:
    """One action call: its parameters and what it may use."""

    session: Session
    params: Mapping[str, Any]
    base_url: str
    store: opendata.DataStore
    settings: Settings
    usage: opendata.UsageCounter
    index: opendata.SearchIndex
    user_id: uuid.UUID | None = None  # the reuser whose API key came with the call

    def text(self, name: str, default: str = "") -> str:
        """A string parameter."""
        value = self.params.get(name, default)
        if value is None:
            return default
        if not isinstance(value, str | int | float):
            raise InvalidError(N_("must be a string"), field=name)
        return str(value)

    def required(self, name: str) -> str:
        """A string parameter that must be there."""
        value = self.text(name).strip()
        if not value:
            raise InvalidError(N_("Missing value"), field=name)
        return value

    def number(self, name: str, default: int, *, cap: int | None = None) -> int:
        """A natural number (capped at ``cap``, as CKAN caps rows and limits)."""
        value = self.params.get(name, default)
        try:
            number = int(value) if not isinstance(value, bool) else -1
        except (TypeError, ValueError):
            raise InvalidError(N_("Invalid integer"), field=name) from None
        if number < 0:
            raise InvalidError(N_("Must be a natural number"), field=name)
        if number > INT64_MAX:  # the engines take offsets as 64-bit integers (DuckDB refuses more as a 500)
            raise InvalidError(N_("Must be at most {limit}"), field=name, limit=INT64_MAX)
        return min(number, cap) if cap is not None else number

    def flag(self, name: str, default: bool) -> bool:
        """A boolean parameter (``true``/``false`` as CKAN's GET sends them)."""
        value = self.params.get(name, default)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off", ""):
            return False
        raise InvalidError(N_("must be true or false"), field=name)

    def listing(self, name: str) -> list[str] | None:
        """A list parameter: a JSON list, a JSON string, or comma-separated text."""
        value = self.params.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            stripped = value.strip()
            if stripped.startswith("["):
                try:
                    value = json.loads(stripped)
                except json.JSONDecodeError:
                    raise InvalidError(N_("must be a JSON list"), field=name) from None
            else:
                value = [v.strip() for v in stripped.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidError(N_("must be a list of strings"), field=name)
        return value

    def mapping(self, name: str) -> dict[str, Any] | None:
        """An object parameter: a JSON object or its JSON text."""
        value = self.params.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise InvalidError(N_("must be a JSON object"), field=name) from None
        if not isinstance(value, dict):
            raise InvalidError(N_("must be a JSON object"), field=name)
        return value


# -- the actions ---------------------------------------------------------------------------------


def package_list(call: Call) -> list[str]:
    """The names of the open datasets (``limit``, ``offset``)."""
    names = [d.name for d in opendata.active_datasets(call.session)]
    offset = call.number("offset", 0)
    limit = call.number("limit", len(names))
    return names[offset : offset + limit]


def package_show(call: Call) -> dict[str, Any]:
    """One dataset by ``id`` (its id or name)."""
    dataset = opendata.get_dataset(call.session, call.required("id"))
    call.usage.count(dataset.id, "calls")
    resources = opendata.resources_of(call.session, [dataset.id])[dataset.id]
    org = opendata.organization_of(call.session, dataset.department_code)
    return opendata.package_dict(dataset, resources, org, call.base_url)


def package_search(call: Call) -> dict[str, Any]:
    """Datasets matching ``q`` and ``fq`` (Solr-style ``field:value``), ``sort``ed, ``rows`` from ``start``,
    with counts of ``facet.field`` values (``facet.limit`` each, -1 for all)."""
    facet_fields = call.listing("facet.field") or []
    raw_limit = call.params.get("facet.limit", 50)
    try:
        facet_limit = int(raw_limit)
    except (TypeError, ValueError):
        raise InvalidError(N_("Invalid integer"), field="facet.limit") from None
    docs = call.index.docs(call.session, call.base_url)
    found = opendata.search(
        docs,
        q=call.text("q"),
        fq=call.text("fq"),
        sort=call.text("sort"),
        rows=call.number("rows", 10, cap=opendata.MAX_ROWS),
        start=call.number("start", 0),
        facet_fields=facet_fields if call.flag("facet", True) else [],
        facet_limit=facet_limit,
    )
    titles = _facet_titles(call.index)
    return {
        "count": found.count,
        "sort": found.sort,
        "facets": found.facets,
        "results": found.results,
        "search_facets": {
            name: {
                "title": name,
                "items": [
                    {"name": value, "display_name": titles.get((name, value), value), "count": count}
                    for value, count in counts.items()
                ],
            }
            for name, counts in found.facets.items()
        },
    }


def _facet_titles(index: opendata.SearchIndex) -> dict[tuple[str, str], str]:
    titles = {("organization", name): title for name, title in index.publishers.items()}
    titles |= {("groups", code): zh for code, (zh, _) in opendata.THEMES.items()}
    return titles


def _package_counts(call: Call) -> tuple[dict[str, int], dict[str, int]]:
    by_department: dict[str, int] = {}
    by_theme: dict[str, int] = {}
    for dataset in opendata.active_datasets(call.session):
        by_department[dataset.department_code] = by_department.get(dataset.department_code, 0) + 1
        by_theme[dataset.theme] = by_theme.get(dataset.theme, 0) + 1
    return by_department, by_theme


def organization_list(call: Call) -> list[Any]:
    """The departments that publish open datasets (names, or dictionaries with ``all_fields``)."""
    counts, _ = _package_counts(call)
    orgs = sorted((o for o in opendata.organizations(call.session).values() if o.department_code in counts),
                  key=lambda o: o.name)  # fmt: skip
    offset = call.number("offset", 0)
    page = orgs[offset : offset + call.number("limit", len(orgs))]
    if call.flag("all_fields", False):
        return [opendata.organization_dict(o, counts[o.department_code]) for o in page]
    return [o.name for o in page]


def organization_show(call: Call) -> dict[str, Any]:
    """One publishing department by ``id`` (its id or name); its datasets with ``include_datasets``."""
    wanted = call.required("id")
    org = next((o for o in opendata.organizations(call.session).values() if wanted in (o.id, o.name)), None)
    if org is None:
        raise NotFoundError(N_("Organization not found"), field="id")
    counts, _ = _package_counts(call)
    data = opendata.organization_dict(org, counts.get(org.department_code, 0))
    if call.flag("include_datasets", False):
        data["packages"] = [
            package_show(replace(call, params={"id": d.name}))
            for d in opendata.active_datasets(call.session)
            if d.department_code == org.department_code
        ]
    return data


def group_list(call: Call) -> list[Any]:
    """The themes (names, or dictionaries with ``all_fields``)."""
    _, counts = _package_counts(call)
    if call.flag("all_fields", False):
        return [opendata.group_dict(t, counts.get(t, 0)) for t in sorted(opendata.THEMES)]
    return sorted(opendata.THEMES)


def group_show(call: Call) -> dict[str, Any]:
    """One theme by ``id`` (its id or name)."""
    wanted = call.required("id")
    theme = next((t for t in opendata.THEMES if wanted in (t, opendata.group_dict(t)["id"])), None)
    if theme is None:
        raise NotFoundError(N_("Group not found"), field="id")
    _, counts = _package_counts(call)
    return opendata.group_dict(theme, counts.get(theme, 0))


def tag_list(call: Call) -> list[Any]:
    """The tags of the open datasets (``query`` keeps those containing it)."""
    query = call.text("query").lower()
    names = sorted({t for d in opendata.active_datasets(call.session) for t in d.tags if query in t.lower()})
    if call.flag("all_fields", False):
        return [opendata._tag_dict(n) for n in names]
    return names


def resource_show(call: Call) -> dict[str, Any]:
    """One distribution by ``id``."""
    resource, dataset = opendata.get_resource(call.session, call.required("id"))
    return opendata.resource_dict(resource, dataset, call.base_url)


def datastore_search(call: Call) -> dict[str, Any]:
    """Rows of a resource: ``filters`` (equality), ``q`` (text, or per-field object), ``fields``,
    ``sort``, ``limit`` (default 100, at most 32,000), ``offset``, ``include_total``."""
    resource_id = call.required("resource_id")
    _, dataset = opendata.get_resource(call.session, resource_id)
    opendata.readable(call.session, dataset, call.user_id)
    call.usage.count(dataset.id, "calls")
    q: str | dict[str, Any] | None = call.params.get("q")
    if isinstance(q, str) and q.strip().startswith("{"):
        q = call.mapping("q")
    elif q is not None and not isinstance(q, str | dict):
        raise InvalidError(N_("must be text or an object"), field="q")
    return call.store.search(
        dataset,
        resource_id,
        filters=call.mapping("filters"),
        q=q,
        fields=call.listing("fields"),
        sort=call.text("sort") or None,
        limit=call.number("limit", opendata.DEFAULT_LIMIT, cap=opendata.MAX_LIMIT),
        offset=call.number("offset", 0),
        include_total=call.flag("include_total", True),
    )


def datastore_search_sql(call: Call) -> dict[str, Any]:
    """One read-only SELECT over resources, named by their ids (``FROM "<resource id>"``)."""
    statement = call.required("sql")
    tables = opendata.check_sql(statement)
    datasets = {}
    for table in tables:
        try:
            _, dataset = opendata.get_resource(call.session, table)
        except NotFoundError:
            raise InvalidError(
                N_('"{table}" is not the resource id of an open dataset'), field="sql", table=table
            ) from None
        opendata.readable(call.session, dataset, call.user_id)
        call.usage.count(dataset.id, "calls")
        datasets[table] = dataset
    return call.store.sql(datasets, statement)


def status_show(call: Call) -> dict[str, Any]:
    """What this site is and speaks."""
    return {
        "site_title": f"{call.settings.city_name}公共数据开放平台",
        "site_description": "SH-GOV open data portal",
        "site_url": call.base_url.rstrip("/"),
        "ckan_version": opendata.CKAN_VERSION,
        "locale_default": "zh_Hans_CN",
        "extensions": ["datastore", "dcat"],
    }


def help_show(call: Call) -> str:
    """The documentation of the action ``name``."""
    name = call.required("name")
    action = ACTIONS.get(name)
    if action is None:
        raise NotFoundError(N_("Action {name} not found"), field="name", name=name)
    return (action.__doc__ or "").strip()


ACTIONS: dict[str, Callable[[Call], Any]] = {
    f.__name__: f
    for f in (
        package_list,
        package_show,
        package_search,
        organization_list,
        organization_show,
        group_list,
        group_show,
        tag_list,
        resource_show,
        datastore_search,
        datastore_search_sql,
        status_show,
        help_show,
    )
}


# -- the envelope --------------------------------------------------------------------------------


def _envelope(request: Request, name: str, status: int, body: dict[str, Any]) -> JSONResponse:
    help_url = f"{str(request.base_url).rstrip('/')}/api/3/action/help_show?name={name}"
    return JSONResponse({"help": help_url, **body}, status_code=status)


def _error(request: Request, name: str, exc: DomainError) -> JSONResponse:
    """CKAN's error types and statuses for a domain error, its message in the caller's language."""
    locale = request_locale(request)
    text = exc.text(locale)
    error: dict[str, Any]
    if isinstance(exc, opendata.SearchQueryError):
        message = render(N_("Search Query is invalid: {reason}"), {"reason": exc}, locale)
        status, error = 400, {"__type": "Search Query Error", "message": message}
    elif isinstance(exc, NotFoundError):
        status, error = 404, {"__type": "Not Found Error", "message": text}
    elif isinstance(exc, ForbiddenError):
        status, error = 403, {"__type": "Authorization Error", "message": text}
    else:
        status, error = 409, {"__type": "Validation Error", "message": text}
        if exc.field:
            error[exc.field] = [text]
    return _envelope(request, name, status, {"success": False, "error": error})


def _rate_limited(exc: RateLimited) -> Problem:
    return Problem(
        "too-many-requests",
        detail=N_("rate limit reached; retry after {retry_after} s"),
        params={"retry_after": exc.retry_after},
        headers={"Retry-After": str(exc.retry_after)},
    )


async def _params(request: Request) -> dict[str, Any] | None:
    params: dict[str, Any] = {}
    for key in request.query_params:
        values: list[str] = request.query_params.getlist(key)
        params[key] = values[0] if len(values) == 1 else values
    if request.method == "POST":
        body = await request.body()
        if body.strip():
            try:
                posted = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return None
            if not isinstance(posted, dict):
                return None
            params.update(posted)
    return params


def caller(request: Request, session: Session) -> uuid.UUID | None:
    """The reuser a call comes from — an API key (``X-CKAN-API-Key`` or ``Authorization``, as CKAN
    clients send it) or the signed-in browser — after taking the call from its rate limit (and counting
    it for the key)."""
    state = opendata.portal(request.app.state.runtimes)
    raw = request.headers.get("x-ckan-api-key") or request.headers.get("authorization", "")
    raw = raw.removeprefix("Bearer ").strip()
    if raw:
        key = opendata.key_holder(session, raw)
        if key is None:
            raise ForbiddenError(N_("the API key is unknown, expired or revoked"), field="key")
        state.limiter.take(("key", key.id), key.rate_per_minute)
        state.usage.count_key(key.id)
        return key.user_id
    address = request.client.host if request.client else ""
    state.limiter.take(("address", address), opendata.ANONYMOUS_RATE)
    cookie = request.cookies.get(SESSION_COOKIE)
    user = user_for_web_session(session, cookie) if cookie else None
    return user.id if user is not None else None


def _run(request: Request, name: str, params: dict[str, Any]) -> Any:
    settings = get_settings(request)
    state = opendata.portal(request.app.state.runtimes)
    with get_database(request).session(write=False) as session:
        user_id = caller(request, session)
        call = Call(
            session,
            params,
            str(request.base_url),
            opendata.store_for(settings),
            settings,
            state.usage,
            state.index,
            user_id,
        )
        return ACTIONS[name](call)


@router.get("/api/3/action/{name}", include_in_schema=False)
@router.post("/api/3/action/{name}", include_in_schema=False)
@router.get(
    "/api/action/{name}", summary="CKAN Action API (GET)", operation_id="ckan_action_get", responses=CKAN_ERRORS
)
@router.post(
    "/api/action/{name}",
    summary="CKAN Action API (POST, JSON body)",
    operation_id="ckan_action_post",
    responses=CKAN_ERRORS,
)
async def action(request: Request, name: str) -> JSONResponse:
    """Run a CKAN action: package_list/show/search, organization_list/show, group_list/show, tag_list,
    resource_show, datastore_search, datastore_search_sql, status_show, help_show."""
    locale = request_locale(request)
    if name not in ACTIONS:
        message = render(N_("Bad request - Action name not known: {name}"), {"name": name}, locale)
        error = {"__type": "Bad Request", "message": message}
        return _envelope(request, name, 400, {"success": False, "error": error})
    params = await _params(request)
    if params is None:
        message = render(N_("Bad request - JSON Error: send a JSON object"), {}, locale)
        error = {"__type": "Bad Request", "message": message}
        return _envelope(request, name, 400, {"success": False, "error": error})
    try:
        result = await run_in_threadpool(_run, request, name, params)
    except RateLimited as exc:
        error = {"__type": "Rate Limit Error", "message": _rate_limited(exc).detail_in(locale)}
        response = _envelope(request, name, 429, {"success": False, "error": error})
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except DomainError as exc:
        return _error(request, name, exc)
    return _envelope(request, name, 200, {"success": True, "result": result})


# -- downloads -----------------------------------------------------------------------------------


def _download_file(request: Request, name: str, extension: str, bom: bool) -> tuple[Path, str]:
    settings = get_settings(request)
    with get_database(request).session(write=False) as session:
        user_id = caller(request, session)
        dataset = opendata.get_dataset(session, name)
        opendata.readable(session, dataset, user_id)
        opendata.portal(request.app.state.runtimes).usage.count(dataset.id, "downloads")
    downloads = opendata.Downloads(opendata.store_for(settings), settings.data_dir / "opendata" / "downloads")
    return downloads.path(dataset, extension, bom=bom), dataset.name


@router.get("/opendata/{name}/download.{extension}", tags=["open data: downloads"])
async def download(request: Request, name: str, extension: str, bom: bool = False) -> Response:
    """A dataset's rows as CSV (``bom=true`` for Excel), JSON Lines, XLSX or Parquet: a static file per
    data version, so ranges (resuming), ETag and Last-Modified work as for any file."""
    try:
        path, dataset_name = await run_in_threadpool(_download_file, request, name, extension, bom)
    except RateLimited as exc:
        raise _rate_limited(exc) from exc
    stat = path.stat()
    response = FileResponse(
        path,
        stat_result=stat,
        media_type=opendata.MIME_TYPES[opendata.EXTENSIONS[extension]],
        filename=f"{dataset_name}.{extension}",
        headers={"Cache-Control": "public, max-age=300"},
    )
    etag, modified = response.headers["etag"], response.headers["last-modified"]
    matches = request.headers.get("if-none-match")
    since = request.headers.get("if-modified-since")
    unchanged = etag in [t.strip() for t in matches.split(",")] if matches else since == modified
    if unchanged:
        return Response(status_code=304, headers={"ETag": etag, "Last-Modified": modified})
    return response


def _chart(request: Request, name: str, column: str) -> dict[str, Any]:
    settings = get_settings(request)
    with get_database(request).session(write=False) as session:
        user_id = caller(request, session)
        dataset = opendata.get_dataset(session, name)
        opendata.readable(session, dataset, user_id)
    return opendata.store_for(settings).distribution(dataset, column)


@router.get("/opendata/{name}/chart.json", tags=["open data: downloads"])
async def chart(request: Request, name: str, column: str) -> dict[str, Any]:
    """Rows per year of a date column or per bucket of a number column: what the dataset page charts."""
    try:
        return await run_in_threadpool(_chart, request, name, column)
    except RateLimited as exc:
        raise _rate_limited(exc) from exc


# -- DCAT-AP -------------------------------------------------------------------------------------


def _dcat(request: Request, name: str | None, extension: str) -> tuple[bytes, str]:
    if extension not in dcat.SERIALISATIONS:
        raise NotFoundError(
            N_("no DCAT format {extension!r}: use {formats}"),
            field="format",
            extension=extension,
            formats=", ".join(dcat.SERIALISATIONS),
        )
    settings = get_settings(request)
    with get_database(request).session(write=False) as session:
        datasets = [opendata.get_dataset(session, name)] if name else opendata.active_datasets(session)
        resources = opendata.resources_of(session, [d.id for d in datasets])
        orgs = opendata.organizations(session)
    graph = dcat.catalog_graph(
        datasets, resources, orgs, str(request.base_url), f"{settings.city_name}公共数据开放平台"
    )
    return dcat.serialise(graph, extension)


@router.get("/opendata/catalog.{extension}", tags=["open data: DCAT-AP"])
async def dcat_catalog(request: Request, extension: str) -> Response:
    """The open catalog as DCAT-AP 3.0: ``ttl`` (Turtle), ``jsonld`` (JSON-LD) or ``rdf`` (RDF/XML)."""
    data, media_type = await run_in_threadpool(_dcat, request, None, extension)
    return Response(data, media_type=media_type)


@router.get("/opendata/{name}/dcat.{extension}", tags=["open data: DCAT-AP"])
async def dcat_dataset(request: Request, name: str, extension: str) -> Response:
    """One open dataset as DCAT-AP 3.0 (within its catalog)."""
    data, media_type = await run_in_threadpool(_dcat, request, name, extension)
    return Response(data, media_type=media_type)

"""Open311 GeoReport v2 at ``/open311/v2/``: services, service definitions, requests, tokens — JSON or XML,
errors as ``[{code, description}]``. Reading is public by design (personal data never appears), so a
request's loader (``workorders.access``) is its whole check; posting needs an ``api_key`` (an access token of
SH-GOV)."""

from __future__ import annotations

import json
import re
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from shgov.core.bounded import http_url, is_http_url
from shgov.core.db import utcnow
from shgov.core.deps import SessionDep, SettingsDep
from shgov.core.errors import DomainError
from shgov.core.i18n import request_locale
from shgov.core.identity.deps import audit
from shgov.core.identity.service import load_principal, token_holder
from shgov.core.ids import mask_text
from shgov.core.openapi import own_errors
from shgov.core.orgs.service import find_department, tenant_parents
from shgov.core.regions.api import IndexDep
from shgov.core.settings import Settings
from shgov.workorders import service as workorders
from shgov.workorders.access import find_request, find_request_token
from shgov.workorders.models import Category, WorkOrder

router = APIRouter(
    prefix="/open311/v2",
    tags=["open311"],
    responses=own_errors("GeoReport v2 errors: a list of {code, description}.", "application/json", "text/xml"),
)
FORMATS = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
MAX_DAYS = 90
MAX_MEDIA_URL = 1000


class Open311Error(Exception):
    """An error answered in the GeoReport format."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


# Characters XML 1.0 cannot carry: C0 controls other than tab and line ends, and the two non-characters.
_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_value(parent: ET.Element, name: str, value: Any, item: str) -> None:
    node = ET.SubElement(parent, name)
    if isinstance(value, list):
        for entry in value:
            _xml_value(node, item if name != "values" else "value", entry, "value")
    elif isinstance(value, dict):
        for key, inner in value.items():
            _xml_value(node, key, inner, "value" if key == "values" else "attribute")
    elif value is None:
        return
    elif isinstance(value, bool):
        node.text = "true" if value else "false"
    else:
        node.text = _NOT_IN_XML.sub("", str(value))  # what XML 1.0 cannot carry (a row stored before the check)


def _render(fmt: str, root: str, item: str, rows: Any, status: int = 200) -> Response:
    if fmt == "xml":
        element = ET.Element(root)
        for row in rows if isinstance(rows, list) else [rows]:
            child = ET.SubElement(element, item) if isinstance(rows, list) else element
            for key, value in row.items():
                _xml_value(child, key, value, "attribute" if key == "attributes" else "value")
        body = b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(element, encoding="utf-8")
        return Response(body, status_code=status, media_type=FORMATS["xml"])
    return Response(json.dumps(rows, ensure_ascii=False), status_code=status, media_type=FORMATS["json"])


def _media(value: str | None) -> list[dict[str, str]]:
    """The photo a client sends by its address: kept as that address (never fetched from here), so it must be
    a web address the order's page can link (``http``/``https`` only: never ``javascript:`` or ``data:``)."""
    url = (value or "").strip()
    if not url:
        return []
    if len(url) > MAX_MEDIA_URL:
        raise Open311Error(400, f"media_url must be an http or https address of at most {MAX_MEDIA_URL} characters")
    try:
        http_url(url)
    except ValueError as exc:
        raise Open311Error(400, f"media_url {exc}") from exc
    return [{"url": url}]


def _published_media(order: WorkOrder) -> str:
    """The address of an order's first photo sent by address, if it is a web address: rows stored before
    addresses were checked may hold anything, and nothing but http(s) is republished."""
    return next((m["url"] for m in order.media if m.get("url") and is_http_url(m["url"])), "")


def _error(fmt: str, status: int, description: str) -> Response:
    return _render(
        fmt if fmt in FORMATS else "json", "errors", "error", [{"code": status, "description": description}], status
    )


def _fmt(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Open311Error(404, f"format {fmt!r} is not offered: use json or xml")
    return fmt


def _jurisdiction(request: Request, settings: Settings, body: dict[str, str] | None = None) -> None:
    """Refuse a ``jurisdiction_id`` this server does not serve, wherever GeoReport v2 lets a client send it: the
    query string of every call and the body of a POST (form-encoded or JSON)."""
    for given in (request.query_params.get("jurisdiction_id"), (body or {}).get("jurisdiction_id")):
        if given is not None and given.strip() and given.strip() != settings.workorders.open311_jurisdiction:
            raise Open311Error(404, f"jurisdiction_id {mask_text(given.strip())[:60]!r} is not served here")


async def _posted(request: Request) -> dict[str, str]:
    """A POST's parameters: form-encoded as the spec says, or a JSON object; scalar values as text. A NUL
    byte anywhere is refused (the database could not store it)."""
    if (request.headers.get("content-type") or "").split(";")[0].strip().lower() == "application/json":
        try:
            data = json.loads(await request.body() or b"{}")
            if not isinstance(data, dict):
                raise Open311Error(400, "the body must be a JSON object")
            values = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items() if v is not None}
        except (ValueError, RecursionError) as exc:  # nested past the parser's depth: no valid request
            raise Open311Error(400, "the body is not valid JSON (or nested too deep)") from exc
    else:
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
    for key, value in values.items():
        if _NOT_IN_XML.search(key) or _NOT_IN_XML.search(value):
            name = _NOT_IN_XML.sub("", key)[:60]
            raise Open311Error(422, f"{name} must not contain control characters (NUL and the like)")
    return values


def _w3(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.isoformat(timespec="seconds")


def _service(category: Category, groups: dict[str, str]) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": category.description or category.name_en or category.name,
        "metadata": bool(category.attributes),
        "type": "realtime",
        "keywords": ",".join(category.keywords),
        "group": groups.get(category.code.split(".")[0], ""),
    }


def _agency(session: Session, unit: str | None) -> str:
    if unit is None:
        return ""
    found = find_department(session, unit)
    return found.name if found else unit


def _request_row(session: Session, order: WorkOrder, names: dict[str, str]) -> dict[str, Any]:
    closed = order.status in workorders.CLOSED
    # published to anyone: free text is masked as for staff not entitled to the reporter's details
    notes = mask_text(order.reply) if order.status in ("replied", "closed", "visited") else ""
    if order.status == "merged" and order.merged_into:
        target = session.get(WorkOrder, order.merged_into)
        notes = f"已合并至工单 {target.number}" if target else "已合并"
    return {
        "service_request_id": order.number,
        "status": "closed" if closed else "open",
        "status_notes": notes,
        "service_name": names.get(order.category_code or "", ""),
        "service_code": order.category_code or "",
        "description": mask_text(order.description),
        "agency_responsible": _agency(session, order.lead_unit),
        "service_notice": "",
        "requested_datetime": _w3(order.created_at),
        "updated_datetime": _w3(order.updated_at),
        "expected_datetime": _w3(order.conclude_due),
        "address": mask_text(order.address),
        "address_id": order.grid_code or "",
        "zipcode": "",
        "lat": order.lat,
        "long": order.lng,
        "media_url": _published_media(order),
    }


def _names(session: Session) -> dict[str, str]:
    return {c.code: c.name for c in session.scalars(select(Category))}


def _date(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Open311Error(400, f"{name} must be a W3C datetime such as 2026-01-01T00:00:00Z") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _guarded(request: Request, fmt: str, build: Any) -> Response:
    """``build``'s answer, or its refusal as a GeoReport error (a domain error's in the request's language)."""
    try:
        return build(_fmt(fmt))  # type: ignore[no-any-return]
    except Open311Error as exc:
        return _error(fmt, exc.status, exc.description)
    except DomainError as exc:
        status = {"not-found": 404, "forbidden": 403, "conflict": 409}.get(exc.slug, 400)
        where = f"{exc.field}: " if exc.field else ""
        return _error(fmt, status, where + exc.text(request_locale(request)))


@router.get("/discovery.{fmt}")
def discovery(request: Request, settings: SettingsDep, fmt: str) -> Response:
    """Where this endpoint is and what it speaks (GeoReport service discovery)."""
    base = str(request.base_url).rstrip("/") + "/open311/v2/"

    def build(f: str) -> Response:
        return _render(
            f,
            "discovery",
            "endpoint",
            {
                "changeset": "2026-11-24T00:00:00Z",
                "contact": "SH-GOV operations centre",
                "key_service": "An access token of SH-GOV (POST /api/v1/auth/token) is the api_key.",
                "endpoints": [
                    {
                        "specification": "http://wiki.open311.org/GeoReport_v2",
                        "url": base,
                        "type": "production",
                        "formats": ["application/json", "text/xml"],
                    }
                ],
            },
        )

    return _guarded(request, fmt, build)


@router.get("/services.{fmt}")
def services_list(request: Request, session: SessionDep, settings: SettingsDep, fmt: str) -> Response:
    """Every leaf category as an Open311 service."""

    def build(f: str) -> Response:
        _jurisdiction(request, settings)
        groups = {c.code: c.name for c in workorders.categories(session) if c.level == 1}
        rows = [_service(c, groups) for c in workorders.categories(session, leaves_only=True)]
        return _render(f, "services", "service", rows)

    return _guarded(request, fmt, build)


@router.get("/services/{service_code}.{fmt}")
def service_definition(
    request: Request, session: SessionDep, settings: SettingsDep, service_code: str, fmt: str
) -> Response:
    """A service's attributes (variable, code, datatype, required, order, description, values)."""

    def build(f: str) -> Response:
        _jurisdiction(request, settings)
        category = session.get(Category, service_code)
        if category is None or category.level != 3 or not category.active:
            raise Open311Error(404, f"service_code {service_code!r} is not a service")
        attributes = sorted(category.attributes, key=lambda a: a.get("order", 0))
        return _render(f, "service_definition", "", {"service_code": category.code, "attributes": attributes})

    return _guarded(request, fmt, build)


@router.post("/requests.{fmt}")
async def post_request(
    request: Request, session: SessionDep, settings: SettingsDep, index: IndexDep, fmt: str
) -> Response:
    """Create a service request (form-encoded, or a JSON object), answered with its id."""
    try:
        values = await _posted(request)
    except Open311Error as exc:
        return _error(fmt, exc.status, exc.description)

    def build(f: str) -> Response:
        _jurisdiction(request, settings, values)
        key = values.get("api_key", "")
        held = token_holder(session, key) if key else None
        if held is None:
            raise Open311Error(403, "api_key is missing or not valid")
        principal = load_principal(session, held[0], tenant_parents(session), "open311")
        code = values.get("service_code", "").strip()
        if not code:
            raise Open311Error(400, "service_code is required")
        category = session.get(Category, code)
        if category is None or category.level != 3 or not category.active:
            raise Open311Error(404, f"service_code {code!r} is not a service")
        lat, lng = _coordinate(values.get("lat")), _coordinate(values.get("long"))
        address = (values.get("address_string") or "").strip()
        if (lat is None) != (lng is None):
            raise Open311Error(400, "lat and long go together")
        if lat is None and not address and not values.get("address_id"):
            raise Open311Error(400, "a location is required: lat and long, address_string or address_id")
        attributes = _attributes(values, category)
        names = " ".join(filter(None, (values.get("first_name"), values.get("last_name"))))
        media = _media(values.get("media_url"))
        report = workorders.Report(
            channel="open311",
            description=values.get("description", ""),
            lat=lat,
            lng=lng,
            address=address or values.get("address_id", ""),
            category_code=category.code,
            media=media,
            attributes=attributes,
            reporter_user_id=principal.user_id if principal.kind == "citizen" else None,
            reporter_name=names,
            reporter_phone=values.get("phone", ""),
            reporter_email=values.get("email", ""),
            source_ref=values.get("device_id", "")[:80],
        )
        order = workorders.intake(session, settings, index, report, principal)
        order.token = uuid.uuid4().hex
        session.flush()
        audit(request, principal, "workorders.order.create", object_type="work_order", object_id=str(order.id))
        notice = "已受理，将按时限处理" if order.status != "triage" else "已受理，正在分拨"
        return _render(
            f,
            "service_requests",
            "request",
            [
                {
                    "service_request_id": order.number,
                    "token": order.token,
                    "service_notice": notice,
                    "account_id": values.get("account_id", ""),
                }
            ],
            201,
        )

    return _guarded(request, fmt, build)


def _coordinate(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError as exc:
        raise Open311Error(400, f"{value!r} is not a coordinate") from exc


def _attributes(values: dict[str, str], category: Category) -> dict[str, Any]:
    given = {k[len("attribute[") : -1]: v for k, v in values.items() if k.startswith("attribute[") and k.endswith("]")}
    known = {a["code"]: a for a in category.attributes}
    for code, definition in known.items():
        if definition.get("required") and not given.get(code):
            raise Open311Error(400, f"attribute[{code}] is required")
    for code, value in given.items():
        if code not in known:
            raise Open311Error(400, f"attribute[{code}] is not an attribute of {category.code}")
        allowed = {v["key"] for v in known[code].get("values", [])}
        if allowed and value not in allowed:
            raise Open311Error(400, f"attribute[{code}] must be one of {', '.join(sorted(allowed))}")
    return given


@router.get("/tokens/{token}.{fmt}")
def token(request: Request, session: SessionDep, settings: SettingsDep, token: str, fmt: str) -> Response:
    """The request id a token stands for."""

    def build(f: str) -> Response:
        _jurisdiction(request, settings)
        order = find_request_token(session, token)
        if order is None:
            raise Open311Error(404, f"token {token!r} is not known")
        return _render(f, "service_requests", "request", [{"service_request_id": order.number, "token": token}])

    return _guarded(request, fmt, build)


@router.get("/requests.{fmt}")
def requests_list(request: Request, session: SessionDep, settings: SettingsDep, fmt: str) -> Response:
    """Service requests by ids, or by service codes, a date range (at most 90 days; the last 90 by default)
    and status."""
    params = request.query_params

    def build(f: str) -> Response:
        _jurisdiction(request, settings)
        query = select(WorkOrder)
        ids = [i.strip() for i in (params.get("service_request_id") or "").split(",") if i.strip()]
        if ids:
            query = query.where(WorkOrder.number.in_(ids))
        else:
            start, end = _date(params.get("start_date"), "start_date"), _date(params.get("end_date"), "end_date")
            end = end or (start + timedelta(days=MAX_DAYS) if start else utcnow())
            start = start or end - timedelta(days=MAX_DAYS)
            if end < start:
                raise Open311Error(400, "end_date is before start_date")
            if end - start > timedelta(days=MAX_DAYS):
                raise Open311Error(400, f"the date range may not span more than {MAX_DAYS} days")
            query = query.where(WorkOrder.created_at >= start, WorkOrder.created_at <= end)
            codes = [c.strip() for c in (params.get("service_code") or "").split(",") if c.strip()]
            if codes:
                query = query.where(WorkOrder.category_code.in_(codes))
            statuses = {s.strip() for s in (params.get("status") or "").split(",") if s.strip()}
            if statuses - {"open", "closed"}:
                raise Open311Error(400, "status is open or closed")
            if statuses == {"open"}:
                query = query.where(WorkOrder.status.in_(workorders.OPEN))
            elif statuses == {"closed"}:
                query = query.where(WorkOrder.status.in_(workorders.CLOSED))
        names = _names(session)
        rows = [
            _request_row(session, o, names)
            for o in session.scalars(query.order_by(WorkOrder.created_at.desc()).limit(1000))
        ]
        return _render(f, "service_requests", "request", rows)

    return _guarded(request, fmt, build)


@router.get("/requests/{service_request_id}.{fmt}")
def request_one(
    request: Request, session: SessionDep, settings: SettingsDep, service_request_id: str, fmt: str
) -> Response:
    """One service request."""

    def build(f: str) -> Response:
        _jurisdiction(request, settings)
        order = find_request(session, service_request_id)
        if order is None:
            raise Open311Error(404, f"service_request_id {service_request_id!r} is not known")
        return _render(f, "service_requests", "request", [_request_row(session, order, _names(session))])

    return _guarded(request, fmt, build)

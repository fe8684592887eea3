"""The sharing API: 1515 requests and decisions, grants, statistics, and the gateway.

The gateway (``/api/v1/share/…``) is for system clients with client-credentials tokens. Every call —
served or refused — is written to the hash-chained audit log (action ``sharing.gateway.read``): client,
department, resource, SM3 digest of the keys or filter, items, purpose, rows and outcome.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from shgov.catalog import service as catalog
from shgov.core.audit.service import daily_counts, records_of
from shgov.core.db import utcnow
from shgov.core.deps import SessionDep, SettingsDep, get_database, get_settings
from shgov.core.errors import DomainError, InvalidError, Problem
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_
from shgov.core.identity.deps import CurrentPrincipal, access, audit, audit_async, bearer_principal, bearer_token
from shgov.core.identity.permissions import Principal
from shgov.sharing import service as sharing
from shgov.sharing.access import VisibleGrant, VisibleRequest, may_see_grant
from shgov.sharing.schemas import (
    BatchIn,
    DecisionIn,
    GrantOut,
    HistoryOut,
    NotificationOut,
    RecordOut,
    RequestIn,
    RequestOut,
    RevokeIn,
    SubscriptionIn,
    SubscriptionOut,
)

router = APIRouter(tags=["sharing"], route_class=JsonRoute)
# The gateway's routes, matched before every other route of the app (see ``create_app``).
hot_router = APIRouter(tags=["sharing gateway"], route_class=JsonRoute)
GATEWAY_ACTION = "sharing.gateway.read"
INLINE_KEYS = 20  # a batch up to this many keys is served on the event loop; bigger ones in a thread


def _request_out(session: SessionDep, request: sharing.SharingRequest, with_history: bool = False) -> RequestOut:
    out = RequestOut.model_validate(request)
    out.overdue = sharing.is_overdue(request)
    if with_history:
        out.history = [HistoryOut.model_validate(h) for h in sharing.history(session, request.id)]
    return out


@router.post("/api/v1/sharing/requests", response_model=RequestOut, status_code=201)
def file_request(request: Request, session: SessionDep, body: RequestIn, principal: CurrentPrincipal) -> RequestOut:
    """Request items of a published resource; the hub sets the 1515 tier and the deadline."""
    filed = sharing.file_request(
        session,
        principal,
        body.resource_code,
        body.items,
        body.purpose,
        body.scenario,
        body.duration_days,
        body.row_scope,
        body.key_scenario_code,
    )
    audit(
        request,
        principal,
        "sharing.request.file",
        object_type="sharing_request",
        object_id=str(filed.id),
        details={"resource": filed.resource_code, "tier": filed.tier, "items": filed.items},
    )
    return _request_out(session, filed, with_history=True)


@router.get("/api/v1/sharing/requests", response_model=list[RequestOut])
def requests(
    session: SessionDep, principal: CurrentPrincipal, overdue: bool = False, status: str | None = None
) -> list[RequestOut]:
    """Requests the caller's department filed or owns (all for the centre), newest first."""
    rows = sharing.visible_requests(session, principal)
    return [
        _request_out(session, r)
        for r in rows
        if (not overdue or sharing.is_overdue(r)) and (status is None or r.status == status)
    ]


@router.get("/api/v1/sharing/requests/{request_id}", response_model=RequestOut)
def one_request(session: SessionDep, found: VisibleRequest, request_id: uuid.UUID) -> RequestOut:
    """A request with its history."""
    return _request_out(session, found, with_history=True)


@router.post("/api/v1/sharing/requests/{request_id}/decisions", response_model=RequestOut)
def decide(
    request: Request,
    session: SessionDep,
    request_id: uuid.UUID,
    body: DecisionIn,
    principal: CurrentPrincipal,
    found: VisibleRequest,
) -> RequestOut:
    """The owner (or the centre, for tier 15) approves or refuses; the requester may withdraw."""
    sharing.decide(
        session,
        principal,
        found,
        body.action,
        body.note,
        body.items,
        body.plain_items,
        body.rate_per_minute,
        body.client_ids,
    )
    audit(
        request,
        principal,
        f"sharing.request.{body.action}",
        object_type="sharing_request",
        object_id=str(request_id),
        details={"status": found.status, "grant": str(found.grant_id) if found.grant_id else None},
    )
    return _request_out(session, found, with_history=True)


@router.get("/api/v1/sharing/grants", response_model=list[GrantOut])
def grants(session: SessionDep, principal: CurrentPrincipal) -> list[GrantOut]:
    """Grants the caller's department holds or gave (all for the centre)."""
    return [GrantOut.model_validate(g) for g in sharing.visible_grants(session, principal)]


@router.post("/api/v1/sharing/grants/{grant_id}/revoke", response_model=GrantOut)
def revoke(
    request: Request,
    session: SessionDep,
    grant_id: uuid.UUID,
    body: RevokeIn,
    principal: CurrentPrincipal,
    grant: VisibleGrant,
) -> GrantOut:
    """End a grant now (a grant the caller may not see is a 404, as a missing one)."""
    sharing.revoke(session, principal, grant, body.reason)
    audit(request, principal, "sharing.grant.revoke", object_type="sharing_grant", object_id=str(grant_id))
    return GrantOut.model_validate(grant)


@router.post("/api/v1/sharing/grants/recheck/{prefix}/{serial}", response_model=list[GrantOut])
def recheck(
    request: Request, session: SessionDep, prefix: str, serial: str, principal: CurrentPrincipal
) -> list[GrantOut]:
    """Bring the live grants of a resource in line with its catalog entry and the negative list."""
    if not principal.city_wide(sharing.GRANT_MANAGE):
        raise Problem("forbidden", detail=N_("Grants are re-checked by the big-data centre."))
    changed = sharing.recheck_grants(session, f"{prefix}/{serial}")
    audit(request, principal, "sharing.grant.recheck", object_type="catalog_resource", object_id=f"{prefix}/{serial}")
    return [GrantOut.model_validate(g) for g in changed]


@router.post("/api/v1/sharing/sweep")
def sweep(request: Request, session: SessionDep, principal: CurrentPrincipal) -> dict[str, int]:
    """Send reminders, escalate overdue requests and expire grants (also run by ``shgov sharing sweep``)."""
    if not principal.city_wide(sharing.COORDINATE):
        raise Problem("forbidden", detail=N_("The sweep is run by the big-data centre."))
    result = sharing.sweep(session)
    audit(request, principal, "sharing.request.sweep", object_type="sharing", details=vars(result))
    return vars(result)


@router.get("/api/v1/sharing/stats")
def stats(
    session: SessionDep, principal: CurrentPrincipal, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> dict[str, Any]:
    """On-time rate of 1515 decisions and gateway calls per day, department and resource (跨部门共享调用次数)."""
    if not (principal.has_action(sharing.AUDIT_READ) or principal.has_action(sharing.COORDINATE)):
        raise Problem("forbidden", detail=N_("Sharing statistics are for owners and the big-data centre."))
    timing = sharing.on_time(session)
    owned = None if principal.city_wide(sharing.AUDIT_READ) else _owned_codes(session, principal)
    calls = daily_counts(session, GATEWAY_ACTION, utcnow() - timedelta(days=days), owned)
    return {
        "on_time": {
            "decided": timing.decided,
            "on_time": timing.on_time,
            "rate": timing.rate,
            "open": timing.open,
            "overdue": timing.overdue,
            "by_tier": {str(t): {"decided": n, "on_time": good} for t, (n, good) in sorted(timing.by_tier.items())},
        },
        "calls": [
            {"day": d, "department": dept, "resource": res, "outcome": outcome, "calls": n}
            for d, dept, res, outcome, n in calls
        ],
    }


def _owned_codes(session: SessionDep, principal: Principal) -> list[str]:
    departments = principal.departments_for(sharing.AUDIT_READ)
    return [r.code for r in catalog.list_resources(session, None) if r.provider_department_code in departments]


@router.get("/api/v1/sharing/audit")
def audit_trail(
    session: SessionDep,
    principal: CurrentPrincipal,
    resource_code: str | None = None,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Who read which shared data, when and why: the centre sees all, an owner its own resources."""
    if not principal.has_action(sharing.AUDIT_READ):
        raise Problem("forbidden", detail=N_("The sharing audit trail is for owners and the big-data centre."))
    codes: list[str] | None = None if principal.city_wide(sharing.AUDIT_READ) else _owned_codes(session, principal)
    if resource_code is not None:
        codes = [resource_code] if codes is None or resource_code in codes else []
    return [
        {
            "seq": r.seq,
            "at": r.ts,
            "client": r.actor_name,
            "department": r.department_code,
            "resource": r.object_id,
            "outcome": r.outcome,
            **r.details,
        }
        for r in records_of(session, GATEWAY_ACTION, codes, before_seq, limit)
    ]


@router.post("/api/v1/sharing/subscriptions", response_model=SubscriptionOut, status_code=201)
def subscribe(
    request: Request, session: SessionDep, body: SubscriptionIn, principal: CurrentPrincipal
) -> SubscriptionOut:
    """Subscribe to changes of the granted records: a signed webhook (HMAC-SHA256 of the body in
    ``X-SHGOV-Signature``) or a NATS subject. Keep the secret: it is shown this once."""
    grant = access(session, principal, sharing.find_grant(session, body.grant_id), may_see_grant)
    subscription, secret = sharing.subscribe(session, principal, grant, body.kind, body.target)
    audit(
        request,
        principal,
        "sharing.subscription.create",
        object_type="sharing_subscription",
        object_id=str(subscription.id),
    )
    out = SubscriptionOut.model_validate(subscription)
    out.secret = secret
    return out


@router.get("/api/v1/sharing/dead-letters", response_model=list[NotificationOut])
def dead_letters(session: SessionDep, principal: CurrentPrincipal) -> list[NotificationOut]:
    """Notifications given up on after every retry."""
    return [NotificationOut.model_validate(n) for n in sharing.dead_letters(session, principal)]


@router.post("/api/v1/sharing/dead-letters/{notification_id}/redeliver", response_model=NotificationOut)
def redeliver(
    request: Request, session: SessionDep, notification_id: uuid.UUID, principal: CurrentPrincipal
) -> NotificationOut:
    """Queue a dead notification again."""
    note = session.get(sharing.Notification, notification_id)
    if note is None:
        raise Problem("not-found", detail=N_("No such notification."))
    sharing.redeliver(session, principal, note)
    audit(
        request,
        principal,
        "sharing.notification.redeliver",
        object_type="sharing_notification",
        object_id=str(notification_id),
    )
    return NotificationOut.model_validate(note)


@router.post("/api/v1/sharing/deliveries")
def deliver(
    request: Request, session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal
) -> dict[str, int]:
    """Send the notifications that are due now (also done by ``shgov sharing sweep``)."""
    if not principal.city_wide(sharing.COORDINATE):
        raise Problem("forbidden", detail=N_("Deliveries are run by the big-data centre."))
    result = sharing.deliver_due(session, settings.events.url)
    audit(request, principal, "sharing.notification.deliver", object_type="sharing", details=vars(result))
    return vars(result)


# -- the gateway -----------------------------------------------------------------------------------------


def _admit(
    request: Request, gateway: sharing.Gateway, token: str, code: str, fields: list[str] | None
) -> sharing.Admission:
    """Check token and grant against the database (in a worker thread); a refusal is audited and raised."""
    principal: Principal | None = None
    try:
        with get_database(request).session(write=False) as session:
            principal, expires_at = bearer_principal(request, session, token)
            return gateway.admit(session, principal, code, fields, token, expires_at)
    except (DomainError, Problem) as exc:
        reason = exc.message if isinstance(exc, DomainError) else exc.detail_in("en")
        _refused(request, principal, code, {"reason": reason})
        raise


def _refusal(code: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"outcome": "denied", "object_type": "catalog_resource", "object_id": code, "details": details}


def _refused(request: Request, principal: Principal | None, code: str, details: dict[str, Any]) -> None:
    # In a worker thread (the admission): its record is written before the refusal is raised.
    audit(request, principal, GATEWAY_ACTION, **_refusal(code, details))


async def _refused_async(request: Request, principal: Principal | None, code: str, details: dict[str, Any]) -> None:
    # On the event loop: the record joins the next group commit, and the refusal waits for it.
    await audit_async(request, principal, GATEWAY_ACTION, **_refusal(code, details))


async def _served(
    request: Request,
    code: str,
    fields: list[str] | None,
    serve: Callable[[sharing.Gateway, sharing.Call], sharing.Answer],
    what: dict[str, Any],
    *,
    blocking: bool = True,
) -> dict[str, Any]:
    """Admit the caller (a cached admission when it still holds, else the database decides), serve, audit.

    The common case — a client calling again within ``decision_cache_seconds`` — reads no database and
    stays on the event loop; ``blocking`` work (filters, big batches, the first read of a new version)
    runs in a worker thread. Every answer, and every refusal, waits until its audit record is committed
    (a group commit shared with the calls arriving meanwhile)."""
    settings = get_settings(request)
    gateway = sharing.gateway(settings.lake_dir, settings.security.decision_cache_seconds, settings.web.workers)
    try:
        token = bearer_token(request)
    except Problem as exc:
        await _refused_async(request, None, code, {**what, "reason": exc.detail_in("en")})
        raise
    admission = gateway.admitted(token, code, fields)
    if admission is None:
        admission = await run_in_threadpool(_admit, request, gateway, token, code, fields)
    principal, call = admission.principal, admission.call
    try:
        if blocking or not gateway.tables.loaded(call.dataset, call.version, call.key):
            answer = await run_in_threadpool(serve, gateway, call)
        else:
            answer = serve(gateway, call)
    except sharing.RateLimited as exc:
        await _refused_async(request, principal, code, {**what, "reason": "rate limit"})
        raise Problem(
            "too-many-requests",
            detail=N_("rate limit reached; retry after {seconds} s"),
            headers={"Retry-After": str(exc.retry_after)},
            params={"seconds": exc.retry_after},
        ) from exc
    except DomainError as exc:
        await _refused_async(request, principal, code, {**what, "reason": exc.message})
        raise
    # Durable before the rows leave: the call waits for the group commit that carries its record.
    await audit_async(
        request,
        principal,
        GATEWAY_ACTION,
        object_type="catalog_resource",
        object_id=code,
        details={
            **what,
            "grant": str(call.grant.id),
            "digest": answer.digest,
            "items": call.items,
            "masked": call.masked,
            "purpose": call.grant.purpose,
            "rows": len(answer.rows),
        },
    )
    return {
        "resource": code,
        "items": call.items,
        "masked": call.masked,
        "rows": answer.rows,
        "next_after": answer.next_after,
    }


def _fields(fields: str | None) -> list[str] | None:
    return [f.strip() for f in fields.split(",") if f.strip()] if fields else None


@hot_router.post("/api/v1/share/{prefix}/{serial}/batch")
async def share_batch(request: Request, prefix: str, serial: str, body: BatchIn) -> dict[str, Any]:
    """Records of up to 1,000 keys (keys not found, or outside the grant's rows, are simply absent)."""
    return await _served(
        request,
        f"{prefix}/{serial}",
        body.fields or None,
        lambda gateway, call: gateway.lookup(call, body.keys),
        {"keys": len(body.keys)},
        blocking=len(body.keys) > INLINE_KEYS,
    )


def _documented(*names: str, query: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """OpenAPI parameters of a route that reads them from the request itself."""
    parameters = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]
    parameters += [{"name": n, "in": "query", "schema": {"type": "string"}, "description": d} for n, d in query]
    return {"parameters": parameters}


@hot_router.get(
    "/api/v1/share/{prefix}/{serial}/{key}",
    responses={200: {"model": RecordOut}},
    openapi_extra=_documented(
        "prefix", "serial", "key", query=(("fields", "comma-separated granted items; all granted when omitted"),)
    ),
)
async def share_one(request: Request) -> JSONResponse:
    """One record by its key, with the granted items (personal ones masked unless the grant says plain).

    The busiest route of the app: it reads its parameters and writes its answer itself, which costs a
    fraction of FastAPI's per-parameter validation and response serialisation."""
    path = request.path_params
    code, key = f"{path['prefix']}/{path['serial']}", path["key"]
    fields = _fields(request.query_params.get("fields"))
    answer = await _served(
        request, code, fields, lambda gateway, call: gateway.lookup(call, [key]), {"keys": 1}, blocking=False
    )
    if not answer["rows"]:
        raise Problem("not-found", detail=N_("No such record (or it is outside your grant)."))
    record = {"resource": code, "items": answer["items"], "masked": answer["masked"], "record": answer["rows"][0]}
    return JSONResponse(record)


@hot_router.get("/api/v1/share/{prefix}/{serial}")
async def share_query(
    request: Request,
    prefix: str,
    serial: str,
    eq: Annotated[list[str] | None, Query(description="item:value, repeatable; every one must hold")] = None,
    after: Annotated[str | None, Query(max_length=200, description="the next_after of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=sharing.MAX_BATCH)] = 100,
    fields: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """A page of records matching the filters, in key order; pass ``next_after`` back for the next page."""
    equals: dict[str, str] = {}
    for condition in eq or []:
        column, sep, value = condition.partition(":")
        if not sep or not column:
            raise InvalidError(N_("eq must be item:value (got {condition!r})"), field="eq", condition=condition)
        equals[column] = value
    return await _served(
        request,
        f"{prefix}/{serial}",
        _fields(fields),
        lambda gateway, call: gateway.query(call, equals, after, limit),
        {"filter": sorted(equals), "after": bool(after)},
    )

"""1515 authorised sharing: requests, grants and the gateway that serves them.

A department requests items of a published catalog resource for a purpose and scenario. The hub
sets the tier from the catalog (``tier_of``): data the big-data centre holds, shared unconditionally,
for a scenario on the key-scenario list is granted at once (1 working day); other data it holds goes
to the owner department for review (5 working days); data it does not hold yet needs requester, owner
and centre to coordinate (15 working days). Items on the negative list, or of a resource not shared,
are refused at filing. A refusal needs a written reason (书面说明). Deadlines count working days of
the core calendar; ``sweep`` reminds before a deadline, flags and escalates overdue requests and
expires grants.

A grant names the items, which of them come unmasked, a row filter, purpose, expiry, a rate limit and
optionally the clients that may use it. The gateway checks every call against a live grant *and* the
live catalog (so a change of sharing type or negative list takes effect on the next call;
``recheck_grants`` also narrows or suspends the grants themselves), masks personal items, hides rows
outside the filter, and reports what it did so that the caller can audit it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from shgov.catalog import service as catalog
from shgov.catalog.events import CatalogChange
from shgov.core.audit.service import sm3
from shgov.core.calendar.service import add_working_days, city_today
from shgov.core.db import ChangeCounter, Database, utcnow
from shgov.core.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from shgov.core.events import Event, emit
from shgov.core.i18n import N_
from shgov.core.identity.permissions import SYSTEM_ACTOR, Principal, register_action
from shgov.core.identity.service import CREDENTIALS, add_actions_to_role, principal_by_username
from shgov.core.ids import mask_id_number, mask_name, mask_phone, mask_text
from shgov.core.ratelimit import RateLimited as RateLimited  # part of this service's interface
from shgov.core.ratelimit import RateLimiter as RateLimiter  # part of this service's interface
from shgov.core.regions.service import RegionIndex
from shgov.core.settings import Settings
from shgov.lake import service as lake
from shgov.registers import service as registers
from shgov.registers.events import RecordChanged, RegisterRebuilt
from shgov.sharing import events
from shgov.sharing.models import Grant as Grant  # part of this service's interface
from shgov.sharing.models import Notification as Notification  # part of this service's interface
from shgov.sharing.models import SharingRequest as SharingRequest  # part of this service's interface
from shgov.sharing.models import SharingRequestEvent
from shgov.sharing.models import Subscription as Subscription  # part of this service's interface

REQUEST = register_action("sharing.request.file", N_("Request another department's data"))
DECIDE = register_action("sharing.request.decide", N_("Approve or refuse requests for own department's data"))
COORDINATE = register_action("sharing.request.coordinate", N_("Coordinate requests for data not yet aggregated"))
GRANT_MANAGE = register_action("sharing.grant.manage", N_("Revoke and re-check grants"))
AUDIT_READ = register_action("sharing.audit.read", N_("See who read own department's shared data"))
ALL_ACTIONS = (REQUEST, DECIDE, COORDINATE, GRANT_MANAGE, AUDIT_READ)

OPEN = ("reviewing", "coordinating")
STATUS_NAMES = (N_("reviewing"), N_("coordinating"), N_("granted"), N_("refused"), N_("withdrawn"))
GRANT_STATUS_NAMES = (N_("active"), N_("revoked"), N_("expired"), N_("suspended"))
# status → {action: next status}
TRANSITIONS: dict[str, dict[str, str]] = {
    "reviewing": {"approve": "granted", "refuse": "refused", "withdraw": "withdrawn"},
    "coordinating": {"approve": "granted", "refuse": "refused", "withdraw": "withdrawn"},
}
MAX_DURATION_DAYS = 3 * 366
MAX_BATCH = 1000
# Gateway admissions refill when a grant changes (or, through ``subscribers``, its catalog entry or data).
GRANTS = ChangeCounter(Grant)


# -- requests ----------------------------------------------------------------------------------------


def tier_of(session: Session, resource: catalog.CatalogResource, live: Mapping[str, Any], key_scenario: bool) -> int:
    """1, 5 or 15: the working days the hub allows for a request (see the module docstring)."""
    if not catalog.is_aggregated(session, resource):
        return 15
    if live["sharing_type"] == "unconditional" and key_scenario:
        return 1
    return 5


def _history(
    session: Session, request: SharingRequest, principal: Principal | None, action: str, before: str | None, note: str
) -> None:
    session.add(
        SharingRequestEvent(
            request_id=request.id,
            actor_id=principal.user_id if principal else None,
            actor_name=principal.username if principal else SYSTEM_ACTOR,
            action=action,
            from_status=before,
            to_status=request.status,
            note=note,
        )
    )


def file_request(
    session: Session,
    principal: Principal,
    resource_code: str,
    items: Sequence[str],
    purpose: str,
    scenario: str,
    duration_days: int,
    row_scope: Mapping[str, str] | None = None,
    key_scenario_code: str | None = None,
    today: date | None = None,
) -> SharingRequest:
    """File a request for the caller's department; a tier-1 request is granted at once."""
    department, tenant = principal.department_code, principal.tenant_code
    if department is None or tenant is None or not principal.allows(REQUEST, tenant, department):
        raise ForbiddenError(N_("requests are filed by staff of a department for that department"), field="department")
    resource = catalog.get_resource(session, resource_code)
    live = catalog.published(session, resource_code)
    if live is None:
        raise NotFoundError(
            N_("{resource} is not a published catalog resource"), field="resource_code", resource=resource_code
        )
    if resource.provider_department_code == department:
        raise InvalidError(N_("a department does not request its own data"), field="resource_code")
    wanted = list(dict.fromkeys(i.strip() for i in items if i.strip()))
    if not wanted:
        raise InvalidError(N_("name the items needed"), field="items")
    check = catalog.shareable_items(session, resource_code, wanted)
    if check.unknown:
        raise InvalidError(
            N_("{resource} has no items {items}"), field="items", resource=resource_code, items=", ".join(check.unknown)
        )
    if check.refused:
        reasons = "; ".join(f"{item}: {basis}" for item, basis in check.refused.items())
        raise InvalidError(N_("not shared (negative list or not shareable): {reasons}"), field="items", reasons=reasons)
    names = {i["name"] for i in live["items"]}
    scope = dict(row_scope or {})
    for column in scope:
        if column not in names:
            raise InvalidError(
                N_("the row scope names {column!r}, which is not an item of the resource"),
                field="row_scope",
                column=column,
            )
    if not purpose.strip() or not scenario.strip():
        raise InvalidError(N_("say what the data is for and in which scenario"), field="purpose")
    if not 1 <= duration_days <= MAX_DURATION_DAYS:
        raise InvalidError(N_("duration must be 1–{most} days"), field="duration_days", most=MAX_DURATION_DAYS)
    key_codes = {s.code for s in catalog.key_scenarios(session)}
    if key_scenario_code and key_scenario_code not in key_codes:
        raise InvalidError(
            N_("{scenario} is not on the key-scenario list"), field="key_scenario_code", scenario=key_scenario_code
        )
    tier = tier_of(session, resource, live, bool(key_scenario_code))
    filed_on = today or city_today()
    request = SharingRequest(
        resource_code=resource_code,
        owner_department_code=resource.provider_department_code,
        owner_tenant_code=resource.tenant_code,
        requester_department_code=department,
        requester_tenant_code=tenant,
        requested_by=principal.user_id,
        items=wanted,
        purpose=purpose.strip(),
        scenario=scenario.strip(),
        key_scenario_code=key_scenario_code or None,
        duration_days=duration_days,
        row_scope=scope,
        tier=tier,
        status="reviewing" if tier == 5 else "coordinating",
        deadline=add_working_days(filed_on, tier),
    )
    session.add(request)
    session.flush()
    _history(session, request, principal, "file", None, f"tier {tier}")
    emit(session, events.RequestFiled(request=request.id, tier=tier, resource=resource_code))
    if tier == 1:
        before = request.status
        request.status = "granted"
        request.decided_at = utcnow()
        request.grant_id = _make_grant(session, request, wanted, []).id
        _history(session, request, None, "approve", before, "1: aggregated, unconditional, key scenario")
    session.flush()
    return request


def _make_grant(session: Session, request: SharingRequest, items: list[str], plain: list[str]) -> Grant:
    grant = Grant(
        request_id=request.id,
        resource_code=request.resource_code,
        owner_department_code=request.owner_department_code,
        grantee_department_code=request.requester_department_code,
        grantee_tenant_code=request.requester_tenant_code,
        items=items,
        plain_items=plain,
        row_filter=dict(request.row_scope),
        purpose=request.purpose,
        expires_at=utcnow() + timedelta(days=request.duration_days),
        status="active",
    )
    session.add(grant)
    session.flush()
    emit(session, events.GrantIssued(grant=grant.id, request=request.id))
    return grant


def decide(
    session: Session,
    principal: Principal,
    request: SharingRequest,
    action: str,
    note: str = "",
    items: Sequence[str] | None = None,
    plain_items: Sequence[str] = (),
    rate_per_minute: int | None = None,
    client_ids: Sequence[str] = (),
) -> SharingRequest:
    """Approve (issuing a grant, maybe for fewer items), refuse with a written reason, or withdraw."""
    allowed = TRANSITIONS.get(request.status, {})
    if action not in allowed:
        if not allowed:
            raise ConflictError(
                N_("a {status} request does not allow {action!r}; nothing more can be done with it"),
                field="action",
                status=request.status,
                action=action,
            )
        raise ConflictError(
            N_("a {status} request does not allow {action!r}; possible: {possible}"),
            field="action",
            status=request.status,
            action=action,
            possible=", ".join(allowed),
        )
    if action == "withdraw":
        if not principal.allows(REQUEST, request.requester_tenant_code, request.requester_department_code):
            raise ForbiddenError(N_("only the requesting department withdraws its request"), field="action")
    elif not (
        principal.allows(DECIDE, request.owner_tenant_code, request.owner_department_code)
        or (request.tier == 15 and principal.allows(COORDINATE, request.owner_tenant_code))
    ):
        raise ForbiddenError(N_("the owner department decides (and the big-data centre for tier 15)"), field="action")
    if action == "refuse" and len(note.strip()) < 4:
        raise InvalidError(N_("a refusal needs a written reason"), field="note")
    before = request.status
    if action == "approve":
        granted = list(items) if items else list(request.items)
        extra = [i for i in granted if i not in request.items]
        if extra:
            raise InvalidError(N_("not requested: {items}"), field="items", items=", ".join(extra))
        check = catalog.shareable_items(session, request.resource_code, granted)
        if check.refused or check.unknown:
            raise ConflictError(
                N_("no longer shareable: {items}"), field="items", items=", ".join([*check.refused, *check.unknown])
            )
        plain = [i for i in plain_items if i in granted]
        grant = _make_grant(session, request, granted, plain)
        if rate_per_minute:
            grant.rate_per_minute = max(1, min(rate_per_minute, 100_000))
        grant.client_ids = [str(c) for c in client_ids]
        request.grant_id = grant.id
    request.status = allowed[action]
    request.decided_at = utcnow()
    request.decision_note = note.strip() or None
    _history(session, request, principal, action, before, note.strip())
    emit(session, events.RequestDecided(request=request.id, status=request.status))
    session.flush()
    return request


def find_request(session: Session, request_id: uuid.UUID) -> SharingRequest | None:
    """A request by id."""
    return session.get(SharingRequest, request_id)


def history(session: Session, request_id: uuid.UUID) -> list[SharingRequestEvent]:
    """Every step of a request, oldest first."""
    return list(
        session.scalars(
            select(SharingRequestEvent)
            .where(SharingRequestEvent.request_id == request_id)
            .order_by(SharingRequestEvent.at)
        )
    )


def may_see(principal: Principal, request: SharingRequest) -> bool:
    """Requester, owner and (for any request) the big-data centre see a request."""
    return (
        principal.allows(REQUEST, request.requester_tenant_code, request.requester_department_code)
        or principal.allows(DECIDE, request.owner_tenant_code, request.owner_department_code)
        or principal.allows(COORDINATE, request.owner_tenant_code)
    )


def visible_requests(session: Session, principal: Principal) -> list[SharingRequest]:
    """The requests the caller may see, newest first."""
    rows = session.scalars(select(SharingRequest).order_by(SharingRequest.created_at.desc()))
    return [r for r in rows if may_see(principal, r)]


def is_overdue(request: SharingRequest, today: date | None = None) -> bool:
    """Open past its deadline."""
    return request.status in OPEN and request.deadline < (today or city_today())


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did."""

    reminded: int
    escalated: int
    expired: int


def sweep(session: Session, today: date | None = None, now: datetime | None = None) -> SweepResult:
    """Remind the decider a working day before a deadline, escalate overdue requests, expire grants."""
    day = today or city_today()
    moment = now or utcnow()
    reminded = escalated = 0
    for request in session.scalars(select(SharingRequest).where(SharingRequest.status.in_(OPEN))):
        if request.reminded_at is None and add_working_days(day, 1) >= request.deadline >= day:
            request.reminded_at = moment
            emit(session, events.RequestReminder(request=request.id, deadline=request.deadline))
            reminded += 1
        if request.escalated_at is None and request.deadline < day:
            request.escalated_at = moment
            _history(session, request, None, "escalate", request.status, f"overdue since {request.deadline}")
            emit(session, events.RequestEscalated(request=request.id, owner=request.owner_department_code))
            escalated += 1
    expired = 0
    for grant in session.scalars(select(Grant).where(Grant.status == "active", Grant.expires_at < moment)):
        grant.status, grant.status_reason = "expired", f"expired on {grant.expires_at.date()}"
        expired += 1
    session.flush()
    return SweepResult(reminded, escalated, expired)


@dataclass(frozen=True)
class OnTime:
    """How many decided requests met their deadline, per tier and in all."""

    decided: int
    on_time: int
    open: int
    overdue: int
    by_tier: dict[int, tuple[int, int]]

    @property
    def rate(self) -> float | None:
        """Share decided on time (``None`` before anything was decided)."""
        return self.on_time / self.decided if self.decided else None


def on_time(session: Session, today: date | None = None) -> OnTime:
    """The on-time statistics of 1515 (withdrawn requests are not counted)."""
    decided = on = open_ = overdue = 0
    by_tier: dict[int, tuple[int, int]] = {}
    for request in session.scalars(select(SharingRequest)):
        if request.status in OPEN:
            open_ += 1
            overdue += is_overdue(request, today)
            continue
        if request.status == "withdrawn" or request.decided_at is None:
            continue
        met = request.decided_at.date() <= request.deadline
        decided += 1
        on += met
        total, good = by_tier.get(request.tier, (0, 0))
        by_tier[request.tier] = (total + 1, good + met)
    return OnTime(decided, on, open_, overdue, by_tier)


# -- grants ------------------------------------------------------------------------------------------


def find_grant(session: Session, grant_id: uuid.UUID) -> Grant | None:
    """A grant by id."""
    return session.get(Grant, grant_id)


def visible_grants(session: Session, principal: Principal) -> list[Grant]:
    """Grants the caller's department holds or gave, or all for the centre."""
    rows = session.scalars(select(Grant).order_by(Grant.created_at.desc()))
    return [g for g in rows if may_see_grant(principal, g)]


def may_see_grant(principal: Principal, grant: Grant) -> bool:
    """The owner department, the grantee department and the centre see a grant."""
    return (
        principal.allows(GRANT_MANAGE, None, grant.owner_department_code)
        or principal.city_wide(GRANT_MANAGE)
        or grant.grantee_department_code == principal.department_code
    )


def revoke(session: Session, principal: Principal, grant: Grant, reason: str) -> Grant:
    """End a grant now (the owner department or the centre), with the reason."""
    if not (principal.allows(GRANT_MANAGE, None, grant.owner_department_code) or principal.city_wide(GRANT_MANAGE)):
        raise ForbiddenError(N_("the owner department or the big-data centre revokes grants"), field="grant")
    if grant.status != "active":
        raise ConflictError(N_("the grant is {status}"), field="status", status=grant.status)
    if len(reason.strip()) < 4:
        raise InvalidError(N_("say why the grant is revoked"), field="reason")
    grant.status, grant.status_reason = "revoked", reason.strip()
    emit(session, events.GrantRevoked(grant=grant.id))
    session.flush()
    return grant


def recheck_grants(session: Session, resource_code: str) -> list[Grant]:
    """Bring live grants of a resource in line with the catalog: items now on the negative list are
    taken out; a grant left without items, or of a resource no longer shared, is suspended."""
    changed = []
    live = None
    try:
        live = catalog.published(session, resource_code)
    except NotFoundError:
        live = None
    for grant in session.scalars(select(Grant).where(Grant.resource_code == resource_code, Grant.status == "active")):
        if live is None or live["sharing_type"] == "none":
            grant.status, grant.status_reason = "suspended", "the resource is no longer shared"
            changed.append(grant)
            continue
        check = catalog.shareable_items(session, resource_code, grant.items)
        gone = [*check.refused, *check.unknown]
        if not gone:
            continue
        grant.items = [i for i in grant.items if i not in gone]
        grant.plain_items = [i for i in grant.plain_items if i in grant.items]
        grant.status_reason = f"items withdrawn by the catalog: {', '.join(gone)}"
        if not grant.items:
            grant.status = "suspended"
        changed.append(grant)
    for grant in changed:
        emit(session, events.GrantRechecked(grant=grant.id, status=grant.status))
    session.flush()
    return changed


# -- the gateway -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantTerms:
    """The terms of a grant a call was admitted under (a snapshot: calls outlive the session)."""

    id: uuid.UUID
    purpose: str
    rate_per_minute: int
    expires_at: datetime


@dataclass(frozen=True)
class Call:
    """What a caller was admitted to read of a resource (and what to audit)."""

    grant: GrantTerms
    resource_code: str
    items: list[str]
    masked: list[str]
    row_filter: dict[str, Any]
    dataset: str
    version: int
    key: str
    maskers: dict[str, Callable[[str], str]]


@dataclass(frozen=True)
class Answer:
    """Records the gateway returns, with what the audit record needs."""

    call: Call
    rows: list[dict[str, Any]]
    digest: str
    next_after: str | None = None


@dataclass(frozen=True)
class Admission:
    """A checked token admitted to a resource with some items, reusable until ``until`` (monotonic) as
    long as neither credentials nor grants changed in this process meanwhile."""

    principal: Principal
    call: Call
    until: float
    changes: tuple[int, int]


def _masker(item: Mapping[str, Any]) -> Callable[[str], str]:
    name = str(item["name"])
    if "id_number" in name or name in ("holder_id",):
        return lambda v: mask_id_number(v) if len(v) == 18 and v[:17].isdigit() else mask_text(v)
    if "phone" in name:
        return mask_phone
    if name.endswith("name"):
        return mask_name
    return lambda v: v[:1] + "*" * max(len(v) - 1, 1) if v else v


def _changes() -> tuple[int, int]:
    return CREDENTIALS.value, GRANTS.value


MAX_ADMISSIONS = 10_000
AdmissionKey = tuple[bytes, str, tuple[str, ...] | None]  # token digest, resource, items asked for


class Gateway:
    """Checks and serves calls against grants; one per process (it holds the data indexes, the rate
    buckets and, for ``cache_seconds``, the admissions of the tokens that called)."""

    def __init__(self, lake_dir: Path, cache_seconds: float = 0.0, processes: int = 1) -> None:
        self.tables = lake.KeyedTables(lake_dir)
        self.limiter = RateLimiter(processes)
        self.cache_seconds = cache_seconds
        self.clock: Callable[[], float] = time.monotonic  # how long an admission holds (tests step it)
        self._admissions: dict[AdmissionKey, Admission] = {}

    @staticmethod
    def _cache_key(
        token: str, resource_code: str, fields: Sequence[str] | None
    ) -> tuple[bytes, str, tuple[str, ...] | None]:
        return hashlib.sha256(token.encode()).digest(), resource_code, tuple(fields) if fields else None

    def admitted(self, token: str, resource_code: str, fields: Sequence[str] | None) -> Admission | None:
        """The admission this token got for the resource and items a moment ago, if it still holds."""
        found = self._admissions.get(self._cache_key(token, resource_code, fields))
        if found is None or found.until <= self.clock() or found.changes != _changes():
            return None
        return found

    def admit(
        self,
        session: Session,
        principal: Principal,
        resource_code: str,
        fields: Sequence[str] | None,
        token: str | None = None,
        token_expires_at: datetime | None = None,
    ) -> Admission:
        """Check the caller against its live grant (``authorize``) and remember the admission for the token."""
        changes = _changes()  # read before the check, so a change during it makes the entry stale at once
        call = self.authorize(session, principal, resource_code, fields)
        ends = min(call.grant.expires_at, token_expires_at or call.grant.expires_at)
        seconds = min(self.cache_seconds, (ends - utcnow()).total_seconds())
        admission = Admission(principal, call, self.clock() + seconds, changes)
        if token is not None and seconds > 0:
            if len(self._admissions) >= MAX_ADMISSIONS:
                self._admissions.clear()
            self._admissions[self._cache_key(token, resource_code, fields)] = admission
        return admission

    def authorize(
        self, session: Session, principal: Principal, resource_code: str, fields: Sequence[str] | None
    ) -> Call:
        """The live grant of the caller's department for ``resource_code`` and the items it may read now."""
        if principal.kind != "client":
            raise ForbiddenError(N_("the gateway serves system clients (client-credentials tokens)"), field="token")
        now = utcnow()
        grants = [
            g
            for g in session.scalars(
                select(Grant).where(
                    Grant.resource_code == resource_code,
                    Grant.grantee_department_code == principal.department_code,
                    Grant.status == "active",
                )
            )
            if g.expires_at > now and (not g.client_ids or str(principal.user_id) in g.client_ids)
        ]
        if not grants:
            raise ForbiddenError(
                N_("no live grant of {resource} for this client's department"), field="grant", resource=resource_code
            )
        grant = grants[0]
        live = catalog.published(session, resource_code)
        if live is None or live["sharing_type"] == "none":
            raise ForbiddenError(N_("{resource} is not shared now"), field="resource", resource=resource_code)
        shareable = catalog.shareable_items(session, resource_code, grant.items, live)
        allowed = shareable.allowed
        wanted = list(fields) if fields else allowed
        refused = [f for f in wanted if f not in allowed]
        if refused:
            raise ForbiddenError(N_("not granted: {items}"), field="fields", items=", ".join(refused))
        details = {i["name"]: i for i in live["items"]}
        maskers = {
            f: _masker(details[f])
            for f in wanted
            if details[f]["personal"] and details[f]["sensitivity"] != "general" and f not in grant.plain_items
        }
        if live["register_code"] is not None:
            dataset, version, key = registers.live_dataset(session, live["register_code"])
        elif live["lake_resource"] is not None:
            spec = lake.get_resource(session, live["lake_resource"])
            dataset, version, key = spec.code, spec.current_version, spec.key[0]
        else:
            raise NotFoundError(
                N_("{resource} has no data the gateway can serve"), field="resource", resource=resource_code
            )
        if version == 0:
            raise NotFoundError(N_("{resource} has no data yet"), field="resource", resource=resource_code)
        terms = GrantTerms(grant.id, grant.purpose, grant.rate_per_minute, grant.expires_at)
        masked = [f for f in wanted if f in maskers]
        return Call(terms, resource_code, wanted, masked, dict(grant.row_filter), dataset, version, key, maskers)

    @staticmethod
    def _shape(call: Call, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        maskers = call.maskers
        out = []
        for row in rows:
            if any(str(row.get(c)) != str(v) for c, v in call.row_filter.items()):
                continue  # outside the grant's rows: invisible
            record: dict[str, Any] = {}
            for item in call.items:
                value = row.get(item)
                if isinstance(value, date):
                    value = value.isoformat()
                if item in maskers and isinstance(value, str):
                    value = maskers[item](value)
                record[item] = value
            out.append(record)
        return out

    def lookup(self, call: Call, keys: Sequence[str]) -> Answer:
        """Records by key (one, or a batch of up to 1,000: one call against the grant's rate)."""
        if not keys or len(keys) > MAX_BATCH:
            raise InvalidError(N_("send 1–{most} keys"), field="keys", most=MAX_BATCH)
        self.limiter.take(call.grant.id, call.grant.rate_per_minute)
        columns = list(dict.fromkeys([*call.items, *call.row_filter]))
        rows = self.tables.lookup(call.dataset, call.version, call.key, list(keys), columns)
        shaped = self._shape(call, rows)
        return Answer(call, shaped, sm3("\n".join(sorted(keys)).encode()))

    def query(self, call: Call, equals: Mapping[str, str], after: str | None, limit: int) -> Answer:
        """A page of records matching ``equals`` on granted items, in key order after ``after``."""
        outside = [c for c in equals if c not in call.items]
        if outside:
            raise ForbiddenError(
                N_("filters may use granted items only: {items}"), field="filter", items=", ".join(outside)
            )
        self.limiter.take(call.grant.id, call.grant.rate_per_minute)
        conditions = {**equals, **call.row_filter}
        columns = list(dict.fromkeys([call.key, *call.items, *call.row_filter]))
        rows = self.tables.page(call.dataset, call.version, call.key, conditions, after, limit, columns)
        shaped = self._shape(call, rows)
        next_after = str(rows[-1][call.key]) if len(rows) == limit else None
        digest = sm3(repr(sorted(equals.items())).encode() + (after or "").encode())
        return Answer(call, shaped, digest, next_after)


_gateways: dict[Path, Gateway] = {}
_gateways_lock = threading.Lock()


def gateway(lake_dir: Path, cache_seconds: float = 0.0, processes: int = 1) -> Gateway:
    """The process's gateway over the lake in ``lake_dir`` (one of ``processes`` serving it)."""
    with _gateways_lock:
        found = _gateways.get(lake_dir)
        if found is None:
            found = _gateways[lake_dir] = Gateway(lake_dir, cache_seconds, processes)
        return found


# -- subscriptions -------------------------------------------------------------------------------------

MAX_ATTEMPTS = 8
SIGNATURE_HEADER = "X-SHGOV-Signature"


def subscribe(session: Session, principal: Principal, grant: Grant, kind: str, target: str) -> tuple[Subscription, str]:
    """Subscribe the grantee to changes of the records its grant covers; returns the HMAC secret once.

    A notification names the changed record by its key and the granted items that changed, never the
    values (the subscriber reads them through the audited gateway), so the key item must be granted
    plain."""
    if grant.grantee_department_code != principal.department_code:
        raise ForbiddenError(N_("only the grantee subscribes to its grant"), field="grant")
    if grant.status != "active":
        raise ConflictError(N_("the grant is {status}"), field="grant", status=grant.status)
    live = catalog.published(session, grant.resource_code)
    if live is None or live["register_code"] is None:
        raise InvalidError(N_("changes are announced for the base registers"), field="grant")
    key = registers.KEYS[live["register_code"]]
    if key not in grant.items or (key not in grant.plain_items and _personal(live, key)):
        raise InvalidError(
            N_("subscribing needs {key} granted (and plain, as it is personal data)"), field="grant", key=key
        )
    if kind == "webhook":
        if not target.startswith(("https://", "http://")):
            raise InvalidError(N_("a webhook target is an http(s) URL"), field="target")
    elif kind == "nats":
        if (
            not target
            or any(c in target for c in " *>")
            or not target.replace(".", "").replace("_", "").replace("-", "").isalnum()
        ):
            raise InvalidError(
                N_("a NATS target is a subject without wildcards (letters, digits, . _ -)"), field="target"
            )
    else:
        raise InvalidError(N_("kind is webhook or nats"), field="kind")
    secret = secrets.token_urlsafe(24)
    subscription = Subscription(
        grant_id=grant.id,
        department_code=grant.grantee_department_code,
        resource_code=grant.resource_code,
        kind=kind,
        target=target,
        secret=secret,
        status="active",
    )
    session.add(subscription)
    session.flush()
    return subscription, secret


def _personal(live: Mapping[str, Any], item: str) -> bool:
    return any(i["name"] == item and i["personal"] for i in live["items"])


def fan_out(session: Session, event: Event, lake_dir: Path) -> int:
    """Turn a register change event into one pending notification per live subscription that may see
    the record (idempotent per event and subscription)."""
    change: RecordChanged | RegisterRebuilt = (
        RecordChanged.of(event) if event.type.endswith(".changed") else RegisterRebuilt.of(event)
    )
    register = change.register_name
    entry = next((r for r in catalog.list_resources(session, None, "published") if r.register_code == register), None)
    if entry is None:
        return 0
    now = utcnow()
    made = 0
    for subscription in session.scalars(
        select(Subscription).where(Subscription.resource_code == entry.code, Subscription.status == "active")
    ):
        grant = session.get(Grant, subscription.grant_id)
        if grant is None or grant.status != "active" or grant.expires_at <= now:
            continue
        payload: dict[str, Any]
        if isinstance(change, RecordChanged):
            changed = [e for e in change.elements if e in grant.items]
            if not changed or not _in_rows(session, lake_dir, grant, register, change.key):
                continue
            payload = {"resource": entry.code, "key": change.key, "items": changed}
        else:
            payload = {"resource": entry.code, "rebuilt": True}
        payload |= {"event": str(event.id), "type": event.type, "version": change.version}
        exists = session.scalar(
            select(Notification.id).where(
                Notification.subscription_id == subscription.id, Notification.event_id == event.id
            )
        )
        if exists is None:
            session.add(
                Notification(subscription_id=subscription.id, event_id=event.id, payload=payload, status="pending")
            )
            made += 1
    session.flush()
    return made


def _in_rows(session: Session, lake_dir: Path, grant: Grant, register: str, key: str) -> bool:
    if not grant.row_filter:
        return True
    dataset, version, key_column = registers.live_dataset(session, register)
    rows = gateway(lake_dir).tables.lookup(dataset, version, key_column, [key], list(grant.row_filter))
    return any(all(str(r.get(c)) == str(v) for c, v in grant.row_filter.items()) for r in rows)


def sign(secret: str, body: bytes) -> str:
    """The webhook signature header value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class DeliveryResult:
    """What a delivery round did."""

    delivered: int
    retried: int
    dead: int


def deliver_due(
    session: Session, nats_url: str = "", now: datetime | None = None, timeout: float = 10.0
) -> DeliveryResult:
    """Send the notifications that are due: at least once, retried with back-off (30 s · 2ⁿ), and moved
    to the dead-letter list after ``MAX_ATTEMPTS`` failures."""
    moment = now or utcnow()
    delivered = retried = dead = 0
    due = session.scalars(
        select(Notification)
        .where(Notification.status == "pending", Notification.next_attempt_at <= moment)
        .order_by(Notification.created_at)
        .limit(500)
    ).all()
    with httpx.Client(timeout=timeout) as http:
        for note in due:
            subscription = session.get(Subscription, note.subscription_id)
            if subscription is None:
                continue
            body = json.dumps(note.payload, ensure_ascii=False, sort_keys=True).encode()
            headers = {
                "Content-Type": "application/json",
                "X-SHGOV-Delivery": str(note.id),
                "X-SHGOV-Event": str(note.payload.get("type", "")),
                SIGNATURE_HEADER: sign(subscription.secret, body),
            }
            try:
                if subscription.kind == "webhook":
                    answer = http.post(subscription.target, content=body, headers=headers)
                    if answer.status_code >= 300:
                        raise RuntimeError(f"HTTP {answer.status_code}")
                else:
                    _publish_nats(nats_url, subscription.target, body, headers)
            except Exception as exc:  # any failure to hand over means: try again later
                note.attempts += 1
                note.last_error = str(exc)[:500]
                if note.attempts >= MAX_ATTEMPTS:
                    note.status = "dead"
                    dead += 1
                else:
                    note.next_attempt_at = moment + timedelta(seconds=30 * 2 ** (note.attempts - 1))
                    retried += 1
                continue
            note.attempts += 1
            note.status, note.delivered_at = "delivered", moment
            delivered += 1
    session.flush()
    return DeliveryResult(delivered, retried, dead)


def _publish_nats(url: str, subject: str, body: bytes, headers: Mapping[str, str]) -> None:
    if not url:
        raise RuntimeError("no NATS server is configured (SHGOV_EVENTS__URL)")

    async def publish() -> None:
        import nats

        async def quiet(_error: Exception) -> None:
            return None  # a failed hand-over is reported by the caller, once

        connection = await asyncio.wait_for(
            nats.connect(url, connect_timeout=5, allow_reconnect=False, error_cb=quiet), timeout=10
        )
        try:
            jetstream = connection.jetstream()
            try:
                await jetstream.find_stream_name_by_subject(subject)
            except nats.js.errors.NotFoundError:
                # No stream keeps the subject: a core publish, flushed to the server.
                await connection.publish(subject, body, headers=dict(headers))
                await connection.flush()
            else:
                await jetstream.publish(subject, body, headers=dict(headers))  # acknowledged by the stream
        finally:
            await connection.close()

    asyncio.run(publish())


def dead_letters(session: Session, principal: Principal) -> list[Notification]:
    """Notifications given up on, for the subscriber's department (all for the centre)."""
    rows = session.scalars(select(Notification).where(Notification.status == "dead").order_by(Notification.created_at))
    return [
        n
        for n in rows
        if principal.city_wide(GRANT_MANAGE)
        or (
            (s := session.get(Subscription, n.subscription_id)) is not None
            and s.department_code == principal.department_code
        )
    ]


def redeliver(session: Session, principal: Principal, note: Notification) -> Notification:
    """Put a dead notification back in the queue (after the subscriber fixed its end)."""
    subscription = session.get(Subscription, note.subscription_id)
    if subscription is None or not (
        principal.city_wide(GRANT_MANAGE) or subscription.department_code == principal.department_code
    ):
        raise NotFoundError(N_("no such notification"), field="id")
    if note.status != "dead":
        raise ConflictError(N_("the notification is {status}"), field="status", status=note.status)
    note.status, note.attempts, note.next_attempt_at = "pending", 0, utcnow()
    session.flush()
    return note


def subscribers(db: Database, settings: Settings) -> list[tuple[str, str, Callable[[Event], None]]]:
    """Re-check a resource's live grants whenever its catalog entry or negative list changes; queue
    notifications for subscribers when a register record changes."""

    def on_catalog_change(event: Event) -> None:
        GRANTS.bump()
        with db.session() as session:
            recheck_grants(session, CatalogChange.of(event).resource)

    def on_register_change(event: Event) -> None:
        GRANTS.bump()
        with db.session() as session:
            fan_out(session, event, settings.lake_dir)

    return [
        ("sharing.recheck-on-publish", "catalog.resource.*", on_catalog_change),
        ("sharing.recheck-on-negative", "catalog.negative.*", on_catalog_change),
        ("sharing.notify-changes", "registers.*.changed", on_register_change),
        ("sharing.notify-rebuilds", "registers.*.rebuilt", on_register_change),
    ]


def seed_demo(session: Session, settings: Settings) -> int:
    """Give the demo roles the sharing actions and file a few requests, so the pages have something to
    show: one granted at once (tier 1), one awaiting the owner (tier 5), one refused in writing."""
    add_actions_to_role(session, "data_officer", ALL_ACTIONS)
    add_actions_to_role(session, "department_admin", (REQUEST, DECIDE, GRANT_MANAGE, AUDIT_READ))
    add_actions_to_role(session, "district_admin", (REQUEST,))
    requester = principal_by_username(session, "minzheng.admin")
    centre = principal_by_username(session, "data.officer")
    person = next((r for r in catalog.list_resources(session, None, "published") if r.register_code == "person"), None)
    tax = catalog.find_by_lake_resource(session, "tax_registrations")
    if requester is None or centre is None or person is None or tax is None:
        return 0
    file_request(
        session, requester, tax.code, ["credit_code", "name", "employees"], "社会组织与企业用工核查",
        "企业开办后续服务", 365, None, "enterprise-start",
    )  # fmt: skip
    districts = RegionIndex.from_session(session).children_of(settings.city_code)
    scope = {"district_code": districts[-1].code} if districts else None  # one district's residents only
    file_request(
        session, requester, person.code, ["id_number", "name", "marital_status", "district_code"],
        "低保家庭经济状况核对", "社会救助", 180, scope, "social-assistance",
    )  # fmt: skip
    refused = file_request(
        session, requester, person.code, ["id_number", "education"], "社区志愿者招募", "志愿服务", 90
    )
    decide(session, centre, refused, "refuse", "志愿者招募不属于履行法定职责所必需，请通过志愿服务平台由本人授权提供")
    return 3

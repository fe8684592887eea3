"""The catalog (一目录) and its three lists (三清单).

A resource is written as a draft by its provider department, submitted for review, and published by
the big-data centre; publishing freezes the metadata and data items as a numbered version, puts the
resource in search and — for a resource that departments deliver into the lake — makes its items the
schema that every later load is validated against. A published resource is changed by revising it
(a new draft; the published version stays live until the next one) and ends by being retired. Every
step is appended to ``catalog_history``; the transitions are the table below.

The lists: demands (who needs which items for what), duties (who must deliver what, how often) and
the negative list (what is not shared, and why). ``report`` checks them against each other and
against the catalog: demands no resource satisfies (gaps), demands for negative-listed items, duties
whose deliveries are overdue. ``shareable_items`` is what sharing asks before granting anything.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shgov.catalog import events
from shgov.catalog import search as search_index
from shgov.catalog.builtin import (
    AGGREGATION_MODES,
    CLASSES,
    DEMO_DEMANDS,
    DEMO_NEGATIVE,
    FORMAT_CLASSES,
    ITEM_DEFAULTS,
    KEY_SCENARIOS,
    OPEN_TYPES,
    REGISTER_ITEMS,
    REGISTER_TITLES,
    SENSITIVITY,
    SENSITIVITY_ORDER,
    SHARING_METHODS,
    SHARING_TYPES,
    UPDATE_CYCLES,
)
from shgov.catalog.models import (
    CatalogEvent,
    CatalogItem,
    CatalogVersion,
    DemandEntry,
    DutyEntry,
    KeyScenario,
    NegativeEntry,
)
from shgov.catalog.models import CatalogResource as CatalogResource  # part of this service's interface
from shgov.core.calendar.service import city_today
from shgov.core.db import utcnow
from shgov.core.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from shgov.core.events import emit
from shgov.core.i18n import N_
from shgov.core.identity.permissions import SYSTEM_ACTOR, Principal, register_action
from shgov.core.identity.service import add_actions_to_role
from shgov.core.settings import Settings
from shgov.lake import service as lake
from shgov.registers import service as registers

READ = register_action("catalog.resource.read", N_("Search and read the data catalog"))
EDIT = register_action("catalog.resource.edit", N_("Write catalog entries of own department's data"))
REVIEW = register_action("catalog.resource.review", N_("Review, publish and retire catalog entries"))
LIST_MANAGE = register_action("catalog.list.manage", N_("Keep the demand, duty and negative lists"))
ALL_ACTIONS = (READ, EDIT, REVIEW, LIST_MANAGE)

STATUS_NAMES = (N_("draft"), N_("review"), N_("published"), N_("retired"))
# status → {action: next status}
TRANSITIONS: dict[str, dict[str, str]] = {
    "draft": {"submit": "review"},
    "review": {"approve": "published", "return": "draft"},
    "published": {"revise": "draft", "retire": "retired"},
    "retired": {"revise": "draft"},
}
REVIEW_ACTIONS = frozenset({"approve", "return", "retire"})
DATA_TYPES = ("string", "integer", "number", "decimal", "date", "datetime", "boolean")
CHOICES: dict[str, Mapping[str, Any]] = {
    "class_code": CLASSES,
    "format_class": FORMAT_CLASSES,
    "sharing_type": SHARING_TYPES,
    "sharing_method": SHARING_METHODS,
    "open_type": OPEN_TYPES,
    "update_cycle": UPDATE_CYCLES,
    "aggregation_mode": AGGREGATION_MODES,
}
ITEM_FIELDS = ("name", "title", "data_type", "required", "is_key", "sensitivity", "personal", "description")
RESOURCE_FIELDS = (
    "title",
    "class_code",
    "item_code",
    "category_code",
    "detail_code",
    "provider_department_code",
    "tenant_code",
    "summary",
    "format_class",
    "format",
    "sharing_type",
    "sharing_conditions",
    "sharing_method",
    "legal_basis",
    "open_type",
    "open_conditions",
    "update_cycle",
    "release_date",
    "related_codes",
    "aggregation_mode",
    "keywords",
    "maintainer",
    "lake_resource",
)


@dataclass
class ItemData:
    """A data item as written."""

    name: str
    title: str
    data_type: str = "string"
    required: bool = False
    is_key: bool = False
    sensitivity: str = "general"
    personal: bool = False
    description: str = ""


@dataclass
class ResourceData:
    """A resource's metadata and items as written (the code is assigned by the catalog)."""

    title: str
    class_code: str
    item_code: str
    category_code: str
    provider_department_code: str
    tenant_code: str
    format_class: str
    sharing_type: str
    sharing_method: str
    open_type: str
    update_cycle: str
    aggregation_mode: str
    items: list[ItemData]
    detail_code: str = ""
    summary: str = ""
    format: str = ""
    sharing_conditions: str = ""
    legal_basis: str = ""
    open_conditions: str = ""
    release_date: date | None = None
    related_codes: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    maintainer: str = ""
    lake_resource: str | None = None


# -- writing -----------------------------------------------------------------------------------------


def _check(session: Session, data: ResourceData, resource: CatalogResource | None = None) -> None:
    for name, choices in CHOICES.items():
        if getattr(data, name) not in choices:
            raise InvalidError(N_("{name} must be one of {choices}"), field=name, name=name, choices=", ".join(choices))
    for name, width in (("item_code", (2, 2)), ("category_code", (3, 3)), ("detail_code", (0, 6))):
        value = getattr(data, name)
        if not (value.isdigit() or value == "") or not width[0] <= len(value) <= width[1]:
            raise InvalidError(
                N_("{name} must be {low}–{high} digits"), field=name, name=name, low=width[0], high=width[1]
            )
    if not data.title.strip():
        raise InvalidError(N_("a resource needs a title"), field="title")
    if data.sharing_type == "conditional" and not data.sharing_conditions.strip():
        raise InvalidError(N_("conditional sharing needs its conditions"), field="sharing_conditions")
    if data.sharing_type == "none" and not data.legal_basis.strip():
        raise InvalidError(N_("a resource that is not shared needs its legal basis"), field="legal_basis")
    if data.open_type == "conditional" and not data.open_conditions.strip():
        raise InvalidError(N_("conditional opening needs its conditions"), field="open_conditions")
    if not data.items:
        raise InvalidError(N_("a resource needs at least one data item"), field="items")
    names = [i.name for i in data.items]
    if len(set(names)) != len(names):
        raise InvalidError(N_("item names must be unique"), field="items")
    for index, item in enumerate(data.items):
        where = f"items[{index}]"
        if not item.name.replace("_", "").isalnum() or not item.name[:1].isalpha() or len(item.name) > 63:
            raise InvalidError(
                N_("{where}: name must be letters, digits and _ (≤ 63), starting with a letter"),
                field=where,
                where=where,
            )
        if not item.title.strip():
            raise InvalidError(N_("{where}: an item needs a title"), field=where, where=where)
        if item.data_type not in DATA_TYPES:
            raise InvalidError(
                N_("{where}: data_type must be one of {choices}"),
                field=where,
                where=where,
                choices=", ".join(DATA_TYPES),
            )
        if item.sensitivity not in SENSITIVITY:
            raise InvalidError(
                N_("{where}: sensitivity must be one of {choices}"),
                field=where,
                where=where,
                choices=", ".join(SENSITIVITY),
            )
    if data.open_type != "none" and all(i.personal for i in data.items):
        # Personal items are withheld from an open dataset: an entry of nothing else cannot open.
        raise InvalidError(N_("personal data items are never open: set open_type to none"), field="open_type")
    if data.lake_resource:
        clash = session.scalar(select(CatalogResource).where(CatalogResource.lake_resource == data.lake_resource))
        if clash is not None and (resource is None or clash.id != resource.id):
            raise ConflictError(
                N_("{resource} is already described by {code}"),
                field="lake_resource",
                resource=data.lake_resource,
                code=clash.code,
            )


def _may_edit(principal: Principal, data: ResourceData | CatalogResource) -> None:
    if not principal.allows(EDIT, data.tenant_code, data.provider_department_code):
        raise ForbiddenError(
            N_("you may write catalog entries of your own department only"), field="provider_department_code"
        )


def next_code(session: Session, data: ResourceData | CatalogResource) -> str:
    """信息资源代码: 类 + 项 + 目 + 细目, a slash, and the next 5-digit serial under that classification."""
    prefix = f"{data.class_code}{data.item_code}{data.category_code}{data.detail_code}/"
    last = session.scalar(select(func.max(CatalogResource.code)).where(CatalogResource.code.like(prefix + "%")))
    serial = int(last.rsplit("/", 1)[1]) + 1 if last else 1
    return f"{prefix}{serial:05d}"


def create_resource(
    session: Session, principal: Principal | None, data: ResourceData, register_code: str | None = None
) -> CatalogResource:
    """A new draft entry (``principal`` None: the system, when seeding)."""
    if principal is not None:
        _may_edit(principal, data)
    _check(session, data)
    resource = CatalogResource(code=next_code(session, data), status="draft", version=0, register_code=register_code)
    _apply(resource, data)
    session.add(resource)
    session.flush()
    _set_items(session, resource, data.items)
    _history(session, resource, principal, "create", None, "")
    return resource


def update_resource(
    session: Session, principal: Principal | None, resource: CatalogResource, data: ResourceData
) -> None:
    """Change a draft (a published entry is revised first); ``principal`` None: the system."""
    if principal is not None:
        _may_edit(principal, resource)
        _may_edit(principal, data)
    if resource.status != "draft":
        raise ConflictError(
            N_("only drafts change; this entry is {status} (revise it first)"), field="status", status=resource.status
        )
    _check(session, data, resource)
    _apply(resource, data)
    _set_items(session, resource, data.items)
    _history(session, resource, principal, "edit", "draft", "")


def _apply(resource: CatalogResource, data: ResourceData) -> None:
    for name in RESOURCE_FIELDS:
        setattr(resource, name, getattr(data, name))
    resource.keywords = [k.strip() for k in data.keywords if k.strip()]
    resource.related_codes = [c.strip() for c in data.related_codes if c.strip()]


def _set_items(session: Session, resource: CatalogResource, items: Sequence[ItemData]) -> None:
    for old in items_of(session, resource.id):
        session.delete(old)
    session.flush()
    session.add_all(
        CatalogItem(resource_id=resource.id, position=i, **{f: getattr(item, f) for f in ITEM_FIELDS})
        for i, item in enumerate(items)
    )
    session.flush()


def _history(
    session: Session, resource: CatalogResource, principal: Principal | None, action: str, before: str | None, note: str
) -> None:
    session.add(
        CatalogEvent(
            resource_id=resource.id,
            actor_id=principal.user_id if principal else None,
            actor_name=principal.username if principal else SYSTEM_ACTOR,
            action=action,
            from_status=before,
            to_status=resource.status,
            note=note,
        )
    )


def transition(
    session: Session, principal: Principal | None, resource: CatalogResource, action: str, note: str = ""
) -> CatalogResource:
    """Move an entry along the table: submit, approve (publish), return, revise, retire."""
    allowed = TRANSITIONS.get(resource.status, {})
    if action not in allowed:
        if not allowed:
            raise ConflictError(
                N_("a {status} entry does not allow {action!r}; nothing more can be done with it"),
                field="action",
                status=resource.status,
                action=action,
            )
        raise ConflictError(
            N_("a {status} entry does not allow {action!r}; possible: {possible}"),
            field="action",
            status=resource.status,
            action=action,
            possible=", ".join(allowed),
        )
    if principal is not None:
        if action in REVIEW_ACTIONS:
            if not principal.allows(REVIEW, resource.tenant_code):
                raise ForbiddenError(N_("reviewing catalog entries is for the big-data centre"), field="action")
        else:
            _may_edit(principal, resource)
    if action == "return" and not note.strip():
        raise InvalidError(N_("say why the entry goes back to its department"), field="note")
    before = resource.status
    resource.status = allowed[action]
    if action == "approve":
        _publish(session, principal, resource)
    elif action == "retire":
        search_index.unindex(session, resource.id)
        emit(session, events.ResourceRetired(resource=resource.code, version=resource.version))
    _history(session, resource, principal, action, before, note)
    session.flush()
    return resource


def _publish(session: Session, principal: Principal | None, resource: CatalogResource) -> None:
    items = items_of(session, resource.id)
    if resource.lake_resource:
        # The published items become the schema that every later delivery is validated against.
        lake.define_schema(
            session,
            resource.lake_resource,
            title=resource.title,
            department_code=resource.provider_department_code,
            tenant_code=resource.tenant_code,
            update_cycle_days=UPDATE_CYCLES[resource.update_cycle][1] or 30,
            columns=[{"name": i.name, "type": i.data_type, "required": i.required} for i in items],
            key=[i.name for i in items if i.is_key],
        )
    resource.version += 1
    if resource.release_date is None:
        resource.release_date = city_today()
    snapshot = snapshot_of(resource, items)
    session.add(
        CatalogVersion(
            resource_id=resource.id,
            version=resource.version,
            snapshot=snapshot,
            published_by=principal.username if principal else SYSTEM_ACTOR,
        )
    )
    _index(session, resource, items)
    emit(session, events.ResourcePublished(resource=resource.code, version=resource.version))


def _index(session: Session, resource: CatalogResource, items: Sequence[CatalogItem]) -> None:
    worst = max((SENSITIVITY_ORDER.index(i.sensitivity) for i in items), default=0)
    search_index.index_entry(
        session,
        resource.id,
        resource.title,
        [resource.summary, *resource.keywords, *(f"{i.title} {i.name} {i.description}" for i in items), resource.code],
        {
            "department_code": resource.provider_department_code,
            "tenant_code": resource.tenant_code,
            "sharing_type": resource.sharing_type,
            "format_class": resource.format_class,
            "update_cycle": resource.update_cycle,
            "sensitivity": SENSITIVITY_ORDER[worst],
        },
    )


def snapshot_of(resource: CatalogResource, items: Sequence[CatalogItem]) -> dict[str, Any]:
    """The metadata and items of an entry as plain data (what a version freezes and exports carry)."""
    data: dict[str, Any] = {"code": resource.code, "version": resource.version, "status": resource.status}
    for name in RESOURCE_FIELDS:
        value = getattr(resource, name)
        data[name] = value.isoformat() if isinstance(value, date) else value
    data["register_code"] = resource.register_code
    data["items"] = [{f: getattr(i, f) for f in ITEM_FIELDS} for i in items]
    return data


# -- reading -----------------------------------------------------------------------------------------


def get_resource(session: Session, code: str) -> CatalogResource:
    """The entry ``code``; ``NotFoundError`` when there is none."""
    found = session.scalar(select(CatalogResource).where(CatalogResource.code == code))
    if found is None:
        raise NotFoundError(N_("no catalog entry {code!r}"), field="code", code=code)
    return found


def find_by_lake_resource(session: Session, lake_resource: str) -> CatalogResource | None:
    """The entry describing a lake resource."""
    return session.scalar(select(CatalogResource).where(CatalogResource.lake_resource == lake_resource))


def is_aggregated(session: Session, resource: CatalogResource) -> bool:
    """Whether the big-data centre holds the resource's data: a base register, or a lake resource with a load."""
    if resource.register_code is not None:
        return True
    if resource.lake_resource is None:
        return False
    try:
        return lake.current_version(session, resource.lake_resource) > 0
    except NotFoundError:
        return False


def items_of(session: Session, resource_id: uuid.UUID) -> list[CatalogItem]:
    """The items of an entry's working copy, in order."""
    return list(
        session.scalars(
            select(CatalogItem).where(CatalogItem.resource_id == resource_id).order_by(CatalogItem.position)
        )
    )


def published(session: Session, code: str) -> dict[str, Any] | None:
    """The live published version of an entry (``None`` when never published or retired)."""
    found = session.execute(
        select(CatalogResource, CatalogVersion.snapshot)
        .join(
            CatalogVersion,
            (CatalogVersion.resource_id == CatalogResource.id) & (CatalogVersion.version == CatalogResource.version),
            isouter=True,
        )
        .where(CatalogResource.code == code)
    ).first()
    if found is None:
        raise NotFoundError(N_("no catalog entry {code!r}"), field="code", code=code)
    resource, snapshot = found
    if resource.version == 0 or resource.status == "retired" or snapshot is None:
        return None
    return dict(snapshot)  # it names the register or lake resource the data is served from


def versions(session: Session, resource_id: uuid.UUID) -> list[CatalogVersion]:
    """Every published version, newest first."""
    return list(
        session.scalars(
            select(CatalogVersion)
            .where(CatalogVersion.resource_id == resource_id)
            .order_by(CatalogVersion.version.desc())
        )
    )


def history(session: Session, resource_id: uuid.UUID) -> list[CatalogEvent]:
    """Every step of an entry, oldest first."""
    return list(
        session.scalars(select(CatalogEvent).where(CatalogEvent.resource_id == resource_id).order_by(CatalogEvent.at))
    )


def visible(principal: Principal, resource: CatalogResource) -> bool:
    """Published (or retired) entries are for every catalog reader; drafts for their department and reviewers."""
    if resource.version > 0:
        return principal.has_action(READ)
    return principal.allows(EDIT, resource.tenant_code, resource.provider_department_code) or principal.allows(
        REVIEW, resource.tenant_code
    )


def list_resources(
    session: Session, principal: Principal | None, status: str | None = None, department: str | None = None
) -> list[CatalogResource]:
    """The entries the caller may see (all for the system, ``principal`` None), by code."""
    query = select(CatalogResource).order_by(CatalogResource.code)
    if status:
        query = query.where(CatalogResource.status == status)
    if department:
        query = query.where(CatalogResource.provider_department_code == department)
    return [r for r in session.scalars(query) if principal is None or visible(principal, r)]


@dataclass(frozen=True)
class Hit:
    """A search hit."""

    resource: CatalogResource
    score: float


@dataclass(frozen=True)
class SearchPage:
    """A page of search results with facet counts."""

    total: int
    hits: list[Hit]
    facets: dict[str, dict[str, int]]
    words: list[str]


def search(
    session: Session, q: str, filters: Mapping[str, Sequence[str]] | None = None, offset: int = 0, limit: int = 20
) -> SearchPage:
    """Chinese full-text search over the published catalog (see ``catalog.search``)."""
    result = search_index.search(session, q, filters or {}, offset, limit)
    ids = [uuid.UUID(str(rid)) for rid, _ in result.hits]
    rows = {r.id: r for r in session.scalars(select(CatalogResource).where(CatalogResource.id.in_(ids)))}
    hits = [Hit(rows[i], score) for i, (_, score) in zip(ids, result.hits, strict=True) if i in rows]
    return SearchPage(result.total, hits, result.facets, result.words)


# -- the three lists -----------------------------------------------------------------------------------


def add_demand(
    session: Session,
    principal: Principal | None,
    department_code: str,
    tenant_code: str,
    items: Sequence[str],
    scenario: str,
    resource_code: str | None = None,
    key_scenario_code: str | None = None,
) -> DemandEntry:
    """Put a need on the demand list (a department for itself)."""
    if principal is not None and not principal.allows(LIST_MANAGE, tenant_code, department_code):
        raise ForbiddenError(N_("a department states its own demands"), field="department_code")
    if not [i for i in items if i.strip()]:
        raise InvalidError(N_("name the data items needed"), field="items")
    if not scenario.strip():
        raise InvalidError(N_("name the application scenario"), field="scenario")
    if resource_code:
        get_resource(session, resource_code)
    if key_scenario_code and session.get(KeyScenario, key_scenario_code) is None:
        raise InvalidError(
            N_("{code} is not on the key-scenario list"), field="key_scenario_code", code=key_scenario_code
        )
    entry = DemandEntry(
        department_code=department_code,
        tenant_code=tenant_code,
        resource_code=resource_code or None,
        items=[i.strip() for i in items if i.strip()],
        scenario=scenario.strip(),
        key_scenario_code=key_scenario_code or None,
    )
    session.add(entry)
    session.flush()
    return entry


def add_duty(
    session: Session,
    principal: Principal | None,
    department_code: str,
    resource_code: str,
    update_cycle: str,
    note: str = "",
) -> DutyEntry:
    """Put a delivery duty on the duty list (the big-data centre assigns duties)."""
    resource = get_resource(session, resource_code)
    if principal is not None and not principal.allows(REVIEW, resource.tenant_code):
        raise ForbiddenError(N_("duties are assigned by the big-data centre"), field="department_code")
    if update_cycle not in UPDATE_CYCLES:
        raise InvalidError(
            N_("update_cycle must be one of {choices}"), field="update_cycle", choices=", ".join(UPDATE_CYCLES)
        )
    existing = session.scalar(
        select(DutyEntry).where(DutyEntry.department_code == department_code, DutyEntry.resource_code == resource_code)
    )
    if existing is not None:
        raise ConflictError(
            N_("{department} already has a duty for {resource}"),
            field="resource_code",
            department=department_code,
            resource=resource_code,
        )
    entry = DutyEntry(
        department_code=department_code, resource_code=resource_code, update_cycle=update_cycle, note=note
    )
    session.add(entry)
    session.flush()
    return entry


def add_negative(
    session: Session, principal: Principal | None, resource_code: str, item: str, legal_basis: str, note: str = ""
) -> NegativeEntry:
    """Put a resource (``item`` empty) or an item on the negative list, with its legal basis."""
    resource = get_resource(session, resource_code)
    if principal is not None and not (
        principal.allows(LIST_MANAGE, resource.tenant_code, resource.provider_department_code)
        or principal.allows(REVIEW, resource.tenant_code)
    ):
        raise ForbiddenError(
            N_("the provider department or the big-data centre keeps the negative list"), field="resource_code"
        )
    if not legal_basis.strip():
        raise InvalidError(N_("a negative-list entry needs its legal basis"), field="legal_basis")
    if item and item not in {i.name for i in items_of(session, resource.id)}:
        raise InvalidError(N_("{resource} has no item {item!r}"), field="item", resource=resource_code, item=item)
    if session.scalar(
        select(NegativeEntry).where(NegativeEntry.resource_code == resource_code, NegativeEntry.item == item)
    ):
        raise ConflictError(N_("this is on the negative list already"), field="item")
    entry = NegativeEntry(resource_code=resource_code, item=item, legal_basis=legal_basis.strip(), note=note)
    session.add(entry)
    session.flush()
    emit(session, events.NegativeAdded(resource=resource_code, item=item))
    return entry


def remove_entry(session: Session, principal: Principal, kind: str, entry_id: uuid.UUID) -> None:
    """Take an entry off a list (by whoever may add it)."""
    entry: DemandEntry | DutyEntry | NegativeEntry | None
    if kind == "demands":
        entry = session.get(DemandEntry, entry_id)
    elif kind == "duties":
        entry = session.get(DutyEntry, entry_id)
    else:
        entry = session.get(NegativeEntry, entry_id)
    if entry is None:
        raise NotFoundError(N_("no such list entry"), field="id")
    if isinstance(entry, DemandEntry):
        allowed = principal.allows(LIST_MANAGE, entry.tenant_code, entry.department_code)
    else:
        resource = get_resource(session, entry.resource_code)
        allowed = principal.allows(REVIEW, resource.tenant_code) or (
            isinstance(entry, NegativeEntry)
            and principal.allows(LIST_MANAGE, resource.tenant_code, resource.provider_department_code)
        )
    if not allowed:
        raise ForbiddenError(N_("you may not change this entry"), field="id")
    session.delete(entry)
    if isinstance(entry, NegativeEntry):
        emit(session, events.NegativeRemoved(resource=entry.resource_code, item=entry.item))
    session.flush()


def demands(session: Session) -> list[DemandEntry]:
    """The demand list."""
    return list(session.scalars(select(DemandEntry).order_by(DemandEntry.created_at)))


def duties(session: Session) -> list[DutyEntry]:
    """The duty list."""
    return list(session.scalars(select(DutyEntry).order_by(DutyEntry.resource_code, DutyEntry.department_code)))


def negative_list(session: Session) -> list[NegativeEntry]:
    """The negative list."""
    return list(session.scalars(select(NegativeEntry).order_by(NegativeEntry.resource_code, NegativeEntry.item)))


def key_scenarios(session: Session) -> list[KeyScenario]:
    """The key-scenario list."""
    return list(session.scalars(select(KeyScenario).order_by(KeyScenario.code)))


@dataclass(frozen=True)
class Shareable:
    """Which requested items of a published resource may be shared, and which may never be."""

    resource_code: str
    sharing_type: str
    allowed: list[str]
    refused: dict[str, str]  # item → legal basis
    unknown: list[str]


def shareable_items(
    session: Session, code: str, items: Iterable[str] | None = None, live: Mapping[str, Any] | None = None
) -> Shareable:
    """Check requested items (all when ``None``) against the live version (``live`` when the caller has
    just read it) and the negative list."""
    live = live if live is not None else published(session, code)
    if live is None:
        raise NotFoundError(N_("{code} is not published"), field="resource", code=code)
    names = [i["name"] for i in live["items"]]
    wanted = list(items) if items is not None else names
    negative = {
        e.item: e.legal_basis for e in session.scalars(select(NegativeEntry).where(NegativeEntry.resource_code == code))
    }
    refused: dict[str, str] = {}
    if "" in negative or live["sharing_type"] == "none":
        basis = negative.get("", live.get("legal_basis") or "不予共享")
        refused = {i: basis for i in wanted if i in names}
    else:
        refused = {i: negative[i] for i in wanted if i in negative}
    return Shareable(
        code,
        live["sharing_type"],
        [i for i in wanted if i in names and i not in refused],
        refused,
        [i for i in wanted if i not in names],
    )


@dataclass(frozen=True)
class ListReport:
    """What the lists say when checked against each other and the catalog."""

    gaps: list[dict[str, Any]]
    negative_conflicts: list[dict[str, Any]]
    stale_duties: list[dict[str, Any]]
    satisfied: int


def report(session: Session, today: datetime | None = None) -> ListReport:
    """Demands no published resource satisfies, demands for negative-listed items, overdue duties."""
    now = today or utcnow()
    catalog = [r for r in session.scalars(select(CatalogResource)) if r.version > 0 and r.status != "retired"]
    live = {r.code: published(session, r.code) or {} for r in catalog}
    gaps: list[dict[str, Any]] = []
    conflicts: list[dict[str, Any]] = []
    satisfied = 0
    for demand in demands(session):
        if demand.resource_code:
            candidates = [demand.resource_code] if demand.resource_code in live else []
        else:
            wanted = set(demand.items)
            candidates = [
                code
                for code, snap in live.items()
                if wanted <= {i["name"] for i in snap["items"]} | {i["title"] for i in snap["items"]}
            ]
        usable = []
        for code in candidates:
            names = {i["title"]: i["name"] for i in live[code]["items"]}
            check = shareable_items(session, code, [names.get(i, i) for i in demand.items])
            if check.refused:
                conflicts.append(
                    {
                        "demand_id": str(demand.id),
                        "department": demand.department_code,
                        "resource": code,
                        "items": check.refused,
                    }
                )
            elif not check.unknown:
                usable.append(code)
        if usable:
            satisfied += 1
        elif not any(c["demand_id"] == str(demand.id) for c in conflicts):
            gaps.append(
                {
                    "demand_id": str(demand.id),
                    "department": demand.department_code,
                    "items": demand.items,
                    "scenario": demand.scenario,
                    "resource": demand.resource_code,
                }
            )
    stale: list[dict[str, Any]] = []
    for duty in duties(session):
        resource = session.scalar(select(CatalogResource).where(CatalogResource.code == duty.resource_code))
        days = UPDATE_CYCLES[duty.update_cycle][1]
        if resource is None or days is None:
            continue
        loaded = lake.last_loaded(session, resource.lake_resource) if resource.lake_resource else None
        if resource.register_code is not None:
            continue  # registers are built by the centre, not delivered
        if loaded is None or now - loaded > timedelta(days=days):
            stale.append(
                {
                    "duty_id": str(duty.id),
                    "department": duty.department_code,
                    "resource": duty.resource_code,
                    "update_cycle": duty.update_cycle,
                    "last_delivery": loaded.isoformat() if loaded else None,
                }
            )
    return ListReport(gaps, conflicts, stale, satisfied)


# -- import and export -------------------------------------------------------------------------------

EXPORT_COLUMNS = ("code", "version", "status", *RESOURCE_FIELDS, "items")


def export_rows(session: Session, resources: Iterable[CatalogResource]) -> list[dict[str, Any]]:
    """One flat row per entry: lists joined by ``;``, items as ``name:title:type:sensitivity[:flags]``."""
    rows = []
    for resource in resources:
        snap = snapshot_of(resource, items_of(session, resource.id))
        row = {c: snap.get(c) for c in EXPORT_COLUMNS if c != "items"}
        row["related_codes"] = ";".join(snap["related_codes"])
        row["keywords"] = ";".join(snap["keywords"])
        row["items"] = ";".join(
            ":".join(
                [i["name"], i["title"], i["data_type"], i["sensitivity"]]
                + (["key"] if i["is_key"] else [])
                + (["required"] if i["required"] else [])
                + (["personal"] if i["personal"] else [])
            )
            for i in snap["items"]
        )
        rows.append({k: ("" if v is None else v) for k, v in row.items()})
    return rows


def export_csv(rows: list[dict[str, Any]]) -> bytes:
    """The rows as UTF-8 CSV with a BOM (so that spreadsheet programs read the Chinese right)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(EXPORT_COLUMNS))
    writer.writeheader()
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def export_xlsx(rows: list[dict[str, Any]]) -> bytes:
    """The rows as an XLSX workbook."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # noqa: S101 - a new workbook has a sheet
    sheet.title = "catalog"
    sheet.append(list(EXPORT_COLUMNS))
    for row in rows:
        sheet.append([row.get(c, "") for c in EXPORT_COLUMNS])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def read_import(data: bytes, filename: str) -> list[dict[str, str]]:
    """Rows of an import file (CSV in UTF-8 or GBK, or XLSX) with the export's columns."""
    if filename.lower().endswith(".xlsx"):
        try:
            book = load_workbook(io.BytesIO(data), read_only=True)
        except Exception as exc:  # openpyxl raises several kinds for a broken file
            raise InvalidError(N_("cannot read the workbook: {reason}"), field="file", reason=str(exc)) from exc
        sheet = book.active
        if sheet is None:
            raise InvalidError(N_("the workbook has no sheet"), field="file")
        values = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        header, body = (values[0], values[1:]) if values else ([], [])
        rows = [dict(zip(header, r, strict=False)) for r in body if any(r)]
    elif filename.lower().endswith(".csv"):
        try:
            textual = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                textual = data.decode("gb18030")
            except UnicodeDecodeError as exc:
                raise InvalidError(N_("the CSV is neither UTF-8 nor GBK"), field="file") from exc
        reader = csv.DictReader(io.StringIO(textual))
        header = list(reader.fieldnames or [])
        rows = [dict(r) for r in reader]
    else:
        raise InvalidError(N_("send a .csv or .xlsx file"), field="file")
    missing = [c for c in EXPORT_COLUMNS if c not in header and c not in ("code", "version", "status")]
    if missing:
        raise InvalidError(N_("missing columns: {columns}"), field="file", columns=", ".join(missing))
    return rows


def _data_of(row: Mapping[str, str], line: int) -> ResourceData:
    def value(name: str) -> str:
        return (row.get(name) or "").strip()

    items = []
    for spec in filter(None, (s.strip() for s in value("items").split(";"))):
        parts = spec.split(":")
        if len(parts) < 4:
            raise InvalidError(
                N_("row {line}: item {spec!r} needs name:title:type:sensitivity"),
                field=f"rows[{line}].items",
                line=line,
                spec=spec,
            )
        flags = set(parts[4:])
        items.append(
            ItemData(parts[0], parts[1], parts[2], "required" in flags, "key" in flags, parts[3], "personal" in flags)
        )
    released = value("release_date")
    try:
        release_date = date.fromisoformat(released) if released else None
    except ValueError as exc:
        raise InvalidError(
            N_("row {line}: release_date must be YYYY-MM-DD"), field=f"rows[{line}].release_date", line=line
        ) from exc
    return ResourceData(
        title=value("title"),
        class_code=value("class_code"),
        item_code=value("item_code").zfill(2),
        category_code=value("category_code").zfill(3),
        detail_code=value("detail_code"),
        provider_department_code=value("provider_department_code"),
        tenant_code=value("tenant_code"),
        summary=value("summary"),
        format_class=value("format_class"),
        format=value("format"),
        sharing_type=value("sharing_type"),
        sharing_conditions=value("sharing_conditions"),
        sharing_method=value("sharing_method"),
        legal_basis=value("legal_basis"),
        open_type=value("open_type"),
        open_conditions=value("open_conditions"),
        update_cycle=value("update_cycle"),
        release_date=release_date,
        related_codes=[c for c in value("related_codes").split(";") if c],
        aggregation_mode=value("aggregation_mode"),
        keywords=[k for k in value("keywords").split(";") if k],
        maintainer=value("maintainer"),
        lake_resource=value("lake_resource") or None,
        items=items,
    )


@dataclass(frozen=True)
class ImportResult:
    """What an import did."""

    created: list[str]
    updated: list[str]


def import_rows(session: Session, principal: Principal | None, rows: Sequence[Mapping[str, str]]) -> ImportResult:
    """Create drafts (rows without a known code) or change drafts (rows with one); every row is checked
    first and one bad row refuses the whole file, naming the row."""
    planned: list[tuple[CatalogResource | None, ResourceData]] = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        data = _data_of(row, line)
        code = (row.get("code") or "").strip()
        existing = session.scalar(select(CatalogResource).where(CatalogResource.code == code)) if code else None
        try:
            if principal is not None:
                _may_edit(principal, data)
            _check(session, data, existing)
            if existing is not None and existing.status != "draft":
                raise ConflictError(
                    N_("{code} is {status}; revise it before importing changes"),
                    field="code",
                    code=code,
                    status=existing.status,
                )
        except (InvalidError, ForbiddenError, ConflictError) as exc:
            raise type(exc)(
                N_("row {line}: {reason}"), field=f"rows[{line}].{exc.field or ''}".rstrip("."), line=line, reason=exc
            ) from exc
        planned.append((existing, data))
    created, updated = [], []
    for existing, data in planned:
        if existing is None:
            created.append(create_resource(session, principal, data).code)
        else:
            update_resource(session, principal, existing, data)
            updated.append(existing.code)
    return ImportResult(created, updated)


# -- the demo catalog ----------------------------------------------------------------------------------


# In a dataset about people, these items say nothing about a person; every other item is personal data.
IMPERSONAL = frozenset({"district_code", "township_code", "community_code", "updated_at", "registered_on"})


def _item(name: str, data_type: str, required: bool, key: bool, about_people: bool) -> ItemData:
    title, sensitivity, personal = ITEM_DEFAULTS.get(name, (name, "general", False))
    personal = personal or (about_people and name not in IMPERSONAL)
    return ItemData(name, title, data_type, required, key, sensitivity, personal)


def _about_people(names: Iterable[str]) -> bool:
    return any(n in ("id_number", "child_id_number") for n in names)


# What the demo city opens to the public (its personal items withheld); records about people stay closed.
OPEN_IN_DEMO = {
    "standard_addresses": "unconditional",
    "enterprises": "unconditional",
    "licences_business": "unconditional",
    "tax_registrations": "conditional",
    "licences_food": "conditional",
}


def _lake_entry(spec: lake.ResourceSpec, item_code: str) -> ResourceData:
    keyed = set(spec.key)
    people = _about_people(c.name for c in spec.columns)
    items = [_item(c.name, c.type, c.required, c.name in keyed, people) for c in spec.columns]
    personal = any(i.personal for i in items)
    cycle = next(
        (k for k, (_, d) in UPDATE_CYCLES.items() if k != "realtime" and d is not None and d >= spec.update_cycle_days),
        "other",
    )
    return ResourceData(
        title=spec.title,
        class_code="3",
        item_code=item_code,
        category_code="001",
        provider_department_code=spec.department_code,
        tenant_code=spec.tenant_code,
        summary=f"{spec.title}，由提供部门按{UPDATE_CYCLES[cycle][0]}归集至市大数据资源平台。",
        format_class="database",
        format="Parquet",
        sharing_type="conditional" if personal else "unconditional",
        sharing_conditions="仅限履行法定职责所必需，按最小必要原则申请信息项" if personal else "",
        sharing_method="api",
        legal_basis="",
        open_type=OPEN_IN_DEMO.get(spec.code, "none"),
        open_conditions="经提供部门同意，用于科研或公益" if OPEN_IN_DEMO.get(spec.code) == "conditional" else "",
        update_cycle=cycle,
        aggregation_mode="incremental",
        keywords=[spec.title.removesuffix("信息"), spec.department_code],
        lake_resource=spec.code,
        items=items,
    )


def _register_entry(code: str, department: str, tenant: str) -> ResourceData:
    title, summary = REGISTER_TITLES[code]
    if code in registers.REGISTERS:
        definition = registers.REGISTERS[code]
        names = [(definition.key, True)] + [(e.name, False) for e in definition.elements]
    else:
        names = [(n, n in ("licence_no", "address")) for n in _REGISTER_COLUMNS[code]]
    people = _about_people(name for name, _ in names)
    items = [_item(name, "string", key, key, people) for name, key in names]
    return ResourceData(
        title=title,
        class_code="1",
        item_code=REGISTER_ITEMS[code],
        category_code="001",
        provider_department_code=department,
        tenant_code=tenant,
        summary=summary,
        format_class="database",
        format="Parquet",
        sharing_type="conditional",
        sharing_conditions="按一数一源的权威值共享；涉及个人信息的信息项须说明法定职责与应用场景",
        sharing_method="api",
        open_type="none",
        update_cycle="daily",
        aggregation_mode="full",
        keywords=[title, "综合库", "一数一源"],
        items=items,
    )


_REGISTER_COLUMNS = {
    "licence": (
        "licence_no",
        "licence_type",
        "holder_id",
        "holder_name",
        "issued_on",
        "expires_on",
        "trust_level",
        "issuer_department",
    ),
    "address": (
        "address",
        "address_id",
        "district_code",
        "township_code",
        "community_code",
        "grid_code",
        "lng",
        "lat",
        "precision",
    ),
}


def seed_demo(session: Session, settings: Settings) -> int:
    """The demo city's catalog: every lake resource and base register, published, with lists."""
    add_actions_to_role(session, "data_officer", ALL_ACTIONS)
    add_actions_to_role(session, "department_admin", (READ, EDIT, LIST_MANAGE))
    for role in ("district_admin", "window_clerk", "case_worker", "ops_operator"):
        add_actions_to_role(session, role, (READ,))
    for code, name, description in KEY_SCENARIOS:
        if session.get(KeyScenario, code) is None:
            session.add(KeyScenario(code=code, name=name, description=description))
    created = 0
    departments = sorted({r.department_code for r in lake.list_resources(session)})
    for row in lake.list_resources(session):
        if find_by_lake_resource(session, row.code) is not None:
            continue
        item_code = f"{departments.index(row.department_code) + 1:02d}"
        entry = create_resource(session, None, _lake_entry(lake.get_resource(session, row.code), item_code))
        transition(session, None, entry, "submit")
        transition(session, None, entry, "approve")
        add_duty(session, None, entry.provider_department_code, entry.code, entry.update_cycle)
        created += 1
    centre = f"{settings.city_code}.dsj"
    for code in REGISTER_ITEMS:
        if session.scalar(select(CatalogResource).where(CatalogResource.register_code == code)) is not None:
            continue
        entry = create_resource(session, None, _register_entry(code, centre, settings.city_code), register_code=code)
        transition(session, None, entry, "submit")
        transition(session, None, entry, "approve")
        created += 1
    for resource, item, basis in DEMO_NEGATIVE:
        listed = find_by_lake_resource(session, resource)
        if listed is not None and item in {i.name for i in items_of(session, listed.id)}:
            add_negative(session, None, listed.code, item, basis)
    for department, wanted, items, scenario, key in DEMO_DEMANDS:
        named = find_by_lake_resource(session, wanted) if wanted else None
        add_demand(
            session, None, department, department.split(".")[0], items, scenario, named.code if named else None, key
        )
    return created

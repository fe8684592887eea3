"""The open-data portal (公共数据开放): catalog entries opened to the public, searched CKAN-style, with
their rows served from the lake by DuckDB.

**Publishing.** A published catalog entry whose open attribute is 无条件开放 or 有条件开放 and whose lake
resource holds data becomes an open dataset: its metadata from the catalog, its data dictionary without
the personal and negative-listed items (they are never open), one distribution per download format. A
change of the entry (new version, retirement, another open attribute, the negative list) re-syncs it
through the catalog's events; an entry no longer open is withdrawn, never deleted, so its id and name
stay reserved. 不予开放 entries never become datasets, so nothing of them can be found or read here.

**Search.** Datasets are few (thousands) next to their rows (billions): each process keeps the
active ones in memory with their search words (jieba, title words weigh most) and answers
``package_search`` — CKAN's q / fq / sort / facets — from there, refreshed when a dataset changes.

**Rows** (``datastore.py``): DuckDB over the live lake version, open columns only; downloads are
files written once per version. Rows of a dataset open on conditions need an approved application
(``apply`` / ``decide``) and are read with the reuser's API key (``create_key``); every key and every
address without one has its own rate limit, and calls and downloads are counted per dataset and day.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shgov.catalog import service as catalog
from shgov.catalog.events import CatalogChange
from shgov.core.db import ChangeCounter, Database, utcnow
from shgov.core.errors import ConflictError, DomainError, ForbiddenError, InvalidError, NotFoundError
from shgov.core.events import Event
from shgov.core.i18n import N_
from shgov.core.identity.models import User
from shgov.core.identity.permissions import Principal, register_action
from shgov.core.identity.service import add_actions_to_role, usable
from shgov.core.orgs.service import DepartmentInfo, find_department, list_departments
from shgov.core.ratelimit import RateLimiter
from shgov.core.settings import Settings
from shgov.core.text import query_tokens, tokens
from shgov.lake import service as lake
from shgov.opendata.datastore import CHARTABLE as CHARTABLE  # part of this service's interface
from shgov.opendata.datastore import DEFAULT_LIMIT as DEFAULT_LIMIT  # part of this service's interface
from shgov.opendata.datastore import EXTENSIONS as EXTENSIONS  # part of this service's interface
from shgov.opendata.datastore import MAX_LIMIT as MAX_LIMIT  # part of this service's interface
from shgov.opendata.datastore import DataStore as DataStore  # part of this service's interface
from shgov.opendata.datastore import Downloads as Downloads  # part of this service's interface
from shgov.opendata.datastore import check_sql as check_sql  # part of this service's interface
from shgov.opendata.models import OpenApplication as OpenApplication  # part of this service's interface
from shgov.opendata.models import OpenDataset as OpenDataset  # part of this service's interface
from shgov.opendata.models import OpenKey as OpenKey  # part of this service's interface
from shgov.opendata.models import OpenKeyUsage, OpenUsage
from shgov.opendata.models import OpenResource as OpenResource  # part of this service's interface

log = logging.getLogger("shgov.opendata")

OPEN_TYPES = ("unconditional", "conditional")
# Path segments of the portal's own pages under /opendata/ that a dataset name must not take.
RESERVED_NAMES = frozenset({"org", "catalog", "id", "licence", "search", "account", "stats", "applications"})
FORMATS = ("CSV", "JSONL", "XLSX", "Parquet")
# Themes (开放领域) with their English names; a department's datasets default to its theme.
THEMES: dict[str, tuple[str, str]] = {
    "economy": ("经济建设", "Economy"),
    "finance": ("财税金融", "Finance and tax"),
    "urban": ("城市建设", "Urban development"),
    "transport": ("道路交通", "Transport"),
    "environment": ("资源环境", "Resources and environment"),
    "education": ("教育科技", "Education and science"),
    "health": ("卫生健康", "Health"),
    "society": ("社会民生", "Society and livelihoods"),
    "safety": ("公共安全", "Public safety"),
    "culture": ("文化休闲", "Culture and leisure"),
    "government": ("机构团体", "Government and organisations"),
}
DEPARTMENT_THEMES = {
    "sc": "economy",
    "fgw": "economy",
    "swj": "finance",
    "cz": "finance",
    "gh": "urban",
    "zj": "urban",
    "jt": "transport",
    "sthj": "environment",
    "jw": "education",
    "kw": "education",
    "wj": "health",
    "ga": "safety",
    "yj": "safety",
    "wl": "culture",
    "mz": "society",
    "rs": "society",
}
DEFAULT_THEME = "society"
LICENSE = {
    "license_id": "shgov-open-data",
    "license_title": "公共数据开放平台数据使用协议 (SH-GOV open data agreement)",
    "license_url": "",
}
CKAN_VERSION = "2.10.4"  # the API level the actions follow

# Datasets and resources of this process's search index refill when these rows change.
OPEN_CHANGES = ChangeCounter(OpenDataset, OpenResource)


class SearchQueryError(DomainError):
    """A q, fq or sort the search cannot understand (CKAN's "Search Query Error")."""

    slug = "validation-failed"


# -- publishing -----------------------------------------------------------------------------------


@dataclass
class SyncResult:
    """What a sync changed."""

    published: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    """A CKAN name: lower-case letters, digits, - and _ (2–100 characters)."""
    name = re.sub(r"[^a-z0-9_-]+", "-", text.lower().replace("_", "-")).strip("-")
    return name[:100] if len(name) >= 2 else f"dataset-{name}"


def organization_name(department_code: str) -> str:
    """A department's CKAN organisation name (``310000.sc`` → ``310000-sc``)."""
    return slug(department_code)


def theme_of(department_code: str) -> str:
    """The theme a department's datasets belong to by default."""
    return DEPARTMENT_THEMES.get(department_code.rsplit(".", 1)[-1], DEFAULT_THEME)


def _open_items(live: Mapping[str, Any], negative: set[str]) -> list[dict[str, Any]]:
    return [
        {"name": i["name"], "title": i["title"], "type": i["data_type"], "description": i.get("description", "")}
        for i in live["items"]
        if not i["personal"] and i["name"] not in negative
    ]


def _why_not_open(session: Session, live: Mapping[str, Any] | None, items: list[dict[str, Any]]) -> str | None:
    if live is None:
        return "the catalog entry is not published"
    if live["open_type"] not in OPEN_TYPES:
        return "the catalog entry is not open (不予开放)"
    if not live.get("lake_resource"):
        return "the catalog entry has no lake data"
    if lake.current_version(session, live["lake_resource"]) == 0:
        return "the lake resource has no data yet"
    if not items:
        return "every item is personal or negative-listed"
    return None


def sync(session: Session, code: str, negative: Sequence[Any] | None = None) -> OpenDataset | None:
    """Publish, update or withdraw the open dataset of catalog entry ``code``; the active dataset or None.
    ``negative`` is the negative list when the caller read it already (``sync_all``)."""
    try:
        live = catalog.published(session, code)
    except NotFoundError:
        live = None
    entries = catalog.negative_list(session) if negative is None else negative
    listed = [e for e in entries if e.resource_code == code]
    items = _open_items(live, {e.item for e in listed if e.item}) if live else []
    reason = _why_not_open(session, live, items)
    if live is not None and any(not e.item for e in listed):
        reason = "the whole resource is on the negative list"
    dataset = session.scalar(select(OpenDataset).where(OpenDataset.catalog_code == code))
    if reason is not None:
        if dataset is not None and dataset.state == "active":
            dataset.state, dataset.withdrawn_reason = "withdrawn", reason
            session.flush()
        return None
    assert live is not None  # noqa: S101 - reason is None only for a live entry
    values = {
        "catalog_version": live["version"],
        "title": live["title"],
        "notes": live["summary"],
        "department_code": live["provider_department_code"],
        "tags": list(dict.fromkeys(str(k) for k in live.get("keywords", []) if k and "." not in str(k))),
        "open_type": live["open_type"],
        "open_conditions": live.get("open_conditions", ""),
        "update_cycle": live["update_cycle"],
        "lake_resource": live["lake_resource"],
        "items": items,
        "state": "active",
        "withdrawn_reason": "",
    }
    if dataset is None:
        name = slug(live["lake_resource"])
        taken = session.scalar(select(OpenDataset.id).where(OpenDataset.name == name)) is not None
        if taken or name in RESERVED_NAMES:
            name = slug(f"{name}-{code.replace('/', '-')}")
        dataset = OpenDataset(
            name=name,
            catalog_code=code,
            theme=theme_of(live["provider_department_code"]),
            published_at=utcnow(),
            **values,
        )
        session.add(dataset)
        session.flush()
        now = utcnow()
        for position, fmt in enumerate(FORMATS):
            session.add(OpenResource(dataset_id=dataset.id, position=position, format=fmt, created_at=now))
    else:
        for key, value in values.items():
            setattr(dataset, key, value)
    session.flush()
    return dataset


def sync_all(session: Session) -> SyncResult:
    """Sync every catalog entry with a lake resource, and every dataset published before."""
    result = SyncResult()
    before = {d.catalog_code: d.state for d in session.scalars(select(OpenDataset))}
    codes = {r.code for r in catalog.list_resources(session, None) if r.lake_resource} | set(before)
    negative = catalog.negative_list(session)
    for code in sorted(codes):
        dataset = sync(session, code, negative)
        was = before.get(code)
        if dataset is not None and was != "active":
            result.published.append(code)
        elif dataset is not None:
            result.updated.append(code)
        elif was == "active":
            result.withdrawn.append(code)
    return result


def subscribers(db: Database, settings: Settings) -> list[tuple[str, str, Callable[[Event], None]]]:
    """Re-sync a dataset when its catalog entry or the negative list changes."""

    def on_catalog_change(event: Event) -> None:
        with db.session() as session:
            sync(session, CatalogChange.of(event).resource)

    return [
        ("opendata.sync-on-catalog", "catalog.resource.*", on_catalog_change),
        ("opendata.sync-on-negative", "catalog.negative.*", on_catalog_change),
    ]


def seed_demo(session: Session, settings: Settings) -> int:
    """Open what the demo catalog marks open, let department administrators decide applications;
    returns how many datasets are active."""
    add_actions_to_role(session, "department_admin", (DECIDE,))
    add_actions_to_role(session, "data_officer", (DECIDE,))
    result = sync_all(session)
    return len(result.published) + len(result.updated)


# -- reading ----------------------------------------------------------------------------------------


def get_dataset(session: Session, id_or_name: str) -> OpenDataset:
    """The active dataset with this id or name (CKAN accepts either)."""
    query = select(OpenDataset).where(OpenDataset.state == "active")
    try:
        found = session.scalar(query.where(OpenDataset.id == uuid.UUID(id_or_name)))
    except ValueError:
        found = session.scalar(query.where(OpenDataset.name == id_or_name))
    if found is None:
        raise NotFoundError(N_("Dataset not found"), field="id")
    return found


def resources_of(session: Session, dataset_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[OpenResource]]:
    """The distributions of each dataset, in position order."""
    wanted = list(dataset_ids)
    out: dict[uuid.UUID, list[OpenResource]] = {i: [] for i in wanted}
    if wanted:
        query = select(OpenResource).where(OpenResource.dataset_id.in_(wanted)).order_by(OpenResource.position)
        for resource in session.scalars(query):
            out[resource.dataset_id].append(resource)
    return out


def get_resource(session: Session, resource_id: str) -> tuple[OpenResource, OpenDataset]:
    """A distribution of an active dataset, with the dataset."""
    try:
        rid = uuid.UUID(resource_id)
    except ValueError:
        rid = None
    found = (
        session.execute(
            select(OpenResource, OpenDataset)
            .join(OpenDataset, OpenDataset.id == OpenResource.dataset_id)
            .where(OpenResource.id == rid, OpenDataset.state == "active")
        ).first()
        if rid
        else None
    )
    if found is None:
        raise NotFoundError(N_("Resource was not found."), field="id")
    return found[0], found[1]


def active_datasets(session: Session) -> list[OpenDataset]:
    """Every active dataset, by name."""
    return list(session.scalars(select(OpenDataset).where(OpenDataset.state == "active").order_by(OpenDataset.name)))


# -- CKAN dictionaries ------------------------------------------------------------------------------


def _stamp(value: datetime) -> str:
    return value.replace(tzinfo=None).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Organization:
    """A provider department as a CKAN organisation."""

    id: str
    name: str
    title: str
    description: str
    department_code: str


def _organization(department: DepartmentInfo) -> Organization:
    # The id is derived from the code, so it stays the same across databases and rebuilds.
    code = department.code
    name = organization_name(code)
    return Organization(str(uuid.uuid5(uuid.NAMESPACE_URL, f"shgov:organization:{code}")), name,
                        department.name, department.short_name, code)  # fmt: skip


def organizations(session: Session) -> dict[str, Organization]:
    """Every department as an organisation, by department code."""
    return {d.code: _organization(d) for d in list_departments(session)}


def organization_of(session: Session, department_code: str) -> Organization | None:
    """One department as an organisation (one read, not every department's)."""
    department = find_department(session, department_code)
    return _organization(department) if department else None


def _group_dict(
    id_: str, name: str, title: str, description: str, organization: bool, package_count: int | None
) -> dict[str, Any]:
    # CKAN's organisations are groups too: one shape, told apart by is_organization and type.
    data: dict[str, Any] = {
        "id": id_,
        "name": name,
        "title": title,
        "display_name": title,
        "description": description,
        "image_url": "",
        "image_display_url": "",
        "created": "2026-01-01T00:00:00.000000",
        "is_organization": organization,
        "approval_status": "approved",
        "state": "active",
        "type": "organization" if organization else "group",
    }
    if package_count is not None:
        data["package_count"] = package_count
    return data


def organization_dict(org: Organization, package_count: int | None = None) -> dict[str, Any]:
    """CKAN's organisation dictionary."""
    return _group_dict(org.id, org.name, org.title, org.description, True, package_count)


def group_dict(theme: str, package_count: int | None = None) -> dict[str, Any]:
    """CKAN's group dictionary for a theme."""
    zh, en = THEMES[theme]
    theme_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"shgov:group:{theme}"))
    return _group_dict(theme_id, theme, zh, en, False, package_count)


def _tag_dict(name: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"shgov:tag:{name}")),
        "name": name,
        "display_name": name,
        "state": "active",
        "vocabulary_id": None,
    }


def download_url(base_url: str, dataset: OpenDataset, fmt: str) -> str:
    """Where a distribution is downloaded."""
    return f"{base_url.rstrip('/')}/opendata/{dataset.name}/download.{fmt.lower()}"


def resource_dict(resource: OpenResource, dataset: OpenDataset, base_url: str) -> dict[str, Any]:
    """CKAN's resource dictionary."""
    names = {"CSV": "CSV", "JSONL": "JSON Lines", "XLSX": "Excel (XLSX)", "Parquet": "Apache Parquet"}
    return {
        "id": str(resource.id),
        "package_id": str(dataset.id),
        "name": f"{dataset.title}（{names[resource.format]}）",
        "description": "",
        "format": resource.format,
        "mimetype": MIME_TYPES[resource.format],
        "url": download_url(base_url, dataset, resource.format),
        "url_type": "datastore",
        "datastore_active": True,
        "position": resource.position,
        "created": _stamp(resource.created_at),
        "last_modified": _stamp(dataset.updated_at),
        "state": "active",
        "size": None,
        "hash": "",
        "resource_type": None,
        "cache_url": None,
        "mimetype_inner": None,
    }


MIME_TYPES = {
    "CSV": "text/csv",
    "JSONL": "application/jsonl",
    "XLSX": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "Parquet": "application/vnd.apache.parquet",
}


def package_dict(
    dataset: OpenDataset, resources: Sequence[OpenResource], org: Organization | None, base_url: str
) -> dict[str, Any]:
    """CKAN's package dictionary (the fields the ``ckanapi`` client and CKAN's own pages read)."""
    return {
        "id": str(dataset.id),
        "name": dataset.name,
        "title": dataset.title,
        "notes": dataset.notes,
        "url": f"{base_url.rstrip('/')}/opendata/{dataset.name}",
        "version": str(dataset.catalog_version),
        "type": "dataset",
        "state": "active",
        "private": False,
        "isopen": dataset.open_type == "unconditional",
        "author": org.title if org else dataset.department_code,
        "author_email": None,
        "maintainer": org.title if org else dataset.department_code,
        "maintainer_email": None,
        **LICENSE,
        "metadata_created": _stamp(dataset.created_at),
        "metadata_modified": _stamp(dataset.updated_at),
        "creator_user_id": None,
        "owner_org": org.id if org else None,
        "organization": organization_dict(org) if org else None,
        "groups": [group_dict(dataset.theme)],
        "tags": [_tag_dict(t) for t in dataset.tags],
        "num_tags": len(dataset.tags),
        "resources": [resource_dict(r, dataset, base_url) for r in resources],
        "num_resources": len(resources),
        "extras": [
            {"key": "catalog_code", "value": dataset.catalog_code},
            {"key": "open_type", "value": dataset.open_type},
            {"key": "open_conditions", "value": dataset.open_conditions},
            {"key": "update_cycle", "value": dataset.update_cycle},
            {"key": "theme", "value": dataset.theme},
        ],
        "relationships_as_object": [],
        "relationships_as_subject": [],
    }


# -- search -----------------------------------------------------------------------------------------

FACET_FIELDS = ("organization", "groups", "tags", "res_format", "license_id", "open_type", "update_cycle")
SORT_FIELDS = {
    "score": "score",
    "metadata_modified": "metadata_modified",
    "metadata_created": "metadata_created",
    "name": "name",
    "title_string": "title",
    "title": "title",
}
MAX_ROWS = 1000
_FQ_TERM = re.compile(r'\s*(?P<sign>[+-]?)(?P<field>[a-z_]+):(?:"(?P<quoted>[^"]*)"|(?P<bare>[^\s"()]+))\s*')


@dataclass(frozen=True)
class _Doc:
    package: dict[str, Any]
    weights: dict[str, float]
    facets: dict[str, tuple[str, ...]]


class SearchIndex:
    """The active datasets of this process, with their search words and facet values."""

    def __init__(self, max_age: float = 30.0) -> None:
        self.max_age = max_age
        self._lock = threading.Lock()
        self._docs: list[_Doc] = []
        self.publishers: dict[str, str] = {}  # organisation name → title, of the datasets indexed
        self._by_id: dict[uuid.UUID, tuple[datetime, _Doc]] = {}
        self._checked_at = float("-inf")
        self._changes = -1
        self._base_url = ""

    def docs(self, session: Session, base_url: str) -> list[_Doc]:
        """The index: checked when a dataset changed in this process or every ``max_age`` seconds (another
        process may have changed one); only the datasets whose ``updated_at`` moved are re-read."""
        fresh = (
            self._changes == OPEN_CHANGES.value
            and time.monotonic() - self._checked_at < self.max_age
            and base_url == self._base_url
        )
        if fresh:
            return self._docs
        with self._lock:
            changes = OPEN_CHANGES.value
            if base_url != self._base_url:
                self._by_id = {}
            stamps = session.execute(
                select(OpenDataset.id, OpenDataset.updated_at)
                .where(OpenDataset.state == "active")
                .order_by(OpenDataset.name)
            ).all()
            stale = [i for i, at in stamps if i not in self._by_id or self._by_id[i][0] != at]
            if stale:
                orgs = organizations(session)
                for start in range(0, len(stale), 500):
                    chunk = stale[start : start + 500]
                    resources = resources_of(session, chunk)
                    for dataset in session.scalars(select(OpenDataset).where(OpenDataset.id.in_(chunk))):
                        doc = self._doc(dataset, resources[dataset.id], orgs.get(dataset.department_code), base_url)
                        self._by_id[dataset.id] = (dataset.updated_at, doc)
            self._docs = [self._by_id[i][1] for i, _ in stamps]
            self.publishers = {
                d.facets["organization"][0]: d.package["organization"]["title"]
                for d in self._docs
                if d.package["organization"]
            }
            self._checked_at, self._changes, self._base_url = time.monotonic(), changes, base_url
            return self._docs

    @staticmethod
    def _doc(dataset: OpenDataset, resources: list[OpenResource], org: Organization | None, base_url: str) -> _Doc:
        package = package_dict(dataset, resources, org, base_url)
        weights: dict[str, float] = {}
        parts: list[tuple[str, float]] = [(dataset.title, 4.0), (" ".join(dataset.tags), 2.0), (dataset.name, 2.0)]
        parts += [(dataset.notes, 1.0), (org.title if org else "", 1.0), (THEMES[dataset.theme][0], 1.0)]
        parts += [(f"{i['name']} {i['title']}", 0.5) for i in dataset.items]
        for text, weight in parts:
            for word in tokens(text, keep_common=True):
                weights[word] = weights.get(word, 0.0) + weight
        facets = {
            "organization": (org.name if org else organization_name(dataset.department_code),),
            "groups": (dataset.theme,),
            "tags": tuple(dataset.tags),
            "res_format": tuple(r.format for r in resources),
            "license_id": (LICENSE["license_id"],),
            "open_type": (dataset.open_type,),
            "update_cycle": (dataset.update_cycle,),
            "name": (dataset.name,),
            "id": (str(dataset.id),),
            "theme": (dataset.theme,),
        }
        return _Doc(package, weights, facets)


@dataclass(frozen=True)
class SearchResult:
    """One page of package_search."""

    count: int
    results: list[dict[str, Any]]
    facets: dict[str, dict[str, int]]
    sort: str


def _filters(fq: str) -> list[tuple[bool, str, str]]:
    """``field:value`` terms (``-`` negates; ``AND`` and ``+`` are allowed), as (wanted, field, value)."""
    terms: list[tuple[bool, str, str]] = []
    rest = fq.strip()
    position = 0
    while position < len(rest):
        if rest.startswith("AND ", position) or (rest.startswith("AND", position) and position + 3 == len(rest)):
            position += 3
            continue
        match = _FQ_TERM.match(rest, position)
        if match is None:
            raise SearchQueryError(N_("cannot parse the filter at: {text!r}"), field="fq", text=rest[position:][:40])
        name = match["field"]
        if name not in (*FACET_FIELDS, "name", "id", "theme"):
            raise SearchQueryError(N_("cannot filter on {name!r}"), field="fq", name=name)
        value = match["quoted"] if match["quoted"] is not None else match["bare"]
        terms.append((match["sign"] != "-", name, value))
        position = match.end()
    return terms


def _sort(sort: str) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    for part in sort.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or words[0] not in SORT_FIELDS or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise SearchQueryError(N_("cannot sort by {sort!r}"), field="sort", sort=part.strip())
        keys.append((SORT_FIELDS[words[0]], len(words) == 2 and words[1] == "desc"))
    return keys or [("score", True), ("metadata_modified", True)]


def search(
    docs: Sequence[_Doc],
    q: str = "",
    fq: str = "",
    sort: str = "",
    rows: int = 10,
    start: int = 0,
    facet_fields: Sequence[str] = (),
    facet_limit: int = 50,
) -> SearchResult:
    """CKAN's package_search over ``docs``: every word of ``q`` must match (``field:value`` terms in q
    filter like fq); facets count the matches; ``sort`` as CKAN writes it (default by relevance)."""
    words: list[str] = []
    terms = _filters(fq)
    free: list[str] = []
    for part in re.split(r"\s+", q.strip()):
        if _FQ_TERM.fullmatch(part) and part.split(":", 1)[0].lstrip("+-") in (*FACET_FIELDS, "name", "id", "theme"):
            terms += _filters(part)
        elif part and part != "*:*":
            free.append(part)
    if free:
        words = query_tokens(" ".join(free))
    keys = _sort(sort)
    for name in facet_fields:
        if name not in FACET_FIELDS:
            raise SearchQueryError(N_("cannot facet on {name!r}"), field="facet.field", name=name)
    matched: list[tuple[float, _Doc]] = []
    for doc in docs:
        if any((value in doc.facets.get(name, ())) != wanted for wanted, name, value in terms):
            continue
        score = 0.0
        if words:
            found = [doc.weights.get(w) for w in words]
            if not all(found):
                continue
            score = sum(w for w in found if w)
        matched.append((score, doc))
    for name, descending in reversed(keys):
        if name == "score":
            matched.sort(key=lambda m: m[0], reverse=descending)
        else:
            matched.sort(key=lambda m, n=name: str(m[1].package.get(n) or ""), reverse=descending)  # type: ignore[misc]
    facets: dict[str, dict[str, int]] = {}
    for name in facet_fields:
        counts = Counter(v for _, doc in matched for v in doc.facets[name])
        ranked = counts.most_common(None if facet_limit < 0 else facet_limit)
        facets[name] = dict(ranked)
    page = [doc.package for _, doc in matched[start : start + min(rows, MAX_ROWS)]]
    shown = ", ".join(f"{n} {'desc' if d else 'asc'}" for n, d in keys)
    return SearchResult(len(matched), page, facets, shown)


def readable(session: Session, dataset: OpenDataset, user_id: uuid.UUID | None) -> None:
    """Refuse the rows of a dataset open on conditions unless ``user_id`` holds an approved application."""
    if dataset.open_type == "unconditional":
        return
    if user_id is not None and approved(session, user_id, dataset.id):
        return
    if dataset.open_conditions:
        raise ForbiddenError(
            N_(
                "{title} is open on conditions ({conditions}): apply for it on the portal and call with the API "
                "key of the account the publisher approved"
            ),
            field="resource_id",
            title=dataset.title,
            conditions=dataset.open_conditions,
        )
    raise ForbiddenError(
        N_(
            "{title} is open on conditions: apply for it on the portal and call with the API key of the account "
            "the publisher approved"
        ),
        field="resource_id",
        title=dataset.title,
    )


# -- reusers: applications, keys, usage -------------------------------------------------------------

DECIDE = register_action(
    "opendata.application.decide", N_("Decide reusers' applications for own department's open data")
)
APPLICATION_DAYS = 365
KEY_DAYS = 365
KEY_RATE = 600  # calls a minute of one API key
ANONYMOUS_RATE = 300  # calls a minute from one address without a key


def approved(session: Session, user_id: uuid.UUID, dataset_id: uuid.UUID) -> OpenApplication | None:
    """The live approved application of ``user_id`` for a dataset, if any."""
    return session.scalar(
        select(OpenApplication).where(
            OpenApplication.user_id == user_id,
            OpenApplication.dataset_id == dataset_id,
            OpenApplication.status == "approved",
            OpenApplication.expires_at > utcnow(),
        )
    )


def apply(
    session: Session, user_id: uuid.UUID, dataset: OpenDataset, purpose: str, organisation: str, accepted: bool
) -> OpenApplication:
    """A reuser applies for a dataset open on conditions, accepting its conditions word for word."""
    if dataset.open_type != "conditional":
        raise InvalidError(N_("only datasets open on conditions take applications"), field="dataset")
    if len(purpose.strip()) < 10:
        raise InvalidError(N_("describe the purpose in at least {count} characters"), field="purpose", count=10)
    if not accepted:
        raise InvalidError(N_("accept the conditions of use to apply"), field="accept")
    open_already = session.scalar(
        select(OpenApplication).where(
            OpenApplication.user_id == user_id,
            OpenApplication.dataset_id == dataset.id,
            OpenApplication.status == "pending",
        )
    )
    if open_already is not None or approved(session, user_id, dataset.id) is not None:
        raise ConflictError(N_("an application for this dataset is pending or approved already"), field="dataset")
    application = OpenApplication(
        dataset_id=dataset.id,
        user_id=user_id,
        organisation=organisation.strip()[:200],
        purpose=purpose.strip(),
        agreement=dataset.open_conditions,
        status="pending",
    )
    session.add(application)
    session.flush()
    return application


def decide(
    session: Session, principal: Principal, application: OpenApplication, action: str, note: str, days: int
) -> OpenApplication:
    """The publisher approves (for ``days``) or refuses (with a reason) a pending application."""
    dataset = session.get(OpenDataset, application.dataset_id)
    assert dataset is not None  # noqa: S101 - a foreign key
    if not principal.allows(DECIDE, dataset.department_code.split(".")[0], dataset.department_code):
        raise ForbiddenError(N_("applications are decided by the publishing department"), field="application")
    if application.status != "pending":
        raise ConflictError(N_("the application is {status} already"), field="application", status=application.status)
    if action not in ("approve", "refuse"):
        raise InvalidError(N_("action must be approve or refuse"), field="action")
    if action == "refuse" and len(note.strip()) < 4:
        raise InvalidError(N_("a refusal needs its reason"), field="note")
    if not 1 <= days <= 3 * 366:
        raise InvalidError(N_("approve for 1 to 1,098 days"), field="days")
    now = utcnow()
    application.status = "approved" if action == "approve" else "refused"
    application.decided_by, application.decided_at, application.decision_note = principal.user_id, now, note.strip()
    application.expires_at = now + timedelta(days=days) if action == "approve" else None
    session.flush()
    return application


def applications_to_decide(session: Session, principal: Principal) -> list[tuple[OpenApplication, OpenDataset]]:
    """Pending applications for the datasets of departments the caller decides for."""
    rows = session.execute(
        select(OpenApplication, OpenDataset)
        .join(OpenDataset, OpenDataset.id == OpenApplication.dataset_id)
        .where(OpenApplication.status == "pending")
        .order_by(OpenApplication.created_at)
    ).all()
    return [(a, d) for a, d in rows if principal.allows(DECIDE, d.department_code.split(".")[0], d.department_code)]


def applications_of(session: Session, user_id: uuid.UUID) -> list[tuple[OpenApplication, OpenDataset]]:
    """A reuser's applications, newest first."""
    rows = session.execute(
        select(OpenApplication, OpenDataset)
        .join(OpenDataset, OpenDataset.id == OpenApplication.dataset_id)
        .where(OpenApplication.user_id == user_id)
        .order_by(OpenApplication.created_at.desc())
    ).all()
    return [(a, d) for a, d in rows]


def get_application(session: Session, application_id: uuid.UUID) -> OpenApplication:
    """One application."""
    found = session.get(OpenApplication, application_id)
    if found is None:
        raise NotFoundError(N_("no such application"), field="application")
    return found


def _key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_key(session: Session, user_id: uuid.UUID, name: str) -> tuple[OpenKey, str]:
    """A new API key for a reuser; the key itself is returned once, only its hash is kept."""
    if not name.strip():
        raise InvalidError(N_("name the key (where it is used)"), field="name")
    raw = "od_" + secrets.token_urlsafe(30)
    now = utcnow()
    key = OpenKey(
        user_id=user_id,
        name=name.strip()[:100],
        key_hash=_key_hash(raw),
        prefix=raw[:10],
        rate_per_minute=KEY_RATE,
        created_at=now,
        expires_at=now + timedelta(days=KEY_DAYS),
    )
    session.add(key)
    session.flush()
    return key, raw


def keys_of(session: Session, user_id: uuid.UUID) -> list[OpenKey]:
    """A reuser's keys, newest first."""
    query = select(OpenKey).where(OpenKey.user_id == user_id).order_by(OpenKey.created_at.desc())
    return list(session.scalars(query))


def revoke_key(session: Session, user_id: uuid.UUID, key_id: uuid.UUID) -> OpenKey:
    """End one of the reuser's own keys."""
    key = session.get(OpenKey, key_id)
    if key is None or key.user_id != user_id:
        raise NotFoundError(N_("no such key"), field="key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    return key


def key_holder(session: Session, raw: str) -> OpenKey | None:
    """The live key ``raw`` is, or None. A key carries only what its holder holds now: the key of a
    disabled, locked or removed account reads nothing."""
    row = session.execute(
        select(OpenKey, User).outerjoin(User, User.id == OpenKey.user_id).where(OpenKey.key_hash == _key_hash(raw))
    ).first()
    if row is None:
        return None
    key, holder = row
    if key.revoked_at is not None or key.expires_at <= utcnow() or holder is None or not usable(holder):
        return None
    return key


class UsageCounter:
    """Calls and downloads per dataset and day, and calls per API key and day, counted in memory and added
    to ``opendata_usage`` / ``opendata_key_usage`` by a thread of their own every ``interval`` seconds
    (the app starts it as the context's runtime) — never a write on a reader's request, never one per call."""

    def __init__(self, db: Database, interval: float = 5.0) -> None:
        self.db = db
        self.interval = interval
        self._lock = threading.Lock()
        self._pending: Counter[tuple[uuid.UUID, date, str]] = Counter()
        self._keys: Counter[tuple[uuid.UUID, date]] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self, dataset_id: uuid.UUID, kind: str) -> None:
        """Count one call (``calls``) or download (``downloads``) of a dataset today."""
        with self._lock:
            self._pending[(dataset_id, utcnow().date(), kind)] += 1

    def count_key(self, key_id: uuid.UUID) -> None:
        """Count one call made with an API key today."""
        with self._lock:
            self._keys[(key_id, utcnow().date())] += 1

    def flush(self) -> int:
        """Add the pending counts to the tables in a unit of work of their own; returns how many rows
        changed. Counts that could not be written stay pending for the next flush."""
        with self._lock:
            pending, self._pending = self._pending, Counter()
            keys, self._keys = self._keys, Counter()
        if not pending and not keys:
            return 0
        try:
            with self.db.session() as session:
                return _add_usage(session, pending, keys)
        except Exception:
            with self._lock:
                self._pending.update(pending)
                self._keys.update(keys)
            raise

    def start(self) -> None:
        """Flush every ``interval`` seconds in a background thread until ``stop``."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="opendata-usage", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:
                log.exception("open-data usage counts not written; kept for the next flush")


def _add_usage(
    session: Session, pending: Counter[tuple[uuid.UUID, date, str]], keys: Counter[tuple[uuid.UUID, date]]
) -> int:
    rows: dict[tuple[uuid.UUID, date], dict[str, int]] = {}
    for (dataset_id, day, kind), n in pending.items():
        rows.setdefault((dataset_id, day), {"calls": 0, "downloads": 0})[kind] += n
    for (dataset_id, day), added in rows.items():
        usage = session.get(OpenUsage, (dataset_id, day))
        if usage is None:
            session.add(OpenUsage(dataset_id=dataset_id, day=day, **added))
        else:
            usage.calls += added["calls"]
            usage.downloads += added["downloads"]
    for (key_id, day), n in keys.items():
        key_usage = session.get(OpenKeyUsage, (key_id, day))
        if key_usage is None:
            session.add(OpenKeyUsage(key_id=key_id, day=day, calls=n))
        else:
            key_usage.calls += n
    session.flush()
    return len(rows) + len(keys)


@dataclass(frozen=True)
class Portal:
    """What the portal keeps in memory, once per app: the search index, the usage counts not yet written
    (flushed in the background while the app runs), and the rate buckets of keys and addresses."""

    index: SearchIndex
    usage: UsageCounter
    limiter: RateLimiter

    def start(self) -> None:
        """Start flushing the usage counts."""
        self.usage.start()

    def stop(self) -> None:
        """Stop, writing what is left."""
        self.usage.stop()


def runtime(settings: Settings, db: Database) -> Portal:
    """The web process's portal state, started and stopped with the app."""
    return Portal(SearchIndex(), UsageCounter(db), RateLimiter(settings.web.workers))


def portal(runtimes: Mapping[str, object]) -> Portal:
    """The portal state among the app's runtimes (``app.state.runtimes``)."""
    found = runtimes["opendata"]
    assert isinstance(found, Portal)  # noqa: S101 - the app made it from ``runtime``
    return found


def store_for(settings: Settings) -> DataStore:
    """The DataStore over the app's lake."""
    analytics = settings.analytics
    return DataStore(
        settings.lake_dir, analytics.threads, analytics.open_data_memory_limit, settings.data_dir / "tmp" / "duckdb"
    )


def key_calls(session: Session, user_id: uuid.UUID, days: int = 30) -> dict[uuid.UUID, tuple[int, int]]:
    """Calls of each of a reuser's keys: (today, the last ``days`` days)."""
    today = utcnow().date()
    rows = session.execute(
        select(OpenKeyUsage.key_id, OpenKeyUsage.day, OpenKeyUsage.calls)
        .join(OpenKey, OpenKey.id == OpenKeyUsage.key_id)
        .where(OpenKey.user_id == user_id, OpenKeyUsage.day >= today - timedelta(days=days))
    ).all()
    out: dict[uuid.UUID, tuple[int, int]] = {}
    for key_id, day, calls in rows:
        now, total = out.get(key_id, (0, 0))
        out[key_id] = (now + (calls if day == today else 0), total + calls)
    return out


def most_used(session: Session, days: int = 30, limit: int = 20) -> list[tuple[OpenDataset, int, int]]:
    """The datasets called and downloaded most in the last ``days`` days."""
    since = utcnow().date() - timedelta(days=days)
    total = func.sum(OpenUsage.calls + OpenUsage.downloads)
    rows = session.execute(
        select(OpenDataset, func.sum(OpenUsage.calls), func.sum(OpenUsage.downloads))
        .join(OpenUsage, OpenUsage.dataset_id == OpenDataset.id)
        .where(OpenUsage.day >= since, OpenDataset.state == "active")
        .group_by(OpenDataset.id)
        .order_by(total.desc())
        .limit(limit)
    ).all()
    return [(d, int(c or 0), int(n or 0)) for d, c, n in rows]


def daily_usage(session: Session, days: int = 30) -> list[tuple[date, int, int]]:
    """Calls and downloads of all datasets per day, for the last ``days`` days."""
    since = utcnow().date() - timedelta(days=days)
    rows = session.execute(
        select(OpenUsage.day, func.sum(OpenUsage.calls), func.sum(OpenUsage.downloads))
        .where(OpenUsage.day >= since)
        .group_by(OpenUsage.day)
        .order_by(OpenUsage.day)
    ).all()
    return [(d, int(c or 0), int(n or 0)) for d, c, n in rows]

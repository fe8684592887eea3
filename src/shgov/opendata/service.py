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

**DataStore.** ``datastore_search`` and ``datastore_search_sql`` read the live version's Parquet
through DuckDB, open columns only. SQL is parsed by DuckDB itself and admitted only as one SELECT over
the datasets' resource ids with functions from an allow-list, under a row cap and a time limit.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from shgov.catalog import service as catalog
from shgov.core.db import ChangeCounter, Database, utcnow
from shgov.core.errors import DomainError, ForbiddenError, InvalidError, NotFoundError
from shgov.core.events import Event
from shgov.core.orgs.service import list_departments
from shgov.core.settings import Settings
from shgov.core.text import query_tokens, tokens
from shgov.lake import service as lake
from shgov.opendata.models import OpenDataset as OpenDataset  # part of this service's interface
from shgov.opendata.models import OpenResource as OpenResource  # part of this service's interface

OPEN_TYPES = ("unconditional", "conditional")
# Path segments of the portal's own pages under /opendata/ that a dataset name must not take.
RESERVED_NAMES = frozenset({"org", "catalog", "id", "licence", "search"})
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
TYPE_NAMES = {"string": "text", "integer": "int", "number": "numeric", "date": "date", "datetime": "timestamp"}
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


def sync(session: Session, code: str) -> OpenDataset | None:
    """Publish, update or withdraw the open dataset of catalog entry ``code``; the active dataset or None."""
    try:
        live = catalog.published(session, code)
    except NotFoundError:
        live = None
    negative = {e.item for e in catalog.negative_list(session) if e.resource_code == code and e.item}
    items = _open_items(live, negative) if live else []
    reason = _why_not_open(session, live, items)
    if live is not None and any(e.resource_code == code and not e.item for e in catalog.negative_list(session)):
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
    for code in sorted(codes):
        dataset = sync(session, code)
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
        code = event.payload.get("code") or event.payload.get("resource")
        if code:
            with db.session() as session:
                sync(session, str(code))

    return [
        ("opendata.sync-on-catalog", "catalog.resource.*", on_catalog_change),
        ("opendata.sync-on-negative", "catalog.negative.*", on_catalog_change),
    ]


def seed_demo(session: Session, settings: Settings) -> int:
    """Open what the demo catalog marks open; returns how many datasets are active."""
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
        raise NotFoundError("Dataset not found", field="id")
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
        raise NotFoundError("Resource was not found.", field="id")
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


def organizations(session: Session) -> dict[str, Organization]:
    """Every department as an organisation, by department code (ids are stable: derived from the code)."""
    return {
        d.code: Organization(
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"shgov:organization:{d.code}")),
            organization_name(d.code),
            d.name,
            d.short_name,
            d.code,
        )
        for d in list_departments(session)
    }


def organization_dict(org: Organization, package_count: int | None = None) -> dict[str, Any]:
    """CKAN's organisation dictionary."""
    data: dict[str, Any] = {
        "id": org.id,
        "name": org.name,
        "title": org.title,
        "display_name": org.title,
        "description": org.description,
        "image_url": "",
        "image_display_url": "",
        "created": "2026-01-01T00:00:00.000000",
        "is_organization": True,
        "approval_status": "approved",
        "state": "active",
        "type": "organization",
    }
    if package_count is not None:
        data["package_count"] = package_count
    return data


def group_dict(theme: str, package_count: int | None = None) -> dict[str, Any]:
    """CKAN's group dictionary for a theme."""
    zh, en = THEMES[theme]
    data: dict[str, Any] = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"shgov:group:{theme}")),
        "name": theme,
        "title": zh,
        "display_name": zh,
        "description": en,
        "image_url": "",
        "image_display_url": "",
        "created": "2026-01-01T00:00:00.000000",
        "is_organization": False,
        "approval_status": "approved",
        "state": "active",
        "type": "group",
    }
    if package_count is not None:
        data["package_count"] = package_count
    return data


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
        self._built_at = float("-inf")
        self._changes = -1
        self._base_url = ""

    def docs(self, session: Session, base_url: str) -> list[_Doc]:
        """The index, rebuilt when a dataset changed here, after ``max_age`` seconds, or for another URL."""
        fresh = (
            self._changes == OPEN_CHANGES.value
            and time.monotonic() - self._built_at < self.max_age
            and base_url == self._base_url
        )
        if fresh:
            return self._docs
        with self._lock:
            changes = OPEN_CHANGES.value
            datasets = active_datasets(session)
            orgs = organizations(session)
            resources = resources_of(session, [d.id for d in datasets])
            self._docs = [self._doc(d, resources[d.id], orgs.get(d.department_code), base_url) for d in datasets]
            self._built_at, self._changes, self._base_url = time.monotonic(), changes, base_url
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
            raise SearchQueryError(f"cannot parse the filter at: {rest[position:][:40]!r}", field="fq")
        name = match["field"]
        if name not in (*FACET_FIELDS, "name", "id", "theme"):
            raise SearchQueryError(f"cannot filter on {name!r}", field="fq")
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
            raise SearchQueryError(f"cannot sort by {part.strip()!r}", field="sort")
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
            raise SearchQueryError(f"cannot facet on {name!r}", field="facet.field")
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


# -- the DataStore ----------------------------------------------------------------------------------

DEFAULT_LIMIT = 100
MAX_LIMIT = 32_000
SQL_SECONDS = 10.0
# Functions a datastore_search_sql statement may call (operators such as = + LIKE are always allowed).
_SQL_FUNCTION_NAMES = """
count count_star sum avg mean min max median mode stddev stddev_samp stddev_pop variance var_samp var_pop
quantile_cont quantile_disc approx_count_distinct first last any_value string_agg group_concat
lower upper length trim ltrim rtrim substr substring left right replace concat concat_ws contains
starts_with ends_with prefix suffix strpos instr position lpad rpad reverse repeat split_part
abs round floor ceil ceiling sign sqrt power pow ln log log10 log2 exp greatest least coalesce nullif ifnull
year month day quarter week dayofweek dayofyear hour minute second date_part datepart date_trunc datetrunc
date_diff datediff strftime strptime today current_date epoch make_date try_cast cast
"""
SQL_FUNCTIONS = frozenset(_SQL_FUNCTION_NAMES.split())


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class DataStore:
    """The rows of open datasets: the live lake version of each, open columns only, through DuckDB."""

    def __init__(self, lake_dir: Path, threads: int = 2, memory_limit: str = "1GB") -> None:
        self.lake_dir = lake_dir
        self.config: dict[str, str | bool | int | float | list[str]] = {
            "threads": threads,
            "memory_limit": memory_limit,
        }

    def source(self, dataset: OpenDataset) -> str:
        """A subquery of the dataset's live rows, open columns only."""
        folder = lake.current_path(self.lake_dir, dataset.lake_resource)
        if folder is None:
            raise NotFoundError("the dataset has no data yet", field="resource_id")
        pattern = (folder / "**" / "*.parquet").as_posix().replace("'", "''")
        columns = ", ".join(_quoted(i["name"]) for i in dataset.items)
        # Partition values stay text: codes such as 310115 are codes, not numbers.
        return (
            f"(SELECT {columns} FROM read_parquet('{pattern}', hive_partitioning = true,"  # noqa: S608
            " hive_types_autocast = false, union_by_name = true))"
        )

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A fresh in-memory DuckDB connection."""
        return duckdb.connect(":memory:", config=self.config)

    def search(
        self,
        dataset: OpenDataset,
        resource_id: str,
        filters: Mapping[str, Any] | None = None,
        q: str | Mapping[str, str] | None = None,
        fields: Sequence[str] | None = None,
        sort: str | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        include_total: bool = True,
    ) -> dict[str, Any]:
        """CKAN's datastore_search: equality filters, text search, chosen fields, sort and a page."""
        types = {i["name"]: i["type"] for i in dataset.items}
        chosen = list(fields) if fields else list(types)
        unknown = [f for f in chosen if f not in types]
        if unknown:
            raise InvalidError(f'field "{unknown[0]}" not in resource', field="fields")
        where: list[str] = []
        params: list[Any] = []
        for name, value in (filters or {}).items():
            if name not in types:
                raise InvalidError(f'field "{name}" not in resource', field="filters")
            values = value if isinstance(value, list) else [value]
            if not values:
                raise InvalidError(f"no values to filter {name} on", field="filters")
            where.append(f"{_quoted(name)} IN ({', '.join('?' for _ in values)})")
            params += [_typed(v, types[name], name) for v in values]
        texts = [n for n, t in types.items() if t == "string"]
        if isinstance(q, Mapping):
            for name, text in q.items():
                if name not in types:
                    raise InvalidError(f'field "{name}" not in resource', field="q")
                where.append(f"CAST({_quoted(name)} AS VARCHAR) ILIKE ?")
                params.append(f"%{_like(str(text))}%")
        elif q and q.strip():
            for word in q.split():
                where.append("(" + " OR ".join(f"{_quoted(n)} ILIKE ? ESCAPE '\\'" for n in texts) + ")")
                params += [f"%{_like(word)}%"] * len(texts)
        order: list[str] = []
        for part in (sort or "").split(","):
            words = part.split()
            if not words:
                continue
            if words[0] not in types or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
                raise InvalidError(f"cannot sort by {part.strip()!r}", field="sort")
            order.append(f"{_quoted(words[0])} {words[1].upper() if len(words) == 2 else 'ASC'}")
        if limit < 0:
            raise InvalidError("limit must be a natural number", field="limit")
        if offset < 0:
            raise InvalidError("offset must be a natural number", field="offset")
        limit = min(limit, MAX_LIMIT)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        source = self.source(dataset)
        query = f"SELECT {', '.join(_quoted(c) for c in chosen)} FROM {source} AS t{clause}"  # noqa: S608
        if order:
            query += f" ORDER BY {', '.join(order)}"
        query += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        with self.connect() as conn:
            cursor = conn.execute(query, params)
            names = [d[0] for d in cursor.description or []]
            records = [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in cursor.fetchall()]
            total = None
            if include_total:
                counted = conn.execute(f"SELECT count(*) FROM {source} AS t{clause}", params).fetchone()  # noqa: S608
                total = int(counted[0]) if counted else 0
        result: dict[str, Any] = {
            "resource_id": resource_id,
            "fields": [{"id": c, "type": TYPE_NAMES.get(types[c], "text")} for c in chosen],
            "records": records,
            "records_format": "objects",
            "limit": limit,
            "offset": offset,
            "include_total": include_total,
            "total_estimation_threshold": None,
            "filters": dict(filters or {}),
            "_links": {
                "start": f"/api/3/action/datastore_search?resource_id={resource_id}",
                "next": f"/api/3/action/datastore_search?resource_id={resource_id}&offset={offset + limit}",
            },
        }
        if q:
            result["q"] = q
        if order:
            result["sort"] = sort
        if total is not None:
            result["total"] = total
            result["total_was_estimated"] = False
        return result

    def sql(self, datasets: Mapping[str, OpenDataset], statement: str) -> dict[str, Any]:
        """CKAN's datastore_search_sql: one read-only SELECT over resource ids (``FROM "<resource id>"``)."""
        tables = check_sql(statement)
        unknown = [t for t in tables if t not in datasets]
        if unknown:
            raise NotFoundError(f'Resource "{unknown[0]}" was not found.', field="sql")
        with self.connect() as conn:
            for name in tables:
                conn.execute(f"CREATE VIEW {_quoted(name)} AS SELECT * FROM {self.source(datasets[name])}")  # noqa: S608
            timer = threading.Timer(SQL_SECONDS, conn.interrupt)
            timer.start()
            try:
                cursor = conn.execute(f"SELECT * FROM ({statement.strip().rstrip(';')}) AS q LIMIT {MAX_LIMIT + 1}")  # noqa: S608
                names = [d[0] for d in cursor.description or []]
                types = [str(d[1]) for d in cursor.description or []]
                rows = cursor.fetchall()
            except duckdb.InterruptException as exc:
                raise InvalidError(f"the query took longer than {SQL_SECONDS:.0f} s", field="sql") from exc
            except duckdb.Error as exc:
                raise InvalidError(f"the query failed: {str(exc).splitlines()[0]}", field="sql") from exc
            finally:
                timer.cancel()
        if len(rows) > MAX_LIMIT:
            raise InvalidError(f"the query returns more than {MAX_LIMIT} rows: aggregate or add a LIMIT", field="sql")
        return {
            "sql": statement,
            "fields": [{"id": n, "type": t.lower()} for n, t in zip(names, types, strict=True)],
            "records": [{n: _plain(v) for n, v in zip(names, row, strict=True)} for row in rows],
            "records_format": "objects",
        }


# -- downloads --------------------------------------------------------------------------------------

XLSX_MAX_ROWS = 1_048_575  # Excel's 1,048,576 rows, less the header
EXTENSIONS = {"csv": "CSV", "jsonl": "JSONL", "xlsx": "XLSX", "parquet": "Parquet"}


class Downloads:
    """The files of each dataset's live version, written once per version and format (DuckDB streams
    them from the lake to disk, so memory does not grow with size) and then served as static files."""

    def __init__(self, store: DataStore, folder: Path) -> None:
        self.store = store
        self.folder = folder
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, dataset: OpenDataset, extension: str, *, bom: bool = False) -> Path:
        """The file of ``dataset`` in a format (``csv`` with ``bom`` for Excel), written on first use."""
        if extension not in EXTENSIONS:
            raise NotFoundError(f"no download format {extension!r}: use {', '.join(EXTENSIONS)}", field="format")
        current = lake.current_path(self.store.lake_dir, dataset.lake_resource)
        if current is None:
            raise NotFoundError("the dataset has no data yet", field="name")
        columns = hashlib.sha256(json.dumps([i["name"] for i in dataset.items]).encode()).hexdigest()[:12]
        suffix = "-bom" if bom and extension == "csv" else ""
        target = self.folder / dataset.lake_resource / current.name / f"{dataset.name}-{columns}{suffix}.{extension}"
        if target.exists():
            return target
        with self._guard:
            lock = self._locks.setdefault(target, threading.Lock())
        with lock:
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".partial")
                self._write(dataset, extension, bom, partial)
                partial.replace(target)
        return target

    def _write(self, dataset: OpenDataset, extension: str, bom: bool, out: Path) -> None:
        source = self.store.source(dataset)
        with self.store.connect() as conn:
            if extension == "xlsx":
                self._write_xlsx(conn, dataset, source, out)
                return
            options = {
                "csv": "FORMAT CSV, HEADER",
                "jsonl": "FORMAT JSON",
                "parquet": "FORMAT PARQUET, COMPRESSION ZSTD",
            }
            body = out.with_name(out.name + ".body") if bom else out
            quoted = body.as_posix().replace("'", "''")
            conn.execute(f"COPY (SELECT * FROM {source} AS t) TO '{quoted}' ({options[extension]})")  # noqa: S608
        if bom:
            with out.open("wb") as sink, body.open("rb") as data:
                sink.write(b"\xef\xbb\xbf")
                shutil.copyfileobj(data, sink, 1 << 20)
            body.unlink()

    @staticmethod
    def _write_xlsx(conn: duckdb.DuckDBPyConnection, dataset: OpenDataset, source: str, out: Path) -> None:
        counted = conn.execute(f"SELECT count(*) FROM {source} AS t").fetchone()  # noqa: S608
        if counted and counted[0] > XLSX_MAX_ROWS:
            raise InvalidError(
                f"{counted[0]:,} rows are more than an Excel sheet holds (1,048,576): download CSV or Parquet",
                field="format",
            )
        book = Workbook(write_only=True)
        sheet = book.create_sheet(dataset.name[:31])
        sheet.append([i["title"] for i in dataset.items])
        cursor = conn.execute(f"SELECT * FROM {source} AS t")  # noqa: S608
        while rows := cursor.fetchmany(10_000):
            for row in rows:
                sheet.append([_cell(v) for v in row])
        book.save(out)


def _cell(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.isoformat()  # Excel has no time zones: the text keeps the offset
    if isinstance(value, Decimal):
        return float(value)
    return value


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _typed(value: Any, kind: str, name: str) -> Any:
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "date":
            return date.fromisoformat(str(value))
        if kind == "datetime":
            return datetime.fromisoformat(str(value))
    except (TypeError, ValueError) as exc:
        raise InvalidError(f"{value!r} is not a valid {kind} for {name}", field="filters") from exc
    return str(value)


def check_sql(statement: str) -> list[str]:
    """The tables a statement reads if it is one SELECT with allowed functions only; else InvalidError."""
    if not statement.strip():
        raise InvalidError("send a SELECT statement", field="sql")
    with duckdb.connect(":memory:") as conn:
        row = conn.execute("SELECT json_serialize_sql(?)", [statement]).fetchone()
    parsed: dict[str, Any] = json.loads(row[0]) if row else {"error": True, "error_message": "cannot parse"}
    if parsed.get("error"):
        message = str(parsed.get("error_message", "cannot parse the statement"))
        if "Only SELECT" in message:
            message = "only a read-only SELECT is allowed"
        raise InvalidError(message, field="sql")
    if len(parsed["statements"]) != 1:
        raise InvalidError("send exactly one SELECT statement", field="sql")
    tables: list[str] = []
    ctes: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            raise InvalidError("table functions are not allowed: read from resource ids", field="sql")
        if kind == "BASE_TABLE":
            if node.get("schema_name") or node.get("catalog_name"):
                raise InvalidError("read from resource ids only", field="sql")
            tables.append(str(node["table_name"]))
        if node.get("class") == "FUNCTION" and not node.get("is_operator"):
            name = str(node.get("function_name", "")).lower()
            if name not in SQL_FUNCTIONS:
                raise InvalidError(f"the function {name}() is not allowed", field="sql")
        if "cte_map" in node:
            for entry in node["cte_map"].get("map", []):
                ctes.add(str(entry.get("key", "")))
        for value in node.values():
            walk(value)

    walk(parsed["statements"][0])
    wanted = [t for t in dict.fromkeys(tables) if t not in ctes]
    if not wanted:
        raise InvalidError("read from at least one resource id", field="sql")
    return wanted


def readable(dataset: OpenDataset) -> None:
    """Refuse the rows of a dataset open on conditions (they need an approved application)."""
    if dataset.open_type != "unconditional":
        raise ForbiddenError(
            f"{dataset.title} is open on conditions ({dataset.open_conditions or '有条件开放'}): apply for it first",
            field="resource_id",
        )

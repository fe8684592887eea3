"""Chinese full-text search over the published catalog, with facets.

Text is cut into words by jieba (search mode: a long word also yields its parts, so 婚姻登记 is found
by 婚姻 and by 登记); identifiers such as ``id_number`` yield ``id_number``, ``id`` and ``number``.
The words are stored space-separated in ``catalog_search`` and indexed by the database itself:
SQLite's FTS5 (``catalog_fts``, ranked by BM25) or PostgreSQL's full text (a generated, weighted
``search_vector`` with a GIN index, ranked by ``ts_rank``). Every word of a query must match; a match in
the title counts four times as much as one in the summary, items or keywords.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from shgov.catalog.models import CatalogSearchEntry
from shgov.core.text import query_tokens, tokens

FACETS = ("department_code", "tenant_code", "sharing_type", "format_class", "update_cycle", "sensitivity")
TITLE_WEIGHT = 4.0


def index_entry(session: Session, resource_id: Any, title: str, body: Sequence[str], facets: Mapping[str, str]) -> None:
    """(Re)index one published resource: its title, the other searchable texts and its facet values."""
    unindex(session, resource_id)
    title_tokens = " ".join(tokens(title, keep_common=True))
    document = " ".join(tokens(" ".join(body), keep_common=True))
    entry = CatalogSearchEntry(
        resource_id=resource_id, document=document, title_tokens=title_tokens, **{f: facets[f] for f in FACETS}
    )
    session.add(entry)
    session.flush()
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            text("INSERT INTO catalog_fts (rowid, title, document) VALUES (:id, :title, :document)"),
            {"id": entry.id, "title": title_tokens, "document": document},
        )


def unindex(session: Session, resource_id: Any) -> None:
    """Take a resource out of search."""
    entry = session.query(CatalogSearchEntry).filter_by(resource_id=resource_id).one_or_none()
    if entry is None:
        return
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("DELETE FROM catalog_fts WHERE rowid = :id"), {"id": entry.id})
    session.execute(delete(CatalogSearchEntry).where(CatalogSearchEntry.id == entry.id))


@dataclass(frozen=True)
class SearchResult:
    """A page of hits (resource id, score — higher is better) with the total and facet counts."""

    total: int
    hits: list[tuple[Any, float]]
    facets: dict[str, dict[str, int]]
    words: list[str]


def search(
    session: Session, q: str, filters: Mapping[str, Sequence[str]], offset: int = 0, limit: int = 20
) -> SearchResult:
    """Published resources matching every word of ``q`` (all when empty) and the facet ``filters``.

    One query fetches every match with its score and facet values (at most the catalog's size: tens of
    thousands of narrow rows); the total, the facet counts and the page come from that one pass."""
    words = query_tokens(q) if q.strip() else []
    sqlite = session.get_bind().dialect.name == "sqlite"
    params: dict[str, Any] = {}
    where: list[str] = []
    for name, values in filters.items():
        if name not in FACETS or not values:
            continue
        keys = [f"{name}_{i}" for i in range(len(values))]
        where.append(f"s.{name} IN ({', '.join(':' + k for k in keys)})")
        params.update(dict(zip(keys, values, strict=True)))
    if words and sqlite:
        source = "catalog_fts JOIN catalog_search s ON s.id = catalog_fts.rowid"
        where.append("catalog_fts MATCH :match")
        params["match"] = " AND ".join('"' + w.replace('"', '""') + '"' for w in words)
        # bm25() is lower for better matches; negate so that higher is better everywhere.
        score = f"-bm25(catalog_fts, {TITLE_WEIGHT}, 1.0)"
    elif words:
        # search_vector: title words weighted A, the rest B (a generated column made by the migration).
        source = "catalog_search s"
        where.append("s.search_vector @@ plainto_tsquery('simple', :match)")
        params["match"] = " ".join(words)
        score = "ts_rank('{0.1, 0.2, %.2f, 1.0}', s.search_vector, plainto_tsquery('simple', :match))" % (
            1 / TITLE_WEIGHT
        )
    else:
        source, score = "catalog_search s", "0.0"
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    columns = ", ".join(f"s.{name}" for name in FACETS)
    rows = session.execute(
        text(
            f"SELECT s.resource_id, {score} AS score, {columns} FROM {source}{clause} "  # noqa: S608 - constants
            "ORDER BY score DESC, s.title_tokens"
        ),
        params,
    ).all()
    facets: dict[str, dict[str, int]] = {}
    for position, name in enumerate(FACETS, start=2):
        counts = Counter(str(row[position]) for row in rows)
        facets[name] = dict(counts.most_common())
    page = rows[offset : offset + limit]
    return SearchResult(len(rows), [(r[0], float(r[1])) for r in page], facets, words)

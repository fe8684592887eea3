"""Rating statistics, always recomputed from the immutable ratings by DuckDB: satisfaction and bad-rating
rates by item, department, district, channel and month, the indicators' averages, and the rectification
on-time rate. The same SQL runs over the ratings read from the database (Arrow) and over a Parquet snapshot
of any size (``bench/bench_ratings.py``: 10M ratings)."""

from __future__ import annotations

import csv
import io
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import date

import duckdb
import pyarrow as pa
from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from shgov.core.db import ChangeCounter
from shgov.ratings.models import Rating, RatingAppeal, Rectification
from shgov.ratings.service import INDICATOR_NAMES, excluded_ids

# dimension → (the column grouped on, the column naming a group)
DIMENSIONS: dict[str, tuple[str, str]] = {
    "item": ("item_code", "item_name"),
    "department": ("department_code", "department_code"),
    "district": ("tenant_code", "tenant_code"),
    "channel": ("channel", "channel"),
    "month": ("month", "month"),
}
INDICATOR_COLUMNS = tuple(INDICATOR_NAMES)
RATING_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("replaces_id", pa.string()),
        ("channel", pa.string()),
        ("level", pa.int8()),
        ("item_code", pa.string()),
        ("item_name", pa.string()),
        ("department_code", pa.string()),
        ("tenant_code", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        *[(f"s_{name}", pa.int8()) for name in INDICATOR_COLUMNS],
    ]
)


@dataclass(frozen=True)
class Row:
    """One group's figures."""

    dimension: str
    key: str
    name: str
    ratings: int
    satisfied: int  # 非常满意, 满意, 基本满意
    bad: int  # 不满意, 非常不满意
    average: float
    indicators: dict[str, float | None]

    @property
    def satisfaction_rate(self) -> float:
        """Satisfied ratings over all ratings."""
        return self.satisfied / self.ratings if self.ratings else 0.0

    @property
    def bad_rate(self) -> float:
        """Bad ratings over all ratings."""
        return self.bad / self.ratings if self.ratings else 0.0


def ratings_table(session: Session, since: date | None = None, until: date | None = None) -> pa.Table:
    """The ratings as an Arrow table of ``RATING_SCHEMA`` (indicators as columns)."""
    query = select(Rating)
    if since:
        query = query.where(Rating.created_at >= since)
    if until:
        query = query.where(Rating.created_at < until)
    columns: dict[str, list[object]] = {name: [] for name in RATING_SCHEMA.names}
    for rating in session.scalars(query.execution_options(yield_per=5000)):
        columns["id"].append(str(rating.id))
        columns["replaces_id"].append(str(rating.replaces_id) if rating.replaces_id else None)
        for name in ("channel", "level", "item_code", "item_name", "department_code", "tenant_code", "created_at"):
            columns[name].append(getattr(rating, name))
        for name in INDICATOR_COLUMNS:
            columns[f"s_{name}"].append(rating.scores.get(name))
    return pa.Table.from_pydict(columns, schema=RATING_SCHEMA)


def excluded_table(session: Session) -> pa.Table:
    """The ids of the ratings an approved appeal excluded."""
    ids = [str(i) for i in excluded_ids(session)]
    return pa.table({"rating_id": pa.array(ids, pa.string())})


def compute(
    con: duckdb.DuckDBPyConnection,
    ratings: str = "ratings",
    excluded: str = "excluded",
    dimensions: tuple[str, ...] = tuple(DIMENSIONS),
) -> list[Row]:
    """Every group's figures in one pass (GROUPING SETS), and the total (dimension ``all``), over the
    effective ratings: not excluded by an appeal and not replaced by a re-rating. ``ratings`` and
    ``excluded`` name tables or views of ``con``."""
    sets = ", ".join([*(f"({DIMENSIONS[d][0]})" for d in dimensions), "()"])  # () is the total
    averages = ", ".join(f"AVG(s_{n}) AS s_{n}" for n in INDICATOR_COLUMNS)
    keys = " ".join(
        f"WHEN GROUPING({DIMENSIONS[d][0]}) = 0 THEN CAST({DIMENSIONS[d][0]} AS VARCHAR)" for d in dimensions
    )
    which = " ".join(f"WHEN GROUPING({DIMENSIONS[d][0]}) = 0 THEN '{d}'" for d in dimensions)
    names = " ".join(
        f"WHEN GROUPING({DIMENSIONS[d][0]}) = 0 THEN CAST(ANY_VALUE({DIMENSIONS[d][1]}) AS VARCHAR)" for d in dimensions
    )
    # names and columns come from DIMENSIONS and the caller's own tables, never from a request
    sql = f"""
        WITH effective AS (
            SELECT *, strftime(created_at, '%Y-%m') AS month FROM {ratings} AS r
            WHERE NOT EXISTS (SELECT 1 FROM {excluded} AS x WHERE x.rating_id = r.id)
              AND NOT EXISTS (SELECT 1 FROM {ratings} AS later WHERE later.replaces_id = r.id)
        )
        SELECT CASE {which} ELSE 'all' END AS dimension, CASE {keys} ELSE '*' END AS key,
               CASE {names} ELSE '*' END AS name,
               COUNT(*) AS ratings, COUNT(*) FILTER (WHERE level >= 3) AS satisfied,
               COUNT(*) FILTER (WHERE level <= 2) AS bad, AVG(level) AS average, {averages}
        FROM effective GROUP BY GROUPING SETS ({sets}) ORDER BY dimension, key
    """
    out = []
    for row in con.execute(sql).fetchall():
        dimension, key, name, count, satisfied, bad, average, *indicators = row
        out.append(
            Row(
                dimension,
                key or "",
                name or key or "",
                int(count),
                int(satisfied),
                int(bad),
                float(average or 0),
                {
                    n: (round(float(v), 3) if v is not None else None)
                    for n, v in zip(INDICATOR_COLUMNS, indicators, strict=True)
                },
            )
        )
    return out


def from_session(session: Session) -> list[Row]:
    """The figures of every rating in the database."""
    con = duckdb.connect()
    try:
        con.register("ratings", ratings_table(session))
        con.register("excluded", excluded_table(session))
        return compute(con)
    finally:
        con.close()


@dataclass(frozen=True)
class OnTime:
    """Rectification timeliness of one department (or all)."""

    key: str
    due: int  # rectifications whose rectify deadline has passed or that are rectified
    on_time: int

    @property
    def rate(self) -> float:
        """Rectified on time over those due."""
        return self.on_time / self.due if self.due else 1.0


def on_time(session: Session, today: date) -> list[OnTime]:
    """The rectification on-time rate per department and overall ("*"), appeals left aside."""
    counts: dict[str, list[int]] = {}
    for rect in session.scalars(select(Rectification).where(Rectification.status != "excluded")):
        rectified_on = rect.rectified_at.date() if rect.rectified_at else None
        if rectified_on is None and today <= rect.rectify_due:
            continue  # not yet due
        good = rectified_on is not None and rectified_on <= rect.rectify_due
        for key in (rect.department_code, "*"):
            due, ok = counts.setdefault(key, [0, 0])
            counts[key] = [due + 1, ok + int(good)]
    return [OnTime(key, due, ok) for key, (due, ok) in sorted(counts.items())]


HEADERS = (
    "维度 dimension",
    "编码 key",
    "名称 name",
    "评价数 ratings",
    "满意 satisfied",
    "差评 bad",
    "满意率 satisfaction",
    "差评率 bad rate",
    "平均分 average",
)


def _lines(rows: list[Row]) -> list[list[object]]:
    return [
        [
            r.dimension,
            r.key,
            r.name,
            r.ratings,
            r.satisfied,
            r.bad,
            round(r.satisfaction_rate, 4),
            round(r.bad_rate, 4),
            round(r.average, 3),
        ]
        + [r.indicators.get(n) for n in INDICATOR_COLUMNS]
        for r in rows
    ]


def to_csv(rows: list[Row]) -> bytes:
    """The figures as CSV (UTF-8 with a BOM, so that spreadsheet programs read the Chinese)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*HEADERS, *INDICATOR_COLUMNS])
    writer.writerows(_lines(rows))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def to_xlsx(rows: list[Row]) -> bytes:
    """The figures as an XLSX workbook."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # noqa: S101 - a new workbook has one sheet
    sheet.title = "好差评统计"
    sheet.append([*HEADERS, *INDICATOR_COLUMNS])
    for line in _lines(rows):
        sheet.append(line)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# What the published figures are computed from: a change in this process refills them at once.
RATING_CHANGES = ChangeCounter(Rating, RatingAppeal, Rectification)


@dataclass(frozen=True)
class Published:
    """Every group's figures and the on-time rates, as computed at one moment."""

    rows: list[Row]
    on_time: list[OnTime]


class PublishedFigures:
    """The figures the public pages show, computed once per change rather than once per visitor.

    The public page and API need no sign-in, so recomputing every rating per request would let anyone
    keep the server busy. The figures refill when a rating, an appeal or a rectification changed in this
    process, when the city's day turned, or after ``max_age`` seconds (another process may have written)."""

    def __init__(self, max_age: float = 30.0) -> None:
        self.max_age = max_age
        self._lock = threading.Lock()
        # per database: one process may serve several (tests, tools)
        self._held: weakref.WeakKeyDictionary[object, tuple[int, date, float, Published]] = weakref.WeakKeyDictionary()

    def get(self, session: Session, today: date) -> Published:
        """The figures as of ``today``, computed again only when they may have moved."""
        database = session.get_bind()
        held = self._held.get(database)
        if held is not None and self._fresh(held, today):
            return held[3]
        with self._lock:
            held = self._held.get(database)
            if held is not None and self._fresh(held, today):
                return held[3]
            changes = RATING_CHANGES.value  # read first: a change while computing refills next time
            figures = Published(from_session(session), on_time(session, today))
            self._held[database] = (changes, today, time.monotonic(), figures)
            return figures

    def _fresh(self, held: tuple[int, date, float, Published], today: date) -> bool:
        changes, day, at, _ = held
        return changes == RATING_CHANGES.value and day == today and time.monotonic() - at < self.max_age


PUBLISHED = PublishedFigures()

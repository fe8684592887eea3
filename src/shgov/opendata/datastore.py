"""The rows of open datasets: DuckDB over the live lake version (open columns only) for CKAN's
``datastore_search`` and ``datastore_search_sql``, and the download files written from it.

SQL is parsed by DuckDB itself (``json_serialize_sql``) and admitted only as one SELECT over resource
ids with functions from an allow-list, then run over views of the open columns, under a row cap and a
time limit. Downloads are written once per data version and format, streamed from the lake to disk.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from openpyxl import Workbook

from shgov.core.errors import InvalidError, NotFoundError
from shgov.core.i18n import N_
from shgov.lake import service as lake
from shgov.opendata.models import OpenDataset

CHARTABLE = ("integer", "number", "date", "datetime")
TYPE_NAMES = {"string": "text", "integer": "int", "number": "numeric", "date": "date", "datetime": "timestamp"}

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

    def __init__(
        self, lake_dir: Path, threads: int = 2, memory_limit: str = "512MB", spill_dir: Path | None = None
    ) -> None:
        self.lake_dir = lake_dir
        self.config: dict[str, str | bool | int | float | list[str]] = {
            "threads": threads,
            "memory_limit": memory_limit,
        }
        if spill_dir is not None:
            spill_dir.mkdir(parents=True, exist_ok=True)
            self.config["temp_directory"] = str(spill_dir)

    def source(self, dataset: OpenDataset) -> str:
        """A subquery of the dataset's live rows, open columns only."""
        folder = lake.current_path(self.lake_dir, dataset.lake_resource)
        if folder is None:
            raise NotFoundError(N_("the dataset has no data yet"), field="resource_id")
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
            raise InvalidError(N_('field "{name}" not in resource'), field="fields", name=unknown[0])
        where: list[str] = []
        params: list[Any] = []
        for name, value in (filters or {}).items():
            if name not in types:
                raise InvalidError(N_('field "{name}" not in resource'), field="filters", name=name)
            values = value if isinstance(value, list) else [value]
            if not values:
                raise InvalidError(N_("no values to filter {name} on"), field="filters", name=name)
            where.append(f"{_quoted(name)} IN ({', '.join('?' for _ in values)})")
            params += [_typed(v, types[name], name) for v in values]
        texts = [n for n, t in types.items() if t == "string"]
        if isinstance(q, Mapping):
            for name, text in q.items():
                if name not in types:
                    raise InvalidError(N_('field "{name}" not in resource'), field="q", name=name)
                where.append(f"CAST({_quoted(name)} AS VARCHAR) ILIKE ?")
                params.append(f"%{_like(str(text))}%")
        elif q and q.strip():
            for word in q.split():
                if word.lower() == word.upper():  # no letter case (Chinese, digits): a plain, faster scan
                    where.append("(" + " OR ".join(f"contains({_quoted(n)}, ?)" for n in texts) + ")")
                    params += [word] * len(texts)
                else:
                    where.append("(" + " OR ".join(f"{_quoted(n)} ILIKE ? ESCAPE '\\'" for n in texts) + ")")
                    params += [f"%{_like(word)}%"] * len(texts)
        order: list[str] = []
        for part in (sort or "").split(","):
            words = part.split()
            if not words:
                continue
            if words[0] not in types or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
                raise InvalidError(N_("cannot sort by {sort!r}"), field="sort", sort=part.strip())
            order.append(f"{_quoted(words[0])} {words[1].upper() if len(words) == 2 else 'ASC'}")
        if limit < 0:
            raise InvalidError(N_("limit must be a natural number"), field="limit")
        if offset < 0:
            raise InvalidError(N_("offset must be a natural number"), field="offset")
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

    def distribution(self, dataset: OpenDataset, column: str, buckets: int = 20) -> dict[str, Any]:
        """Rows per year of a date or time column, or per equal-width bucket of a number column (for charts)."""
        kind = {i["name"]: i["type"] for i in dataset.items}.get(column)
        if kind not in CHARTABLE:
            raise InvalidError(N_("chart a number, date or time column of the dataset"), field="column")
        source, quoted = self.source(dataset), _quoted(column)
        with self.connect() as conn:
            if kind in ("date", "datetime"):
                rows = conn.execute(
                    f"SELECT year({quoted}) AS k, count(*) FROM {source} AS t WHERE {quoted} IS NOT NULL"  # noqa: S608
                    " GROUP BY k ORDER BY k"
                ).fetchall()
                return {"column": column, "kind": "time", "labels": [str(k) for k, _ in rows],
                        "counts": [int(n) for _, n in rows]}  # fmt: skip
            bounds = conn.execute(f"SELECT min({quoted}), max({quoted}) FROM {source} AS t").fetchone()  # noqa: S608
            low, high = (float(bounds[0]), float(bounds[1])) if bounds and bounds[0] is not None else (0.0, 0.0)
            width = (high - low) / buckets or 1.0
            rows = conn.execute(
                f"SELECT least(floor(({quoted} - ?) / ?), ?) AS b, count(*) FROM {source} AS t"  # noqa: S608
                f" WHERE {quoted} IS NOT NULL GROUP BY b ORDER BY b",
                [low, width, buckets - 1],
            ).fetchall()
        counts = dict.fromkeys(range(buckets if rows else 0), 0) | {int(b): int(n) for b, n in rows}
        labels = [f"{_number(low + b * width)}–{_number(low + (b + 1) * width)}" for b in counts]
        return {"column": column, "kind": "number", "labels": labels, "counts": list(counts.values())}

    def sql(self, datasets: Mapping[str, OpenDataset], statement: str) -> dict[str, Any]:
        """CKAN's datastore_search_sql: one read-only SELECT over resource ids (``FROM "<resource id>"``)."""
        tables = check_sql(statement)
        unknown = [t for t in tables if t not in datasets]
        if unknown:
            raise NotFoundError(N_('Resource "{name}" was not found.'), field="sql", name=unknown[0])
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
                raise InvalidError(
                    N_("the query took longer than {seconds:.0f} s"), field="sql", seconds=SQL_SECONDS
                ) from exc
            except duckdb.Error as exc:
                raise InvalidError(
                    N_("the query failed: {reason}"), field="sql", reason=str(exc).splitlines()[0]
                ) from exc
            finally:
                timer.cancel()
        if len(rows) > MAX_LIMIT:
            raise InvalidError(
                N_("the query returns more than {limit} rows: aggregate or add a LIMIT"), field="sql", limit=MAX_LIMIT
            )
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
            raise NotFoundError(
                N_("no download format {extension!r}: use {formats}"),
                field="format",
                extension=extension,
                formats=", ".join(EXTENSIONS),
            )
        current = lake.current_path(self.store.lake_dir, dataset.lake_resource)
        if current is None:
            raise NotFoundError(N_("the dataset has no data yet"), field="name")
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
                self._prune(target.parent)
        return target

    @staticmethod
    def _prune(current: Path, grace: float = 3600.0) -> None:
        """Delete the files of older data versions once nothing new was written there for ``grace``
        seconds (a download that started from one still finishes: the open file outlives its name)."""
        now = time.time()
        for folder in current.parent.iterdir():
            if folder == current or not folder.is_dir():
                continue
            if all(now - f.stat().st_mtime > grace for f in folder.iterdir()):
                shutil.rmtree(folder, ignore_errors=True)

    def _write(self, dataset: OpenDataset, extension: str, bom: bool, out: Path) -> None:
        if bom:  # the plain CSV with a byte-order mark in front: the same bytes after it
            with out.open("wb") as sink, self.path(dataset, "csv").open("rb") as plain:
                sink.write(b"\xef\xbb\xbf")
                shutil.copyfileobj(plain, sink, 1 << 20)
            return
        source = self.store.source(dataset)
        with self.store.connect() as conn:
            # A file needs no particular row order; not keeping the lake's lets COPY stream within the limit.
            conn.execute("SET preserve_insertion_order = false")
            if extension == "xlsx":
                self._write_xlsx(conn, dataset, source, out)
                return
            options = {
                "csv": "FORMAT CSV, HEADER",
                "jsonl": "FORMAT JSON",
                "parquet": "FORMAT PARQUET, COMPRESSION ZSTD",
            }
            quoted = out.as_posix().replace("'", "''")
            conn.execute(f"COPY (SELECT * FROM {source} AS t) TO '{quoted}' ({options[extension]})")  # noqa: S608

    @staticmethod
    def _write_xlsx(conn: duckdb.DuckDBPyConnection, dataset: OpenDataset, source: str, out: Path) -> None:
        counted = conn.execute(f"SELECT count(*) FROM {source} AS t").fetchone()  # noqa: S608
        if counted and counted[0] > XLSX_MAX_ROWS:
            raise InvalidError(
                N_("{rows:,} rows are more than an Excel sheet holds (1,048,576): download CSV or Parquet"),
                field="format",
                rows=counted[0],
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


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"  # 1,308,000,000, not 1.308e+09


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
        raise InvalidError(
            N_("{value!r} is not a valid {kind} for {name}"), field="filters", value=value, kind=kind, name=name
        ) from exc
    return str(value)


def check_sql(statement: str) -> list[str]:
    """The tables a statement reads if it is one SELECT with allowed functions only; else InvalidError."""
    if not statement.strip():
        raise InvalidError(N_("send a SELECT statement"), field="sql")
    with duckdb.connect(":memory:") as conn:
        row = conn.execute("SELECT json_serialize_sql(?)", [statement]).fetchone()
    parsed: dict[str, Any] = json.loads(row[0]) if row else {"error": True}
    if parsed.get("error"):
        message = str(parsed.get("error_message", ""))
        if "Only SELECT" in message:
            raise InvalidError(N_("only a read-only SELECT is allowed"), field="sql")
        if not message:
            raise InvalidError(N_("cannot parse the statement"), field="sql")
        raise InvalidError(N_("cannot parse the statement: {reason}"), field="sql", reason=message)
    if len(parsed["statements"]) != 1:
        raise InvalidError(N_("send exactly one SELECT statement"), field="sql")
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
            raise InvalidError(N_("table functions are not allowed: read from resource ids"), field="sql")
        if kind == "BASE_TABLE":
            if node.get("schema_name") or node.get("catalog_name"):
                raise InvalidError(N_("read from resource ids only"), field="sql")
            tables.append(str(node["table_name"]))
        if node.get("class") == "FUNCTION" and not node.get("is_operator"):
            name = str(node.get("function_name", "")).lower()
            if name not in SQL_FUNCTIONS:
                raise InvalidError(N_("the function {name}() is not allowed"), field="sql", name=name)
        if "cte_map" in node:
            for entry in node["cte_map"].get("map", []):
                ctes.add(str(entry.get("key", "")))
        for value in node.values():
            walk(value)

    walk(parsed["statements"][0])
    wanted = [t for t in dict.fromkeys(tables) if t not in ctes]
    if not wanted:
        raise InvalidError(N_("read from at least one resource id"), field="sql")
    return wanted

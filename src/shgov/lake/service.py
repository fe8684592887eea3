"""归集: loading a department's delivery into the lake, with schema checks, quality rules and lineage.

A load reads the delivery (CSV, XLSX, JSON Lines, Parquet, or a table behind a SQLAlchemy URL),
checks its columns against the resource's declared schema, casts every column to its declared type,
runs the quality rules column-wise, quarantines the rows that break a hard rule (with the rules and
reasons) and writes the rest as a new Parquet version:

    <lake>/<resource>/v=000007/part-0.parquet      one folder per version, written to a temporary
    <lake>/<resource>/CURRENT                     folder and renamed; CURRENT names the live one
    <lake>/_quarantine/<resource>/load=<id>.parquet

A load that fails midway leaves the previous version untouched and readable. A delivery whose SM3
digest was already loaded for the resource is recognised and not loaded again.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import shutil
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from shgov.core.audit.service import sm3
from shgov.core.calendar.service import city_today, city_zone
from shgov.core.db import Database, utcnow
from shgov.core.errors import ConflictError, InvalidError, NotFoundError
from shgov.core.i18n import N_
from shgov.core.identity.permissions import register_action
from shgov.core.identity.service import add_actions_to_role
from shgov.core.settings import Settings
from shgov.lake.models import LakeLoad, LakeResource
from shgov.lake.quality import REASONS, Rule, violations
from shgov.lake.quality import RuleContext as RuleContext  # part of this service's interface
from shgov.lake.resources import BUILTIN_RESOURCES

if TYPE_CHECKING:
    from shgov.core.regions.service import RegionIndex
    from shgov.lake.synthetic import SyntheticCity

LOAD_CREATE = register_action("lake.load.create", N_("Load a department's delivery into the lake"))
LOAD_READ = register_action("lake.load.read", N_("See loads, lineage, quality and quarantined rows"))
RESOURCE_MANAGE = register_action("lake.resource.manage", N_("Declare lake resources, schemas and rules"))
ALL_ACTIONS = (LOAD_CREATE, LOAD_READ, RESOURCE_MANAGE)

FORMATS = ("csv", "xlsx", "jsonl", "parquet")
# Large resources are Hive-partitioned inside each version by the column queries filter on.
PARTITIONS = {"population": "district_code", "enterprises": "district_code"}
TYPES = ("string", "integer", "number", "decimal", "date", "datetime", "boolean")
QUARANTINE = "_quarantine"


class LoadError(InvalidError):
    """A delivery cannot be loaded; the message says why and ``field`` names the culprit."""


@dataclass(frozen=True)
class Column:
    """A declared column."""

    name: str
    type: str
    required: bool


@dataclass(frozen=True)
class ResourceSpec:
    """A resource as the loader needs it."""

    code: str
    title: str
    department_code: str
    tenant_code: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    updated_column: str | None
    rules: tuple[Rule, ...]
    update_cycle_days: int
    current_version: int
    partition_by: str | None = None

    @classmethod
    def of(cls, row: LakeResource) -> ResourceSpec:
        """The spec of a stored resource."""
        return cls(
            code=row.code,
            title=row.title,
            department_code=row.department_code,
            tenant_code=row.tenant_code,
            columns=tuple(Column(c["name"], c["type"], bool(c.get("required"))) for c in row.columns),
            key=tuple(row.key),
            updated_column=row.updated_column,
            rules=tuple(Rule.parse(r) for r in row.rules),
            update_cycle_days=row.update_cycle_days,
            current_version=row.current_version,
            partition_by=PARTITIONS.get(row.code),
        )


@dataclass(frozen=True)
class Source:
    """Where a delivery comes from: a file, or a table reached through a SQLAlchemy URL."""

    path: Path | None = None
    database_url: str | None = None
    table: str | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        """How lineage names the source (never with a password)."""
        if self.path is not None:
            return self.name or self.path.name
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url or "").render_as_string(hide_password=True)
        return f"{url}#{self.table}"


@dataclass(frozen=True)
class LoadResult:
    """What a load did."""

    load_id: uuid.UUID
    resource_code: str
    status: str  # succeeded | duplicate
    version: int
    rows_in: int
    rows_out: int
    rows_quarantined: int
    rows_total: int
    quality_score: float
    rule_counts: dict[str, int]
    digest: str
    encoding: str | None
    message: str = ""


@dataclass
class _Delivery:
    frame: pl.DataFrame
    fmt: str
    encoding: str | None
    digest: str


# -- resources ---------------------------------------------------------------------------------------


def validate_definition(raw: Mapping[str, Any]) -> None:
    """Check a resource definition: types, key columns, rules naming known columns."""
    names = [c["name"] for c in raw["columns"]]
    if len(set(names)) != len(names):
        raise InvalidError(N_("column names must be unique"), field="columns")
    for column in raw["columns"]:
        if column["type"] not in TYPES:
            raise InvalidError(
                N_("column {name}: type must be one of {types}"),
                field="columns",
                name=column["name"],
                types=", ".join(TYPES),
            )
    for key in raw["key"]:
        if key not in names:
            raise InvalidError(N_("key column {key} is not a column"), field="key", key=key)
    for rule in raw["rules"]:
        parsed = Rule.parse(rule)  # a RuleError is an InvalidError of the field "rules"
        if parsed.column not in names:
            raise InvalidError(N_("rule {rule} names an unknown column"), field="rules", rule=parsed.name)


def seed_resources(session: Session, tenant_code: str) -> int:
    """Create the built-in resources that do not exist yet."""
    created = 0
    for raw in BUILTIN_RESOURCES:
        if session.get(LakeResource, raw["code"]) is not None:
            continue
        validate_definition(raw)
        session.add(
            LakeResource(
                code=raw["code"],
                title=raw["title"],
                department_code=raw["department_code"],
                tenant_code=tenant_code,
                update_cycle_days=raw["update_cycle_days"],
                columns=raw["columns"],
                key=raw["key"],
                updated_column=raw["updated_column"],
                rules=raw["rules"],
            )
        )
        created += 1
    session.flush()
    return created


def define_schema(
    session: Session,
    code: str,
    *,
    title: str,
    department_code: str,
    tenant_code: str,
    update_cycle_days: int,
    columns: list[dict[str, Any]],
    key: list[str],
) -> LakeResource:
    """Create a resource, or give an existing one a new schema (the catalog's published data items).

    An existing resource keeps its rules and update column; the new schema must still hold every
    column they name, so a load is never validated against rules for columns that are gone."""
    row = session.get(LakeResource, code)
    raw = {
        "columns": columns,
        "key": key,
        "rules": row.rules if row is not None else [],
        "updated_column": row.updated_column if row is not None else None,
    }
    validate_definition(raw)
    names = {c["name"] for c in columns}
    if raw["updated_column"] and raw["updated_column"] not in names:
        raise InvalidError(
            N_("the schema must keep {column}, the update-time column"), field="items", column=raw["updated_column"]
        )
    if not key:
        raise InvalidError(N_("the schema needs at least one key item"), field="items")
    if row is None:
        row = LakeResource(
            code=code,
            title=title,
            department_code=department_code,
            tenant_code=tenant_code,
            update_cycle_days=update_cycle_days,
            columns=columns,
            key=key,
            updated_column=None,
            rules=[],
        )
        session.add(row)
    else:
        row.title, row.columns, row.key, row.update_cycle_days = title, columns, key, update_cycle_days
    session.flush()
    return row


def last_loaded(session: Session, code: str) -> datetime | None:
    """When the live version of ``code`` was loaded (``None`` when nothing was ever loaded)."""
    row = session.get(LakeResource, code)
    if row is None or row.current_load_id is None:
        return None
    load_row = session.get(LakeLoad, row.current_load_id)
    return load_row.finished_at if load_row else None


def get_resource(session: Session, code: str) -> ResourceSpec:
    """The resource ``code``; ``NotFoundError`` when there is none."""
    row = session.get(LakeResource, code)
    if row is None:
        raise NotFoundError(N_("no resource {code!r}"), field="resource", code=code)
    return ResourceSpec.of(row)


def list_resources(session: Session) -> list[LakeResource]:
    """Every resource, by code."""
    return list(session.scalars(select(LakeResource).order_by(LakeResource.code)))


# -- reading deliveries ------------------------------------------------------------------------------


def _decode(raw: bytes) -> tuple[bytes, str]:
    """UTF-8 as it is; GBK/GB18030 (common in department exports) detected and transcoded."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        raw.decode("utf-8")
        return raw, "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise LoadError(
            N_("the file is neither UTF-8 nor GBK/GB18030 (undecodable byte at offset {offset})"),
            field="file",
            offset=exc.start,
        ) from exc
    return text.encode("utf-8"), "gb18030"


def detect_format(path: Path) -> str:
    """The delivery format from the file name."""
    suffix = path.suffix.lower().lstrip(".")
    fmt = {"csv": "csv", "txt": "csv", "xlsx": "xlsx", "jsonl": "jsonl", "ndjson": "jsonl", "parquet": "parquet"}.get(
        suffix
    )
    if fmt is None:
        raise LoadError(
            N_("unsupported file type .{suffix}; send one of {formats}"),
            field="file",
            suffix=suffix,
            formats=", ".join(FORMATS),
        )
    return fmt


def _scan(path: Path) -> tuple[str, bool]:
    """SM3 digest and whether the file is valid UTF-8, read in chunks (the file is never held whole)."""
    digest = hashlib.new("sm3")
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    return digest.hexdigest(), utf8


def _text_source(path: Path, utf8: bool) -> tuple[Path | io.BytesIO, str]:
    if utf8:
        return path, "utf-8"
    data, encoding = _decode(path.read_bytes())
    return io.BytesIO(data), encoding


def read_delivery(source: Source) -> _Delivery:
    """Read a delivery into a frame, with its format, detected encoding and SM3 digest."""
    if source.path is None:
        return _read_table(source)
    try:
        digest, utf8 = _scan(source.path)
    except OSError as exc:
        raise LoadError(
            N_("cannot read {source}: {reason}"), field="file", source=source.label, reason=exc.strerror
        ) from exc
    if source.path.stat().st_size == 0:
        raise LoadError(N_("the file is empty"), field="file")
    fmt = detect_format(Path(source.name or source.path.name))
    encoding: str | None = None
    try:
        if fmt == "csv":
            text, encoding = _text_source(source.path, utf8)
            frame = pl.read_csv(text, infer_schema=False)
        elif fmt == "jsonl":
            text, encoding = _text_source(source.path, utf8)
            frame = pl.read_ndjson(text, infer_schema_length=None)
        elif fmt == "xlsx":
            frame = pl.read_excel(source.path, engine="openpyxl", infer_schema_length=0)
        else:
            frame = pl.read_parquet(source.path)
    except LoadError:
        raise
    except Exception as exc:  # readers raise many kinds; all mean "this file is not readable as declared"
        reason = str(exc).splitlines()[0][:300]
        raise LoadError(
            N_("cannot read the {format} file (truncated or malformed?): {reason}"),
            field="file",
            format=fmt,
            reason=reason,
        ) from exc
    return _Delivery(frame, fmt, encoding, digest)


def _read_table(source: Source) -> _Delivery:
    if not source.database_url or not source.table:
        raise LoadError(N_("a database source needs a URL and a table"), field="source")
    if not source.table.replace("_", "").replace(".", "").isalnum():
        raise LoadError(N_("the table name may hold letters, digits, _ and . only"), field="table")
    engine = create_engine(source.database_url)
    try:
        with engine.connect() as conn:
            frame = pl.read_database(f"SELECT * FROM {source.table}", conn)  # noqa: S608 - name checked above
    except Exception as exc:
        raise LoadError(
            N_("cannot read table {table}: {reason}"),
            field="table",
            table=source.table,
            reason=str(exc).splitlines()[0][:300],
        ) from exc
    finally:
        engine.dispose()
    digest = sm3(frame.sort(frame.columns).write_csv().encode())
    return _Delivery(frame, "table", None, digest)


# -- typing and checking -----------------------------------------------------------------------------


def _check_columns(frame: pl.DataFrame, spec: ResourceSpec) -> pl.DataFrame:
    renamed = {c: c.strip() for c in frame.columns if c != c.strip()}
    if renamed:
        frame = frame.rename(renamed)
    declared = [c.name for c in spec.columns]
    missing = [c for c in declared if c not in frame.columns]
    unexpected = [c for c in frame.columns if c not in declared]
    if missing and unexpected:
        raise LoadError(
            N_(
                "the delivery does not match the schema of {code} (missing columns: {missing}; "
                "unexpected columns: {unexpected})"
            ),
            field="columns",
            code=spec.code,
            missing=", ".join(missing),
            unexpected=", ".join(unexpected),
        )
    if missing:
        raise LoadError(
            N_("the delivery does not match the schema of {code} (missing columns: {missing})"),
            field="columns",
            code=spec.code,
            missing=", ".join(missing),
        )
    if unexpected:
        raise LoadError(
            N_("the delivery does not match the schema of {code} (unexpected columns: {unexpected})"),
            field="columns",
            code=spec.code,
            unexpected=", ".join(unexpected),
        )
    return frame.select(declared)


def _cast(expr: pl.Expr, source: pl.DataType, kind: str) -> pl.Expr:
    text = expr.cast(pl.String).str.strip_chars()
    if kind == "string":
        return text
    if kind == "integer":
        return expr.cast(pl.Int64, strict=False) if source.is_numeric() else text.cast(pl.Int64, strict=False)
    if kind == "number":
        return expr.cast(pl.Float64, strict=False) if source.is_numeric() else text.cast(pl.Float64, strict=False)
    if kind == "decimal":
        return text.cast(pl.Decimal(38, 4), strict=False)
    if kind == "boolean":
        lowered = text.str.to_lowercase()
        return (
            pl.when(lowered.is_in(["true", "1", "是", "y", "yes"]))
            .then(True)
            .when(lowered.is_in(["false", "0", "否", "n", "no"]))
            .then(False)
            .otherwise(None)
        )
    if kind == "date":
        if source == pl.Date:
            return expr
        if isinstance(source, pl.Datetime):
            return expr.dt.date()
        return pl.coalesce(text.str.to_date("%Y-%m-%d", strict=False), text.str.to_date("%Y%m%d", strict=False))
    # datetime: stored in UTC; an export without an offset is read as Shanghai local time.
    if isinstance(source, pl.Datetime):
        if source.time_zone is None:
            return expr.dt.replace_time_zone(city_zone().key).dt.convert_time_zone("UTC")
        return expr.dt.convert_time_zone("UTC")
    with_offset = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_zone="UTC")
    naive = pl.coalesce(
        text.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False),
        text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False),
        text.str.to_datetime("%Y-%m-%d", strict=False),
    )
    return pl.coalesce(with_offset, naive.dt.replace_time_zone(city_zone().key).dt.convert_time_zone("UTC"))


def _typed(frame: pl.DataFrame, spec: ResourceSpec) -> tuple[pl.DataFrame, dict[str, pl.Series]]:
    """Cast every column; returns the typed frame and, per column, where a value did not fit its type."""
    typed = frame.select([_cast(pl.col(c.name), frame.schema[c.name], c.type).alias(c.name) for c in spec.columns])
    misfits: dict[str, pl.Series] = {}
    for column in spec.columns:
        present = frame[column.name].is_not_null()
        if frame.schema[column.name] == pl.String:
            present = present & (frame[column.name].str.strip_chars() != "")
        bad = present & typed[column.name].is_null()
        if bad.any():
            misfits[column.name] = bad
    return typed, misfits


@dataclass
class _Checked:
    hard: pl.Series
    any_violation: pl.Series
    reasons: pl.Series
    rules: pl.Series
    counts: dict[str, int] = field(default_factory=dict)


def check_quality(
    frame: pl.DataFrame, spec: ResourceSpec, misfits: Mapping[str, pl.Series], context: RuleContext
) -> _Checked:
    """Evaluate types, required columns, key uniqueness and every rule; collect per-row reasons."""
    flags: list[tuple[str, str, bool, pl.Series]] = []
    for name, bad in misfits.items():
        flags.append((f"type:{name}", f"{name}: {REASONS['type']}", True, bad))
    for column in spec.columns:
        if column.required:
            missing = frame[column.name].is_null()
            if missing.any():
                flags.append((f"required:{column.name}", f"{column.name}: {REASONS['not_null']}", True, missing))
    if spec.key:
        duplicate = frame.select(pl.struct(list(spec.key)).is_first_distinct().not_().alias("dup")).to_series()
        if duplicate.any():
            flags.append((f"unique_key:{','.join(spec.key)}", REASONS["unique_key"], True, duplicate))
    for rule in spec.rules:
        bad = violations(rule, frame, context)
        if bad.any():
            flags.append((rule.name, f"{rule.column}: {REASONS[rule.kind]}", rule.hard, bad))
    zeros = pl.Series([False] * frame.height)
    hard = zeros
    any_violation = zeros
    reason_cols: list[pl.Series] = []
    rule_cols: list[pl.Series] = []
    counts: dict[str, int] = {}
    for name, reason, is_hard, bad in flags:
        counts[name] = int(bad.sum())
        any_violation = any_violation | bad
        if is_hard:
            hard = hard | bad
            reason_cols.append(pl.select(pl.when(bad).then(pl.lit(reason)).otherwise(None)).to_series())
            rule_cols.append(pl.select(pl.when(bad).then(pl.lit(name)).otherwise(None)).to_series())
    if reason_cols:
        reasons = pl.select(pl.concat_str(reason_cols, separator="; ", ignore_nulls=True)).to_series()
        rules = pl.select(pl.concat_str(rule_cols, separator=",", ignore_nulls=True)).to_series()
    else:
        reasons = pl.Series([None] * frame.height, dtype=pl.String)
        rules = reasons
    return _Checked(hard, any_violation, reasons, rules, counts)


# -- the lake on disk --------------------------------------------------------------------------------


def version_dir(lake: Path, resource: str, version: int) -> Path:
    """The folder of one version of a resource."""
    return lake / resource / f"v={version:06d}"


def current_path(lake: Path, resource: str) -> Path | None:
    """The Parquet folder of the live version, or None before the first load."""
    pointer = lake / resource / "CURRENT"
    if not pointer.exists():
        return None
    return lake / resource / pointer.read_text(encoding="utf-8").strip()


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
LAYOUT = "_layout.json"


def _read_folder(folder: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """Read one version folder, plain or Hive-partitioned (``<column>=<value>/part-0.parquet``)."""
    layout_file = folder / LAYOUT
    if not layout_file.exists():
        return pl.read_parquet(folder / "*.parquet", columns=columns)
    layout = json.loads(layout_file.read_text(encoding="utf-8"))
    key = layout["partition_by"]
    wanted = columns or layout["columns"]
    parts = []
    for part in sorted(folder.glob(f"{key}=*")):
        value = part.name.split("=", 1)[1]
        stored = [c for c in wanted if c != key]
        frame = pl.read_parquet(part / "*.parquet", columns=stored)
        parts.append(frame.with_columns(pl.lit(None if value == HIVE_NULL else value, dtype=pl.String).alias(key)))
    if not parts:
        return pl.DataFrame(schema=dict.fromkeys(wanted, pl.String))
    return pl.concat(parts, how="vertical_relaxed").select(wanted)


def read_current(lake: Path, resource: str, columns: list[str] | None = None) -> pl.DataFrame | None:
    """The live version of a resource, or None before its first load."""
    folder = current_path(lake, resource)
    if folder is None:
        return None
    return _read_folder(folder, columns)


@dataclass(frozen=True)
class ResourceState:
    """Which load is live for a resource (for lineage of what is built from it)."""

    code: str
    department_code: str
    version: int
    load_id: uuid.UUID | None
    key: tuple[str, ...]


def resource_state(session: Session, code: str) -> ResourceState:
    """The live version of ``code`` and the load that made it."""
    row = session.get(LakeResource, code)
    if row is None:
        raise NotFoundError(N_("no resource {code!r}"), field="resource", code=code)
    return ResourceState(row.code, row.department_code, row.current_version, row.current_load_id, tuple(row.key))


class KeyedTables:
    """Versions of lake datasets held in memory with a hash index on a key column, for point and batch
    lookups and filtered pages in key order; a newer version replaces the older one on first use."""

    def __init__(self, lake: Path) -> None:
        self.lake = lake
        self._lock = threading.Lock()
        self._tables: dict[tuple[str, str], tuple[int, pl.DataFrame, dict[Any, list[int]]]] = {}

    def loaded(self, dataset: str, version: int, key: str) -> bool:
        """Whether ``dataset`` at ``version`` is in memory already (the first use reads and indexes it)."""
        cached = self._tables.get((dataset, key))
        return cached is not None and cached[0] == version

    def table(self, dataset: str, version: int, key: str) -> tuple[pl.DataFrame, dict[Any, list[int]]]:
        """The frame of ``dataset`` at ``version`` and its index on ``key`` (loaded once per version)."""
        cached = self._tables.get((dataset, key))
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        with self._lock:
            cached = self._tables.get((dataset, key))
            if cached is not None and cached[0] == version:
                return cached[1], cached[2]
            frame = read_version(self.lake, dataset, version)
            if frame is None:
                raise NotFoundError(
                    N_("version {version} of {dataset} is missing"), field="resource", version=version, dataset=dataset
                )
            frame = frame.sort(key)
            index: dict[Any, list[int]] = {}
            for position, value in enumerate(frame[key].to_list()):
                index.setdefault(value, []).append(position)
            self._tables[(dataset, key)] = (version, frame, index)
            return frame, index

    def lookup(
        self, dataset: str, version: int, key: str, values: Sequence[Any], fields: Sequence[str] | None
    ) -> list[dict[str, Any]]:
        """The records whose ``key`` is one of ``values`` (in that order), with ``fields`` only."""
        frame, index = self.table(dataset, version, key)
        columns = [key, *[f for f in fields if f != key]] if fields else frame.columns
        unknown = [c for c in columns if c not in frame.columns]
        if unknown:
            raise InvalidError(N_("unknown fields: {names}"), field="fields", names=", ".join(unknown))
        series = [frame[c] for c in columns]
        rows: list[dict[str, Any]] = []
        for value in values:
            for position in index.get(value, []):
                rows.append({c: s[position] for c, s in zip(columns, series, strict=True)})
        return rows

    def page(
        self,
        dataset: str,
        version: int,
        key: str,
        equals: Mapping[str, Any],
        after: Any,
        limit: int,
        fields: Sequence[str],
    ) -> list[dict[str, Any]]:
        """Records matching every ``equals`` column, in key order, starting after key ``after`` (keyset paging)."""
        frame, _ = self.table(dataset, version, key)
        unknown = [c for c in [*equals, *fields] if c not in frame.columns]
        if unknown:
            raise InvalidError(N_("unknown fields: {names}"), field="filter", names=", ".join(unknown))
        condition = pl.lit(True)
        for column, value in equals.items():
            condition = condition & (pl.col(column).cast(pl.String) == str(value))
        if after is not None:
            condition = condition & (pl.col(key).cast(pl.String) > str(after))
        columns = [key, *[f for f in fields if f != key]]
        return frame.lazy().filter(condition).select(columns).head(limit).collect().to_dicts()


def current_version(session: Session, code: str) -> int:
    """The live version of resource ``code`` (0 before its first load)."""
    return resource_state(session, code).version


def lake_versions(session: Session) -> dict[str, int]:
    """The live version of every resource's dataset as the database records it (0: never loaded). The
    pointer moves before the load commits, so a backup writes ``CURRENT`` from this, not from the file."""
    return {
        code: int(version) for code, version in session.execute(select(LakeResource.code, LakeResource.current_version))
    }


def write_version(lake: Path, dataset: str, version: int, frame: pl.DataFrame, partition_by: str | None = None) -> Path:
    """Write ``frame`` as version ``version`` of ``dataset`` (staged, then renamed); not live until pointed at."""
    return _write_version(lake, dataset, version, frame, partition_by)


def point_current(lake: Path, dataset: str, version: int) -> None:
    """Make ``version`` the live version of ``dataset`` (an atomic rename of the pointer)."""
    _point_current(lake, dataset, version)


def read_version(lake: Path, dataset: str, version: int, columns: list[str] | None = None) -> pl.DataFrame | None:
    """A given version of a dataset, or None when it does not exist."""
    folder = version_dir(lake, dataset, version)
    if not folder.exists():
        return None
    return _read_folder(folder, columns)


def _write_version(
    lake: Path, resource: str, version: int, frame: pl.DataFrame, partition_by: str | None = None
) -> Path:
    target = version_dir(lake, resource, version)
    if target.exists():
        raise ConflictError(
            N_("version {version} of {resource} exists already"), field="resource", version=version, resource=resource
        )
    staging = lake / resource / f".staging-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        if partition_by is None:
            frame.write_parquet(staging / "part-0.parquet", compression="zstd", statistics=True)
        else:
            # Hive layout, as Spark, Trino and DuckDB expect it: the partition value lives in the path only.
            for (value,), part in frame.group_by(partition_by, maintain_order=True):
                folder = staging / f"{partition_by}={HIVE_NULL if value is None else value}"
                folder.mkdir()
                part.drop(partition_by).write_parquet(folder / "part-0.parquet", compression="zstd", statistics=True)
            layout = {"partition_by": partition_by, "columns": frame.columns}
            (staging / LAYOUT).write_text(json.dumps(layout), encoding="utf-8")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _point_current(lake: Path, resource: str, version: int) -> None:
    pointer = lake / resource / "CURRENT"
    tmp = pointer.with_name(f".CURRENT-{uuid.uuid4().hex}")
    tmp.write_text(f"v={version:06d}\n", encoding="utf-8")
    tmp.replace(pointer)


def _quarantine_frame(raw: pl.DataFrame, checked: _Checked) -> pl.DataFrame:
    """The rows that broke hard rules, as delivered (text), with their line number, rules and reasons."""
    return (
        raw.with_row_index("_row", offset=1)
        .with_columns(checked.rules.alias("_rules"), checked.reasons.alias("_reasons"))
        .filter(checked.hard)
        .with_columns(pl.exclude("_row").cast(pl.String))
    )


def _write_quarantine(lake: Path, resource: str, load_id: uuid.UUID, rows: pl.DataFrame) -> None:
    folder = lake / QUARANTINE / resource
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".load={load_id}.parquet.tmp"
    rows.write_parquet(tmp)
    tmp.replace(folder / f"load={load_id}.parquet")


def quarantined_rows(
    lake: Path, resource: str, load_id: uuid.UUID, offset: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """A page of the rows a load quarantined, with their rules and reasons."""
    file = lake / QUARANTINE / resource / f"load={load_id}.parquet"
    if not file.exists():
        return 0, []
    frame = pl.scan_parquet(file)
    total = int(frame.select(pl.len()).collect().item())
    return total, frame.slice(offset, limit).collect().to_dicts()


# -- loading -----------------------------------------------------------------------------------------


def _merge(previous: pl.DataFrame | None, accepted: pl.DataFrame, spec: ResourceSpec, mode: str) -> pl.DataFrame:
    if mode == "full" or previous is None or previous.height == 0:
        return accepted
    combined = pl.concat([previous, accepted], how="diagonal_relaxed")
    if spec.updated_column:
        # Incremental: per business key, the row updated last wins (a stale re-delivery changes nothing).
        combined = combined.sort(spec.updated_column, nulls_last=False, maintain_order=True)
    return combined.unique(subset=list(spec.key), keep="last", maintain_order=True)


def make_context(lake: Path, region_codes: Mapping[str, frozenset[str]], today: date | None = None) -> RuleContext:
    """A rule context reading references from the live versions in ``lake``."""
    cache: dict[tuple[str, str], pl.Series] = {}

    def references(resource: str, column: str) -> pl.Series:
        if (resource, column) not in cache:
            frame = read_current(lake, resource, [column])
            cache[(resource, column)] = frame[column].unique() if frame is not None else pl.Series([], dtype=pl.String)
        return cache[(resource, column)]

    return RuleContext(today=today or city_today(), region_codes=region_codes, references=references)


def load(
    session: Session,
    lake: Path,
    resource_code: str,
    source: Source,
    *,
    department_code: str,
    mode: str = "full",
    context: RuleContext,
    loaded_by: str = "",
    progress: Callable[[str], None] | None = None,
) -> LoadResult:
    """Load one delivery of ``resource_code`` (see the module docstring); raises ``LoadError`` on bad input."""
    step = progress or (lambda _msg: None)
    if mode not in ("full", "incremental"):
        raise LoadError(N_("mode must be full or incremental"), field="mode")
    row = session.get(LakeResource, resource_code, with_for_update=True)
    if row is None:
        raise NotFoundError(N_("no resource {code!r}"), field="resource", code=resource_code)
    spec = ResourceSpec.of(row)
    if department_code != spec.department_code:
        raise LoadError(
            N_("{code} is delivered by {owner}, not by {department} (one source per dataset)"),
            field="department",
            code=resource_code,
            owner=spec.department_code,
            department=department_code,
        )
    if mode == "incremental" and not spec.key:
        raise LoadError(N_("an incremental load needs a business key"), field="mode")
    step("reading")
    delivery = read_delivery(source)
    earlier = session.scalar(
        select(LakeLoad).where(
            LakeLoad.resource_code == resource_code, LakeLoad.digest == delivery.digest, LakeLoad.status == "succeeded"
        )
    )
    if earlier is not None:
        return LoadResult(
            earlier.id,
            resource_code,
            "duplicate",
            earlier.version or 0,
            earlier.rows_in,
            earlier.rows_out,
            earlier.rows_quarantined,
            earlier.rows_total,
            earlier.quality_score or 0.0,
            dict(earlier.rule_counts),
            earlier.digest,
            earlier.encoding,
            message=f"this delivery (SM3 {delivery.digest[:12]}…) was loaded already, as version {earlier.version}",
        )
    started = utcnow()
    step("checking")
    raw = _check_columns(delivery.frame, spec)
    fmt, encoding, digest = delivery.fmt, delivery.encoding, delivery.digest
    del delivery
    typed, misfits = _typed(raw, spec)
    checked = check_quality(typed, spec, misfits, context)
    rows_in, quarantined = raw.height, int(checked.hard.sum())
    # Keep only what is still needed: the quarantined rows as delivered, and the accepted rows typed.
    rejected = _quarantine_frame(raw, checked) if quarantined else None
    del raw, misfits
    accepted = typed.filter(~checked.hard)
    del typed
    step("merging")
    previous = read_current(lake, resource_code) if mode == "incremental" else None
    result_frame = _merge(previous, accepted, spec, mode)
    version = spec.current_version + 1
    load_id = uuid.uuid4()
    clean_rows = rows_in - int(checked.any_violation.sum())
    score = round(100.0 * clean_rows / rows_in, 2) if rows_in else 100.0
    step("writing")
    target = _write_version(lake, resource_code, version, result_frame, spec.partition_by)
    try:
        if rejected is not None:
            _write_quarantine(lake, resource_code, load_id, rejected)
        session.add(
            LakeLoad(
                id=load_id,
                resource_code=resource_code,
                department_code=department_code,
                tenant_code=spec.tenant_code,
                source=source.label[:500],
                source_format=fmt,
                encoding=encoding,
                digest=digest,
                mode=mode,
                status="succeeded",
                version=version,
                rows_in=rows_in,
                rows_out=accepted.height,
                rows_quarantined=quarantined,
                rows_total=result_frame.height,
                quality_score=score,
                rule_counts=checked.counts,
                loaded_by=loaded_by,
                started_at=started,
                finished_at=utcnow(),
            )
        )
        row.current_version = version
        row.current_load_id = load_id
        row.quality_score = score
        session.flush()
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    # The pointer moves last: until here every reader still sees the previous version.
    _point_current(lake, resource_code, version)
    return LoadResult(
        load_id,
        resource_code,
        "succeeded",
        version,
        rows_in,
        accepted.height,
        quarantined,
        result_frame.height,
        score,
        checked.counts,
        digest,
        encoding,
    )


def deliver(
    db: Database,
    lake: Path,
    resource_code: str,
    source: Source,
    *,
    department_code: str,
    mode: str,
    context: RuleContext,
    loaded_by: str,
    progress: Callable[[str], None] | None = None,
) -> LoadResult:
    """``load`` in its own unit of work; a refused delivery keeps its lineage (in another) and re-raises."""
    try:
        with db.session() as session:
            return load(
                session,
                lake,
                resource_code,
                source,
                department_code=department_code,
                mode=mode,
                context=context,
                loaded_by=loaded_by,
                progress=progress,
            )
    except LoadError as exc:
        with db.session() as session:
            record_failure(session, resource_code, source, department_code, mode, exc.message, loaded_by)
        raise


def record_failure(
    session: Session, resource_code: str, source: Source, department_code: str, mode: str, error: str, loaded_by: str
) -> None:
    """Keep the lineage of a delivery that could not be loaded (nothing else is written)."""
    spec_row = session.get(LakeResource, resource_code)
    if spec_row is None:
        return
    now = utcnow()
    session.add(
        LakeLoad(
            resource_code=resource_code,
            department_code=department_code,
            tenant_code=spec_row.tenant_code,
            source=source.label[:500],
            source_format=source.path.suffix.lstrip(".") if source.path else "table",
            digest="",
            mode=mode,
            status="failed",
            error=error[:2000],
            loaded_by=loaded_by,
            started_at=now,
            finished_at=now,
        )
    )


def list_loads(
    session: Session, resource_code: str | None = None, departments: set[str] | None = None, limit: int = 100
) -> list[LakeLoad]:
    """Loads, newest first, optionally of one resource and of some departments only."""
    query = select(LakeLoad).order_by(LakeLoad.started_at.desc()).limit(limit)
    if resource_code:
        query = query.where(LakeLoad.resource_code == resource_code)
    if departments is not None:
        query = query.where(LakeLoad.department_code.in_(departments))
    return list(session.scalars(query))


def quality_trend(
    session: Session, resource_code: str | None = None, limit: int = 30
) -> dict[str, list[tuple[datetime, float]]]:
    """Per resource, the quality score of its successful loads over time (oldest first)."""
    query = (
        select(LakeLoad.resource_code, LakeLoad.started_at, LakeLoad.quality_score)
        .where(LakeLoad.status == "succeeded", LakeLoad.quality_score.is_not(None))
        .order_by(LakeLoad.started_at.desc())
    )
    if resource_code:
        query = query.where(LakeLoad.resource_code == resource_code)
    trend: dict[str, list[tuple[datetime, float]]] = {}
    for code, started, score in session.execute(query):
        points = trend.setdefault(code, [])
        if len(points) < limit and score is not None:
            points.append((started, float(score)))
    return {code: list(reversed(points)) for code, points in sorted(trend.items())}


def department_scores(session: Session) -> dict[str, float]:
    """Average quality score of each department's loaded resources."""
    scores: dict[str, list[float]] = {}
    for row in list_resources(session):
        if row.quality_score is not None:
            scores.setdefault(row.department_code, []).append(row.quality_score)
    return {dept: round(sum(v) / len(v), 2) for dept, v in sorted(scores.items())}


def seed_demo(session: Session, settings: Settings) -> dict[str, Any]:
    """The lake of the demo city: the built-in resources and a small synthetic city loaded into them."""
    from shgov.core.regions.service import RegionIndex
    from shgov.lake.synthetic import CityConfig, generate

    seed_resources(session, settings.city_code)
    add_actions_to_role(session, "data_officer", ALL_ACTIONS)
    index = RegionIndex.from_session(session)
    persons = settings.demo_persons
    city = generate(index, CityConfig(persons=persons, enterprises=max(persons // 5, 1), seed=2026))
    context = make_context(settings.lake_dir, region_codes(index))
    return load_city(session, settings.lake_dir, city, settings.data_dir / "incoming", context, "demo seed")


def load_city(
    session: Session,
    lake: Path,
    city: SyntheticCity,
    incoming: Path,
    context: RuleContext,
    loaded_by: str = "",
    only: set[str] | None = None,
) -> dict[str, int]:
    """Write a synthetic city's deliveries to ``incoming`` and load each (or those in ``only``) into the lake."""
    results: dict[str, int] = {}
    for delivery, file in zip(city.deliveries, city.write(incoming), strict=True):
        if only is not None and delivery.resource not in only:
            continue
        outcome = load(
            session,
            lake,
            delivery.resource,
            Source(path=file),
            department_code=delivery.department_code,
            context=context,
            loaded_by=loaded_by,
        )
        results[delivery.resource] = outcome.rows_out
    return results


def region_codes(index: RegionIndex) -> dict[str, frozenset[str]]:
    """Division codes by level, for the ``region`` rule."""
    codes: dict[str, set[str]] = {}
    for code, info in index.regions.items():
        codes.setdefault(info.level, set()).add(code)
    return {level: frozenset(values) for level, values in codes.items()}

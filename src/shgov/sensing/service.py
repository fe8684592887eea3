"""The sensing network's registry: device types (defined as data in ``device_types.json``: measures, units,
valid ranges) and devices, imported in bulk from CSV or Parquet and placed in the city's divisions
(district → township → community → grid) by their coordinates.

An import checks every row first; by default one bad row refuses the whole file (nothing is written) and
every refused row is reported with its reason. ``partial`` writes the good rows and still reports the bad.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from sqlalchemy import Table, func, or_, select
from sqlalchemy.orm import Session

from shgov.core.analytics import Analytics
from shgov.core.audit.capture import MAX_KEYS, note_bulk
from shgov.core.db import Database, utcnow
from shgov.core.errors import InvalidError, NotFoundError
from shgov.core.i18n import N_
from shgov.core.identity.permissions import Principal, register_action
from shgov.core.identity.service import add_actions_to_role, define_role, scope_conditions
from shgov.core.orgs.service import department_code, list_departments, tenant_parents
from shgov.core.regions.service import RegionIndex
from shgov.core.settings import Settings
from shgov.sensing.models import Device, DeviceType
from shgov.sensing.pipeline import MINUTES, READINGS, REJECTS, Overlay, Pipeline, Registry
from shgov.sensing.readings import concat, from_columns
from shgov.sensing.simulator import Fleet, Simulator

if TYPE_CHECKING:
    from shgov.sensing.indicators import Reading
    from shgov.sensing.runtime import SensingRuntime

READ = register_action("sensing.devices.read", N_("See the sensing network's devices"))
MANAGE = register_action("sensing.devices.manage", N_("Import and change the sensing network's devices"))
WRITE = register_action("sensing.readings.write", N_("Send sensor readings (a gateway)"))
INDICATORS = register_action("sensing.indicators.read", N_("See the city's vital signs, their history and warnings"))

STATUSES = ("active", "maintenance", "retired")
REQUIRED = ("device_id", "type", "department", "lng", "lat")
OPTIONAL = ("status", "name")
MAX_REPORTED = 1000  # refused rows listed in full; beyond, only counted
CHUNK = 20_000
REBUILD_INDEXES_FROM = 100_000  # rows in one import above which secondary indexes are rebuilt, not updated


# -- device types ---------------------------------------------------------------------------------------


def packaged_types() -> list[dict[str, Any]]:
    """The device types shipped with SH-GOV."""
    text = resources.files("shgov.sensing").joinpath("device_types.json").read_text("utf-8")
    types: list[dict[str, Any]] = json.loads(text)["types"]
    return types


def load_types(session: Session, types: list[dict[str, Any]]) -> int:
    """Add or update device types; each measure needs a code, a unit and a range with min < max."""
    for spec in types:
        code = str(spec.get("code", ""))
        if not code or len(code) > 30:
            raise InvalidError(N_("a device type needs a code of at most 30 characters"), field="code")
        measures = spec.get("measures") or []
        if not measures:
            raise InvalidError(N_("device type {code!r} measures nothing"), field="measures", code=code)
        for measure in measures:
            if not measure.get("code") or "unit" not in measure or not measure["min"] < measure["max"]:
                raise InvalidError(
                    N_("a measure of {code!r} needs a code, a unit and min < max"), field="measures", code=code
                )
        found = session.get(DeviceType, code)
        if found is None:
            found = DeviceType(code=code)
            session.add(found)
        found.name, found.name_en = spec["name"], spec.get("name_en", "")
        found.measures, found.interval_seconds = measures, int(spec.get("interval_seconds", 60))
    session.flush()
    return len(types)


def list_types(session: Session) -> list[DeviceType]:
    """Every device type, by code."""
    return list(session.scalars(select(DeviceType).order_by(DeviceType.code)))


def get_type(session: Session, code: str) -> DeviceType:
    """A device type by code."""
    found = session.get(DeviceType, code)
    if found is None:
        raise NotFoundError(N_("no device type {code!r}"), field="type", code=code)
    return found


# -- devices --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """A row of an import that was not taken, and why (rows count from 1, after the header)."""

    row: int
    device_id: str
    reason: str


@dataclass(frozen=True)
class DeviceImport:
    """What an import did."""

    rows: int
    created: int
    updated: int
    refused: int
    refusals: list[Refused]
    written: bool
    seconds: float


# An uploaded file's rows at the most: about what the upload limit's worth of CSV holds (a compressed Parquet
# file is small for any number of rows). Larger sets go through ``shgov sensing import-devices``.
MAX_UPLOADED_ROWS = 200_000


def _parquet(data: bytes, max_rows: int | None) -> pl.DataFrame:
    """A Parquet file's rows, its size read from its footer first when ``max_rows`` bounds it: a few KB of
    repeated rows may unpack to gigabytes, and an upload's byte limit counts only the compressed file."""
    if max_rows is not None:
        rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
        if rows > max_rows:
            raise InvalidError(
                N_("the file holds {rows:,} rows; at most {max_rows:,} at a time"),
                field="file",
                rows=rows,
                max_rows=max_rows,
            )
    return pl.read_parquet(io.BytesIO(data))


def read_devices(name: str, data: bytes, max_rows: int | None = None) -> pl.DataFrame:
    """The rows of a CSV (UTF-8, header) or Parquet file of devices, every column as text; a Parquet file of
    more than ``max_rows`` rows is refused before it is read."""
    try:
        if name.lower().endswith(".parquet"):
            frame = _parquet(data, max_rows)
            return frame.with_columns(pl.all().cast(pl.Utf8))
        return pl.read_csv(io.BytesIO(data), infer_schema_length=0, encoding="utf8")
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise InvalidError(N_("not a readable CSV or Parquet file: {reason}"), field="file", reason=str(exc)) from exc


# NUL and the other C0 controls: unaddressable in a URL, refused by PostgreSQL, invisible on a page.
CONTROL = r"[\x00-\x1f\x7f]"


def _checked_rows(frame: pl.DataFrame, known_types: set[str], index: RegionIndex) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows to write with their places, refused rows with reasons)."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InvalidError(
            N_("the file has no {column!r} column (needs {columns})"),
            field=missing[0],
            column=missing[0],
            columns=", ".join(REQUIRED),
        )
    for column in OPTIONAL:
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias(column))
    rows = frame.select(
        pl.int_range(1, pl.len() + 1).alias("row"),
        pl.col("device_id").str.strip_chars().fill_null("").alias("id"),
        pl.col("type").str.strip_chars().fill_null("").alias("type_code"),
        pl.col("department").str.strip_chars().fill_null("").alias("department_code"),
        pl.col("lng").str.strip_chars().cast(pl.Float64, strict=False).alias("lng"),
        pl.col("lat").str.strip_chars().cast(pl.Float64, strict=False).alias("lat"),
        pl.col("status").str.strip_chars().fill_null("active").replace("", "active").alias("status"),
        pl.col("name").str.strip_chars().fill_null("").alias("name"),
    )
    reason = (
        pl.when(pl.col("id") == "")
        .then(pl.lit("no device_id"))
        .when(pl.col("id").str.len_chars() > 40)
        .then(pl.lit("device_id longer than 40 characters"))
        .when(pl.col("id").str.contains(CONTROL) | pl.col("name").str.contains(CONTROL))
        .then(pl.lit("control characters (such as NUL) in device_id or name"))
        .when(pl.col("id").is_first_distinct().not_())
        .then(pl.lit("device_id repeated in the file"))
        .when(pl.col("type_code").is_in(sorted(known_types)).not_())
        .then(pl.lit("unknown device type ") + pl.col("type_code"))
        .when((pl.col("department_code") == "") | (pl.col("department_code").str.len_chars() > 40))
        .then(pl.lit("no department (at most 40 characters)"))
        .when(pl.col("lng").is_null() | pl.col("lat").is_null() | pl.col("lng").is_nan() | pl.col("lat").is_nan())
        .then(pl.lit("lng and lat must be numbers (WGS-84)"))
        .when(pl.col("status").is_in(list(STATUSES)).not_())
        .then(pl.lit("status is one of " + ", ".join(STATUSES)))
        .when(pl.col("name").str.len_chars() > 120)
        .then(pl.lit("name longer than 120 characters"))
        .otherwise(pl.lit(None, dtype=pl.Utf8))
        .alias("reason")
    )
    rows = rows.with_columns(reason)
    candidates = rows.filter(pl.col("reason").is_null())
    placed = index.locate_many(candidates["lng"].to_numpy(), candidates["lat"].to_numpy())
    communities = [index.grids_by_cell[c].community_code if c in index.grids_by_cell else None for c in placed["cell"]]
    townships = [_parent(index, c) for c in communities]
    candidates = candidates.with_columns(
        pl.Series("tenant_code", [d or None for d in placed["district_code"].tolist()], dtype=pl.Utf8),
        pl.Series("community_code", communities, dtype=pl.Utf8),
        pl.Series("township_code", townships, dtype=pl.Utf8),
        pl.Series("grid_code", placed["grid_code"].tolist(), dtype=pl.Utf8),
    )
    outside = candidates.filter(pl.col("tenant_code").is_null()).with_columns(
        pl.lit("outside the city").alias("reason")
    )
    good = candidates.filter(pl.col("tenant_code").is_not_null())
    bad = pl.concat([rows.filter(pl.col("reason").is_not_null()), outside.select(rows.columns)]).sort("row")
    return good, bad


def _parent(index: RegionIndex, code: str | None) -> str | None:
    info = index.get(code) if code else None
    return info.parent_code if info else None


FOREIGN_DEVICE = "device_id belongs to a device you do not manage"
UNKNOWN_DEPARTMENT = "no such department in this district or the city"


def _manages(principal: Principal, tenant: str | None, department: str | None, homes: dict[str, str]) -> bool:
    """Whether ``principal`` manages a device of ``department`` placed in ``tenant``: over the place and over the
    department where it belongs (a district's administrator manages no city bureau's devices in the district)."""
    home = homes.get(department or "")
    if home is None or not principal.allows(MANAGE, tenant, department):
        return False
    return principal.allows(MANAGE, home, department)


def _department_homes(session: Session) -> dict[str, str]:
    return {d.code: d.tenant_code for d in list_departments(session)}


def _misplaced_departments(session: Session, good: pl.DataFrame) -> pl.DataFrame:
    """The (tenant, department) pairs of ``good`` whose department does not exist or belongs neither to the
    row's district nor to a tenant above it (a city bureau may own devices anywhere; another district's may
    not)."""
    homes = _department_homes(session)
    parents = tenant_parents(session)

    def owns(tenant: str | None, department: str) -> bool:
        home = homes.get(department)
        while tenant is not None:
            if tenant == home:
                return True
            tenant = parents.get(tenant)
        return False

    pairs = good.select("tenant_code", "department_code").unique()
    return pairs.filter(pl.Series([not owns(t, d) for t, d in pairs.iter_rows()], dtype=pl.Boolean))


def _refuse(
    good: pl.DataFrame, bad: pl.DataFrame, pairs: pl.DataFrame, reason: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Move the rows of ``good`` with these (tenant, department) ``pairs`` to ``bad``, for ``reason``."""
    if pairs.is_empty():
        return good, bad
    refused = good.join(pairs, on=["tenant_code", "department_code"], how="semi")
    good = good.join(pairs, on=["tenant_code", "department_code"], how="anti")
    refused = refused.with_columns(pl.lit(reason).alias("reason"))
    return good, pl.concat([bad, refused.select(bad.columns)]).sort("row")


ID_CHUNK = 5_000  # ids per IN (...) when looking up existing devices (below SQLite's bound-parameter limit)


def _foreign_devices(session: Session, principal: Principal, ids: list[str]) -> set[str]:
    """The ids among ``ids`` of existing devices whose current owner (district or department) the
    principal does not manage (judged by the same rule as the file's own rows)."""
    if principal.tenants_for(MANAGE) is None or not ids:
        return set()  # manages everywhere
    found: set[str] = set()
    homes = _department_homes(session)
    verdicts: dict[tuple[str | None, str | None], bool] = {}
    for start in range(0, len(ids), ID_CHUNK):
        query = select(Device.id, Device.tenant_code, Device.department_code).where(
            Device.id.in_(ids[start : start + ID_CHUNK])
        )
        for device_id, tenant, department in session.execute(query):
            owner = (tenant, department)
            if owner not in verdicts:
                verdicts[owner] = _manages(principal, tenant, department, homes)
            if not verdicts[owner]:
                found.add(device_id)
    return found


def import_devices(
    session: Session,
    index: RegionIndex,
    frame: pl.DataFrame,
    principal: Principal | None = None,
    *,
    partial: bool = False,
) -> DeviceImport:
    """Check every row, place it in the divisions by its coordinates and add or update the devices; with
    any row refused nothing is written unless ``partial``. A row's department must exist and belong to the
    district its coordinates fall in (or to the city). With a ``principal`` (the API), rows of districts
    or departments they do not manage are refused, and so are rows naming an existing device whose current
    owner they do not manage (an import never moves another's device); the CLI (an operator of the
    installation) has none."""
    started = time.perf_counter()
    known = {t.code for t in list_types(session)}
    good, bad = _checked_rows(frame, known, index)
    if not good.is_empty():
        good, bad = _refuse(good, bad, _misplaced_departments(session, good), UNKNOWN_DEPARTMENT)
    if principal is not None and not good.is_empty():
        homes = _department_homes(session)
        pairs = good.select("tenant_code", "department_code").unique()
        denied = pairs.filter(
            pl.Series([not _manages(principal, t, d, homes) for t, d in pairs.iter_rows()], dtype=pl.Boolean)
        )
        good, bad = _refuse(good, bad, denied, "not a district or department you manage")
        # A row may name a device that exists already: its current owner must be the importer's too, or
        # the import would move another district's device into the importer's (and out of its owner's sight).
        foreign = _foreign_devices(session, principal, good["id"].to_list())
        if foreign:
            taken = good.filter(pl.col("id").is_in(sorted(foreign)))
            good = good.filter(pl.col("id").is_in(sorted(foreign)).not_())
            taken = taken.with_columns(pl.lit(FOREIGN_DEVICE).alias("reason"))
            bad = pl.concat([bad, taken.select(bad.columns)]).sort("row")
    refusals = [Refused(r["row"], r["id"], r["reason"]) for r in bad.head(MAX_REPORTED).iter_rows(named=True)]
    write = bad.is_empty() or partial
    created = updated = 0
    if write and not good.is_empty():
        created, updated = _upsert(session, good)
        # Written below the ORM (COPY / executemany): one audit record of the rows, in this transaction.
        columns = [*COLUMNS[1:], "updated_at"]
        note_bulk(session, "sensor_devices", "upsert", good.height, good["id"].head(MAX_KEYS).to_list(), columns)
    return DeviceImport(
        rows=frame.height,
        created=created,
        updated=updated,
        refused=bad.height,
        refusals=refusals,
        written=write,
        seconds=time.perf_counter() - started,
    )


COLUMNS = (
    "id",
    "type_code",
    "department_code",
    "tenant_code",
    "township_code",
    "community_code",
    "grid_code",
    "lng",
    "lat",
    "status",
    "name",
)


def _upsert(session: Session, good: pl.DataFrame) -> tuple[int, int]:
    """Add or update the rows with the driver's bulk path (executemany on SQLite, COPY on PostgreSQL):
    millions of devices in seconds, where one ORM object per row would take minutes."""
    before = session.scalar(select(func.count()).select_from(Device)) or 0
    connection = session.connection()
    dialect = connection.dialect
    # the dialect's own form of the time (a string on SQLite), converted once rather than once per row
    processor = Device.__table__.c.updated_at.type.dialect_impl(dialect).bind_processor(dialect)
    stamp = processor(utcnow()) if processor else utcnow()
    names = ", ".join(COLUMNS)
    changes = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:]) + ", updated_at = excluded.updated_at"
    rows = good.sort("id").select(COLUMNS).rows()  # in key order: the primary key's B-tree grows at its end
    if dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS sensor_devices_in ON COMMIT DELETE ROWS "
                f"AS SELECT {names} FROM sensor_devices WITH NO DATA"
            )
            cursor.execute("TRUNCATE sensor_devices_in")
            with cursor.copy(f"COPY sensor_devices_in ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(
                f"INSERT INTO sensor_devices ({names}, updated_at) SELECT {names}, %s FROM sensor_devices_in "
                f"ON CONFLICT (id) DO UPDATE SET {changes}",
                (stamp,),
            )
    else:
        connection.exec_driver_sql("PRAGMA cache_size = -262144")  # 256 MiB of pages while the indexes grow
        # the time is the same for every row: written into the statement once (it is our own, checked text),
        # not bound a million times
        if not isinstance(stamp, str) or not re.fullmatch(r"[0-9 :.T-]+", stamp):
            raise TypeError(f"unexpected form of a time on {dialect.name}: {stamp!r}")
        marks = ", ".join("?" for _ in COLUMNS)
        statement = (
            f"INSERT INTO sensor_devices ({names}, updated_at) VALUES ({marks}, '{stamp}') "
            f"ON CONFLICT (id) DO UPDATE SET {changes}"
        )
        # a large load keeps only the primary key up to date row by row and rebuilds the other indexes once,
        # sorted (inside the transaction: a refused import leaves them as they were)
        table = Device.__table__
        assert isinstance(table, Table)  # noqa: S101 - a declarative model's table
        rebuild = sorted(table.indexes, key=lambda i: str(i.name)) if len(rows) >= REBUILD_INDEXES_FROM else []
        for index in rebuild:
            index.drop(connection)
        for start in range(0, len(rows), CHUNK):
            connection.exec_driver_sql(statement, rows[start : start + CHUNK])
        for index in rebuild:
            index.create(connection)
    session.expire_all()
    after = session.scalar(select(func.count()).select_from(Device)) or 0
    return after - before, good.height - (after - before)


def get_device(session: Session, principal: Principal, device_id: str) -> Device:
    """A device the caller may see."""
    device = session.get(Device, device_id)
    if device is None or not principal.allows(READ, device.tenant_code, device.department_code):
        raise NotFoundError(N_("no device {device_id!r}"), field="device", device_id=device_id)
    return device


def list_devices(
    session: Session,
    principal: Principal,
    *,
    district: str | None = None,
    type_code: str | None = None,
    status: str | None = None,
    grid: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[Device]]:
    """The devices the caller may see (their districts, or their department's), filtered; (total, page)."""
    query = select(Device)
    scoped = scope_conditions(principal, READ, Device.tenant_code, Device.department_code)
    if scoped is not None:
        if not scoped:
            return 0, []
        query = query.where(or_(*scoped))
    for column, value in (
        (Device.tenant_code, district),
        (Device.type_code, type_code),
        (Device.status, status),
        (Device.grid_code, grid),
    ):
        if value:
            query = query.where(column == value)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(query.order_by(Device.id).limit(limit).offset(offset))
    return total, list(page)


# -- the pipeline's view of the registry ----------------------------------------------------------------


def load_registry(session: Session) -> Registry:
    """The device types and every device as the ingestion pipeline's arrays (one query, no ORM objects)."""
    types = [(t.code, list(t.measures)) for t in list_types(session)]
    columns = ("id", "type_code", "tenant_code", "township_code", "grid_code", "department_code", "status")
    rows = session.connection().exec_driver_sql(f"SELECT {', '.join(columns)} FROM sensor_devices").fetchall()
    frame = pl.DataFrame(rows, schema=dict.fromkeys(columns, pl.Utf8), orient="row")
    return Registry.build(types, frame)


def registry_loader(db: Database) -> Callable[[], Registry]:
    """A loader for ``Pipeline``: reads the registry in a session of its own."""

    def load() -> Registry:
        with db.session() as session:
            return load_registry(session)

    return load


def runtime(settings: Settings, db: Database) -> SensingRuntime:
    """The web process's sensing parts (see ``shgov.sensing.runtime``)."""
    from shgov.sensing.runtime import SensingRuntime

    return SensingRuntime(settings, db)


def live_dir(settings: Settings) -> Path:
    """Where ingest nodes leave their latest values for the web process (``Pipeline.write_live``)."""
    return settings.data_dir / "sensing" / "live"


def open_pipeline(settings: Settings, db: Database, node: str | None = None) -> Pipeline:
    """This process's ingestion pipeline (it recovers what a stopped process of the same node left)."""
    return Pipeline(settings, registry_loader(db), node=node)


# -- replaying recorded readings ------------------------------------------------------------------------


@dataclass(frozen=True)
class Replayed:
    """What a replay did."""

    rows: int
    accepted: int
    refused: int
    reasons: dict[str, int]
    seconds: float


def read_readings(name: str, data: bytes, max_rows: int | None = None) -> pl.DataFrame:
    """Recorded readings from CSV (UTF-8, header) or Parquet: device_id, ts (epoch milliseconds, or an
    ISO-8601 time — with its offset, else taken as UTC), measure, value (see ``read_devices`` for
    ``max_rows``)."""
    try:
        if name.lower().endswith(".parquet"):
            frame = _parquet(data, max_rows)
        else:
            frame = pl.read_csv(io.BytesIO(data), schema_overrides={"device_id": pl.Utf8, "measure": pl.Utf8})
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise InvalidError(N_("not a readable CSV or Parquet file: {reason}"), field="file", reason=str(exc)) from exc
    missing = [c for c in ("device_id", "ts", "measure", "value") if c not in frame.columns]
    if missing:
        raise InvalidError(
            N_("the file has no {column!r} column (needs {columns})"),
            field=missing[0],
            column=missing[0],
            columns="device_id, ts, measure, value",
        )
    ts = frame["ts"]
    if ts.dtype == pl.Utf8:
        as_number = ts.cast(pl.Int64, strict=False)
        as_time = ts.str.to_datetime(time_unit="ms", time_zone="UTC", strict=False).dt.epoch("ms")
        ts = as_number.fill_null(as_time)
    elif isinstance(ts.dtype, pl.Datetime):
        ts = (ts.dt.replace_time_zone("UTC") if ts.dtype.time_zone is None else ts).dt.epoch("ms")
    return frame.select(
        pl.col("device_id").cast(pl.Utf8),
        ts.cast(pl.Int64, strict=False).alias("ts"),
        pl.col("measure").cast(pl.Utf8),
        pl.col("value").cast(pl.Float64, strict=False),
    )


def replay(
    pipeline: Pipeline,
    frame: pl.DataFrame,
    *,
    source: str = "replay",
    shift_to_now: bool = False,
    speed: float | None = None,
    batch_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> Replayed:
    """Feed recorded readings through the pipeline in time order, in batches, as a gateway would.

    ``shift_to_now`` moves the series so that its last reading is now (the spacing kept): a recorded series
    plays as live data. ``speed`` paces the replay (60: an hour of readings per minute); None: as fast as it
    goes. Readings of any age are taken (a recording is old by nature)."""
    started = time.perf_counter()
    frame = frame.sort("ts", nulls_last=True)
    if shift_to_now and frame.height:
        last = frame["ts"].max()
        if isinstance(last, int):
            frame = frame.with_columns(pl.col("ts") + (int(time.time() * 1000) - last))
    accepted = refused = 0
    reasons: Counter[str] = Counter()
    first_ts = frame["ts"].min() if frame.height else None
    for start in range(0, frame.height, batch_size):
        chunk = frame.slice(start, batch_size).to_arrow()
        if speed and isinstance(first_ts, int):
            due = (chunk.column("ts")[0].as_py() or first_ts) - first_ts
            wait = due / speed / 1000 - (time.perf_counter() - started)
            if wait > 0:
                time.sleep(wait)
        batch = from_columns(*(chunk.column(c).combine_chunks() for c in ("device_id", "ts", "measure", "value")))
        result = pipeline.ingest(batch, source, max_age_ms=None)
        accepted, refused = accepted + result.accepted, refused + result.refused
        reasons.update(result.reasons)
        if progress:
            progress(chunk.num_rows)
    return Replayed(frame.height, accepted, refused, dict(reasons), time.perf_counter() - started)


# -- history and rejects (DuckDB over the lake) -----------------------------------------------------------

EVERY = {"minute": "1 minute", "hour": "1 hour", "day": "1 day"}
LEVELS = ("district", "township", "grid")


@dataclass(frozen=True)
class Window:
    """A measure over an area in one window: readings, mean, lowest, highest."""

    start: datetime
    readings: int
    mean: float | None
    low: float | None
    high: float | None


def history(
    analytics: Analytics,
    timezone: str,
    type_code: str,
    measure: str,
    *,
    level: str | None,
    area: str | None,
    since: datetime,
    until: datetime,
    every: str = "hour",
) -> list[Window]:
    """A measure of a device type over an area (a district, township or grid; None: the city) from the
    per-minute partial aggregates, in windows of a minute, an hour or a (local) day."""
    if every not in EVERY:
        raise InvalidError(N_("every is one of {choices}"), field="every", choices=", ".join(EVERY))
    if level is not None and level not in LEVELS:
        raise InvalidError(N_("the area level is one of {levels}"), field="level", levels=", ".join(LEVELS))
    if not since < until:
        raise InvalidError(N_("since must be before until"), field="since")
    if MINUTES not in analytics.datasets():
        return []
    where = ["type = ?", "measure = ?", "minute >= ?", "minute < ?", "day BETWEEN ? AND ?"]
    params: list[Any] = [type_code, measure, since, until, since.astimezone(UTC).date().isoformat()]
    params.append(until.astimezone(UTC).date().isoformat())
    if level is not None:
        where.append(f"{level} = ?")  # the level is one of LEVELS
        params.append(area)
    sql = (
        f"SELECT time_bucket(INTERVAL '{EVERY[every]}', minute, ?) AS start, sum(n), "
        f"sum(total) / nullif(sum(n), 0), min(low), max(high) FROM {MINUTES} "
        f"WHERE {' AND '.join(where)} GROUP BY 1 ORDER BY 1"
    )
    with analytics.connect() as conn:
        rows = conn.execute(sql, [timezone, *params]).fetchall()
    return [Window(start, int(n), mean, low, high) for start, n, mean, low, high in rows]


def rejects(analytics: Analytics, day: date, reason: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Refused readings received on a (UTC) day, newest first, optionally of one reason."""
    if REJECTS not in analytics.datasets():
        return []
    where, params = ["day = ?"], [day.isoformat()]
    if reason:
        where.append("reason LIKE ?")
        params.append(f"{reason}%")
    sql = (
        f"SELECT received, source, device_id, ts, measure, value, raw, reason FROM {REJECTS} "
        f"WHERE {' AND '.join(where)} ORDER BY received DESC LIMIT ?"
    )
    with analytics.connect() as conn:
        rows = conn.execute(sql, [*params, limit]).fetchall()
    names = ("received", "source", "device_id", "ts", "measure", "value", "raw", "reason")
    found = [dict(zip(names, row, strict=True)) for row in rows]
    for row in found:
        row["ts"] = datetime.fromtimestamp(row["ts"] / 1000, UTC) if row["ts"] is not None else None
    return found


PM25_DEVICE = "AQ-SH-USC"  # the monitor of the hourly PM2.5 series (Huaihai Zhong Road, Xuhui)
PM25_PLACE = (121.4437, 31.2108)  # WGS-84, approximately


def pm25_series(device_id: str = PM25_DEVICE) -> pl.DataFrame:
    """The real hourly PM2.5 series of Shanghai, 2010–2015 (see ``data/SOURCE.md``), as readings of one
    air-quality device; hours the monitor did not report are left out."""
    raw = resources.files("shgov.sensing").joinpath("data/shanghai_pm25_hourly.csv").read_bytes()
    frame = pl.read_csv(
        io.BytesIO(raw),
        null_values="NA",
        columns=["year", "month", "day", "hour", "PM_US Post"],
        schema_overrides={"PM_US Post": pl.Float64},
    )
    local = pl.datetime(pl.col("year"), pl.col("month"), pl.col("day"), pl.col("hour"), time_zone="Asia/Shanghai")
    return frame.filter(pl.col("PM_US Post").is_not_null()).select(
        pl.lit(device_id).alias("device_id"),
        local.dt.epoch("ms").alias("ts"),
        pl.lit("pm25").alias("measure"),
        pl.col("PM_US Post").cast(pl.Float64).alias("value"),
    )


# -- the demo city ----------------------------------------------------------------------------------------

# devices per district in the demo city, their id prefix, and the district department that owns each type
# (None: the city's)
DEMO_DEVICES: dict[str, tuple[int, str, str | None]] = {
    "air_quality": (6, "AQ", "sthj"),
    "water_level": (20, "WL", "zj"),
    "river_level": (4, "RL", None),
    "traffic_flow": (20, "TF", "ga"),
    "manhole": (30, "MH", "zj"),
    "smoke": (30, "SM", "yj"),
    "elevator": (30, "EL", "sc"),
    "noise": (8, "NS", "sthj"),
    "gas": (12, "GS", "zj"),
}
MUNICIPAL_OWNER = "shui"  # 市水务局 keeps the river gauges


def demo_devices(index: RegionIndex, city_code: str, seed: int = 2026) -> pl.DataFrame:
    """The demo city's devices: a few hundred per district, spread inside its outline, plus the PM2.5
    monitor whose real series ``replay-pm25`` plays."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for district in sorted(index.boundaries):
        for type_code, (count, prefix, key) in DEMO_DEVICES.items():
            lng, lat = index.random_points(district, count, rng)
            owner = department_code(district, key) if key else department_code(city_code, MUNICIPAL_OWNER)
            rows += [
                {
                    "device_id": f"{prefix}-{district}-{i:04d}",
                    "type": type_code,
                    "department": owner,
                    "lng": x,
                    "lat": y,
                }
                for i, (x, y) in enumerate(zip(lng, lat, strict=True), start=1)
            ]
    if index.boundaries:
        rows.append(
            {
                "device_id": PM25_DEVICE,
                "type": "air_quality",
                "department": department_code(city_code, "sthj"),
                "lng": PM25_PLACE[0],
                "lat": PM25_PLACE[1],
                "name": "上海美领馆 PM2.5 监测点（历史数据回放）",
            }
        )
    frame = pl.DataFrame(rows, infer_schema_length=None)
    if "name" not in frame.columns:
        frame = frame.with_columns(pl.lit("", dtype=pl.Utf8).alias("name"))
    return frame.with_columns(pl.all().cast(pl.Utf8))


def seed_demo(session: Session, settings: Settings) -> dict[str, int]:
    """The device types, who may see and manage devices, the demo city's devices, the last hours of their
    simulated readings and the real PM2.5 series of Shanghai."""
    add_actions_to_role(session, "ops_operator", (READ, INDICATORS))
    add_actions_to_role(session, "district_admin", (READ, MANAGE, INDICATORS))
    add_actions_to_role(session, "department_admin", (READ, MANAGE))
    define_role(session, "sensor_gateway", "物联感知网关", (WRITE,), name_en="Sensor gateway")
    counts = {"device_types": load_types(session, packaged_types())}
    index = RegionIndex.from_session(session)
    imported = import_devices(session, index, demo_devices(index, settings.city_code))
    counts["devices"] = imported.created + imported.updated
    if imported.rows:
        pipeline = Pipeline(settings, lambda: load_registry(session), node="seed")
        try:
            # the last three hours every five minutes, and before them a week and a day every half hour: enough
            # earlier days for the seasonal detector to know each district's daily rhythm from the start
            days = settings.sensing.seasonal_min_days + 1
            counts["readings"] = simulate_history(pipeline, hours=24 * days, every_minutes=30, before_hours=3)
            counts["readings"] += simulate_history(pipeline, hours=3, every_minutes=5)
            # the series' last 90 days, moved to end now (`shgov sensing replay-pm25` plays all six years)
            series = pm25_series()
            recent = series.filter(pl.col("ts") > series["ts"].max() - 90 * 86_400_000)  # type: ignore[operator]
            counts["pm25_readings"] = replay(pipeline, recent, source="replay:pm25", shift_to_now=True).accepted
        finally:
            pipeline.close()
    return counts


def simulate_history(
    pipeline: Pipeline, *, hours: float, every_minutes: int, before_hours: float = 0, seed: int = 11
) -> int:
    """Simulated readings of every registered device over ``hours`` ending ``before_hours`` ago (the demo's
    past); readings of any age are taken."""
    registry = pipeline.registry
    simulator = Simulator(Fleet.of(registry), registry.type_measures, seed=seed, fault_rate=0.0005)
    end = int(time.time() * 1000) // 60_000 * 60_000 - int(before_hours * 3_600_000)
    step = every_minutes * 60_000
    accepted = 0
    last = end if before_hours == 0 else end - 1  # a later call starts at ``end``
    for tick in range(end - int(hours * 3_600_000), last + 1, step):
        # one batch a tick: every gateway's readings logged with one fsync
        batch = concat([batch for _district, _type, batch in simulator.tick(tick)])
        accepted += pipeline.ingest(batch, "simulator", max_age_ms=None).accepted
    return accepted


# -- what the pages show ----------------------------------------------------------------------------------


def vitals(
    readings: list[Reading], version: int, index: RegionIndex, visible: Callable[[str], bool], digits: int = 2
) -> dict[str, Any]:
    """The vital signs now, district by district (those ``visible`` to the caller), values rounded to
    ``digits``: the dashboard's JSON, and what the API answers."""
    out = []
    for reading in readings:
        indicator = reading.indicator
        rows = []
        for i, district in enumerate(reading.districts):
            if not visible(district):
                continue
            value = float(reading.values[i])
            known = value == value
            info = index.get(district)
            rows.append(
                {
                    "code": district,
                    "name": info.name if info else district,
                    "value": round(value, digits) if known else None,
                    "grade": indicator.grade(value) if known else None,
                    "reporting": int(reading.reporting[i]),
                }
            )
        out.append(
            {
                "code": indicator.code,
                "name": indicator.name,
                "name_en": indicator.name_en,
                "unit": indicator.unit,
                "type": indicator.type_code,
                "measure": indicator.measure,
                "formula": indicator.formula,
                "thresholds": list(indicator.thresholds),
                "districts": rows,
            }
        )
    return {"generated_at": datetime.now(UTC).isoformat(), "version": version, "indicators": out}


def latest_of(pipeline: Pipeline, device_id: str, overlay: Overlay | None = None) -> list[dict[str, Any]]:
    """A device's latest value of each measure (None before its first reading), whichever node took it."""
    found = pipeline.device_latest(device_id, overlay)
    if found is None:
        return []
    measures, stamps, values = found
    out = []
    for measure, ts, value in zip(measures, stamps.tolist(), values.tolist(), strict=True):
        seen = ts > 0 and value == value
        out.append(
            {
                "code": measure["code"],
                "name": measure["name"],
                "unit": measure["unit"],
                "value": value if seen else None,
                "at": datetime.fromtimestamp(ts / 1000, UTC) if seen else None,
            }
        )
    return out


def device_readings(analytics: Analytics, device_id: str, since: datetime) -> list[dict[str, Any]]:
    """A device's stored readings since a time, oldest first (DuckDB over the readings' days)."""
    if READINGS not in analytics.datasets():
        return []
    sql = (
        f"SELECT ts, measure, value FROM {READINGS} WHERE device_id = ? AND ts >= ? AND day >= ? "
        "ORDER BY ts, measure LIMIT 20000"
    )
    with analytics.connect() as conn:
        rows = conn.execute(sql, [device_id, since, since.astimezone(UTC).date().isoformat()]).fetchall()
    return [{"ts": ts.isoformat(), "measure": measure, "value": value} for ts, measure, value in rows]

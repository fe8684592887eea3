"""The base registers: built from the lake's live versions under 一数一源, versioned, looked up fast.

``build(register)`` joins the resources a register needs on its key, takes each element from its one
authoritative source, keeps the other departments' values as references and records every record
where they disagree (a conflict, for the source department to review). Each build is a new version of
``register_<code>`` in the lake with per-element lineage (resource, department, load) in
``register_builds``; records that changed are announced as events (``registers.<code>.changed``).

Lookups (``find_person``, ``find_enterprise``, ``licences_of`` and their batch forms) read the live
version through an in-memory index held per process and refreshed when a newer version is built.
``as_of`` answers from the version that was live at a given moment.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shgov.core.db import utcnow
from shgov.core.errors import NotFoundError
from shgov.core.events import emit
from shgov.core.i18n import N_
from shgov.core.identity import proofing
from shgov.core.identity.permissions import register_action
from shgov.core.identity.service import add_actions_to_role
from shgov.core.regions.service import GridPlan, RegionIndex, register_grids
from shgov.core.settings import Settings
from shgov.lake import service as lake
from shgov.registers import events
from shgov.registers import licences as issued
from shgov.registers.elements import LICENCE_RESOURCES, RegisterDef
from shgov.registers.elements import REGISTERS as REGISTERS  # part of this service's interface
from shgov.registers.models import IssuedLicence as IssuedLicence  # re-exported: cases name the licences they issue
from shgov.registers.models import RegisterBuild

PERSON_READ = register_action("registers.person.read", N_("Read the person register"))
ENTERPRISE_READ = register_action("registers.enterprise.read", N_("Read the enterprise register"))
LICENCE_READ = register_action("registers.licence.read", N_("Read e-licences"))
BUILD = register_action("registers.register.build", N_("Build the registers from the lake"))
CONFLICT_READ = register_action("registers.conflict.read", N_("Review conflicts between departments"))
LICENCE_REVOKE = register_action("registers.licence.revoke", N_("Revoke e-licences issued by SH-GOV"))
ALL_ACTIONS = (PERSON_READ, ENTERPRISE_READ, LICENCE_READ, BUILD, CONFLICT_READ)

# E-licences SH-GOV issues itself (统一发证) are part of the licence register.
Verification = issued.Verification
issue_licence = issued.issue
verify_licence = issued.verify
verify_licence_offline = issued.verify_offline
revoke_licence = issued.revoke
revoked_licences = issued.revoked_numbers
licence_code = issued.code_of
licence_pdf = issued.render_pdf


def issued_licence(session: Session, licence_no: str) -> IssuedLicence | None:
    """A licence SH-GOV issued, by number."""
    return issued.get(session, licence_no)


def issued_licences_for(session: Session, source_ref: str) -> list[dict[str, Any]]:
    """The licences issued for ``source_ref`` (e.g. ``case:<number>:<item>``), with their numbers."""
    rows = session.scalars(select(IssuedLicence).where(IssuedLicence.source_ref == source_ref))
    return [{**issued.as_register_row(r), "revoked": r.revoked_at is not None} for r in rows]


def licence_public_key(settings: Settings) -> tuple[str, str]:
    """(key id, public key hex) that verifies every licence SH-GOV signs."""
    key = issued.signing_key(settings)
    return key.key_id, key.public_hex


def check_startup(settings: Settings) -> None:
    """Refuse to start with a licence key that cannot verify its own signature (the key is loaded, or made
    on first start, and self-checked; the error names the key file)."""
    issued.signing_key(settings)


CONFLICTS = "_conflicts"
CONFLICT_COLUMNS = (
    "key",
    "element",
    "authoritative_resource",
    "authoritative_department",
    "authoritative_value",
    "reference_resource",
    "reference_department",
    "reference_value",
)
MAX_CHANGE_EVENTS = 50_000  # beyond this a build announces one summary event instead of one per record


def dataset(register: str) -> str:
    """The lake dataset holding a register's versions."""
    return f"register_{register}"


def register_def(code: str) -> RegisterDef:
    """The definition of register ``code``."""
    found = REGISTERS.get(code)
    if found is None:
        raise NotFoundError(N_("no register {code!r}"), field="register", code=code)
    return found


@dataclass(frozen=True)
class BuildResult:
    """What a build produced."""

    register: str
    version: int
    rows: int
    changed: int
    conflicts: dict[str, int]
    lineage: dict[str, dict[str, Any]]


def _source_frame(session: Session, lake_dir: Path, resource: str, key: str, columns: set[str]) -> pl.DataFrame:
    state = lake.resource_state(session, resource)
    frame = lake.read_current(lake_dir, resource)
    if frame is None:
        raise NotFoundError(N_("{resource} has not been loaded yet"), field="resource", resource=resource)
    resource_key = state.key[0]
    selected = frame.select([pl.col(resource_key).alias(key), *[pl.col(c).alias(f"{resource}.{c}") for c in columns]])
    return selected.unique(subset=[key], keep="last").with_columns(pl.lit(True).alias(f"{resource}.__present"))


def _build_person_like(
    session: Session, lake_dir: Path, reg: RegisterDef
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    needed: dict[str, set[str]] = {}
    for element in reg.elements:
        for resource, column in ([element.source] if element.source else []) + list(element.references):
            needed.setdefault(resource, set()).add(column)
    base = _source_frame(session, lake_dir, reg.base, reg.key, needed.pop(reg.base, set()))
    joined = base
    for resource, columns in sorted(needed.items()):
        joined = joined.join(_source_frame(session, lake_dir, resource, reg.key, columns), on=reg.key, how="left")
    values: list[pl.Expr] = [pl.col(reg.key)]
    conflict_parts: list[pl.DataFrame] = []
    lineage: dict[str, Any] = {}
    for element in reg.elements:
        if element.source is None:
            values.append(pl.lit(None, dtype=pl.String).alias(element.name))
            continue
        resource, column = element.source
        value = pl.col(f"{resource}.{column}")
        if element.when_absent is not None:
            value = (
                pl.when(pl.col(f"{resource}.__present").is_null()).then(pl.lit(element.when_absent)).otherwise(value)
            )
        values.append(value.alias(element.name))
        state = lake.resource_state(session, resource)
        lineage[element.name] = {
            "resource": resource,
            "department": state.department_code,
            "version": state.version,
            "load_id": str(state.load_id) if state.load_id else None,
        }
        for ref_resource, ref_column in element.references:
            ref = pl.col(f"{ref_resource}.{ref_column}")
            differs = value.is_not_null() & ref.is_not_null() & (value.cast(pl.String) != ref.cast(pl.String))
            conflict_parts.append(
                joined.filter(differs).select(
                    pl.col(reg.key).alias("key"),
                    pl.lit(element.name).alias("element"),
                    pl.lit(resource).alias("authoritative_resource"),
                    pl.lit(state.department_code).alias("authoritative_department"),
                    value.cast(pl.String).alias("authoritative_value"),
                    pl.lit(ref_resource).alias("reference_resource"),
                    pl.lit(lake.resource_state(session, ref_resource).department_code).alias("reference_department"),
                    ref.cast(pl.String).alias("reference_value"),
                )
            )
    register_frame = joined.select(values).sort(reg.key)
    conflicts = (
        pl.concat(conflict_parts) if conflict_parts else pl.DataFrame(schema=dict.fromkeys(CONFLICT_COLUMNS, pl.String))
    )
    return register_frame, conflicts, lineage


def _build_licences(session: Session, lake_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    frames = []
    lineage: dict[str, Any] = {}
    for resource in LICENCE_RESOURCES:
        frame = lake.read_current(lake_dir, resource)
        if frame is None:
            continue
        state = lake.resource_state(session, resource)
        lineage[resource] = {
            "resource": resource,
            "department": state.department_code,
            "version": state.version,
            "load_id": str(state.load_id) if state.load_id else None,
        }
        frames.append(frame.with_columns(pl.lit(state.department_code).alias("issuer_department")))
    if not frames:
        raise NotFoundError(N_("no e-licences have been loaded yet"), field="resource")
    combined = pl.concat(frames, how="vertical_relaxed").drop("updated_at").sort("holder_id")
    return combined, pl.DataFrame(), lineage


STANDARD_ADDRESSES = "standard_addresses"  # 规划资源's geocoded addresses: where coordinates come from


def _placed_addresses(session: Session, lake_dir: Path, index: RegionIndex) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Every address of the person and enterprise registers, placed in its district / township /
    community — from 公安's structured codes where the record has them, else by parsing the text —
    with the coordinates of the standard address dataset where it has the address."""
    lineage: dict[str, Any] = {}
    parts: list[pl.DataFrame] = []
    person = _latest_frame(session, lake_dir, "person")
    if person is not None:
        lineage["person"] = {"register": "person", "version": _latest_version(session, "person")}
        parts.append(
            person.select("address", "district_code", "township_code", "community_code")
            .drop_nulls("address")
            .with_columns(pl.lit("person").alias("source"), pl.lit("register").alias("placed_by"))
        )
    enterprise = _latest_frame(session, lake_dir, "enterprise")
    if enterprise is not None:
        lineage["enterprise"] = {"register": "enterprise", "version": _latest_version(session, "enterprise")}
        texts = enterprise.select("address", "district_code").drop_nulls("address").unique("address")
        placed = []
        for text, district in texts.iter_rows():
            parsed = index.parse_address(text)
            placed.append(
                (
                    text,
                    parsed.district.code if parsed.district else district,
                    parsed.township.code if parsed.township else None,
                    parsed.community.code if parsed.community else None,
                )
            )
        parts.append(
            pl.DataFrame(
                placed, schema=["address", "district_code", "township_code", "community_code"], orient="row"
            ).with_columns(pl.lit("enterprise").alias("source"), pl.lit("parsed").alias("placed_by"))
        )
    if not parts:
        raise NotFoundError(N_("build the person or enterprise register first"), field="register")
    addresses = pl.concat(parts, how="vertical_relaxed").unique("address", keep="first", maintain_order=True)
    coordinates = lake.read_current(lake_dir, STANDARD_ADDRESSES)
    if coordinates is None:
        coordinates = pl.DataFrame(schema={"address": pl.String, "lng": pl.Float64, "lat": pl.Float64})
    else:
        state = lake.resource_state(session, STANDARD_ADDRESSES)
        lineage["coordinates"] = {
            "resource": STANDARD_ADDRESSES,
            "department": state.department_code,
            "version": state.version,
            "load_id": str(state.load_id) if state.load_id else None,
        }
    addresses = addresses.join(
        coordinates.select("address", "lng", "lat").drop_nulls(["lng", "lat"]).unique("address"),
        on="address",
        how="left",
    )
    located = addresses.filter(pl.col("lng").is_not_null())
    found = index.locate_many(located["lng"].to_numpy(), located["lat"].to_numpy())
    placed_at = located.select("address").with_columns(
        pl.Series("located_district_code", found["district_code"].tolist(), dtype=pl.String).replace("", None),
        pl.Series("cell", found["cell"].tolist(), dtype=pl.String).replace("", None),
    )
    return addresses.join(placed_at, on="address", how="left"), lineage


Placed = tuple[pl.DataFrame, dict[str, Any]]  # the placed addresses and their lineage


def _build_addresses(
    session: Session, lake_dir: Path, index: RegionIndex, placed_addresses: Placed | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """The 空间地理 address register: every address placed in district / township / community and, where
    it has coordinates in a registered grid cell, in its grid. Where the coordinates fall in another
    district than the record says, 规划资源 (the source of locations) gets a conflict to review."""
    placed, lineage = placed_addresses or _placed_addresses(session, lake_dir, index)
    grids = {cell: grid.code for cell, grid in index.grids_by_cell.items()}
    placed = placed.with_columns(
        pl.col("cell").replace_strict(grids, default=None, return_dtype=pl.String).alias("grid_code")
    )
    addresses = placed.with_columns(
        pl.col("address").map_batches(lambda s: s.hash(seed=0)).cast(pl.String).alias("address_id"),
        pl.when(pl.col("grid_code").is_not_null())
        .then(pl.lit("grid"))
        .when(pl.col("community_code").is_not_null())
        .then(pl.lit("community"))
        .when(pl.col("township_code").is_not_null())
        .then(pl.lit("township"))
        .when(pl.col("district_code").is_not_null())
        .then(pl.lit("district"))
        .otherwise(None)
        .alias("precision"),
    ).sort("address")
    gh = lineage.get("coordinates", {}).get("department", "")
    sources = {"person": "population", "enterprise": "enterprises"}
    conflicts = addresses.filter(
        pl.col("lng").is_not_null() & ~pl.col("located_district_code").eq_missing(pl.col("district_code"))
    ).select(
        pl.col("address").alias("key"),
        pl.lit("location").alias("element"),
        pl.lit(STANDARD_ADDRESSES).alias("authoritative_resource"),
        pl.lit(gh).alias("authoritative_department"),
        pl.format("{},{} ({})", "lng", "lat", pl.col("located_district_code").fill_null("outside")).alias(
            "authoritative_value"
        ),
        pl.col("source").replace_strict(sources, default=None).alias("reference_resource"),
        pl.col("source")
        .replace_strict(
            {k: lake.resource_state(session, v).department_code for k, v in sources.items() if k in lineage},
            default=None,
        )
        .alias("reference_department"),
        pl.col("district_code").alias("reference_value"),
    )
    return addresses.drop("located_district_code"), conflicts, lineage


def derive_grids(
    session: Session, lake_dir: Path, index: RegionIndex, placed_addresses: Placed | None = None
) -> GridPlan:
    """Lay the management grid over the geocoded addresses: every H3 cell holding addresses becomes a
    grid of the community most of them belong to. Cells that are grids already keep their community;
    addresses whose coordinates contradict their district do not vote."""
    placed, _ = placed_addresses or _placed_addresses(session, lake_dir, index)
    votes = (
        placed.filter(
            pl.col("cell").is_not_null()
            & pl.col("community_code").is_not_null()
            & (pl.col("located_district_code") == pl.col("district_code"))
        )
        .group_by("cell", "community_code")
        .len()
        .sort(["cell", "len", "community_code"], descending=[False, True, False])
        .unique("cell", keep="first", maintain_order=True)
    )
    if votes.is_empty():
        raise NotFoundError(
            N_("no geocoded addresses to lay grids over: load standard_addresses and build the registers first"),
            field="resource",
        )
    return register_grids(session, index, votes.select("cell", "community_code").iter_rows())


def _latest_version(session: Session, register: str) -> int:
    found = latest_build(session, register)
    return found.version if found else 0


def _latest_frame(session: Session, lake_dir: Path, register: str) -> pl.DataFrame | None:
    version = _latest_version(session, register)
    return lake.read_version(lake_dir, dataset(register), version) if version else None


def _changed(previous: pl.DataFrame | None, current: pl.DataFrame, key: str) -> pl.DataFrame:
    """Keys whose record is new or differs from the previous version, with the elements that changed."""
    columns = [c for c in current.columns if c != key]
    if previous is None:
        return current.select(pl.col(key), pl.lit(None, dtype=pl.String).alias("elements"))
    common = [c for c in columns if c in previous.columns]
    merged = current.join(previous.select([key, *common]), on=key, how="left", suffix="__old", coalesce=True)
    flags = [
        pl.when(~pl.col(c).cast(pl.String).eq_missing(pl.col(f"{c}__old").cast(pl.String))).then(pl.lit(c))
        for c in common
    ]
    return merged.select(pl.col(key), pl.concat_str(flags, separator=",", ignore_nulls=True).alias("elements")).filter(
        pl.col("elements") != ""
    )


def build(
    session: Session, lake_dir: Path, register: str, built_by: str = "", index: RegionIndex | None = None
) -> BuildResult:
    """Build a new version of ``register`` from the live lake versions (see the module docstring)."""
    if register == "licence":
        frame, conflicts, lineage = _build_licences(session, lake_dir)
        key = "licence_no"
    elif register == "address":
        frame, conflicts, lineage = _build_addresses(session, lake_dir, index or RegionIndex.from_session(session))
        key = "address"
    else:
        reg = register_def(register)
        frame, conflicts, lineage = _build_person_like(session, lake_dir, reg)
        key = reg.key
    return _store(session, lake_dir, register, key, frame, conflicts, lineage, built_by)


def lay_grids(session: Session, lake_dir: Path, index: RegionIndex, built_by: str = "") -> tuple[GridPlan, BuildResult]:
    """``derive_grids`` then a new address register placed in the new grids, placing the addresses once."""
    placed = _placed_addresses(session, lake_dir, index)
    plan = derive_grids(session, lake_dir, index, placed)
    frame, conflicts, lineage = _build_addresses(session, lake_dir, index, placed)
    return plan, _store(session, lake_dir, "address", "address", frame, conflicts, lineage, built_by)


def _store(
    session: Session,
    lake_dir: Path,
    register: str,
    key: str,
    frame: pl.DataFrame,
    conflicts: pl.DataFrame,
    lineage: dict[str, Any],
    built_by: str,
) -> BuildResult:
    """Write a built register as its next version, with lineage, conflicts and change events."""
    name = dataset(register)
    previous_version = int(
        session.scalar(select(func.max(RegisterBuild.version)).where(RegisterBuild.register == register)) or 0
    )
    previous = lake.read_version(lake_dir, name, previous_version) if previous_version else None
    changes = _changed(previous, frame, key) if register in REGISTERS else pl.DataFrame({key: []})
    version = previous_version + 1
    target = lake.write_version(lake_dir, name, version, frame)
    counts = conflicts.group_by("element").len().to_dicts() if conflicts.height else []
    conflict_counts = {row["element"]: int(row["len"]) for row in counts}
    if conflicts.height:
        folder = lake_dir / CONFLICTS / register
        folder.mkdir(parents=True, exist_ok=True)
        conflicts.write_parquet(folder / f"v={version:06d}.parquet")
    session.add(
        RegisterBuild(
            register=register,
            version=version,
            built_at=utcnow(),
            rows=frame.height,
            changed=changes.height,
            lineage=lineage,
            conflicts=conflict_counts,
            built_by=built_by,
        )
    )
    if previous is None or changes.height > MAX_CHANGE_EVENTS:
        emit(
            session,
            events.RegisterRebuilt(register_name=register, version=version, rows=frame.height, changed=changes.height),
        )
    else:
        for row in changes.iter_rows(named=True):
            elements = (row["elements"] or "").split(",")
            emit(
                session,
                events.RecordChanged(register_name=register, key=row[key], elements=elements, version=version),
            )
    try:
        session.flush()
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    lake.point_current(lake_dir, name, version)
    return BuildResult(register, version, frame.height, changes.height, conflict_counts, lineage)


def lake_versions(session: Session) -> dict[str, int]:
    """The newest built version of every register's dataset as the database records it (0: never built);
    a backup points ``CURRENT`` at these, and leaves newer folders out (the next build's number is free)."""
    rows = session.execute(
        select(RegisterBuild.register, func.max(RegisterBuild.version)).group_by(RegisterBuild.register)
    )
    built = {register: int(version or 0) for register, version in rows}
    return {dataset(r): built.get(r, 0) for r in (*REGISTERS, "licence", "address")}


def conflicts(
    lake_dir: Path,
    register: str,
    version: int,
    element: str | None,
    departments: set[str] | None,
    offset: int,
    limit: int,
) -> tuple[int, list[dict[str, Any]]]:
    """A page of the conflicts of a register version, optionally of one element / some departments."""
    file = lake_dir / CONFLICTS / register / f"v={version:06d}.parquet"
    if not file.exists():
        return 0, []
    frame = pl.scan_parquet(file)
    if element:
        frame = frame.filter(pl.col("element") == element)
    if departments is not None:
        # The source department reviews: it sees conflicts on the elements it is authoritative for.
        frame = frame.filter(pl.col("authoritative_department").is_in(sorted(departments)))
    total = int(frame.select(pl.len()).collect().item())
    return total, frame.slice(offset, limit).collect().to_dicts()


def list_builds(session: Session, register: str) -> list[RegisterBuild]:
    """The builds of ``register``, newest first."""
    return list(
        session.scalars(
            select(RegisterBuild).where(RegisterBuild.register == register).order_by(RegisterBuild.version.desc())
        )
    )


def latest_build(session: Session, register: str) -> RegisterBuild | None:
    """The newest build of ``register``."""
    return session.scalar(
        select(RegisterBuild).where(RegisterBuild.register == register).order_by(RegisterBuild.version.desc()).limit(1)
    )


def build_as_of(session: Session, register: str, when: datetime) -> RegisterBuild | None:
    """The build that was live at ``when``."""
    return session.scalar(
        select(RegisterBuild)
        .where(RegisterBuild.register == register, RegisterBuild.built_at <= when)
        .order_by(RegisterBuild.version.desc())
        .limit(1)
    )


class RegisterReader:
    """Point and batch lookups over the live version of each register, indexed in memory."""

    def __init__(self, lake_dir: Path) -> None:
        self.lake_dir = lake_dir
        self.tables = lake.KeyedTables(lake_dir)

    def lookup(
        self, register: str, key: str, version: int, values: Sequence[Any], fields: Sequence[str] | None
    ) -> list[dict[str, Any]]:
        """The records whose ``key`` is one of ``values`` (in that order), with ``fields`` only."""
        return self.tables.lookup(dataset(register), version, key, values, fields)


_readers: dict[Path, RegisterReader] = {}
_readers_lock = threading.Lock()


def shared_reader(lake_dir: Path) -> RegisterReader:
    """The process's reader of the registers in ``lake_dir`` (its indexes are kept between requests)."""
    with _readers_lock:
        reader = _readers.get(lake_dir)
        if reader is None:
            reader = _readers[lake_dir] = RegisterReader(lake_dir)
        return reader


KEYS = {"person": "id_number", "enterprise": "credit_code", "licence": "licence_no", "address": "address"}


def live_dataset(session: Session, register: str) -> tuple[str, int, str]:
    """The lake dataset, live version and key column of a register (for readers outside this module)."""
    if register not in KEYS:
        raise NotFoundError(N_("no register {code!r}"), field="register", code=register)
    return dataset(register), _version_for(session, register, None), KEYS[register]


def element_kinds(session: Session, register: str) -> dict[str, tuple[str, str]]:
    """Each element of a register that has an authoritative source (and the key): its column kind in the
    lake (string, integer, number, date, datetime) and its description."""
    reg = register_def(register)
    kinds = {reg.key: ("string", reg.key)}
    for element in reg.elements:
        if element.source is None:
            continue  # never filled: no column in the built register
        resource, column = element.source
        spec = lake.get_resource(session, resource)
        kind = next((c.type for c in spec.columns if c.name == column), "string")
        kinds[element.name] = (kind, element.description)
    return kinds


def live_folder(session: Session, lake_dir: Path, register: str) -> tuple[Path, int]:
    """The Parquet folder of the live version of a register, and the version."""
    name, version, _key = live_dataset(session, register)
    return lake.version_dir(lake_dir, name, version), version


def _version_for(session: Session, register: str, as_of: datetime | None) -> int:
    found = build_as_of(session, register, as_of) if as_of else latest_build(session, register)
    if found is None and as_of:
        raise NotFoundError(N_("the {register} register has not been built by then"), field="as_of", register=register)
    if found is None:
        raise NotFoundError(N_("the {register} register has not been built"), field="register", register=register)
    return found.version


def find_person(
    session: Session,
    reader: RegisterReader,
    id_number: str,
    fields: Sequence[str] | None = None,
    as_of: datetime | None = None,
) -> dict[str, Any] | None:
    """A person's register record (``fields`` only), as it stands now or stood at ``as_of``."""
    rows = get_persons(session, reader, [id_number], fields, as_of)
    return rows[0] if rows else None


def get_persons(
    session: Session,
    reader: RegisterReader,
    id_numbers: Iterable[str],
    fields: Sequence[str] | None = None,
    as_of: datetime | None = None,
) -> list[dict[str, Any]]:
    """Several persons at once, in the order asked (unknown ones are left out)."""
    version = _version_for(session, "person", as_of)
    return reader.lookup("person", "id_number", version, [i.strip().upper() for i in id_numbers], fields)


def find_enterprise(
    session: Session,
    reader: RegisterReader,
    credit_code: str,
    fields: Sequence[str] | None = None,
    as_of: datetime | None = None,
) -> dict[str, Any] | None:
    """An enterprise's register record."""
    rows = get_enterprises(session, reader, [credit_code], fields, as_of)
    return rows[0] if rows else None


def get_enterprises(
    session: Session,
    reader: RegisterReader,
    credit_codes: Iterable[str],
    fields: Sequence[str] | None = None,
    as_of: datetime | None = None,
) -> list[dict[str, Any]]:
    """Several enterprises at once."""
    version = _version_for(session, "enterprise", as_of)
    return reader.lookup("enterprise", "credit_code", version, [c.strip().upper() for c in credit_codes], fields)


def registered_name(session: Session, settings: Settings, register: str, key: str) -> str | None:
    """The name the person (``key``: 身份证号) or enterprise (credit code) register holds now; None when it holds
    none or is not built. Plugged into in-person identity proofing (``core/identity/proofing``)."""
    if register not in ("person", "enterprise"):
        return None
    find = find_person if register == "person" else find_enterprise
    try:
        record = find(session, shared_reader(settings.lake_dir), key, ["name"])
    except NotFoundError:
        return None
    name = record.get("name") if record else None
    return str(name) if name else None


proofing.register_name_lookup(registered_name)


def address(session: Session, reader: RegisterReader, text: str) -> dict[str, Any] | None:
    """Where an address of the registers lies (district / township / community, and how it was placed)."""
    version = _version_for(session, "address", None)
    rows = reader.lookup("address", "address", version, [text.strip()], None)
    return rows[0] if rows else None


def licences_of(session: Session, reader: RegisterReader, holder: str) -> list[dict[str, Any]]:
    """Every e-licence held by a person (身份证号 / household number) or an enterprise (credit code)."""
    return licences_of_many(session, reader, [holder])


def licences_of_many(session: Session, reader: RegisterReader, holders: Iterable[str]) -> list[dict[str, Any]]:
    """Every e-licence of several holders: those loaded from the issuing departments and those SH-GOV issued."""
    wanted = [h.strip().upper() for h in holders]
    version = _version_for(session, "licence", None)
    loaded = reader.lookup("licence", "holder_id", version, wanted, None)
    return loaded + [issued.as_register_row(licence) for licence in issued.issued_to(session, wanted)]


def seed_demo(session: Session, settings: Settings) -> dict[str, int]:
    """Build the registers of the demo city from its lake."""
    add_actions_to_role(session, "data_officer", ALL_ACTIONS)
    built = {
        register: build(session, settings.lake_dir, register, "demo seed").rows
        for register in ("person", "enterprise", "licence")
    }
    plan, addresses = lay_grids(session, settings.lake_dir, RegionIndex.from_session(session), "demo seed")
    built["grids"], built["address"] = plan.created, addresses.rows
    return built

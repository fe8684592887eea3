"""Where policies are evaluated: the live registers loaded into an in-memory DuckDB database (embedded), or
copies of them kept as PostgreSQL tables beside the transactions (production). Both behind one interface
that the service compiles a policy for and reads rows from."""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shgov.benefits import language
from shgov.benefits.language import Checked, Compiled, Dates, Schema
from shgov.benefits.models import RegisterCopy
from shgov.core.db import utcnow
from shgov.core.errors import NotFoundError
from shgov.core.i18n import N_
from shgov.registers import service as registers

SchemaOf = Callable[[Session], Schema]


class Registers:
    """The live registers for one unit of work, in the engine the deployment evaluates with."""

    dialect: language.Dialect
    tables: dict[str, str]  # policy target → table
    schema: Schema

    def compiled(self, checked: Checked, dates: Dates) -> Compiled:
        """The policy as a query over these tables."""
        if checked.source.target not in self.tables:
            raise NotFoundError(
                N_("the {target} register has not been built"), field="target", target=checked.source.target
            )
        return language.compile_policy(checked, self.schema, self.dialect, self.tables, dates)

    def in_keys(self, column: str) -> str:
        """A condition: ``column`` is one of the list bound as ``keys``."""
        raise NotImplementedError

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The rows of a query as dicts, fetched in batches (a population can be millions of rows)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the unit of work held."""


# -- embedded: DuckDB -----------------------------------------------------------------------------------


@dataclass
class _Loaded:
    """One lake's live registers loaded into an in-memory DuckDB database, with the schema they had."""

    versions: dict[str, int]
    con: duckdb.DuckDBPyConnection
    tables: dict[str, str]
    schema: Schema


_LOADED: OrderedDict[Path, _Loaded] = OrderedDict()
_LOADED_LOCK = threading.Lock()
LOADED_LAKES = 4  # lakes kept loaded at once (a deployment has one; tests have many)


def live_folders(session: Session, lake_dir: Path, targets: dict[str, str]) -> dict[str, tuple[Path, int]]:
    """The Parquet folder and version of each built register a policy target reads."""
    folders: dict[str, tuple[Path, int]] = {}
    for target, register in targets.items():
        try:
            folders[target] = registers.live_folder(session, lake_dir, register)
        except NotFoundError:
            continue  # not built yet: policies about it cannot be evaluated
    return folders


def loaded_registers(session: Session, lake_dir: Path, targets: dict[str, str], schema_of: SchemaOf) -> _Loaded:
    """The live registers in memory: loaded from their Parquet files once per version (a register build
    makes a new version, which is loaded on the next use), so evaluations never reread the files."""
    folders = live_folders(session, lake_dir, targets)
    versions = {target: version for target, (_folder, version) in folders.items()}
    with _LOADED_LOCK:
        cached = _LOADED.get(lake_dir)
        if cached is not None and cached.versions == versions:
            _LOADED.move_to_end(lake_dir)
            return cached
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        for target, (folder, _version) in folders.items():
            pattern = str(folder / "*.parquet").replace("'", "''")
            con.execute(f"CREATE TABLE {target} AS SELECT * FROM read_parquet('{pattern}')")
        loaded = _Loaded(versions, con, {t: t for t in folders}, schema_of(session))
        _LOADED[lake_dir] = loaded
        _LOADED.move_to_end(lake_dir)
        while len(_LOADED) > LOADED_LAKES:
            _LOADED.popitem(last=False)[1].con.close()
        return loaded


class DuckDBRegisters(Registers):
    """A cursor of the loaded registers' database (a connection of its own: thread-safe)."""

    dialect = "duckdb"

    def __init__(self, loaded: _Loaded) -> None:
        self.con = loaded.con.cursor()
        self.tables = loaded.tables
        self.schema = loaded.schema

    def in_keys(self, column: str) -> str:
        """``column`` is one of ``$keys``."""
        return f'"{column}" IN (SELECT UNNEST($keys))'

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The rows of a query as dicts."""
        cursor = self.con.execute(sql, params or {})
        names = [d[0] for d in cursor.description or []]
        while batch := cursor.fetchmany(10_000):
            for row in batch:
                yield dict(zip(names, row, strict=True))

    def close(self) -> None:
        """Release the cursor."""
        self.con.close()


# -- production: PostgreSQL -----------------------------------------------------------------------------

COPY_LOCK = 0x5348_4756_0009  # advisory lock: one process loads a register version, the others wait for it


def _pg_type(kind: pa.DataType) -> str:
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    if pa.types.is_integer(kind):
        return "BIGINT"
    if pa.types.is_floating(kind):
        return "DOUBLE PRECISION"
    if pa.types.is_decimal(kind):
        return f"NUMERIC({kind.precision}, {kind.scale})"
    if pa.types.is_date(kind):
        return "DATE"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMPTZ" if kind.tz else "TIMESTAMP"
    return "TEXT"  # strings, and anything else as its text


def _as_csv_friendly(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Columns the table holds as text but Arrow keeps otherwise (lists, structs, binary) as their text."""
    columns = []
    for column in batch.columns:
        kind = column.type
        if _pg_type(kind) == "TEXT" and not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            if pa.types.is_nested(kind):
                column = pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())
            else:
                column = pc.cast(column, pa.string(), safe=False)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _copy_table(session: Session, folder: Path, table: str, indexed: set[str]) -> int:
    """Create ``table`` from the Parquet files of ``folder`` by COPY (CSV with every value quoted, so an
    empty text stays empty and a missing value is NULL); index the columns queries look entities up by."""
    dataset = ds.dataset(str(folder), format="parquet")
    columns = ", ".join(f'"{f.name}" {_pg_type(f.type)}' for f in dataset.schema)
    connection = session.connection()
    connection.execute(text(f"CREATE TABLE {table} ({columns})"))
    driver: Any = connection.connection.driver_connection  # psycopg's connection, in the same transaction
    rows = 0
    options = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
    with driver.cursor() as cursor, cursor.copy(f"COPY {table} FROM STDIN WITH (FORMAT csv)") as copy:
        for batch in dataset.to_batches(batch_size=50_000):
            buffer = io.BytesIO()
            pacsv.write_csv(_as_csv_friendly(batch), buffer, options)
            copy.write(buffer.getvalue())
            rows += batch.num_rows
    for column in sorted(indexed & set(dataset.schema.names)):
        digest = hashlib.sha1(f"{table}.{column}".encode(), usedforsecurity=False).hexdigest()[:8]
        connection.execute(text(f'CREATE INDEX ix_{table}_{digest} ON {table} ("{column}")'))
    connection.execute(text(f"ANALYZE {table}"))
    return rows


def _looked_up(schema: Schema, target: str) -> set[str]:
    """The columns of ``target`` a query finds rows by: its key, and both ends of every relation to it."""
    columns = {schema.entity(target).key}
    for entity in schema.entities.values():
        for relation in entity.relations.values():
            if entity.name == target:
                columns.add(relation.our_field)
            if relation.target == target:
                columns.add(relation.their_field)
    return columns


def copied_registers(session: Session, lake_dir: Path, targets: dict[str, str], schema: Schema) -> dict[str, str]:
    """The PostgreSQL tables holding the live registers: a version is copied from its Parquet files on its
    first use (in the caller's transaction, under an advisory lock so that one process copies it) and the
    copy of the version before is dropped."""
    folders = live_folders(session, lake_dir, targets)

    def current() -> dict[str, RegisterCopy]:
        return {c.target: c for c in session.scalars(select(RegisterCopy).execution_options(populate_existing=True))}

    def stale(copies: dict[str, RegisterCopy]) -> list[str]:
        return [t for t, (folder, _v) in folders.items() if t not in copies or copies[t].source != str(folder)]

    copies = current()
    if stale(copies):
        session.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": COPY_LOCK})
        copies = current()  # another process may have copied it while this one waited
        for target in stale(copies):
            folder, version = folders[target]
            digest = hashlib.sha1(str(folder).encode(), usedforsecurity=False).hexdigest()[:10]
            table = f"benefit_copy_{target}_{version}_{digest}"
            session.execute(text(f"DROP TABLE IF EXISTS {table}"))
            rows = _copy_table(session, folder, table, _looked_up(schema, target))
            copy = copies.get(target)
            if copy is None:
                copy = copies[target] = RegisterCopy(target=target)
                session.add(copy)
            else:
                session.execute(text(f"DROP TABLE IF EXISTS {copy.table_name}"))
            copy.version, copy.source, copy.table_name = version, str(folder), table
            copy.rows, copy.copied_at = rows, utcnow()
        session.flush()
    return {target: copies[target].table_name for target in folders}


class PostgresRegisters(Registers):
    """The copies in PostgreSQL, read through the session's connection (the unit of work's transaction)."""

    dialect = "postgresql"

    def __init__(self, session: Session, tables: dict[str, str], schema: Schema) -> None:
        self.session, self.tables, self.schema = session, tables, schema

    def in_keys(self, column: str) -> str:
        """``column`` is one of the array ``:keys``."""
        return f'"{column}" = ANY(:keys)'

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The rows of a query as dicts, through a server-side cursor."""
        statement = text(sql).execution_options(stream_results=True, max_row_buffer=10_000)
        result = self.session.execute(statement, params or {})
        try:
            for row in result.mappings():
                yield dict(row)
        finally:  # also when the caller stops early: the cursor would hold the tables it read
            result.close()


def registers_for(session: Session, lake_dir: Path, targets: dict[str, str], schema_of: SchemaOf) -> Registers:
    """The live registers in the engine of the session's database: PostgreSQL evaluates its own copies,
    anything else the in-memory DuckDB database."""
    if session.get_bind().dialect.name == "postgresql":
        schema = schema_of(session)
        return PostgresRegisters(session, copied_registers(session, lake_dir, targets, schema), schema)
    return DuckDBRegisters(loaded_registers(session, lake_dir, targets, schema_of))

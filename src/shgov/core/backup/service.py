"""Taking a backup set and restoring one (see ``docs/operations.md``, 灾备).

A backup set is made in an order that keeps it consistent while the platform serves:

1. ``audit/`` (``BEFORE_SNAPSHOT``, and the checkpoint folder when the settings keep it elsewhere): the
   audit checkpoints name records of the database's chain, so they are copied before the database and are
   never newer than it (a newer one would read as records cut from the chain);
2. the **database**, as one snapshot: SQLite through its online backup API (one step, one read transaction,
   writers go on in WAL mode); PostgreSQL by ``pg_dump`` from an exported snapshot, or by ``pg_basebackup``.
   Under the same snapshot the row count of every table and the **lake view** are read: the version of each
   lake dataset the database names as live (contexts provide it: ``service.lake_versions``);
3. the **lake**: version folders up to the view's version, and ``CURRENT`` written from the view — never
   copied from the live pointer, which moves before the database commits and would name a version the
   snapshot does not know (a later version's folder, left out, would also block the next load's number);
4. the rest of the **data folder** (uploads, models, the sensing log, …): whatever the database names was
   written before it committed, so copying after the snapshot finds it. New folders are covered without
   a change here; caches and writes in flight (``SKIPPED``, dot-names) are left out;
5. the **keys** (``keys/``, ``*.key``, ``*.pem`` and a licence key kept outside the data folder), sealed
   with a passphrase into ``keys.enc`` — never copied in clear;
6. the **manifest**: every file with its size and SM3, its own SM3 written last.

A restore checks the manifest and every file, and opens the keys, before it writes anything; it writes
only into an empty folder and an empty database.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, func, inspect, select, table, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from shgov.core.backup import postgres as pg
from shgov.core.backup.archive import (
    FORMAT,
    BackupError,
    Entry,
    cipher_name,
    copy_file,
    describe,
    pack_keys,
    read_manifest,
    seal,
    unpack_keys,
    unseal,
    verify_files,
    write_bytes,
    write_manifest,
)
from shgov.core.db import utcnow
from shgov.core.settings import Settings

LakeViews = Callable[[Session], Mapping[str, int]]
Progress = Callable[[str], None]

# Caches and scratch space the platform rebuilds: DuckDB's spill files, other ingest nodes' live values
# (seconds old), open-data downloads (written again from the lake on first use).
SKIPPED = ("tmp", "sensing/live", "opendata/downloads")
# Copied before the database snapshot: they refer to rows of the database (see the module docstring).
BEFORE_SNAPSHOT = ("audit",)
# Secrets: sealed with the passphrase, never copied in clear.
SECRET_FOLDERS = ("keys",)
SECRET_SUFFIXES = (".key", ".pem")
# Key files that settings may place outside the data folder: (section, setting) → default place inside it.
# Kept outside, they are sealed as ``external/<setting>`` and restored to the restoring settings' place.
KEY_SETTINGS = {
    ("services", "licence_key_file"): "keys/licence-sm2.key",
    ("security", "audit_key_file"): "keys/audit-hmac.key",
    ("security", "audit_signing_key_file"): "keys/audit-sm2.key",
}

_VERSION = re.compile(r"v=(\d+)")


@dataclass(frozen=True)
class Layout:
    """Where the platform keeps what a backup covers, from the settings."""

    data_dir: Path
    lake_dir: Path
    database_url: str
    backend: str
    sqlite_file: Path | None
    key_files: dict[str, Path]  # setting → where the key is (configured, or its default in the data folder)
    checkpoint_dir: Path | None  # the audit checkpoints, when set outside the data folder

    @classmethod
    def of(cls, settings: Settings) -> Layout:
        """The layout the settings describe."""
        url = make_url(settings.database.url)
        backend = url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise BackupError(f"backups cover SQLite and PostgreSQL, not {backend}")
        sqlite_file = Path(url.database).absolute() if backend == "sqlite" and url.database else None
        if backend == "sqlite" and (sqlite_file is None or url.database == ":memory:"):
            raise BackupError("an in-memory SQLite database cannot be backed up")
        data_dir = settings.data_dir.absolute()
        key_files = {}
        for (section, name), default in KEY_SETTINGS.items():
            # getattr: a setting this build does not have simply has its default place.
            configured = getattr(getattr(settings, section), name, None)
            key_files[name] = Path(configured).absolute() if configured else data_dir / default
        checkpoints = getattr(settings.security, "audit_checkpoint_dir", None)
        checkpoint_dir = Path(checkpoints).absolute() if checkpoints else None
        if checkpoint_dir is not None and checkpoint_dir.is_relative_to(data_dir):
            checkpoint_dir = None  # inside the data folder: covered with it
        return cls(
            data_dir,
            settings.lake_dir.absolute(),
            settings.database.url,
            backend,
            sqlite_file,
            key_files,
            checkpoint_dir,
        )

    def external_keys(self) -> dict[str, Path]:
        """The key files kept outside the data folder, by setting."""
        return {name: path for name, path in self.key_files.items() if not path.is_relative_to(self.data_dir)}

    @property
    def lake_inside(self) -> bool:
        """Whether the lake lives inside the data folder (the default)."""
        return self.lake_dir.is_relative_to(self.data_dir)

    def sqlite_files(self) -> set[Path]:
        """The live SQLite file and its companions (backed up through the backup API, never copied)."""
        if self.sqlite_file is None:
            return set()
        return {self.sqlite_file, *(self.sqlite_file.with_name(self.sqlite_file.name + s) for s in _SQLITE_SIDES)}


_SQLITE_SIDES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class BackupResult:
    """What ``backup`` wrote."""

    path: Path
    digest: str
    files: int
    bytes: int
    snapshot_at: datetime
    tables: dict[str, int] | None
    lake_view: dict[str, int] | None
    keys: int


@dataclass
class RestoreResult:
    """What ``restore`` restored."""

    tables: dict[str, int]
    lake_view: dict[str, int]
    files: int = 0
    bytes: int = 0
    keys: int = 0
    recovered_to: datetime | None = None  # PostgreSQL point-in-time: the last transaction replayed
    moved_aside: list[Path] = field(default_factory=list)


# -- reading a database's state --------------------------------------------------------------------------


def count_rows(connection: Connection) -> dict[str, int]:
    """The row count of every table of the database."""
    names = sorted(inspect(connection).get_table_names())
    return {name: int(connection.scalar(select(func.count()).select_from(table(name))) or 0) for name in names}


def _state(connection: Connection, views: LakeViews) -> tuple[dict[str, int], dict[str, int]]:
    with Session(bind=connection) as session:
        view = {str(k): int(v) for k, v in views(session).items()}
    return count_rows(connection), view


@contextlib.contextmanager
def _connect(url: str) -> Iterator[Connection]:
    """A plain connection to ``url`` (no pool, none of the app's SQLite settings: it must not turn a backup
    copy into WAL mode)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


# -- backup ----------------------------------------------------------------------------------------------


@dataclass
class _Snapshot:
    info: dict[str, Any]
    entries: list[Entry]
    at: datetime
    tables: dict[str, int] | None
    view: dict[str, int] | None


def _snapshot_sqlite(layout: Layout, dest: Path, views: LakeViews) -> _Snapshot:
    source = layout.sqlite_file
    assert source is not None  # noqa: S101 - a SQLite layout always names its file
    if not source.exists():
        raise BackupError(f"there is no database at {source}")
    path = "database/shgov.db"
    out = dest / path
    out.parent.mkdir(parents=True, exist_ok=True)
    at = utcnow()
    live = sqlite3.connect(source, timeout=60)
    try:
        copy = sqlite3.connect(out)
        try:
            # One step (pages=-1): the whole copy is one read transaction, so it is one consistent snapshot,
            # and in WAL mode the platform's writers are not held up by it.
            live.backup(copy, pages=-1)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            copy.close()
    finally:
        live.close()
    with _connect(f"sqlite:///{out}") as connection:
        tables, view = _state(connection, views)
    return _Snapshot({"backend": "sqlite", "file": path}, [describe(dest, path)], at, tables, view)


def _snapshot_pg_dump(layout: Layout, dest: Path, views: LakeViews) -> _Snapshot:
    conn = pg.Conn.of(layout.database_url)
    major = pg.server_major(conn)
    path = "database/dump.pgc"
    (dest / "database").mkdir(parents=True, exist_ok=True)
    with _connect(layout.database_url) as connection:
        snapshot_conn = connection.execution_options(isolation_level="REPEATABLE READ")
        with snapshot_conn.begin():
            # pg_dump reads under this transaction's snapshot, and so do the counts and the lake view.
            snapshot = str(snapshot_conn.scalar(text("SELECT pg_export_snapshot()")))
            at = snapshot_conn.scalar(text("SELECT transaction_timestamp()"))
            pg.dump(conn, dest / path, snapshot=snapshot, major=major)
            tables, view = _state(snapshot_conn, views)
    assert isinstance(at, datetime)  # noqa: S101 - timestamptz comes back as datetime
    info = {
        "backend": "postgresql",
        "method": "dump",
        "file": path,
        "database": conn.database,
        "user": conn.user,
        "major": major,
    }
    return _Snapshot(info, [describe(dest, path)], at, tables, view)


def _snapshot_pg_base(layout: Layout, dest: Path) -> _Snapshot:
    conn = pg.Conn.of(layout.database_url)
    major = pg.server_major(conn)
    with conn.connect() as db:
        row = db.execute("SELECT now()").fetchone()
    pg.base_backup(conn, dest / "database" / "base", major=major)
    with conn.connect() as db:
        end = db.execute("SELECT now()").fetchone()
    started, ended = (row or [None])[0], (end or [None])[0]
    if not isinstance(started, datetime) or not isinstance(ended, datetime):
        raise BackupError("the server did not say what time it is")
    entries = [describe(dest, f"database/base/{p.name}") for p in sorted((dest / "database" / "base").iterdir())]
    info = {
        "backend": "postgresql",
        "method": "base",
        "database": conn.database,
        "user": conn.user,
        "major": major,
        # The base backup is consistent once the WAL written during it is replayed: any later time is a
        # point it can recover to.
        "recoverable_from": ended.isoformat(),
        "start_segment": pg.start_segment(dest / "database" / "base" / "base.tar"),
    }
    # The lake view is read at restore time from the recovered database.
    return _Snapshot(info, entries, started, None, None)


def _is_secret(rel: str) -> bool:
    return rel.split("/", 1)[0] in SECRET_FOLDERS or rel.endswith(SECRET_SUFFIXES)


def _walk(root: Path, skip: set[Path]) -> Iterator[tuple[str, Path]]:
    """The files under ``root`` in a stable order, without ``skip`` and without dot-names: the platform
    writes a dot-named temporary and renames it, so those are writes in flight."""
    if not root.exists():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and here / d not in skip)
        for name in sorted(filenames):
            path = here / name
            if name.startswith(".") or name.endswith((".tmp", ".partial")) or path in skip:
                continue
            yield path.relative_to(root).as_posix(), path


def _copy_all(files: Iterator[tuple[str, Path]], dest: Path, prefix: str) -> list[Entry]:
    entries = []
    for rel, path in files:
        try:
            entries.append(copy_file(path, dest, f"{prefix}/{rel}"))
        except FileNotFoundError:
            continue  # removed since it was listed (a log segment turned into Parquet): not part of the set
    return entries


def _lake_files(lake_dir: Path, view: Mapping[str, int] | None) -> Iterator[tuple[str, Path]]:
    """The lake's files, without the pointers and the versions newer than the view of the datasets it names."""
    for rel, path in _walk(lake_dir, set()):
        parts = rel.split("/")
        if view is not None and parts[0] in view and len(parts) >= 2:
            if parts[1] == "CURRENT":
                continue
            found = _VERSION.fullmatch(parts[1])
            if found and len(parts) > 2 and int(found.group(1)) > view[parts[0]]:
                continue
        yield rel, path


def _pointer(version: int) -> bytes:
    return f"v={version:06d}\n".encode()


def _secret_files(layout: Layout) -> dict[str, Path]:
    found = {f"data/{rel}": path for rel, path in _walk(layout.data_dir, _skipped(layout)) if _is_secret(rel)}
    for name, path in layout.external_keys().items():
        if path.exists():
            found[f"external/{name}"] = path
    return found


def _skipped(layout: Layout) -> set[Path]:
    skip = {layout.data_dir / name for name in SKIPPED} | layout.sqlite_files()
    if layout.lake_inside:
        skip.add(layout.lake_dir)
    return skip


def backup(
    settings: Settings,
    dest: Path,
    *,
    lake_views: LakeViews,
    passphrase: str | None = None,
    keys: bool = True,
    pg_method: str = "dump",
    progress: Progress | None = None,
) -> BackupResult:
    """Write a backup set of everything the platform holds into ``dest`` (a new or empty folder outside
    the data folder), while the platform serves. See the module docstring for what and in which order."""
    step = progress or (lambda _message: None)
    layout = Layout.of(settings)
    if pg_method not in ("dump", "base"):
        raise BackupError("--pg-method is dump or base")
    if keys and not passphrase:
        raise BackupError(
            "the keys are backed up sealed with a passphrase: give one (--passphrase-file or "
            "SHGOV_BACKUP_PASSPHRASE), or leave the keys out (--no-keys) and keep them yourself"
        )
    dest = dest.absolute()
    for root in (layout.data_dir, layout.lake_dir):
        if dest.is_relative_to(root):
            raise BackupError(f"the backup cannot go inside {root}, which it backs up")
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: a backup set goes into a new or empty folder")
    dest.mkdir(parents=True, exist_ok=True)
    started = utcnow()
    skip = _skipped(layout)
    entries: list[Entry] = []
    before = [layout.data_dir / name for name in BEFORE_SNAPSHOT]
    for folder in before:
        step(f"copying {folder.name}/")
        files = (
            (f"{folder.name}/{rel}", p) for rel, p in _walk(folder, skip) if not _is_secret(f"{folder.name}/{rel}")
        )
        entries += _copy_all(files, dest, "data")
    if layout.checkpoint_dir is not None:
        entries += _copy_all(_walk(layout.checkpoint_dir, set()), dest, "checkpoints")
    step("taking the database snapshot")
    if layout.backend == "sqlite":
        snap = _snapshot_sqlite(layout, dest, lake_views)
    elif pg_method == "dump":
        snap = _snapshot_pg_dump(layout, dest, lake_views)
    else:
        snap = _snapshot_pg_base(layout, dest)
    entries += snap.entries
    step("copying the lake")
    entries += _copy_all(_lake_files(layout.lake_dir, snap.view), dest, "lake")
    for dataset, version in sorted((snap.view or {}).items()):
        if version > 0:
            entries.append(write_bytes(dest, f"lake/{dataset}/CURRENT", _pointer(version)))
    step("copying the data folder")
    rest = ((rel, p) for rel, p in _walk(layout.data_dir, skip | set(before)) if not _is_secret(rel))
    entries += _copy_all(rest, dest, "data")
    sealed_keys: dict[str, Any] | None = None
    secrets = _secret_files(layout) if keys else {}
    if keys:
        step("sealing the keys")
        blob = seal(pack_keys(secrets), passphrase or "")
        entries.append(write_bytes(dest, "keys.enc", blob))
        sealed_keys = {"file": "keys.enc", "cipher": cipher_name(blob), "kdf": "scrypt", "names": sorted(secrets)}
    manifest = {
        "format": FORMAT,
        "started_at": started.isoformat(),
        "finished_at": utcnow().isoformat(),
        "snapshot_at": snap.at.isoformat(),
        "database": snap.info,
        "tables": snap.tables,
        "lake_view": snap.view,
        "keys": sealed_keys,
        "sources": {"data_dir": str(layout.data_dir), "lake_dir": str(layout.lake_dir)},
        "files": [e.as_json() for e in entries],
    }
    step("writing the manifest")
    digest = write_manifest(dest, manifest)
    return BackupResult(
        dest, digest, len(entries), sum(e.size for e in entries), snap.at, snap.tables, snap.view, len(secrets)
    )


# -- restore ---------------------------------------------------------------------------------------------


def verify_backup(source: Path) -> dict[str, Any]:
    """The manifest of the set at ``source`` once it and every file it lists check out (``BackupError``
    naming the damage otherwise)."""
    manifest = read_manifest(source)
    verify_files(source, manifest["files"])
    return manifest


def _occupied(path: Path) -> bool:
    return path.exists() and (path.is_file() or any(path.iterdir()))


def _check_targets(layout: Layout, force: bool, secrets: Mapping[str, bytes]) -> list[Path]:
    """Check that every target is empty; with ``force``, return the occupied folders to move aside. Nothing
    is written here."""
    places = [layout.data_dir]
    if not layout.lake_inside:
        places.append(layout.lake_dir)
    if layout.checkpoint_dir is not None:
        places.append(layout.checkpoint_dir)
    if layout.sqlite_file is not None and not layout.sqlite_file.is_relative_to(layout.data_dir):
        places.extend(p for p in sorted(layout.sqlite_files()) if p.exists())
    occupied = [p for p in places if _occupied(p)]
    if occupied and not force:
        raise BackupError(
            f"{', '.join(map(str, occupied))} is not empty: restore into an empty folder (or --force to move "
            "what is there aside)"
        )
    if layout.backend == "postgresql" and not pg.is_empty(pg.Conn.of(layout.database_url)):
        raise BackupError("the target database is not empty: restore into a new, empty database (createdb)")
    for name, path in layout.external_keys().items():
        sealed = secrets.get(f"external/{name}")
        if sealed is not None and path.exists() and path.read_bytes() != sealed:
            raise BackupError(f"{path} ({name}) holds another key than the backup's; move it away first")
    return occupied


def _move_aside(paths: list[Path]) -> list[Path]:
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    moved = []
    for path in paths:
        aside = path.with_name(f"{path.name}.replaced-{stamp}")
        path.rename(aside)
        moved.append(aside)
    return moved


def _check_lake(files: list[dict[str, Any]], view: Mapping[str, int]) -> None:
    """Refuse when the database names a lake version the set does not hold."""
    held = {tuple(str(f["path"]).split("/")[1:3]) for f in files if str(f["path"]).startswith("lake/")}
    missing = [f"{d} v={v:06d}" for d, v in sorted(view.items()) if v > 0 and (d, f"v={v:06d}") not in held]
    if missing:
        raise BackupError(
            "the database names lake versions this backup set does not hold (they were loaded after it was "
            f"taken): {', '.join(missing[:5])}; recover to an earlier time or restore a later backup"
        )


def reconcile_lake(lake_dir: Path, view: Mapping[str, int]) -> None:
    """Point each dataset the view names at the view's version and remove its newer version folders (so
    that the next load or build, numbered from the database, finds its number free)."""
    for dataset, version in view.items():
        folder = lake_dir / dataset
        if not folder.exists():
            continue
        for child in folder.iterdir():
            found = _VERSION.fullmatch(child.name)
            if found and child.is_dir() and int(found.group(1)) > version:
                shutil.rmtree(child)
        pointer = folder / "CURRENT"
        if version > 0:
            tmp = folder / ".CURRENT-restore"
            tmp.write_bytes(_pointer(version))
            tmp.replace(pointer)
        else:
            pointer.unlink(missing_ok=True)


def _restore_files(source: Path, files: list[dict[str, Any]], layout: Layout) -> tuple[int, int]:
    roots = {
        "data": layout.data_dir,
        "lake": layout.lake_dir,
        "checkpoints": layout.checkpoint_dir or layout.data_dir / "audit" / "checkpoints",
    }
    count = size = 0
    for item in files:
        prefix, _, rel = str(item["path"]).partition("/")
        root = roots.get(prefix)
        if root is None:
            continue
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / str(item["path"]), target)
        count += 1
        size += int(item["size"])
    return count, size


def _write_keys(secrets: Mapping[str, bytes], layout: Layout) -> None:
    for name, data in secrets.items():
        prefix, _, rel = name.partition("/")
        # A key kept outside the data folder goes where the restoring settings keep it (or to its default).
        target = (
            layout.key_files.get(rel, layout.data_dir / "keys" / rel) if prefix == "external" else layout.data_dir / rel
        )
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if target.exists() and target.read_bytes() == data:
            continue
        handle = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(handle, "wb") as out:
            out.write(data)


def restore(
    settings: Settings,
    source: Path,
    *,
    lake_views: LakeViews,
    passphrase: str | None = None,
    keys: bool = True,
    force: bool = False,
    wal_archive: Path | None = None,
    to_time: datetime | None = None,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore the set at ``source`` into the places ``settings`` name: an empty data folder (and lake
    folder) and an empty database of the same kind. PostgreSQL base backups replay ``wal_archive`` up to
    ``to_time`` (its end when no time is given). Everything is checked before anything is written."""
    step = progress or (lambda _message: None)
    layout = Layout.of(settings)
    step("checking the backup set")
    manifest = verify_backup(source)
    db = manifest["database"]
    if db["backend"] != layout.backend:
        raise BackupError(f"this is a {db['backend']} backup; the settings name a {layout.backend} database")
    base = db.get("method") == "base"
    if (wal_archive is not None or to_time is not None) and not base:
        raise BackupError("a point in time needs a PostgreSQL base backup (--pg-method base) and its WAL archive")
    if to_time is not None:
        if to_time.tzinfo is None:
            raise BackupError("the point in time needs a time zone")
        if to_time < datetime.fromisoformat(db["recoverable_from"]):
            raise BackupError(
                f"{to_time.isoformat()} is before this base backup was complete ({db['recoverable_from']}): "
                "restore an earlier backup"
            )
    secrets: dict[str, bytes] = {}
    if manifest["keys"] and keys:
        if not passphrase:
            raise BackupError("the backup's keys are sealed: give the passphrase, or --no-keys to leave them out")
        secrets = unpack_keys(unseal((source / manifest["keys"]["file"]).read_bytes(), passphrase))
    occupied = _check_targets(layout, force, secrets)
    with contextlib.ExitStack() as stack:
        if base:
            # Recovered in a private server first: its lake view is checked before anything is written.
            server, result = _recover_base(
                stack, source, manifest, views=lake_views, wal_archive=wal_archive, to_time=to_time, step=step
            )
            moved = _move_aside(occupied)
            step("copying the recovered database into the target")
            dump = server.home / "recovered.pgc"
            pg.dump(server.conn(manifest["database"]["database"]), dump, major=server.major)
            pg.restore_dump(pg.Conn.of(layout.database_url), dump, major=server.major)
        else:
            moved = _move_aside(occupied)
            result = _restore_snapshot(source, manifest, layout, lake_views, step)
        step("copying the data folder and the lake")
        result.files, result.bytes = _restore_files(source, manifest["files"], layout)
        _write_keys(secrets, layout)
        result.keys = len(secrets)
        reconcile_lake(layout.lake_dir, result.lake_view)
    step("counting the restored rows")
    with _connect(layout.database_url) as connection:
        restored = count_rows(connection)
    if restored != result.tables:
        differ = sorted(t for t in set(restored) | set(result.tables) if restored.get(t) != result.tables.get(t))
        raise BackupError(f"the restored database differs from the backup in {', '.join(differ[:5])}")
    result.moved_aside = moved
    return result


def _restore_snapshot(
    source: Path, manifest: dict[str, Any], layout: Layout, views: LakeViews, step: Progress
) -> RestoreResult:
    db = manifest["database"]
    step("restoring the database")
    if layout.backend == "sqlite":
        target = layout.sqlite_file
        assert target is not None  # noqa: S101 - a SQLite layout always names its file
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.restore")
        shutil.copyfile(source / db["file"], tmp)
        tmp.replace(target)
    else:
        pg.restore_dump(pg.Conn.of(layout.database_url), source / db["file"])
    with _connect(layout.database_url) as connection, Session(bind=connection) as session:
        view = {str(k): int(v) for k, v in views(session).items()}
    return RestoreResult(dict(manifest["tables"]), view)


def _recover_base(
    stack: contextlib.ExitStack,
    source: Path,
    manifest: dict[str, Any],
    *,
    views: LakeViews,
    wal_archive: Path | None,
    to_time: datetime | None,
    step: Progress,
) -> tuple[pg.PrivateServer, RestoreResult]:
    """The base backup recovered in a private server (stopped and removed when ``stack`` closes), with the
    recovered database's counts and lake view; refuses a view the set's lake cannot satisfy."""
    db = manifest["database"]
    # The server programs run as postgres when we are root: a fresh folder of the system's temporary space
    # (traversable by it), given to it.
    home = Path(tempfile.mkdtemp(prefix="shgov-restore-"))
    stack.callback(shutil.rmtree, home, True)
    step("extracting the base backup")
    server = pg.PrivateServer.from_base(
        home, source / "database" / "base", user=db["user"], wal_archive=wal_archive, to_time=to_time
    )
    step("replaying the WAL" if wal_archive else "recovering the base backup")
    try:
        server.start()
    except BackupError as exc:
        if "before configured recovery target" in str(exc):
            raise BackupError(
                f"the WAL archive ends before {to_time.isoformat() if to_time else 'the asked time'}: restore "
                "without --to-time to recover to the archive's end"
            ) from exc
        raise
    stack.enter_context(server)
    with _connect(server.url(db["database"])) as connection:
        tables, view = _state(connection, views)
        replayed = connection.scalar(text("SELECT pg_last_xact_replay_timestamp()"))
    _check_lake(manifest["files"], view)
    return server, RestoreResult(tables, view, recovered_to=replayed if isinstance(replayed, datetime) else None)

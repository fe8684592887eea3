"""``shgov backup``, ``shgov restore`` and ``shgov archive-wal``: added to the root command by ``add_commands``,
which the composition root calls with the contexts' lake views (core knows no context)."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from shgov.core.backup import postgres as pg
from shgov.core.backup.archive import BackupError
from shgov.core.backup.service import LakeViews, backup, restore, verify_backup
from shgov.core.cli import console, err, fail, load_settings

PASSPHRASE_ENV = "SHGOV_BACKUP_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret


def passphrase_from(file: Path | None) -> str | None:
    """The passphrase: the first line of ``file`` when given, else ``SHGOV_BACKUP_PASSPHRASE``, else none."""
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            fail(f"cannot read the passphrase file: {exc}", 2)
        return lines[0] if lines and lines[0] else None
    return os.environ.get(PASSPHRASE_ENV) or None


def parse_time(value: str, zone: str) -> datetime:
    """An ISO 8601 time; without an offset it is read in the city's time zone (as the lake reads times)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--to-time {value!r} is not an ISO 8601 time (e.g. 2026-12-07T10:30:00+08:00)", 2)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=ZoneInfo(zone))


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"


def _progress(message: str) -> None:
    err.print(f"[dim]{message}…[/dim]")


PassphraseFile = Annotated[
    Path | None,
    typer.Option(help=f"A file whose first line is the keys' passphrase (default: ${PASSPHRASE_ENV})."),
]
NoKeys = Annotated[bool, typer.Option("--no-keys", help="Leave the keys out (you keep them another way).")]


def add_commands(app: typer.Typer, lake_views: LakeViews) -> None:
    """Add ``backup``, ``restore`` and ``archive-wal`` to ``app``; ``lake_views`` reads, in a session, the lake
    version of each dataset the database names as live."""

    @app.command("backup")
    def backup_command(
        dest: Annotated[Path, typer.Argument(help="A new or empty folder for the set, outside the data folder.")],
        passphrase_file: PassphraseFile = None,
        no_keys: NoKeys = False,
        pg_method: Annotated[
            str,
            typer.Option(
                help="PostgreSQL: dump (pg_dump of a snapshot) or base (pg_basebackup; with archive-wal "
                "for point-in-time recovery)."
            ),
        ] = "dump",
    ) -> None:
        """Back up everything (database, lake, files, keys, audit checkpoints) while the platform serves."""
        settings = load_settings()
        started = time.perf_counter()
        try:
            result = backup(
                settings,
                dest,
                lake_views=lake_views,
                passphrase=passphrase_from(passphrase_file),
                keys=not no_keys,
                pg_method=pg_method,
                progress=_progress,
            )
        except BackupError as exc:
            fail(f"no backup: {exc}")
        console.print(
            f"backup set {result.path}: {result.files:,} files, {_size(result.bytes)}, "
            f"snapshot at {result.snapshot_at.isoformat(timespec='seconds')}, {time.perf_counter() - started:.1f} s"
        )
        if result.tables is not None:
            console.print(f"  database: {len(result.tables)} tables, {sum(result.tables.values()):,} rows")
        console.print(f"  keys: {result.keys} sealed" if not no_keys else "  keys: left out (--no-keys)")
        console.print(f"  manifest SM3 {result.digest}")

    @app.command("restore")
    def restore_command(
        source: Annotated[Path, typer.Argument(help="The backup set's folder.")],
        passphrase_file: PassphraseFile = None,
        no_keys: NoKeys = False,
        force: Annotated[
            bool, typer.Option("--force", help="Move a non-empty data folder aside (renamed) instead of refusing.")
        ] = False,
        wal: Annotated[
            Path | None, typer.Option(help="PostgreSQL base backups: the WAL archive (archive-wal).")
        ] = None,
        to_time: Annotated[
            str | None, typer.Option(help="PostgreSQL base backups: recover to this time (ISO 8601) with --wal.")
        ] = None,
        verify_only: Annotated[bool, typer.Option("--verify-only", help="Only check the set; write nothing.")] = False,
    ) -> None:
        """Restore a backup set into an empty data folder and an empty database (checked before writing)."""
        settings = load_settings()
        started = time.perf_counter()
        if verify_only:
            try:
                manifest = verify_backup(source)
            except BackupError as exc:
                fail(str(exc))
            console.print(
                f"backup set {source} holds: {len(manifest['files']):,} files, "
                f"{_size(sum(f['size'] for f in manifest['files']))}, every SM3 checks; "
                f"snapshot at {manifest['snapshot_at']}"
            )
            return
        moment = parse_time(to_time, settings.timezone) if to_time else None
        try:
            result = restore(
                settings,
                source,
                lake_views=lake_views,
                passphrase=passphrase_from(passphrase_file),
                keys=not no_keys,
                force=force,
                wal_archive=wal,
                to_time=moment,
                progress=_progress,
            )
        except BackupError as exc:
            fail(f"not restored: {exc}")
        for aside in result.moved_aside:
            console.print(f"moved aside: {aside}")
        console.print(
            f"restored {result.files:,} files ({_size(result.bytes)}), {result.keys} keys, "
            f"{len(result.tables)} tables with {sum(result.tables.values()):,} rows (equal to the backup's), "
            f"{time.perf_counter() - started:.1f} s"
        )
        if result.recovered_to is not None:
            console.print(f"  recovered to the transaction of {result.recovered_to.isoformat()}")
        console.print("  next: shgov audit verify")

    @app.command("archive-wal")
    def archive_wal_command(
        archive: Annotated[Path, typer.Argument(help="The WAL archive folder (on another disk or machine).")],
        slot: Annotated[str, typer.Option(help="The replication slot that holds WAL for the archive.")] = pg.SLOT,
    ) -> None:
        """PostgreSQL: stream the WAL into ARCHIVE until stopped (run it as a service), for point-in-time
        recovery from base backups."""
        settings = load_settings()
        try:
            conn = pg.Conn.of(settings.database.url)
            process = pg.stream_wal(conn, archive, slot=slot, major=pg.server_major(conn))
        except (BackupError, OSError) as exc:
            fail(f"not streaming: {exc}")
        console.print(f"streaming WAL into {archive} through slot {slot} (Ctrl-C stops)")
        try:
            code = process.wait()
        except KeyboardInterrupt:
            process.terminate()
            code = process.wait()
            return
        if code != 0:
            fail(f"pg_receivewal stopped with exit code {code}")

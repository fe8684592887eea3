"""``shgov sensing``: import devices in bulk."""

from __future__ import annotations

from pathlib import Path

import typer

from shgov.core.cli import console, fail, load_settings, open_database
from shgov.core.errors import DomainError

app = typer.Typer(help="城市运行数字体征: devices of the sensing network.", no_args_is_help=True)


@app.command("import-devices")
def import_devices(
    source: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV (UTF-8) or Parquet of devices."),
    partial: bool = typer.Option(False, help="Write the good rows even when some are refused."),
) -> None:
    """Add or update devices: device_id, type, department, lng, lat (and status, name)."""
    from shgov.core.regions.service import RegionIndex
    from shgov.sensing import service as sensing

    settings = load_settings()
    db = open_database(settings)
    with db.session() as session:
        try:
            frame = sensing.read_devices(source.name, source.read_bytes())
            result = sensing.import_devices(session, RegionIndex.from_session(session), frame, partial=partial)
        except DomainError as exc:
            fail(f"not imported: {exc.message}", 2)
        for refused in result.refusals[:20]:
            console.print(f"row {refused.row} ({refused.device_id or '—'}): {refused.reason}")
        if not result.written:
            session.rollback()
            fail(f"not imported: {result.refused:,} of {result.rows:,} rows refused (use --partial to take the rest)")
    console.print(
        f"{result.rows:,} rows: {result.created:,} devices added, {result.updated:,} updated, "
        f"{result.refused:,} refused, in {result.seconds:.1f} s"
    )

"""``shgov ratings``: the periodic sweep (invitations, supervision) and the statistics as a file."""

from __future__ import annotations

from pathlib import Path

import typer

from shgov.core.cli import console, fail, load_settings, open_database

app = typer.Typer(help="好差评: invitations, supervision of overdue rectifications, statistics.", no_args_is_help=True)


@app.command("sweep")
def sweep_command() -> None:
    """Invite the applicants of concluded, unrated cases and supervise overdue rectifications.

    Run it from cron (e.g. hourly); it is idempotent."""
    from shgov.ratings import service as ratings

    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            done = ratings.sweep(session)
        console.print(f"invited {done.invited}, put under supervision {done.supervised}")
    finally:
        db.dispose()


@app.command("export")
def export_command(
    target: Path = typer.Argument(..., dir_okay=False, help="the file to write: .csv or .xlsx"),
) -> None:
    """Recompute every figure from the ratings and write them to a CSV or XLSX file."""
    from shgov.ratings import stats

    if target.suffix not in (".csv", ".xlsx"):
        fail("the file must end in .csv or .xlsx")
    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            rows = stats.from_session(session)
        target.write_bytes(stats.to_csv(rows) if target.suffix == ".csv" else stats.to_xlsx(rows))
        console.print(f"{len(rows)} rows written to {target}")
    finally:
        db.dispose()

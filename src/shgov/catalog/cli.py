"""``shgov catalog``: import and export catalog entries as CSV or XLSX."""

from __future__ import annotations

from pathlib import Path

import typer

from shgov.core.cli import console, fail, load_settings, open_database
from shgov.core.errors import DomainError

app = typer.Typer(help="The data catalog (一目录 + 三清单).", no_args_is_help=True)


@app.command("export")
def export_command(
    target: Path = typer.Argument(..., help="catalog.csv or catalog.xlsx"),
    status: str = typer.Option(None, help="draft, review, published or retired (default: all)"),
) -> None:
    """Write every entry (or those of one status) with its items, in the import's columns."""
    from shgov.catalog import service as catalog

    if target.suffix.lower() not in (".csv", ".xlsx"):
        fail("the target must end in .csv or .xlsx", 2)
    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            rows = catalog.export_rows(session, catalog.list_resources(session, None, status))
        data = catalog.export_xlsx(rows) if target.suffix.lower() == ".xlsx" else catalog.export_csv(rows)
        target.write_bytes(data)
        console.print(f"{len(rows):,} entries written to {target}")
    finally:
        db.dispose()


@app.command("import")
def import_command(
    source: Path = typer.Argument(..., exists=True, dir_okay=False, help="a CSV (UTF-8 or GBK) or XLSX file"),
) -> None:
    """Create or change drafts from a file (as the system); one bad row refuses the whole file."""
    from shgov.catalog import service as catalog

    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            rows = catalog.read_import(source.read_bytes(), source.name)
            result = catalog.import_rows(session, None, rows)
        console.print(f"{len(result.created):,} drafts created, {len(result.updated):,} changed")
    except DomainError as exc:
        fail(f"nothing imported: {exc.message}", 2)
    finally:
        db.dispose()

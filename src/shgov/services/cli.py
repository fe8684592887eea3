"""``shgov services``: import and export service items and bundles."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from shgov.core.cli import console, fail, load_settings, open_database
from shgov.core.errors import DomainError

app = typer.Typer(help="政务服务事项 and 一件事 bundles: import, export.", no_args_is_help=True)


@app.command("import")
def import_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Items as .csv or .json (a list of items)."),
) -> None:
    """Import service items from a CSV or JSON export: every row is checked, nothing is saved if one is wrong."""
    from shgov.services import service as services

    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session(write=True) as session:
            counts = services.import_items(session, services.parse_items_file(file.name, file.read_bytes(), str(file)))
        console.print(f"{counts['created']:,} items created, {counts['updated']:,} updated")
    except DomainError as exc:
        fail(f"nothing imported: {exc.field or str(file)}: {exc.message}", 2)
    finally:
        db.dispose()


@app.command("export")
def export_command(
    file: Path = typer.Argument(..., dir_okay=False, help="Where to write: .csv or .json."),
) -> None:
    """Export every service item (CSV opens in Excel; JSON keeps the nested conditions and materials)."""
    from shgov.services import service as services

    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            rows = services.export_items(session)
    finally:
        db.dispose()
    if file.suffix.lower() == ".csv":
        file.write_text("\ufeff" + services.items_to_csv(rows), encoding="utf-8")
    else:
        file.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    console.print(f"{len(rows):,} items written to {file}")


@app.command("bundle")
def bundle_command(
    definition: Path = typer.Argument(..., exists=True, dir_okay=False, help="A bundle's JSON (one or a list)."),
) -> None:
    """Add or replace bundles from a JSON definition whose ``bpmn`` entries name BPMN files beside it."""
    from shgov.services import service as services

    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session(write=True) as session:
            saved = [services.save_bundle(session, entry) for entry in services.load_bundle_file(definition)]
            names = [f"{b.code} v{b.version}" for b in saved]
        console.print("saved: " + ", ".join(names))
    except DomainError as exc:
        fail(f"nothing saved: {exc.field or str(definition)}: {exc.message}", 2)
    finally:
        db.dispose()

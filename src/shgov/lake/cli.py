"""``shgov lake``: load deliveries, list loads and resources."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from shgov.core.cli import console, fail, load_settings, open_database
from shgov.core.errors import DomainError
from shgov.core.regions.service import RegionIndex
from shgov.lake import service as lake

app = typer.Typer(help="The data lake: 归集 loads, lineage and quality.", no_args_is_help=True)


@app.command("load")
def load_command(
    resource: str = typer.Argument(..., help="Resource code, e.g. population."),
    file: Path = typer.Argument(..., help="CSV (UTF-8 or GBK), XLSX, JSON Lines or Parquet."),
    mode: str = typer.Option("full", help="full (replace) or incremental (merge by key and update time)."),
    department: str | None = typer.Option(None, help="Delivering department (default: the resource's)."),
) -> None:
    """Load one delivery; rows that break hard rules are quarantined, nothing is half-written."""
    settings = load_settings()
    db = open_database(settings)
    source = lake.Source(path=file)
    try:
        with db.session() as session:
            spec = lake.get_resource(session, resource)
            index = RegionIndex.from_session(session)
        context = lake.make_context(settings.lake_dir, lake.region_codes(index))
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
        ) as progress:
            task = progress.add_task(f"{resource}: starting")
            result = lake.deliver(
                db,
                settings.lake_dir,
                resource,
                source,
                department_code=department or spec.department_code,
                mode=mode,
                context=context,
                loaded_by="cli",
                progress=lambda step: progress.update(task, description=f"{resource}: {step}"),
            )
    except DomainError as exc:
        fail(f"not loaded: {exc.message}", 2)
    finally:
        db.dispose()
    if result.status == "duplicate":
        console.print(f"[yellow]{result.message}[/yellow]")
        return
    console.print(
        f"{resource} v{result.version}: {result.rows_in:,} in, {result.rows_out:,} accepted, "
        f"{result.rows_quarantined:,} quarantined, {result.rows_total:,} in the version; "
        f"quality {result.quality_score:.2f}"
    )
    for rule, count in sorted(result.rule_counts.items()):
        console.print(f"  {rule:<40} {count:>9,}")


@app.command("loads")
def loads_command(resource: str | None = typer.Option(None), limit: int = typer.Option(20)) -> None:
    """The newest loads with their lineage."""
    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            rows = lake.list_loads(session, resource, limit=limit)
            table = Table("started", "resource", "status", "v", "in", "out", "quarantined", "score", "digest")
            for row in rows:
                table.add_row(
                    row.started_at.strftime("%Y-%m-%d %H:%M"),
                    row.resource_code,
                    row.status,
                    str(row.version or ""),
                    f"{row.rows_in:,}",
                    f"{row.rows_out:,}",
                    f"{row.rows_quarantined:,}",
                    f"{row.quality_score:.2f}" if row.quality_score is not None else "",
                    row.digest[:12],
                )
    finally:
        db.dispose()
    console.print(table)

"""``shgov sharing``: the periodic sweep of 1515 requests and grants."""

from __future__ import annotations

from pathlib import Path

import typer

from shgov.core.cli import console, fail, load_settings, open_database
from shgov.core.errors import DomainError

app = typer.Typer(help="1515 sharing: requests, grants, the gateway and cross-level exchange.", no_args_is_help=True)


@app.command("sweep")
def sweep_command() -> None:
    """Remind deciders before deadlines, escalate overdue requests, expire grants, send due notifications.

    Run it from cron (e.g. hourly); it is idempotent."""
    from shgov.sharing import service as sharing

    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            result = sharing.sweep(session)
        with db.session() as session:
            sent = sharing.deliver_due(session, settings.events.url)
        console.print(
            f"reminded {result.reminded}, escalated {result.escalated}, grants expired {result.expired}; "
            f"notifications delivered {sent.delivered}, retried {sent.retried}, dead {sent.dead}"
        )
    finally:
        db.dispose()


@app.command("exchange-key")
def exchange_key() -> None:
    """Print this node's SM2 public key (give it to the nodes that will import its packages)."""
    from shgov.sharing import exchange

    settings = load_settings()
    console.print(exchange.node_key(settings.data_dir).public)


@app.command("trust")
def trust_command(
    name: str = typer.Argument(..., help="the peer node's name, as its packages state it"),
    public_key: str = typer.Argument(..., help="the peer's SM2 public key (128 hex digits)"),
    tenant: str = typer.Option("", help="the tenant the peer serves"),
) -> None:
    """Accept packages signed by a peer node."""
    from shgov.sharing import exchange

    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            exchange.trust(session, name, public_key, tenant)
        console.print(f"packages signed by {name} are accepted")
    except DomainError as exc:
        fail(exc.message, 2)
    finally:
        db.dispose()


@app.command("export-package")
def export_package(
    resource: str = typer.Argument(..., help="the lake resource (e.g. population)"),
    target: Path = typer.Option(..., "--out", help="the package file to write (.tar)"),
    since: int = typer.Option(0, help="send the changes since this version (0: every row)"),
    node: str = typer.Option(..., help="this node's name, as peers trust it"),
) -> None:
    """Write a signed package of a resource's changes for another level or tenant."""
    from shgov.sharing import exchange

    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            manifest = exchange.export_package(
                session, settings.lake_dir, settings.data_dir, node, resource, since, target
            )
        console.print(f"package {manifest['package_id']}: {manifest['rows']:,} rows in {len(manifest['parts'])} parts")
    except DomainError as exc:
        fail(exc.message, 2)
    finally:
        db.dispose()


@app.command("import-package")
def import_package(source: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Verify a peer's package (signature, digests) and apply it; safe to repeat or resume."""
    from shgov.core.regions.service import RegionIndex
    from shgov.lake import service as lake
    from shgov.sharing import exchange

    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            context = lake.make_context(settings.lake_dir, lake.region_codes(RegionIndex.from_session(session)))
        outcome = exchange.import_package(db, settings.lake_dir, source, context)
        console.print(
            f"package {outcome.package_id}: {outcome.status}, {outcome.parts_loaded} parts, {outcome.rows:,} rows"
        )
    except DomainError as exc:
        fail(f"not imported: {exc.message}", 2)
    finally:
        db.dispose()

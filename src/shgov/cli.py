"""The ``shgov`` command: serve the app, migrate and check the database, seed the demo city."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from shgov import migrations
from shgov.contexts import CONTEXTS, context_module
from shgov.core.audit import cli as audit_cli
from shgov.core.backup import cli as backup_cli
from shgov.core.cli import console, err, fail, load_settings, open_database
from shgov.core.identity import cli as identity_cli

app = typer.Typer(
    help="SH-GOV: digital government platform (一网通办 · 一网统管 · 一体化数字底座).", no_args_is_help=True
)
db_app = typer.Typer(help="Database migrations and checks.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo city.", no_args_is_help=True)
regions_app = typer.Typer(help="Administrative divisions (五级) and grids.", no_args_is_help=True)
calendar_app = typer.Typer(help="Working days and holiday schedules.", no_args_is_help=True)
users_app = typer.Typer(help="Accounts.", no_args_is_help=True)
identity_cli.add_commands(users_app)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(regions_app, name="regions")
app.add_typer(calendar_app, name="calendar")
app.add_typer(users_app, name="users")
# Each installed context with commands (``<context>/cli.py`` exposing ``app``) is ``shgov <context> …``; its
# service is loaded as the app loads it, so that what it plugs into core (the registers' name lookup for
# in-person proofing) is there for every command.
for _context in CONTEXTS:
    context_module(_context, "service")
    _commands = context_module(_context, "cli")
    if _commands is not None:
        app.add_typer(_commands.app, name=_context)


def lake_versions(session: Session) -> dict[str, int]:
    """The live version of each lake dataset a context points ``CURRENT`` at, as the database records it
    (each context's ``service.lake_versions``): backups and restores point the lake's pointers at these."""
    versions: dict[str, int] = {}
    for context in CONTEXTS:
        provider = getattr(context_module(context, "service"), "lake_versions", None)
        if provider is not None:
            versions.update(provider(session))
    return versions


backup_cli.add_commands(app, lake_versions)


@app.callback()
def _every_command(ctx: typer.Context) -> None:
    # Every command is audited as the operating-system user who ran it (cli:<user>).
    audit_cli.start_command(ctx)


def _display_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default: SHGOV_WEB__HOST)."),
    port: int | None = typer.Option(None, help="Port (default: SHGOV_WEB__PORT)."),
    reload: bool = typer.Option(False, help="Reload on code changes (development)."),
    workers: int | None = typer.Option(None, min=1, help="Worker processes (default: SHGOV_WEB__WORKERS)."),
) -> None:
    """Serve the web app and API."""
    import uvicorn

    settings = load_settings()
    count = workers or settings.web.workers
    if reload and count > 1:
        console.print("[red]--reload runs one process: drop --workers[/red]")
        raise typer.Exit(2)
    os.environ["SHGOV_WEB__WORKERS"] = str(count)  # the workers share rate limits out by their number
    audit_cli.serving()
    uvicorn.run(
        "shgov.app:create_app",
        factory=True,
        host=host or settings.web.host,
        port=port or settings.web.port,
        reload=reload,
        workers=count,
        proxy_headers=True,
        log_config=None,
        timeout_graceful_shutdown=max(1, round(settings.web.shutdown_seconds)),
        # A worker answers the supervisor's health pings from a thread; while it imports and builds the app
        # on a busy machine that can take longer than uvicorn's 5 s, and a worker killed for it starts over.
        timeout_worker_healthcheck=60,
    )


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply the migrations."""
    settings = load_settings()
    db = open_database(settings)
    with db.engine.begin() as conn:
        before = migrations.current_revision(conn)
        migrations.upgrade(conn, revision)
        after = migrations.current_revision(conn)
    db.dispose()
    console.print(f"database {_display_url(settings.database.url)}: {before or 'empty'} → {after}")
    if after == migrations.head_revision():
        audit_cli.key_chain_after_upgrade()  # a chain written before 0024 is rehashed under the key


@db_app.command("check")
def db_check() -> None:
    """Fail (exit 1) if the database is not at the newest migration or differs from the models."""
    settings = load_settings()
    db = open_database(settings)
    with db.engine.connect() as conn:
        current, head = migrations.current_revision(conn), migrations.head_revision()
        diffs = migrations.differences(conn)
    db.dispose()
    if current != head:
        err.print(f"[red]database is at {current or 'no revision'}, the newest migration is {head}[/red]")
        err.print("run: shgov db upgrade")
        raise typer.Exit(1)
    if diffs:
        err.print("[red]the models and the migrations differ:[/red]")
        for diff in diffs:
            err.print(f"  {diff}")
        raise typer.Exit(1)
    console.print(f"database is at {head}; models and migrations agree")


@db_app.command("revision")
def db_revision(message: str = typer.Option(..., "-m", "--message", help="What the migration does.")) -> None:
    """Write a new migration from the difference between the models and the database (developers)."""
    from alembic import command

    settings = load_settings()
    command.revision(migrations.alembic_config(url=settings.database.url), message=message, autogenerate=True)


@demo_app.command("seed")
def demo_seed() -> None:
    """Seed the demo city into an empty database; parts already seeded are never seeded again."""
    from shgov.seed import seed_demo

    settings = load_settings()
    db = open_database(settings)
    try:
        report = seed_demo(db, settings)
    finally:
        db.dispose()
    for name, done in report.items():
        console.print(f"{name}: {'seeded' if done else 'already present, left as it is'}")


@demo_app.command("generate")
def demo_generate(
    persons: int = typer.Option(20_000, min=1, help="How many persons."),
    enterprises: int = typer.Option(4_000, min=1, help="How many enterprises."),
    seed: int = typer.Option(2026, help="Random seed: the same seed gives the same city."),
    defect_rate: float = typer.Option(0.02, min=0.0, max=0.5, help="Share of records with a defect."),
    out: Path | None = typer.Option(None, help="Folder for the deliveries (default: <data dir>/incoming)."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv."),
) -> None:
    """Generate a synthetic city: each department's dataset, with realistic defects."""
    from rich.progress import Progress

    from shgov.core.regions.service import RegionIndex
    from shgov.lake.synthetic import CityConfig, generate

    if fmt not in ("parquet", "csv"):
        fail("--format must be parquet or csv", 2)
    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            index = RegionIndex.from_session(session)
    finally:
        db.dispose()
    if index.city is None:
        fail("no divisions are loaded: run shgov regions load (or shgov demo seed) first", 2)
    config = CityConfig(persons=persons, enterprises=enterprises, seed=seed, defect_rate=defect_rate)
    target = out or settings.data_dir / "incoming"
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("generating", total=6)

        def advance(step: str) -> None:
            progress.update(task, advance=1, description=f"generating {step}")

        city = generate(index, config, progress=advance)
        progress.update(task, description="writing")
        files = city.write(target, fmt)
    for delivery, file in zip(city.deliveries, files, strict=True):
        console.print(
            f"{delivery.department_code:<12} {delivery.resource:<26} {delivery.frame.height:>9,} rows  {file}"
        )


@demo_app.command("info")
def demo_info() -> None:
    """Print the demo city's addresses and accounts."""
    from rich.table import Table

    from shgov.seed import demo_accounts

    settings = load_settings()
    base = settings.web.public_url.rstrip("/")
    console.print(f"[bold]SH-GOV demo — {settings.city_name}[/bold]")
    for label, path in (("web app", "/"), ("API docs", "/api/docs"), ("health", "/healthz")):
        console.print(f"  {label:<10} {base}{path}")
    accounts = demo_accounts(settings)
    if accounts:
        table = Table("account", "password", "role", title="demo accounts (dev only)")
        for account in accounts:
            table.add_row(account.username, account.password, account.role)
        console.print(table)


@regions_app.command("load")
def regions_load(
    divisions: Path | None = typer.Option(None, help="CSV code,name,level,parent_code (default: built-in Shanghai)."),
    boundaries: Path | None = typer.Option(None, help="GeoJSON district outlines with properties.code."),
) -> None:
    """Load or update the divisions (and district outlines); existing rows are updated, never deleted."""
    from shgov.core.orgs.service import seed_organisations
    from shgov.core.regions.service import (
        RegionDataError,
        RegionIndex,
        load_builtin_divisions,
        load_divisions,
    )

    db = open_database(load_settings())
    try:
        with db.session() as session:
            if divisions is None:
                counts = load_builtin_divisions(session)
            else:
                counts = load_divisions(
                    session,
                    divisions.read_text(encoding="utf-8"),
                    boundaries.read_text(encoding="utf-8") if boundaries else None,
                )
            orgs = seed_organisations(session, RegionIndex.from_session(session))
    except (OSError, RegionDataError, ValueError) as exc:
        fail(f"not loaded: {exc}", 2)
    finally:
        db.dispose()
    console.print(", ".join(f"{level}: {n}" for level, n in counts.items()))
    console.print(f"new tenants: {orgs['tenants']}, new departments: {orgs['departments']}")


@calendar_app.command("load")
def calendar_load(
    year: int = typer.Argument(..., help="The year the schedule is for."),
    file: Path = typer.Argument(..., help="CSV lines: date,holiday|workday,name"),
) -> None:
    """Load (replace) a year's holiday schedule; it overrides the built-in one."""
    from shgov.core.calendar.service import ScheduleError, load_year, parse_schedule

    db = open_database(load_settings())
    try:
        rules = parse_schedule(file.read_text(encoding="utf-8"))
        with db.session() as session:
            count = load_year(session, year, rules)
    except (OSError, ScheduleError) as exc:
        fail(f"not loaded: {exc}", 2)
    finally:
        db.dispose()
    console.print(f"{year}: {count} days loaded")


@users_app.command("create-admin")
def create_admin(
    username: str = typer.Option(..., help="Sign-in name."),
    display_name: str = typer.Option("平台管理员", help="Shown name."),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
) -> None:
    """Create a platform administrator (the first account of a new installation)."""
    from shgov.core.errors import DomainError
    from shgov.core.identity.demo import seed_roles
    from shgov.core.identity.permissions import Scope
    from shgov.core.identity.service import assign_role, create_user

    settings = load_settings()
    db = open_database(settings)
    try:
        with db.session() as session:
            seed_roles(session)
            user = create_user(
                session,
                kind="staff",
                username=username,
                display_name=display_name,
                password=password,
                tenant_code=settings.city_code,
            )
            assign_role(session, user.id, "platform_admin", Scope(None, None))
    except DomainError as exc:
        fail(f"not created: {exc.message}", 2)
    finally:
        db.dispose()
    console.print(f"platform administrator {username} created")


def main() -> None:
    """Entry point of the ``shgov`` script."""
    app(prog_name="shgov")


if __name__ == "__main__":
    main()

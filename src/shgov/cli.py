"""The ``shgov`` command: serve the app, migrate and check the database, seed the demo city."""

from __future__ import annotations

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from shgov import migrations
from shgov.core.db import Database
from shgov.core.settings import Settings

app = typer.Typer(
    help="SH-GOV: digital government platform (一网通办 · 一网统管 · 一体化数字底座).", no_args_is_help=True
)
db_app = typer.Typer(help="Database migrations and checks.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo city.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")

console = Console()
err = Console(stderr=True)


def load_settings() -> Settings:
    """Settings from the environment, or a clear message and exit code 2."""
    try:
        return Settings()
    except ValueError as exc:
        err.print(f"[red]Invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc


def _display_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default: SHGOV_WEB__HOST)."),
    port: int | None = typer.Option(None, help="Port (default: SHGOV_WEB__PORT)."),
    reload: bool = typer.Option(False, help="Reload on code changes (development)."),
) -> None:
    """Serve the web app and API."""
    import uvicorn

    settings = load_settings()
    uvicorn.run(
        "shgov.app:create_app",
        factory=True,
        host=host or settings.web.host,
        port=port or settings.web.port,
        reload=reload,
        proxy_headers=True,
        log_config=None,
    )


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply the migrations."""
    settings = load_settings()
    db = Database.from_url(settings.database.url)
    with db.engine.begin() as conn:
        before = migrations.current_revision(conn)
        migrations.upgrade(conn, revision)
        after = migrations.current_revision(conn)
    db.dispose()
    console.print(f"database {_display_url(settings.database.url)}: {before or 'empty'} → {after}")


@db_app.command("check")
def db_check() -> None:
    """Fail (exit 1) if the database is not at the newest migration or differs from the models."""
    settings = load_settings()
    db = Database.from_url(settings.database.url)
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
    db = Database.from_url(settings.database.url)
    try:
        report = seed_demo(db, settings)
    finally:
        db.dispose()
    for name, done in report.items():
        console.print(f"{name}: {'seeded' if done else 'already present, left as it is'}")


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


def main() -> None:
    """Entry point of the ``shgov`` script."""
    app(prog_name="shgov")


if __name__ == "__main__":
    main()

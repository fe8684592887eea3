"""What every ``shgov`` sub-command shares: consoles, settings with a clear error, exiting with a message."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from shgov.core import db
from shgov.core.calendar.service import use_city_zone
from shgov.core.db import Database
from shgov.core.settings import Settings

console = Console()
err = Console(stderr=True)


def load_settings() -> Settings:
    """Settings from the environment, or a clear message and exit code 2."""
    try:
        settings = Settings()
    except ValueError as exc:
        err.print(f"[red]Invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc
    use_city_zone(settings.timezone)
    return settings


def open_database(settings: Settings) -> Database:
    """The configured database."""
    return db.open_database(settings)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` to stderr and exit with ``code``."""
    err.print(f"[red]{message}[/red]")
    raise typer.Exit(code)

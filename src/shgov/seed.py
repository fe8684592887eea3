"""Seeding the demo city: each context's ``service.seed_demo`` runs once, in its own transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from shgov.contexts import CONTEXTS, context_module
from shgov.core.db import Database
from shgov.core.seeding import already_seeded, mark_seeded
from shgov.core.settings import Settings

Seeder = Callable[[Session, Settings], Any]


@dataclass(frozen=True)
class DemoAccount:
    """A sign-in of the demo city, shown on the console and the dev login page."""

    username: str
    password: str
    role: str


def demo_accounts(settings: Settings) -> list[DemoAccount]:
    """The demo accounts every context with accounts declares (``service.demo_accounts``)."""
    accounts: list[DemoAccount] = []
    for context in CONTEXTS:
        service = context_module(context, "service")
        provider = getattr(service, "demo_accounts", None)
        if provider is not None:
            accounts.extend(DemoAccount(*row) for row in provider(settings))
    return accounts


def demo_seeders() -> list[tuple[str, Seeder]]:
    """The contexts that have demo data, in dependency order."""
    seeders: list[tuple[str, Seeder]] = []
    for context in CONTEXTS:
        service = context_module(context, "service")
        seeder = getattr(service, "seed_demo", None)
        if seeder is not None:
            seeders.append((context, seeder))
    return seeders


def seed_demo(db: Database, settings: Settings) -> dict[str, bool]:
    """Seed every context that has not been seeded; returns ``{context: seeded now}``."""
    report: dict[str, bool] = {}
    for name, seeder in demo_seeders():
        with db.session() as session:
            if already_seeded(session, name):
                report[name] = False
                continue
            seeder(session, settings)
            mark_seeded(session, name)
            report[name] = True
    return report

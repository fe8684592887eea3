"""Seeding: reference data and the demo city, each part once, each in its own transaction.

Core parts come first (divisions, organisations, roles, demo accounts), then every context's
``service.seed_demo`` in dependency order. A part already recorded in ``seed_records`` is skipped, so
a second run never reseeds or overwrites what people changed since.

A part too large for one transaction (the benefit runs over a million persons would hold the writer for
minutes) offers ``service.seed_demo_chunked(db, settings)`` instead: it writes in short transactions of its
own and must be safe to repeat, since it is recorded as seeded only once it finished — a seed killed
midway completes it on the next run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.orm import Session

from shgov.contexts import CONTEXTS, context_module
from shgov.core.audit import capture
from shgov.core.audit.service import ensure_configured
from shgov.core.db import Database
from shgov.core.identity.demo import demo_accounts as core_demo_accounts
from shgov.core.identity.demo import seed_demo_accounts, seed_roles
from shgov.core.orgs.service import seed_organisations
from shgov.core.regions.service import RegionIndex, load_builtin_divisions, region_count
from shgov.core.seeding import already_seeded, mark_seeded
from shgov.core.settings import Settings

Seeder = Callable[[Session, Settings], Any]
ChunkedSeeder = Callable[[Database, Settings], Any]


@dataclass(frozen=True)
class DemoAccount:
    """A sign-in of the demo city, shown on the console and the dev sign-in page."""

    username: str
    password: str
    role: str


def _divisions(session: Session, _settings: Settings) -> Any:
    # Another city may have loaded its own divisions (shgov regions load) before seeding.
    return load_builtin_divisions(session) if region_count(session) == 0 else {}


def _organisations(session: Session, _settings: Settings) -> Any:
    return seed_organisations(session, RegionIndex.from_session(session))


def _roles(session: Session, _settings: Settings) -> Any:
    return seed_roles(session)


def _accounts(session: Session, _settings: Settings) -> Any:
    return seed_demo_accounts(session)


CORE_SEEDERS: tuple[tuple[str, Seeder], ...] = (
    ("divisions", _divisions),
    ("organisations", _organisations),
    ("roles", _roles),
    ("demo-accounts", _accounts),
)


def demo_seeders() -> list[tuple[str, Seeder | ChunkedSeeder, bool]]:
    """Every part of the demo city, in dependency order: (name, seeder, whether it writes in chunks)."""
    seeders: list[tuple[str, Seeder | ChunkedSeeder, bool]] = [(name, part, False) for name, part in CORE_SEEDERS]
    for context in CONTEXTS:
        service = context_module(context, "service")
        if (chunked := getattr(service, "seed_demo_chunked", None)) is not None:
            seeders.append((context, chunked, True))
        elif (seeder := getattr(service, "seed_demo", None)) is not None:
            seeders.append((context, seeder, False))
    return seeders


def demo_accounts(settings: Settings) -> list[DemoAccount]:
    """The demo accounts of the core and of every context that declares some (``service.demo_accounts``)."""
    accounts = [DemoAccount(*row) for row in core_demo_accounts()]
    for context in CONTEXTS:
        service = context_module(context, "service")
        provider = getattr(service, "demo_accounts", None)
        if provider is not None:
            accounts.extend(DemoAccount(*row) for row in provider(settings))
    return accounts


def seed_demo(db: Database, settings: Settings, *, only: set[str] | None = None) -> dict[str, bool]:
    """Seed every part not seeded yet; returns ``{part: seeded now}``. What it writes is audited as the actor
    ``seed`` (one record per table and operation of each part)."""
    ensure_configured(settings)
    report: dict[str, bool] = {}
    with capture.acting_as(capture.SEED):
        for name, seeder, chunked in demo_seeders():
            if only is not None and name not in only:
                continue
            with db.session() as session:
                if already_seeded(session, name):
                    report[name] = False
                    continue
                if not chunked:
                    cast("Seeder", seeder)(session, settings)
                    mark_seeded(session, name)
                    report[name] = True
                    continue
            cast("ChunkedSeeder", seeder)(db, settings)  # its own short transactions, outside the one above
            with db.session() as session:
                if not already_seeded(session, name):
                    mark_seeded(session, name)
            report[name] = True
    return report

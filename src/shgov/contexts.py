"""The bounded contexts installed in this build, in dependency order.

The app factory, the migrations and the demo seeder discover each context's parts from here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# Added one by one as their issues are done.
CONTEXTS: tuple[str, ...] = (
    "lake",
    "registers",
    "disputes",
    "catalog",
    "sharing",
    "opendata",
    "services",
    "cases",
    "workorders",
    "benefits",
    "ratings",
    "sensing",
)

CORE_MODEL_MODULES: tuple[str, ...] = (
    "shgov.core.events",
    "shgov.core.seeding",
    "shgov.core.regions.models",
    "shgov.core.orgs.models",
    "shgov.core.identity.models",
    "shgov.core.audit.models",
    "shgov.core.calendar.service",
    "shgov.core.notify",
)


def context_module(context: str, part: str) -> ModuleType | None:
    """Import ``shgov.<context>.<part>`` if the context has that part."""
    name = f"shgov.{context}.{part}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


def import_models() -> None:
    """Import every table definition so that ``Base.metadata`` is complete."""
    for name in CORE_MODEL_MODULES:
        importlib.import_module(name)
    for context in CONTEXTS:
        context_module(context, "models")

"""Docs that cannot drift (issue #27, point 6), in the manner of Datasette's ``test_docs.py``: every context has
its page, listed in the architecture's map; each page ends with a reference of the events the context
announces and listens to and of the actions it declares, written from the code — this test fails when the page
and the code disagree (``make docs-reference`` writes the pages again); every problem type is in
``docs/errors.md``. (Every setting is in ``.env.example``: ``tests/core/test_settings.py``.)"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, cast

import pytest

from shgov.contexts import CONTEXTS, context_module
from shgov.core.errors import PROBLEM_TYPES
from shgov.core.events import DomainEvent, declared_events
from shgov.core.identity.permissions import declared_in, known_actions

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
START = "## Reference: events and actions"
NOTE = "<!-- Written from the code by `make docs-reference`; tests/test_docs.py fails when they differ. -->"
# The core's actions are documented with identity (who may do what), under their own prefixes.
CORE_PAGE, CORE_PREFIXES = "identity", ("identity", "audit", "calendar", "regions")


def _load() -> None:
    for context in CONTEXTS:
        for part in ("service", "events", "api"):
            context_module(context, part)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("``", "`").replace("|", "\\|")


def _declared() -> dict[str, type[DomainEvent]]:
    """The events the code declares (a test may declare events of its own in the same process)."""
    return {name: cls for name, cls in declared_events().items() if cls.__module__.startswith("shgov.")}


def _events_of(context: str) -> list[tuple[str, type[DomainEvent]]]:
    return [(name, cls) for name, cls in _declared().items() if name.split(".", 1)[0] == context]


def _subscriptions_of(context: str) -> list[tuple[str, str]]:
    service = context_module(context, "service")
    subscribers = getattr(service, "subscribers", None)
    if subscribers is None:
        return []
    # Only the names and patterns are read: the handlers are never called here.
    return [(name, pattern) for name, pattern, _handler in subscribers(cast(Any, None), cast(Any, None))]


def _actions() -> dict[str, str]:
    """The actions the code declares (a test may declare actions of its own in the same process)."""
    return {name: text for name, text in known_actions().items() if declared_in(name).startswith("shgov.")}


def _actions_for(page: str) -> list[tuple[str, str]]:
    prefixes = CORE_PREFIXES if page == CORE_PAGE else (page,)
    return [(name, text) for name, text in _actions().items() if name.split(".", 1)[0] in prefixes]


def reference(page: str) -> str:
    """The reference section of ``docs/<page>.md`` as the code says it should read."""
    lines = [START, "", NOTE, ""]
    events = _events_of(page)
    if events:
        lines += ["### Events it announces", "", "| Type | What happened | Payload |", "|---|---|---|"]
        for name, cls in events:
            fields = ", ".join(f"`{f}`" for f in cls.model_fields)
            lines.append(f"| `{name}` | {_cell(cls.__doc__ or '')} | {fields} |")
        lines.append("")
    subscriptions = _subscriptions_of(page) if page in CONTEXTS else []
    if subscriptions:
        lines += ["### Events it listens to", "", "| Subscriber | Pattern |", "|---|---|"]
        lines += [f"| `{name}` | `{pattern}` |" for name, pattern in subscriptions]
        lines.append("")
    actions = _actions_for(page)
    if actions:
        lines += ["### Actions", "", "| Action | What it allows |", "|---|---|"]
        lines += [f"| `{name}` | {_cell(text)} |" for name, text in actions]
        lines.append("")
    return "\n".join(lines)


def _pages() -> list[str]:
    return [*CONTEXTS, CORE_PAGE]


def _with_reference(text: str, block: str) -> str:
    kept = text.split(START, 1)[0].rstrip()
    return f"{kept}\n\n{block}"


@pytest.mark.parametrize("page", _pages())
def test_each_page_ends_with_the_reference_the_code_gives(page: str) -> None:
    _load()
    path = DOCS / f"{page}.md"
    assert path.exists(), f"docs/{page}.md is missing: every context has a page"
    text = path.read_text()
    wanted = _with_reference(text, reference(page))
    if os.environ.get("SHGOV_WRITE_DOCS") == "1":
        path.write_text(wanted)
        return
    assert text == wanted, f"docs/{page}.md's reference differs from the code: run `make docs-reference`"


def test_every_declared_event_and_action_has_a_page() -> None:
    _load()
    pages = set(_pages())
    assert {name.split(".", 1)[0] for name in _declared()} <= pages
    assert {name.split(".", 1)[0] for name in _actions()} <= pages | set(CORE_PREFIXES)


def test_the_architecture_map_names_every_context() -> None:
    layout = (DOCS / "architecture.md").read_text().split("```")[1]
    listed = set(re.findall(r"^  ([a-z]+)/", layout, re.MULTILINE))
    assert set(CONTEXTS) <= listed, f"missing from the map in docs/architecture.md: {set(CONTEXTS) - listed}"


def test_every_problem_type_is_documented() -> None:
    text = (DOCS / "errors.md").read_text()
    assert [slug for slug in PROBLEM_TYPES if f"`/problems/{slug}`" not in text] == []

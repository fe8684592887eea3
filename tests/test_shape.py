"""One shape for every context (issue #27): a ``get_*`` function raises ``NotFoundError`` when there is nothing
to get, and a ``find_*`` one answers ``None`` — no ``get_*`` of the code returns an optional value."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import shgov


def _modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(shgov.__path__, "shgov.") if ".migrations" not in m.name]


def _top_level(annotation: str) -> list[str]:
    """The members of a union written ``A | B``, not looking inside brackets (``dict[str, str | None]``)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(annotation):
        depth += (char in "[(" and 1) or (char in "])" and -1) or 0
        if char == "|" and depth == 0:
            parts.append(annotation[start:i].strip())
            start = i + 1
    return [*parts, annotation[start:].strip()]


def test_no_get_function_returns_none() -> None:
    optional = []
    for name in _modules():
        module = importlib.import_module(name)
        for attr, function in vars(module).items():
            if not (attr.startswith("get_") and inspect.isfunction(function) and function.__module__ == name):
                continue
            returns = str(inspect.signature(function).return_annotation)
            if "None" in _top_level(returns) or returns.startswith("Optional["):
                optional.append(f"{name}.{attr} -> {returns}")
    assert optional == [], "name these find_* (None when absent) or make them raise NotFoundError"

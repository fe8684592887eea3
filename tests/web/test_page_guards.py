"""Every page that needs a session says so by its dependency, and sends an anonymous visitor to sign in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from shgov.core.identity.deps import page_principal

HTML = {"accept": "text/html"}
GUARD = f"{page_principal.__qualname__}."  # the dependencies page_principal makes


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _page_routes(app: FastAPI) -> Iterator[tuple[str, str, bool]]:
    """(method, path, needs a session) of every page route without path parameters."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or route.include_in_schema or route.path.startswith("/api/"):
            continue
        path: str = getattr(context, "path", None) or route.path
        if "{" in path:
            continue
        guarded = any(getattr(call, "__qualname__", "").startswith(GUARD) for call in _calls(route.dependant))
        for method in sorted((route.methods or set()) & {"GET", "POST"}):
            yield method, path, guarded


def test_every_page_without_a_session_sends_the_visitor_to_sign_in(app: FastAPI, client: httpx.Client) -> None:
    routes = list(_page_routes(app))
    guarded = [(m, p) for m, p, g in routes if g]
    public = [p for m, p, g in routes if not g and m == "GET"]
    # the walk finds the pages of every context, and the public ones stay public
    assert {"/account/security", "/my/cases", "/ops/hotline", "/data/catalog", "/data/sharing"} <= {
        p for _, p in guarded
    }
    assert {"/", "/login", "/services", "/opendata"} <= set(public)
    wrong = []
    for method, path in guarded:
        # an anonymous form post is refused before its handler runs: nothing is done, the visitor signs in
        response = client.request(method, path, headers=HTML, data={"x": "1"} if method == "POST" else None)
        if response.status_code != 303 or response.headers.get("location") != f"/login?next={path}":
            wrong.append((method, path, response.status_code, response.headers.get("location")))
    for path in public:
        response = client.get(path, headers=HTML)
        # a public page answers, or sends back to its page (the TOTP forms' GETs), never to sign in
        location = response.headers.get("location", "")
        if not (response.status_code == 200 or (response.status_code == 303 and not location.startswith("/login"))):
            wrong.append(("GET", path, response.status_code, location))
    assert wrong == []

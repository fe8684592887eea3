"""Pages of the web shell: home, the four audience hubs and the language switch."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from shgov.core.errors import Problem
from shgov.core.i18n import LANG_COOKIE, normalise
from shgov.web.templating import AUDIENCES, NavItem, Templates


def get_templates(request: Request) -> Templates:
    """The app's template renderer."""
    templates: Templates = request.app.state.templates
    return templates


TemplatesDep = Annotated[Templates, Depends(get_templates)]

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only same-site paths are followed after switching language (no open redirect)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@router.get("/", response_class=HTMLResponse)
def home(request: Request, templates: TemplatesDep) -> Response:
    """The home page."""
    return templates.render(request, "web/home.html")


@router.get("/lang/{code}")
def switch_language(code: str, next_path: Annotated[str | None, Query(alias="next")] = None) -> Response:
    """Remember the visitor's language in a cookie and go back to where they were."""
    locale = normalise(code)
    if locale is None:
        raise Problem("not-found", detail=f"Language {code!r} is not offered")
    response = RedirectResponse(_safe_next(next_path), status_code=303)
    response.set_cookie(LANG_COOKIE, locale, max_age=365 * 24 * 3600, samesite="lax")
    return response


def _hub_page(item: NavItem) -> None:
    def page(request: Request, templates: TemplatesDep) -> Response:
        links: dict[str, list[NavItem]] = request.app.state.hub_links
        return templates.render(request, "web/hub.html", {"hub": item, "links": links.get(item.key, [])})

    router.add_api_route(
        item.href, page, methods=["GET"], response_class=HTMLResponse, name=f"hub-{item.key}"
    )


for _audience in AUDIENCES:
    _hub_page(_audience)

"""Pages of the web shell: home, audience hubs, language switch, sign-in and the regions hierarchy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from shgov.core.deps import DatabaseDep, SessionDep, SettingsDep
from shgov.core.errors import Problem
from shgov.core.i18n import LANG_COOKIE, normalise
from shgov.core.identity import service as identity
from shgov.core.identity.deps import (
    ANON_COOKIE,
    SESSION_COOKIE,
    OptionalPrincipal,
    audit,
    audit_async,
    check_csrf,
    csrf_token,
    ensure_anon_cookie,
    safe_next,
    start_browser_session,
)
from shgov.core.identity.permissions import Principal
from shgov.core.regions.api import IndexDep
from shgov.core.regions.models import LEVELS
from shgov.web.templating import AUDIENCES, MODE_COOKIE, MODES, NavItem, Templates, request_mode


def live_events(
    request: Request, event: str, fresh: Callable[[], dict[str, Any] | None], poll_seconds: float
) -> StreamingResponse:
    """Server-sent events for a live page: every ``poll_seconds`` ``fresh()`` gives the data to send as
    ``event`` (None: nothing changed, a comment keeps the connection open) until the client leaves."""

    async def events() -> AsyncIterator[str]:
        yield "retry: 5000\n\n"
        while not await request.is_disconnected():
            data = await run_in_threadpool(fresh)  # database reads: off the event loop
            yield (
                ": still here\n\n"
                if data is None
                else f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
            )
            await asyncio.sleep(poll_seconds)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def get_templates(request: Request) -> Templates:
    """The app's template renderer."""
    templates: Templates = request.app.state.templates
    return templates


async def web_user(request: Request, principal: OptionalPrincipal, settings: SettingsDep) -> Principal | None:
    """The signed-in visitor (for the header) and the CSRF token forms must carry."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if principal is not None and cookie:
        request.state.csrf_token = csrf_token(settings, cookie)
    return principal


def _no_message() -> None:
    """Never from the request: a page's error message is only passed when a handler re-renders it."""
    return None


TemplatesDep = Annotated[Templates, Depends(get_templates)]
# A page's error message: set by the code that re-renders the page after a refused form, never by a URL
# (a query parameter would let anyone put words on an official page).
PageMessage = Annotated[str | None, Depends(_no_message)]
WebUser = Annotated[Principal | None, Depends(web_user)]

router = APIRouter(include_in_schema=False, dependencies=[Depends(web_user)])


def sign_in_first(
    request: Request, principal: Principal | None, action: str | None = None, detail: str = ""
) -> Principal | Response:
    """The visitor, or a redirect to the sign-in page that comes back here; with ``action``, a visitor who
    does not hold it is refused (403, ``detail`` saying why)."""
    if principal is None:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    if action is not None and not principal.has_action(action):
        raise Problem("forbidden", detail=detail or f"This page needs the right {action}.")
    return principal


@router.get("/", response_class=HTMLResponse)
def home(request: Request, templates: TemplatesDep, index: IndexDep) -> Response:
    """The home page, with the map of the districts."""
    districts = [
        {"code": d.code, "name": d.name, "townships": index.descendant_counts(d.code).get("township", 0)}
        for d in index.children_of(index.city.code if index.city else None)
    ]
    return templates.render(request, "web/home.html", {"districts": districts, "counts": index.level_counts()})


@router.get("/lang/{code}")
def switch_language(code: str, next_path: Annotated[str | None, Query(alias="next")] = None) -> Response:
    """Remember the visitor's language in a cookie and go back to where they were."""
    locale = normalise(code)
    if locale is None:
        raise Problem("not-found", detail=f"Language {code!r} is not offered")
    response = RedirectResponse(safe_next(next_path), status_code=303)
    response.set_cookie(LANG_COOKIE, locale, max_age=365 * 24 * 3600, samesite="lax")
    return response


@router.get("/mode/{name}")
def switch_mode(name: str, next_path: Annotated[str | None, Query(alias="next")] = None) -> Response:
    """Switch to the elder or kiosk display (``standard`` switches back) and go back to where the visitor was."""
    if name not in (*MODES, "standard"):
        raise Problem("not-found", detail=f"Display mode {name!r} is not offered")
    response = RedirectResponse(safe_next(next_path), status_code=303)
    if name == "standard":
        response.delete_cookie(MODE_COOKIE)
    else:
        response.set_cookie(MODE_COOKIE, name, max_age=365 * 24 * 3600, samesite="lax")
    return response


def _hub_page(item: NavItem) -> None:
    def page(request: Request, templates: TemplatesDep) -> Response:
        links: dict[str, list[NavItem]] = request.app.state.hub_links
        return templates.render(request, "web/hub.html", {"hub": item, "links": links.get(item.key, [])})

    router.add_api_route(item.href, page, methods=["GET"], response_class=HTMLResponse, name=f"hub-{item.key}")


for _audience in AUDIENCES:
    _hub_page(_audience)


# -- sign-in -----------------------------------------------------------------------------------------


def _login_page(
    request: Request,
    templates: TemplatesDep,
    settings: SettingsDep,
    *,
    next_path: str,
    error: str | None = None,
    username: str = "",
    status_code: int = 200,
) -> Response:
    response = Response()
    anon = ensure_anon_cookie(request, response, settings)
    page = templates.render(
        request,
        "web/login.html",
        {
            "csrf": csrf_token(settings, anon, "anon"),
            "next": next_path,
            "error": error,
            "username": username,
            # The composition root knows every context's demo accounts.
            "demo_accounts": request.app.state.demo_accounts() if settings.env == "dev" else [],
            "oidc": settings.security.oidc if settings.security.oidc.enabled else None,
        },
        status_code=status_code,
    )
    for key, value in response.headers.items():
        if key == "set-cookie":
            page.headers.append(key, value)
    page.headers["Cache-Control"] = "no-store"
    return page


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request,
    templates: TemplatesDep,
    settings: SettingsDep,
    next_path: Annotated[str | None, Query(alias="next")] = None,
) -> Response:
    """The sign-in form."""
    return _login_page(request, templates, settings, next_path=safe_next(next_path))


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    templates: TemplatesDep,
    settings: SettingsDep,
    db: DatabaseDep,
    username: Annotated[str, Form(max_length=80)],
    password: Annotated[str, Form(max_length=200)],
    next_path: Annotated[str, Form(alias="next")] = "/",
) -> Response:
    """Check the credentials, start a session and go on; a wrong answer re-shows the form."""
    anon = request.cookies.get(ANON_COOKIE, "")
    if not anon:
        raise Problem("forbidden", detail="Cookies are needed to sign in; reload the page and try again.")
    await check_csrf(request, settings, anon, "anon")
    # Sign-in writes (failure counts, the session): in a worker thread, never on the event loop.
    result = await run_in_threadpool(identity.authenticate, db, settings.security, username.strip(), password)
    if not result.ok or result.user_id is None:
        await audit_async(
            request,
            None,
            "auth.login",
            outcome="denied",
            actor_name=username,
            details={"reason": result.reason},
        )
        return _login_page(
            request,
            templates,
            settings,
            next_path=safe_next(next_path),
            error=result.reason if result.reason in ("locked", "inactive") else "bad_credentials",
            username=username,
            status_code=401 if result.reason != "locked" else 423,
        )
    await audit_async(
        request,
        None,
        "auth.login",
        actor_name=result.username,
        object_type="user",
        object_id=str(result.user_id),
    )
    return await run_in_threadpool(start_browser_session, request, result.user_id, next_path)


@router.post("/logout")
async def logout(request: Request, session: SessionDep, principal: OptionalPrincipal) -> Response:
    """End the session (the CSRF token was checked when the principal was loaded)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        identity.end_web_session(session, cookie)
        if principal is not None:
            audit(request, principal, "auth.logout", object_type="user", object_id=str(principal.user_id))
    # A kiosk goes back to its own start page for the next visitor.
    response = RedirectResponse("/kiosk" if request_mode(request) == "kiosk" else "/", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


# -- regions -----------------------------------------------------------------------------------------


@router.get("/regions", response_class=HTMLResponse)
def regions_page(request: Request, templates: TemplatesDep, index: IndexDep) -> Response:
    """The city's divisions with counts per level."""
    city = index.city
    if city is None:
        return templates.render(request, "web/regions.html", {"region": None, "rows": [], "counts": {}})
    return _region_page(request, templates, index, city.code)


@router.get("/regions/{code}", response_class=HTMLResponse)
def region_page(request: Request, templates: TemplatesDep, index: IndexDep, code: str) -> Response:
    """One division: its ancestors, its children and how many divisions lie under each."""
    if index.get(code) is None:
        raise Problem("not-found", detail=f"No division {code}.")
    return _region_page(request, templates, index, code)


def _region_page(request: Request, templates: Templates, index: IndexDep, code: str) -> Response:
    region = index.get(code)
    rows = [{"region": child, "counts": index.descendant_counts(child.code)} for child in index.children_of(code)]
    below = [level for level in LEVELS[LEVELS.index(region.level) + 2 :]] if region else []
    return templates.render(
        request,
        "web/regions.html",
        {
            "region": region,
            "ancestors": index.ancestors(code),
            "rows": rows,
            "counts": index.descendant_counts(code),
            "below": below,
        },
    )

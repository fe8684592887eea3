"""Pages of the web shell: home, audience hubs, language switch, sign-in and the regions hierarchy."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from shgov.core.db import Database
from shgov.core.deps import DatabaseDep, SessionDep, SettingsDep
from shgov.core.errors import DomainError, Problem
from shgov.core.i18n import N_, normalise, remember_language
from shgov.core.identity import service as identity
from shgov.core.identity.deps import (
    ANON_COOKIE,
    SESSION_COOKIE,
    OptionalPrincipal,
    SignedInPage,
    audit,
    audit_async,
    check_csrf,
    client_ip,
    csrf_token,
    ensure_anon_cookie,
    safe_next,
    second_step_challenge,
    start_browser_session,
    user_of_challenge,
)
from shgov.core.identity.permissions import Principal
from shgov.core.identity.totp import sealing_key
from shgov.core.qr import qr_svg
from shgov.core.regions.api import IndexDep
from shgov.core.regions.models import LEVELS
from shgov.web.templating import AUDIENCES, MODE_COOKIE, MODES, NavItem, Templates, request_mode


def live_events(
    request: Request, event: str, fresh: Callable[[], dict[str, Any] | None], poll_seconds: float
) -> StreamingResponse:
    """Server-sent events for a live page: every ``poll_seconds`` ``fresh()`` gives the data to send as
    ``event`` (None: nothing changed, a comment keeps the connection open) until the client leaves."""

    db: Database = request.app.state.db

    def fresh_in_turn() -> dict[str, Any] | None:
        with db.one_at_a_time():
            return fresh()

    async def events() -> AsyncIterator[str]:
        yield "retry: 5000\n\n"
        while not await request.is_disconnected():
            data = await run_in_threadpool(fresh_in_turn)  # database reads: off the event loop
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
        raise Problem("not-found", detail=N_("Language {code!r} is not offered"), params={"code": code})
    response = RedirectResponse(safe_next(next_path), status_code=303)
    remember_language(response, locale)
    return response


@router.get("/mode/{name}")
def switch_mode(name: str, next_path: Annotated[str | None, Query(alias="next")] = None) -> Response:
    """Switch to the elder or kiosk display (``standard`` switches back) and go back to where the visitor was."""
    if name not in (*MODES, "standard"):
        raise Problem("not-found", detail=N_("Display mode {name!r} is not offered"), params={"name": name})
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
    retry_after: int = 0,
    challenge: str = "",
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
            "retry_after": retry_after,
            # The second step (a code from the authenticator) carries the signed result of the first.
            "challenge": challenge,
            # The composition root knows every context's demo accounts.
            "demo_accounts": request.app.state.demo_accounts() if settings.env == "dev" and not challenge else [],
            "oidc": settings.security.oidc if settings.security.oidc.enabled and not challenge else None,
        },
        status_code=status_code,
    )
    for key, value in response.headers.items():
        if key == "set-cookie":
            page.headers.append(key, value)
    page.headers["Cache-Control"] = "no-store"
    if retry_after:
        page.headers["Retry-After"] = str(retry_after)
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


async def _anon_checked(request: Request, settings: SettingsDep) -> str:
    anon = request.cookies.get(ANON_COOKIE, "")
    if not anon:
        raise Problem("forbidden", detail=N_("Cookies are needed to sign in; reload the page and try again."))
    await check_csrf(request, settings, anon, "anon")
    return anon


def _refused(
    request: Request,
    templates: TemplatesDep,
    settings: SettingsDep,
    result: identity.SignIn,
    *,
    next_path: str,
    username: str,
    challenge: str = "",
) -> Response:
    """The form again after a refused step: throttled (429, Retry-After), a wrong code, or wrong credentials —
    one message whatever was wrong (unknown user, password, locked or disabled account)."""
    if result.public_reason == "throttled":
        error, status = "throttled", 429
    elif result.reason == "bad_code":
        error, status = "bad_code", 401
    else:
        error, status = "bad_credentials", 401
    return _login_page(
        request,
        templates,
        settings,
        next_path=safe_next(next_path),
        error=error,
        username=username,
        status_code=status,
        retry_after=result.retry_after,
        challenge=challenge if error == "bad_code" else "",
    )


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    templates: TemplatesDep,
    settings: SettingsDep,
    db: DatabaseDep,
    username: Annotated[str, Form(max_length=80)],
    password: Annotated[str, Form(max_length=200)],
    next_path: Annotated[str, Form(alias="next", max_length=2000)] = "/",
) -> Response:
    """Check the credentials, start a session and go on; a wrong answer re-shows the form, a right password of
    an account with a second factor shows the code step."""
    anon = await _anon_checked(request, settings)
    # Sign-in writes (failure counts, the session): in a worker thread, never on the event loop.
    result = await run_in_threadpool(
        partial(
            identity.authenticate,
            db,
            settings.security,
            username.strip(),
            password,
            address=client_ip(request),
            totp_key=sealing_key(settings),
        )
    )
    if result.reason == "second_factor" and result.user_id is not None:
        await audit_async(
            request, None, "auth.login", outcome="pending", actor_name=result.username, details={"step": "code"}
        )
        return _login_page(
            request,
            templates,
            settings,
            next_path=safe_next(next_path),
            username=result.username,
            challenge=second_step_challenge(settings, anon, result.user_id),
        )
    if not result.ok or result.user_id is None:
        await audit_async(
            request,
            None,
            "auth.login",
            outcome="denied",
            actor_name=username[:80],
            details={"reason": result.reason, "retry_after": result.retry_after},
        )
        return _refused(request, templates, settings, result, next_path=next_path, username=username)
    return await _signed_in(request, result, next_path)


async def _signed_in(request: Request, result: identity.SignIn, next_path: str) -> Response:
    assert result.user_id is not None  # noqa: S101 - only called for a successful sign-in
    await audit_async(
        request,
        None,
        "auth.login",
        actor_name=result.username,
        object_type="user",
        object_id=str(result.user_id),
    )
    return await run_in_threadpool(start_browser_session, request, result.user_id, next_path)


@router.post("/login/code", response_class=HTMLResponse)
async def login_code(
    request: Request,
    templates: TemplatesDep,
    settings: SettingsDep,
    db: DatabaseDep,
    challenge: Annotated[str, Form(max_length=300)],
    code: Annotated[str, Form(max_length=12)],
    next_path: Annotated[str, Form(alias="next", max_length=2000)] = "/",
) -> Response:
    """The second step: the code from the authenticator app, for the account the first step vouched for."""
    anon = await _anon_checked(request, settings)
    user_id = user_of_challenge(settings, anon, challenge)
    if user_id is None:  # forged, of another browser, or older than five minutes: start again
        return _login_page(request, templates, settings, next_path=safe_next(next_path), error="expired")
    result = await run_in_threadpool(
        partial(
            identity.second_factor,
            db,
            settings.security,
            user_id,
            code,
            address=client_ip(request),
            totp_key=sealing_key(settings),
        )
    )
    if not result.ok:
        await audit_async(
            request,
            None,
            "auth.login",
            outcome="denied",
            actor_name=result.username,
            details={"reason": result.reason, "step": "code", "retry_after": result.retry_after},
        )
        return _refused(
            request, templates, settings, result, next_path=next_path, username=result.username, challenge=challenge
        )
    return await _signed_in(request, result, next_path)


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


# -- account security ----------------------------------------------------------------------------------


def _security_page(
    request: Request,
    templates: Templates,
    session: SessionDep,
    who: Principal,
    *,
    enrolment: tuple[str, str] | None = None,
    message: str | None = None,
    error: str | None = None,
    retry_after: int = 0,
    status_code: int = 200,
) -> Response:
    """The account-security page: the second factor's state and the forms that change it."""
    user = identity.find_user(session, who.user_id)
    assert user is not None  # noqa: S101 - the principal was loaded from it
    state = "on" if user.totp_confirmed_at else "pending" if user.totp_secret else "off"
    secret, uri = enrolment or ("", "")
    page = templates.render(
        request,
        "web/account_security.html",
        {
            "kind": user.kind,
            "state": state,
            "secret": secret,
            # Drawn on the server from our own otpauth URI (segno): no script, no third party sees the secret.
            "qr": Markup(qr_svg(uri)) if uri else "",  # noqa: S704 - segno's SVG of our own text
            "message": message,
            "error": error,
            "retry_after": retry_after,
        },
        status_code=status_code,
    )
    page.headers["Cache-Control"] = "no-store"  # it may carry a new secret
    if retry_after:
        page.headers["Retry-After"] = str(retry_after)
    return page


@router.get("/account/security", response_class=HTMLResponse)
def account_security(request: Request, templates: TemplatesDep, session: SessionDep, who: SignedInPage) -> Response:
    """账户安全: set up, confirm or turn off the TOTP second factor (staff accounts)."""
    return _security_page(request, templates, session, who)


@router.get("/account/security/totp")
@router.get("/account/security/totp/confirm")
@router.get("/account/security/totp/off")
def account_security_again() -> Response:
    """Back to the page after a form's answer (switching language, reloading): the forms post here."""
    return RedirectResponse("/account/security", status_code=303)


@router.post("/account/security/totp", response_class=HTMLResponse)
def account_totp_begin(
    request: Request, templates: TemplatesDep, session: SessionDep, settings: SettingsDep, who: SignedInPage
) -> Response:
    """Start (or restart) enrolment: the page shows the secret as a QR code and as text, this once."""
    secret, uri = identity.begin_totp(session, who.user_id, sealing_key(settings))
    audit(request, who, "identity.totp.enrol", object_type="user", object_id=str(who.user_id))
    return _security_page(request, templates, session, who, enrolment=(secret, uri))


@router.post("/account/security/totp/confirm", response_class=HTMLResponse)
def account_totp_confirm(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    who: SignedInPage,
    code: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """Confirm enrolment with a code from the app; a wrong code shows the form again."""
    try:
        identity.confirm_totp(session, who.user_id, sealing_key(settings), code.replace(" ", ""))
    except DomainError:  # a wrong or used code, or nothing waiting for confirmation (it changes nothing)
        audit(request, who, "identity.totp.confirm", outcome="denied", object_type="user", object_id=str(who.user_id))
        return _security_page(request, templates, session, who, error="bad_code", status_code=422)
    audit(request, who, "identity.totp.confirm", object_type="user", object_id=str(who.user_id))
    return _security_page(request, templates, session, who, message="confirmed")


@router.post("/account/security/totp/off", response_class=HTMLResponse)
def account_totp_off(
    request: Request,
    templates: TemplatesDep,
    db: DatabaseDep,
    settings: SettingsDep,
    who: SignedInPage,
    code: Annotated[str, Form(max_length=12)] = "",
    password: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Turn the second factor off with a current code or the password (throttled like a sign-in)."""
    result = identity.turn_off_totp(
        db,
        settings.security,
        who.user_id,
        key=sealing_key(settings),
        code=code.replace(" ", ""),
        password=password,
        address=client_ip(request),
    )
    audit(
        request,
        who,
        "identity.totp.off",
        outcome="ok" if result.ok else "denied",
        object_type="user",
        object_id=str(who.user_id),
        details={"reason": result.reason},
    )
    with db.session(write=False) as session:
        if result.ok:
            return _security_page(request, templates, session, who, message="off")
        status = 429 if result.public_reason == "throttled" else 422
        error = "throttled" if status == 429 else "off_refused"
        return _security_page(
            request, templates, session, who, error=error, retry_after=result.retry_after, status_code=status
        )


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
        raise Problem("not-found", detail=N_("No division {code}."), params={"code": code})
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

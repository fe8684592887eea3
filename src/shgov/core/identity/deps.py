"""Request-time identity: who is calling, CSRF for cookie sessions, audit, and the access helper.

A caller authenticates with ``Authorization: Bearer <token>`` (API clients) or the session cookie
(browsers). Requests authenticated by cookie that change something must carry the CSRF token
(``X-CSRF-Token`` header or ``csrf_token`` form field), which is an HMAC of the session cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Protocol, TypeVar
from urllib.parse import urlsplit

from fastapi import Depends
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from shgov.core.audit import capture
from shgov.core.audit.service import AuditEntry, GroupCommit
from shgov.core.db import utcnow
from shgov.core.deps import SessionDep, get_database, get_settings
from shgov.core.errors import Problem
from shgov.core.i18n import N_
from shgov.core.identity.permissions import Principal
from shgov.core.identity.service import load_principal, start_web_session, token_holder, user_for_web_session
from shgov.core.orgs.service import tenant_parents
from shgov.core.settings import Settings

SESSION_COOKIE = "shgov_session"
ANON_COOKIE = "shgov_anon"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


def get_tenant_parents(request: Request, session: Session) -> dict[str, str | None]:
    """Each tenant's parent, cached on the app (tenants change only when divisions are loaded)."""
    cached: dict[str, str | None] | None = getattr(request.app.state, "tenant_parents", None)
    if not cached:
        cached = tenant_parents(session)
        request.app.state.tenant_parents = cached
    return cached


def csrf_token(settings: Settings, cookie_value: str, purpose: str = "session") -> str:
    """The CSRF token bound to a session (or anonymous) cookie value."""
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"{purpose}:{cookie_value}".encode(), hashlib.sha256).hexdigest()


async def _submitted_csrf(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def check_csrf(request: Request, settings: Settings, cookie_value: str, purpose: str = "session") -> None:
    """Refuse (403) an unsafe request whose CSRF token does not match the cookie."""
    submitted = await _submitted_csrf(request)
    if not submitted or not hmac.compare_digest(submitted, csrf_token(settings, cookie_value, purpose)):
        raise Problem("forbidden", detail=N_("The CSRF token is missing or wrong; reload the page and try again."))


def ensure_anon_cookie(request: Request, response: Response, settings: Settings) -> str:
    """The anonymous cookie that binds the sign-in form's CSRF token (set when missing)."""
    value = request.cookies.get(ANON_COOKIE)
    if not value:
        value = secrets.token_urlsafe(24)
        response.set_cookie(
            ANON_COOKIE, value, httponly=True, samesite="lax", secure=settings.secure_cookies, max_age=3600
        )
    return value


def safe_next(target: str | None) -> str:
    """Only same-site paths are followed after signing in or switching language (no open redirect)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _unauthenticated(detail: str) -> Problem:
    return Problem("unauthenticated", detail=detail, headers={"WWW-Authenticate": 'Bearer realm="shgov"'})


def bearer_token(request: Request) -> str:
    """The token of the request's ``Authorization: Bearer`` header; 401 when it has none."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise _unauthenticated(N_("Use an Authorization: Bearer token."))
    return credentials.strip()


def bearer_principal(request: Request, session: Session, raw: str) -> tuple[Principal, datetime]:
    """Who a bearer token stands for and when it expires; 401 when it is invalid, expired or revoked."""
    held = token_holder(session, raw)
    if held is None:
        raise _unauthenticated(N_("The token is invalid, expired or revoked."))
    user, expires_at = held
    return load_principal(session, user, get_tenant_parents(request, session), "bearer"), expires_at


async def optional_principal(request: Request, session: SessionDep) -> Principal | None:
    """The caller, or None when the request carries no credentials (bad credentials are a 401)."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    settings = get_settings(request)
    authorization = request.headers.get("authorization", "")
    principal: Principal | None = None
    if authorization:
        principal = bearer_principal(request, session, bearer_token(request))[0]
    elif cookie := request.cookies.get(SESSION_COOKIE):
        user = user_for_web_session(session, cookie)
        if user is not None:
            if request.method not in SAFE_METHODS:
                await check_csrf(request, settings, cookie)
            principal = load_principal(session, user, get_tenant_parents(request, session), "cookie")
    request.state.principal = principal
    if principal is not None:
        # The actor of every change this request makes (this task's context: it ends with the request).
        capture.set_actor(actor_of(request, principal))
    return principal


def actor_of(request: Request, principal: Principal) -> capture.Actor:
    """The audit actor a signed-in caller is."""
    return capture.Actor(
        principal.username, str(principal.user_id), principal.tenant_code, principal.department_code, client_ip(request)
    )


async def require_principal(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    """The authenticated caller; 401 when there is none."""
    if principal is None:
        raise _unauthenticated(N_("Sign in or send a bearer token."))
    return principal


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def require_action(action: str) -> Callable[..., Any]:
    """A dependency: the caller must hold ``action`` somewhere (scope is checked on the object later)."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.has_action(action):
            raise Problem("forbidden", detail=N_("This needs the permission {action}."), params={"action": action})
        return principal

    return check


# -- access to one object, by kind ------------------------------------------------------------------------
#
# Each kind of object (a case, a load, a dispute, ...) has one loader and one rule of who may see it, both
# kept by its context; ``visible`` joins them into the dependency its API routes, pages and CLI use, so
# "does not exist" and "may not know it exists" are the same 404 everywhere.

NOT_FOUND_DETAIL = N_("No such object.")
SIGN_IN = "sign_in"  # a problem's extra: a page visitor without a session is sent to sign in, then back


class AccessRule(Protocol[T_contra]):
    """Who may see an object of a kind: ``rule(session, principal, obj)``."""

    def __call__(self, session: Session, principal: Principal, obj: T_contra, /) -> bool: ...


def not_found() -> Problem:
    """The one answer for an object that does not exist or that the caller may not know exists."""
    return Problem("not-found", detail=NOT_FOUND_DETAIL)


def access(session: Session, principal: Principal, obj: T | None, rule: AccessRule[T]) -> T:
    """``obj`` when it exists and ``principal`` may see it by ``rule``; the same 404 otherwise (for the CLI
    and for handlers that find an object by something else than a path parameter)."""
    if obj is None or not rule(session, principal, obj):
        raise not_found()
    return obj


def _query_first(request: Request) -> None:
    """Refuse the route's invalid query parameters (422 naming them) before the object is looked up: bad
    input is the same answer whether or not the object exists, as on routes without an access helper."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    _, errors = request_params_to_args(dependant.query_params, request.query_params)
    if errors:
        raise RequestValidationError(errors)


def visible(
    loader: Callable[[Session, Any], T | None],
    rule: AccessRule[T],
    *,
    param: str,
    convert: Callable[[str], Any] = str,
    page: bool = False,
) -> Callable[..., Any]:
    """A dependency that loads the object named by the path parameter ``param`` (``convert`` turns its text
    into the loader's key; a key that does not convert is a 404 too) and returns it when the caller may see
    it by ``rule``, else the same 404. With ``page``, a visitor without a session is sent to sign in (303)
    rather than answered 401; the 404 is the HTML error page through the problem handler."""

    async def dependency(request: Request, session: SessionDep, principal: OptionalPrincipal) -> T:
        if principal is None:
            problem = _unauthenticated(N_("Sign in or send a bearer token."))
            if page:
                problem.extra[SIGN_IN] = request.url.path
            raise problem
        _query_first(request)
        try:
            # str(): a route's typed convertor (``{name:uuid}``) hands over a value, a plain ``{name}`` its text
            key = convert(str(request.path_params[param]))
        except (KeyError, ValueError) as exc:
            raise not_found() from exc
        return access(session, principal, loader(session, key), rule)

    return dependency


def page_principal(action: str | None = None, detail: str = "") -> Callable[..., Any]:
    """A page's dependency: the signed-in visitor. A visitor without a session is sent to sign in (303)
    and back to this path; with ``action``, a visitor who does not hold it is refused (403, ``detail`` saying
    why) — after the query parameters are checked (422), as ``visible`` does. Raised before the handler runs,
    so an anonymous form post does nothing."""

    async def dependency(request: Request, principal: OptionalPrincipal) -> Principal:
        if principal is None:
            problem = _unauthenticated(N_("Sign in or send a bearer token."))
            problem.extra[SIGN_IN] = request.url.path
            raise problem
        _query_first(request)  # a signed-in visitor's bad input is a 422 whether or not they hold the right
        if action is not None and not principal.has_action(action):
            refusal = detail or N_("This page needs the right {action}.")
            raise Problem("forbidden", detail=refusal, params={"action": action})
        return principal

    return dependency


# A page for any signed-in visitor (pages that need a right use ``Depends(page_principal(action, detail))``).
SignedInPage = Annotated[Principal, Depends(page_principal())]


def start_browser_session(request: Request, user_id: uuid.UUID, next_path: str) -> Response:
    """Sign a browser in: a new session, its cookie, and a redirect to ``next_path`` (same-site only)."""
    settings = get_settings(request)
    with get_database(request).session() as session:
        raw = start_web_session(
            session,
            user_id,
            settings.security.session_ttl_seconds,
            client_ip(request),
            request.headers.get("user-agent", ""),
        )
    response = RedirectResponse(safe_next(next_path), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        max_age=settings.security.session_ttl_seconds,
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    return response


SECOND_STEP_SECONDS = 300


def _challenge_signature(settings: Settings, anon_cookie: str, user_id: str, expires: int) -> str:
    key = settings.secret_key.get_secret_value().encode()
    message = f"login-second-step:{anon_cookie}:{user_id}:{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def second_step_challenge(settings: Settings, anon_cookie: str, user_id: uuid.UUID) -> str:
    """What the sign-in page's code step carries: the account whose password was right, for this browser (its
    anonymous cookie) and five minutes, signed — so the code step needs no server-side state."""
    expires = int(utcnow().timestamp()) + SECOND_STEP_SECONDS
    return f"{user_id}.{expires}.{_challenge_signature(settings, anon_cookie, str(user_id), expires)}"


def user_of_challenge(settings: Settings, anon_cookie: str, challenge: str) -> uuid.UUID | None:
    """The account a code-step challenge vouches for; None when forged, of another browser, or expired."""
    user_id, _, rest = challenge.partition(".")
    expires_text, _, signature = rest.partition(".")
    if not expires_text.isdigit() or int(expires_text) < utcnow().timestamp():
        return None
    expected = _challenge_signature(settings, anon_cookie, user_id, int(expires_text))
    if not hmac.compare_digest(signature, expected):
        return None
    try:
        return uuid.UUID(user_id)
    except ValueError:
        return None


def get_group_commit(request: Request) -> GroupCommit:
    """The app's group commit of audit records for async callers without a transaction."""
    writer: GroupCommit = request.app.state.audit
    return writer


def client_ip(request: Request) -> str | None:
    """The caller's address as the server saw it."""
    return request.client.host if request.client else None


def _entry(
    request: Request,
    principal: Principal | None,
    action: str,
    *,
    outcome: str,
    object_type: str | None,
    object_id: str | None,
    tenant_code: str | None,
    details: dict[str, Any] | None,
    actor_name: str | None,
) -> AuditEntry:
    return AuditEntry(
        action=action,
        outcome=outcome,
        actor_id=str(principal.user_id) if principal else None,
        actor_name=actor_name if actor_name is not None else (principal.username if principal else ""),
        tenant_code=tenant_code if tenant_code is not None else (principal.tenant_code if principal else None),
        department_code=principal.department_code if principal else None,
        object_type=object_type,
        object_id=object_id,
        ip=client_ip(request),
        details=details or {},
    )


def _unit_of_work(request: Request) -> Session | None:
    session: Session | None = getattr(request.state, "unit_of_work", None)
    return session if session is not None and session.is_active else None


def _recorded_with_unit_of_work(request: Request, entry: AuditEntry) -> bool:
    """Add ``entry`` to the request's unit of work, to commit with it; False when the request has none."""
    session = _unit_of_work(request)
    if session is None:
        return False
    capture.record(session, entry)
    return True


def audit(
    request: Request,
    principal: Principal | None,
    action: str,
    *,
    outcome: str = "ok",
    object_type: str | None = None,
    object_id: str | None = None,
    tenant_code: str | None = None,
    details: dict[str, Any] | None = None,
    actor_name: str | None = None,
) -> None:
    """Record an audited act of this request.

    With the request's unit of work the record commits with it — the change and its record together, or
    neither. Without one, it is written in a short transaction of its own before this returns (a refusal, a
    sign-in), so nothing is answered before its record is on disk."""
    entry = _entry(
        request,
        principal,
        action,
        outcome=outcome,
        object_type=object_type,
        object_id=object_id,
        tenant_code=tenant_code,
        details=details,
        actor_name=actor_name,
    )
    if _recorded_with_unit_of_work(request, entry):
        return
    with get_database(request).session() as own:
        capture.record(own, entry)


async def audit_async(
    request: Request,
    principal: Principal | None,
    action: str,
    *,
    outcome: str = "ok",
    object_type: str | None = None,
    object_id: str | None = None,
    details: dict[str, Any] | None = None,
    actor_name: str | None = None,
) -> None:
    """``audit`` for async handlers without a unit of work (the sharing gateway): the event loop is not
    blocked, and this returns once the record is committed (group commit: concurrent callers share one
    transaction)."""
    entry = _entry(
        request,
        principal,
        action,
        outcome=outcome,
        object_type=object_type,
        object_id=object_id,
        tenant_code=None,
        details=details,
        actor_name=actor_name,
    )
    if _recorded_with_unit_of_work(request, entry):
        return
    await get_group_commit(request).write(entry)

"""HTTP plumbing shared by every router: the request-size limit, the JSON content-type check and the
request as one unit of work."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import params
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shgov.core.db import StaleSnapshotError, serving_loop, unit_of_work_scope
from shgov.core.errors import Problem
from shgov.core.i18n import N_


class BodyTooLarge(Exception):  # noqa: N818 - a signal, not an error class for callers
    """Raised inside ``receive`` when a streamed body passes the limit."""


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` with 413, by Content-Length or while streaming.

    The app sees at most ``max_bytes`` of body, so an oversized upload never reaches a handler.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, on_too_large: Callable[[Scope], ASGIApp]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_too_large = on_too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self.on_too_large(scope)(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self.on_too_large(scope)(scope, receive, send)


JSON_TYPES = ("application/json",)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


class JsonRoute(APIRoute):
    """An API route that answers 415 when a JSON body arrives under another content type.

    Routes whose body is a form or a file upload are left alone.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        body_params = self.dependant.body_params
        expects_json = bool(body_params) and not any(
            isinstance(p.field_info, params.Form | params.File) for p in body_params
        )
        if not expects_json:
            return handler

        async def checked(request: Request) -> Response:
            content_type = request.headers.get("content-type", "")
            body = await request.body()
            if content_type and not _is_json(content_type):
                raise Problem(
                    "unsupported-media-type",
                    detail=N_("Send the body as application/json (got {content_type})."),
                    params={"content_type": content_type},
                )
            if body and not content_type:
                raise Problem(
                    "unsupported-media-type", detail=N_("Send the body as application/json (got no Content-Type).")
                )
            return await handler(request)

        return checked


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE_FLAG = "shgov.write"


class UnitOfWorkMiddleware:
    """Each request is one logical unit of work (``unit_of_work_scope``), and a reading request whose
    unit of work turned out to write after another writer committed (``StaleSnapshotError``) is run once
    more, from the start, as a writer — before anything of its answer was sent. The endpoints that did
    so begin as writers from then on (``writes_learned``), so the second run is paid once per endpoint."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.writes_learned: set[Any] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["shgov.writers"] = self.writes_learned
        serving_loop()
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        with unit_of_work_scope():
            try:
                await self.app(scope, receive, tracking_send)
                return
            except StaleSnapshotError:
                if started or scope.get("method") not in SAFE_METHODS:
                    raise
        endpoint = scope.get("endpoint")
        if endpoint is not None and len(self.writes_learned) < 10_000:
            self.writes_learned.add(endpoint)
        scope[WRITE_FLAG] = True
        with unit_of_work_scope():
            await self.app(scope, receive, send)


def request_writes(request: Request) -> bool:
    """Whether this request's unit of work should begin as a writer: any method but GET/HEAD/OPTIONS,
    a second run after a stale read, or an endpoint seen to write before."""
    scope = request.scope
    if scope.get("method") not in SAFE_METHODS or scope.get(WRITE_FLAG):
        return True
    return scope.get("endpoint") in scope.get("shgov.writers", ())


# Every page's scripts and styles come from our own /static (vendored libraries included): no inline script,
# no eval, no plugins, no framing, forms post only to us. ``style-src-attr 'unsafe-inline'`` admits style
# *attributes* only — ECharts writes its tooltips' markup with them — while ``<style>`` elements stay
# refused (``style-src 'self'``), so injected markup still cannot bring selectors that read the page.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "media-src 'self' blob:",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(self), geolocation=(self), microphone=(), payment=(), usb=()"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000")


def harden_cookie(value: str, *, secure: bool) -> str:
    """A ``Set-Cookie`` value with ``HttpOnly``, ``SameSite=Lax`` (unless it names its own) and, when
    ``secure``, ``Secure`` added where missing. No page script reads a cookie, so every one is HttpOnly."""
    present = {part.split("=", 1)[0].strip().lower() for part in value.split(";")[1:]}
    extra = []
    if "httponly" not in present:
        extra.append("HttpOnly")
    if "samesite" not in present:
        extra.append("SameSite=Lax")
    if secure and "secure" not in present:
        extra.append("Secure")
    return "; ".join([value, *extra]) if extra else value


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response (pages, API answers, static files, errors) and
    hardens every cookie set on the way out, whichever handler set it.

    ``secure`` is the production setting (``Settings.secure_cookies``): cookies carry ``Secure`` and
    responses ``Strict-Transport-Security``; a request that arrived over https gets both in any case.
    A header a handler set itself (say a stricter policy) is left as it is.
    """

    def __init__(self, app: ASGIApp, *, secure: bool) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        secure = self.secure or scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw: list[tuple[bytes, bytes]] = []
                for name, value in message.get("headers", ()):
                    if name.lower() == b"set-cookie":
                        value = harden_cookie(value.decode("latin-1"), secure=secure).encode("latin-1")
                    raw.append((name, value))
                names = {name.lower() for name, _ in raw}
                wanted = (*SECURITY_HEADERS, HSTS) if secure else SECURITY_HEADERS
                raw.extend(header for header in wanted if header[0] not in names)
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)

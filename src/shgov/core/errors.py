"""RFC 9457 problem details for every API error, and the hooks that turn exceptions into them.

Each problem has a stable ``type`` (``/problems/<slug>``, documented in ``docs/errors.md``), a
``title`` in the request's language, a ``detail`` and, for invalid input, ``errors: [{field, message}]``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from shgov.core.db import StaleSnapshotError
from shgov.core.i18n import N_, gettext, is_api_request, request_locale

log = logging.getLogger("shgov.errors")


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached or did not let a change through in time."""
    if isinstance(exc, StaleSnapshotError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return True
    if not isinstance(exc, OperationalError):
        return False
    message = str(exc.orig or exc).lower()
    return any(sign in message for sign in _UNAVAILABLE)


_UNAVAILABLE = ("locked", "busy", "no turn to write", "connection", "could not connect", "server closed", "timeout")

PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    """A kind of problem: its slug (part of the stable type URI), HTTP status and English title."""

    slug: str
    status: int
    title: str

    @property
    def uri(self) -> str:
        """The stable ``type`` member of the problem document."""
        return f"/problems/{self.slug}"


PROBLEM_TYPES: dict[str, ProblemType] = {
    p.slug: p
    for p in (
        ProblemType("bad-request", 400, N_("Bad request")),
        ProblemType("malformed-json", 400, N_("Malformed JSON")),
        ProblemType("unauthenticated", 401, N_("Authentication required")),
        ProblemType("forbidden", 403, N_("Forbidden")),
        ProblemType("not-found", 404, N_("Not found")),
        ProblemType("method-not-allowed", 405, N_("Method not allowed")),
        ProblemType("not-acceptable", 406, N_("Not acceptable")),
        ProblemType("conflict", 409, N_("Conflict")),
        ProblemType("payload-too-large", 413, N_("Request body too large")),
        ProblemType("unsupported-media-type", 415, N_("Unsupported media type")),
        ProblemType("validation-failed", 422, N_("Validation failed")),
        ProblemType("too-many-requests", 429, N_("Too many requests")),
        ProblemType("internal-error", 500, N_("Internal server error")),
        ProblemType("service-unavailable", 503, N_("Service unavailable")),
    )
}

_STATUS_SLUGS = {p.status: p.slug for p in reversed(PROBLEM_TYPES.values())}


@dataclass(frozen=True)
class FieldError:
    """One invalid input field: a dotted path (``applicant.phone``) and what is wrong with it."""

    field: str
    message: str


@dataclass
class Problem(Exception):  # noqa: N818 - "Problem" is the RFC's own name
    """Raise from a service or router to answer with a problem document."""

    slug: str
    detail: str = ""
    errors: Sequence[FieldError] = ()
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.slug not in PROBLEM_TYPES:
            raise ValueError(f"unknown problem type {self.slug!r}")
        super().__init__(self.detail or self.slug)

    @property
    def type(self) -> ProblemType:
        """The registered problem type."""
        return PROBLEM_TYPES[self.slug]


class DomainError(Exception):
    """A rule of the domain was broken; services raise these, the API maps them to problems."""

    slug = "bad-request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_problem(self) -> Problem:
        """The problem document this error becomes at the API."""
        errors = [FieldError(self.field, self.message)] if self.field else []
        return Problem(self.slug, detail=self.message, errors=errors)


class NotFoundError(DomainError):
    """The object does not exist (or the caller may not know that it does)."""

    slug = "not-found"


class ConflictError(DomainError):
    """The change conflicts with what is stored (a duplicate, a wrong state)."""

    slug = "conflict"


class InvalidError(DomainError):
    """An input value breaks a rule; ``field`` names it."""

    slug = "validation-failed"


class ForbiddenError(DomainError):
    """The caller may not do this."""

    slug = "forbidden"


def problem_document(problem: Problem, locale: str, instance: str) -> dict[str, Any]:
    """The JSON body of ``problem`` in ``locale``."""
    ptype = problem.type
    body: dict[str, Any] = {
        "type": ptype.uri,
        "title": gettext(ptype.title, locale),
        "status": ptype.status,
        "detail": problem.detail or gettext(ptype.title, locale),
        "instance": instance,
    }
    if problem.errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in problem.errors]
    body.update(problem.extra)
    return body


HtmlErrorRenderer = Callable[[Request, Problem], Response]


class ProblemResponder:
    """Turns a ``Problem`` into JSON for API clients or, when set, an HTML page for browsers."""

    def __init__(self) -> None:
        self.html_renderer: HtmlErrorRenderer | None = None

    def respond(self, request: Request, problem: Problem) -> Response:
        """Answer ``request`` with ``problem`` in the right representation and language."""
        if self.html_renderer is not None and not is_api_request(request):
            return self.html_renderer(request, problem)
        locale = request_locale(request)
        body = problem_document(problem, locale, request.url.path)
        headers = {"Content-Language": locale.replace("_", "-"), **problem.headers}
        return JSONResponse(body, status_code=problem.type.status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def problem_response(request: Request, problem: Problem) -> Response:
    """Answer with ``problem`` without raising — for handlers that must keep what they wrote (the
    request's unit of work commits instead of rolling back)."""
    responder: ProblemResponder = request.app.state.responder
    return responder.respond(request, problem)


def _field_path(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_problem(exc: RequestValidationError) -> Problem:
    """Map FastAPI's validation error onto ``malformed-json`` or ``validation-failed``."""
    errors = list(exc.errors())
    for err in errors:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            reason = ctx.get("error", "invalid JSON")
            return Problem("malformed-json", detail=f"The request body is not valid JSON: {reason}")
    field_errors = [FieldError(_field_path(err.get("loc", ())), str(err.get("msg", ""))) for err in errors]
    names = ", ".join(e.field for e in field_errors)
    return Problem("validation-failed", detail=f"Invalid input: {names}", errors=field_errors)


def install_error_handlers(app: FastAPI, responder: ProblemResponder) -> None:
    """Register handlers so that no error leaves the app as anything but a problem (or error page)."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)  # noqa: S101 - registered for Problem only
        return responder.respond(request, exc)

    async def on_domain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)  # noqa: S101
        return responder.respond(request, exc.to_problem())

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        slug = _STATUS_SLUGS.get(exc.status_code, "bad-request" if exc.status_code < 500 else "internal-error")
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail not in ("Not Found",) else ""
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        elif exc.status_code == 404:
            detail = f"Nothing is found at {request.url.path}"
        return responder.respond(request, Problem(slug, detail=detail, headers=dict(exc.headers or {})))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        return responder.respond(request, validation_problem(exc))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        incident = uuid.uuid4().hex[:12]
        if database_unavailable(exc):
            # Writers queue for their turn, so this is a database that is down or stuck: one line in the
            # log, with the incident the answer quotes; nothing of the request was kept.
            log.error(
                "database unavailable (incident %s) on %s %s: %s",
                incident,
                request.method,
                request.url.path,
                str(getattr(exc, "orig", None) or exc).splitlines()[0][:200],
                extra={"incident": incident, "path": request.url.path},
            )
            busy = Problem(
                "service-unavailable",
                detail=f"The database is not available at the moment; try again shortly (incident {incident}).",
                headers={"Retry-After": "5"},
            )
            return responder.respond(request, busy)
        log.exception("unhandled error (incident %s)", incident, extra={"incident": incident, "path": request.url.path})
        problem = Problem("internal-error", detail=f"Incident {incident} has been logged.")
        return responder.respond(request, problem)

    handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
        Problem: on_problem,
        DomainError: on_domain,
        StarletteHTTPException: on_http,
        RequestValidationError: on_validation,
        Exception: on_unexpected,
    }
    for exc_type, handler in handlers.items():
        app.add_exception_handler(exc_type, handler)

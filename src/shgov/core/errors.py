"""RFC 9457 problem details for every API error, and the hooks that turn exceptions into them.

Each problem has a stable ``type`` (``/problems/<slug>``, documented in ``docs/errors.md``), a
``title`` in the request's language, a ``detail`` and, for invalid input, ``errors: [{field, message}]``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
# Details Starlette and FastAPI raise themselves, in the catalogue so that they are answered translated too.
FRAMEWORK_DETAILS = (N_("There was an error parsing the body"),)


@dataclass(frozen=True)
class FieldError:
    """One invalid input field: a dotted path (``applicant.phone``) and what is wrong with it."""

    field: str
    message: str


def render(template: str, params: Mapping[str, Any], locale: str) -> str:
    """``template`` in ``locale`` with ``params`` filled in (``str.format`` fields such as ``{number}``).

    A parameter that is itself a ``DomainError`` or ``InvalidValueError`` (the reason of a wrapped error) is
    rendered in the same language. A template without parameters is only translated: its braces are text."""
    translated = gettext(template, locale) if template else template
    if not params:
        return translated
    values = {k: v.text(locale) if isinstance(v, DomainError | InvalidValueError) else v for k, v in params.items()}
    try:
        return translated.format(**values)
    except (KeyError, IndexError, ValueError):  # a translation that lost a field: the English one has them all
        return template.format(**values)


@dataclass
class Problem(Exception):  # noqa: N818 - "Problem" is the RFC's own name
    """Raise from a service or router to answer with a problem document.

    ``detail`` is an English message id marked with ``N_`` (translated when the answer is written), its
    ``{fields}`` filled from ``params``."""

    slug: str
    detail: str = ""
    errors: Sequence[FieldError] = ()
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.slug not in PROBLEM_TYPES:
            raise ValueError(f"unknown problem type {self.slug!r}")
        super().__init__(self.detail_in("en") or self.slug)

    @property
    def type(self) -> ProblemType:
        """The registered problem type."""
        return PROBLEM_TYPES[self.slug]

    def detail_in(self, locale: str) -> str:
        """The detail in ``locale`` ('' when there is none)."""
        return render(self.detail, self.params, locale) if self.detail else ""


class DomainError(Exception):
    """A rule of the domain was broken; services raise these, the API maps them to problems.

    ``message`` is an English message id marked with ``N_`` — ``InvalidError(N_("no district {code}"),
    field="area", code=code)`` — so that the answer can be given in the caller's language (``text``);
    ``self.message`` is the English text, for logs and the command line. (Parameter names ``field`` and
    ``message`` are taken.)"""

    slug = "bad-request"

    def __init__(self, message: str, field: str | None = None, **params: Any) -> None:
        self.template = message
        self.params = params
        self.field = field
        self.message = render(message, params, "en")
        super().__init__(self.message)

    def text(self, locale: str) -> str:
        """The message in ``locale``."""
        return render(self.template, self.params, locale)

    def to_problem(self, locale: str = "en") -> Problem:
        """The problem document this error becomes at the API, its text in ``locale``."""
        text = self.text(locale)
        errors = [FieldError(self.field, text)] if self.field else []
        return Problem(self.slug, detail=text, errors=errors)


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
        "detail": problem.detail_in(locale) or gettext(ptype.title, locale),
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


# Pydantic's messages are English and say how Python sees the value; these say it for the person who typed
# it, in their language. Keyed by Pydantic's error type; the fields come from the error's context.
_VALIDATION_MESSAGES: dict[str, str] = {
    "missing": N_("This field is required"),
    "string_too_short": N_("At least {min_length} characters"),
    "string_too_long": N_("At most {max_length} characters"),
    "too_short": N_("At least {min_length} items"),
    "too_long": N_("At most {max_length} items"),
    "greater_than": N_("Must be greater than {gt}"),
    "greater_than_equal": N_("Must be at least {ge}"),
    "less_than": N_("Must be less than {lt}"),
    "less_than_equal": N_("Must be at most {le}"),
    "multiple_of": N_("Must be a multiple of {multiple_of}"),
    "int_parsing": N_("Must be a whole number"),
    "int_type": N_("Must be a whole number"),
    "int_from_float": N_("Must be a whole number"),
    "int_parsing_size": N_("The number is too large"),
    "float_parsing": N_("Must be a number"),
    "float_type": N_("Must be a number"),
    "finite_number": N_("Must be a finite number"),
    "decimal_parsing": N_("Must be a number"),
    "decimal_type": N_("Must be a number"),
    "decimal_max_digits": N_("At most {max_digits} digits"),
    "decimal_max_places": N_("At most {decimal_places} decimal places"),
    "bool_parsing": N_("Must be true or false"),
    "bool_type": N_("Must be true or false"),
    "string_type": N_("Must be text"),
    "string_unicode": N_("Must be text"),
    "string_pattern_mismatch": N_("Does not have the expected form"),
    "date_parsing": N_("Must be a date (YYYY-MM-DD)"),
    "date_type": N_("Must be a date (YYYY-MM-DD)"),
    "date_from_datetime_parsing": N_("Must be a date (YYYY-MM-DD)"),
    "date_from_datetime_inexact": N_("Must be a date (YYYY-MM-DD)"),
    "datetime_parsing": N_("Must be a date and time (ISO 8601)"),
    "datetime_type": N_("Must be a date and time (ISO 8601)"),
    "datetime_from_date_parsing": N_("Must be a date and time (ISO 8601)"),
    "timezone_aware": N_("Must be a date and time with its time zone"),
    "time_parsing": N_("Must be a time (HH:MM)"),
    "enum": N_("Must be one of: {expected}"),
    "literal_error": N_("Must be one of: {expected}"),
    "extra_forbidden": N_("This field is not accepted"),
    "model_type": N_("Must be an object"),
    "model_attributes_type": N_("Must be an object"),
    "dict_type": N_("Must be an object"),
    "list_type": N_("Must be a list"),
    "set_type": N_("Must be a list"),
    "tuple_type": N_("Must be a list"),
    "url_parsing": N_("Must be a web address"),
    "url_scheme": N_("Must be an http or https address"),
    "url_type": N_("Must be a web address"),
    "url_too_long": N_("The web address is too long"),
    "uuid_parsing": N_("Must be a UUID"),
    "uuid_type": N_("Must be a UUID"),
    "bytes_too_long": N_("The file is too large"),
    "identifier": N_("{rule}: {reason}"),
}


class InvalidValueError(ValueError):
    """Raise from a Pydantic validator for a message in the caller's language: an English message id
    marked with ``N_`` and its fields (a plain ``ValueError`` is shown as it is written)."""

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(render(message, params, "en"))
        self.template = message
        self.params = params

    def text(self, locale: str) -> str:
        """The message in ``locale``."""
        return render(self.template, self.params, locale)


def validation_message(error: Mapping[str, Any], locale: str) -> str:
    """What is wrong with one field, in ``locale`` (a Pydantic error as FastAPI reports it)."""
    kind = str(error.get("type", ""))
    ctx = dict(error.get("ctx") or {})
    if kind in ("value_error", "assertion_error"):
        reason = ctx.get("error")
        if isinstance(reason, InvalidValueError):
            return reason.text(locale)
        if isinstance(reason, BaseException) and str(reason):
            return gettext(str(reason), locale)
        return str(error.get("msg", ""))
    template = _VALIDATION_MESSAGES.get(kind)
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        template = N_("Must not be empty")
    if template is None:
        return str(error.get("msg", ""))
    if kind == "identifier":  # the rule and the reason are message ids of their own (core.ids)
        ctx = {k: gettext(str(v), locale) for k, v in ctx.items()}
    if kind in ("enum", "literal_error") and locale != "en":  # Pydantic lists choices as "'a', 'b' or 'c'"
        ctx["expected"] = str(ctx.get("expected", "")).replace(" or ", ", ").replace(", ", "、")
    try:
        return gettext(template, locale).format(**ctx)
    except (KeyError, IndexError, ValueError):
        return str(error.get("msg", ""))


def validation_problem(exc: RequestValidationError, locale: str = "en") -> Problem:
    """Map FastAPI's validation error onto ``malformed-json`` or ``validation-failed``, in ``locale``."""
    errors = list(exc.errors())
    for err in errors:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            reason = ctx.get("error", "invalid JSON")
            return Problem(
                "malformed-json", detail=N_("The request body is not valid JSON: {reason}"), params={"reason": reason}
            )
    field_errors = [FieldError(_field_path(err.get("loc", ())), validation_message(err, locale)) for err in errors]
    names = ", ".join(e.field for e in field_errors)
    return Problem(
        "validation-failed", detail=N_("Invalid input: {names}"), params={"names": names}, errors=field_errors
    )


def install_error_handlers(app: FastAPI, responder: ProblemResponder) -> None:
    """Register handlers so that no error leaves the app as anything but a problem (or error page)."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)  # noqa: S101 - registered for Problem only
        return responder.respond(request, exc)

    async def on_domain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)  # noqa: S101
        return responder.respond(request, exc.to_problem(request_locale(request)))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        slug = _STATUS_SLUGS.get(exc.status_code, "bad-request" if exc.status_code < 500 else "internal-error")
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail not in ("Not Found",) else ""
        if exc.status_code == 405:
            detail, params = (
                N_("{method} is not allowed on {path}"),
                {"method": request.method, "path": request.url.path},
            )
        elif exc.status_code == 404:
            detail, params = N_("Nothing is found at {path}"), {"path": request.url.path}
        else:
            params = {}
        headers = dict(exc.headers or {})
        return responder.respond(request, Problem(slug, detail=detail, headers=headers, params=params))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)  # noqa: S101
        return responder.respond(request, validation_problem(exc, request_locale(request)))

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
                detail=N_("The database is not available at the moment; try again shortly (incident {incident})."),
                headers={"Retry-After": "5"},
                params={"incident": incident},
            )
            return responder.respond(request, busy)
        log.exception("unhandled error (incident %s)", incident, extra={"incident": incident, "path": request.url.path})
        problem = Problem(
            "internal-error", detail=N_("Incident {incident} has been logged."), params={"incident": incident}
        )
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

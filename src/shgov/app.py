"""The composition root: ``create_app(settings)`` wires core, the web shell and every context."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from shgov import __version__
from shgov.contexts import CONTEXTS, context_module
from shgov.core import system
from shgov.core.analytics import Analytics
from shgov.core.audit import api as audit_api
from shgov.core.audit import service as audit_service
from shgov.core.audit.capture import ActorMiddleware
from shgov.core.bounded import bound_integer_inputs
from shgov.core.calendar import api as calendar_api
from shgov.core.calendar.service import WorkingCalendar, city_today, default_calendar, use_city_zone
from shgov.core.db import Database, open_database
from shgov.core.errors import Problem, ProblemResponder, install_error_handlers
from shgov.core.events import OutboxRelay, make_bus
from shgov.core.http import BodyLimitMiddleware, SecurityHeadersMiddleware, UnitOfWorkMiddleware
from shgov.core.i18n import N_
from shgov.core.identity import api as identity_api
from shgov.core.identity import oidc
from shgov.core.logging import configure_logging
from shgov.core.openapi import describe_problems
from shgov.core.regions import api as regions_api
from shgov.core.settings import Settings
from shgov.seed import demo_accounts
from shgov.web import pages as shell_pages
from shgov.web.templating import STATIC_DIR, NavItem, Templates

log = logging.getLogger("shgov.app")

API_DESCRIPTION = """SH-GOV API. Errors are RFC 9457 `application/problem+json` documents with a stable `type`
(see `/problems/…` in docs/errors.md), a `title` in the language of `Accept-Language` (zh-CN or en),
and `errors: [{field, message}]` for invalid input."""


def create_app(
    settings: Settings | None = None, *, database: Database | None = None, background: bool = True
) -> FastAPI:
    """Build the SH-GOV web application.

    ``database`` lets a caller (tests) supply a handle bound to its own connection; ``background``
    starts the event relay with the app's lifespan.
    """
    settings = settings or Settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    use_city_zone(settings.timezone)
    db = database or open_database(settings)
    relay = OutboxRelay(db, make_bus(settings.events, db), settings.events)
    for context in CONTEXTS:
        # A context that reacts to others' events lists its subscribers in ``service.subscribers``.
        service = context_module(context, "service")
        for name, pattern, handler in getattr(service, "subscribers", lambda _db, _settings: [])(db, settings):
            relay.bus.subscribe(name, pattern, handler)
    # A context with long-lived parts (the sensing pipeline, its MQTT subscriber) offers ``service.runtime``:
    # an object started and stopped with the app.
    runtimes = {
        context: runtime(settings, db)
        for context in CONTEXTS
        if (runtime := getattr(context_module(context, "service"), "runtime", None)) is not None
    }
    # Audit records commit with the changes they describe; the gateway's calls share group commits.
    audit_log = audit_service.configure(settings)
    group_commit = audit_service.GroupCommit(db, max_batch=settings.security.audit_batch_size)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # A context whose keys or files must hold before it serves offers ``service.check_startup``.
        for context in CONTEXTS:
            check = getattr(context_module(context, "service"), "check_startup", None)
            if check is not None:
                check(settings)
        if background:
            with db.session(write=False) as session:
                default_calendar().set_overrides(WorkingCalendar.from_session(session).overrides())
            if (gap := default_calendar().schedule_gap(city_today())) is not None:
                log.warning(
                    "no official holiday schedule for %d: working-day deadlines (1515 and others) count Monday "
                    "to Friday until an administrator loads it (shgov calendar load)",
                    gap,
                )
            audit_service.ensure_keyed(db, audit_log)
            audit_log.start_checkpoints(db, timer=True)
            await relay.start()
            for part in runtimes.values():
                part.start()
        try:
            yield
        finally:
            for part in runtimes.values():
                part.stop()
            if background:
                await relay.stop()
                audit_log.close()  # the last checkpoint
            if database is None:
                db.dispose()

    app = FastAPI(
        title="SH-GOV",
        version=__version__,
        description=API_DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    template_dirs: list[Path] = []
    hub_links: dict[str, list[NavItem]] = {}
    routers: list[APIRouter] = [
        system.router(),
        identity_api.router,
        regions_api.router,
        calendar_api.router,
        audit_api.router,
        shell_pages.router,
    ]
    for context in CONTEXTS:
        for part in ("api", "pages"):
            module = context_module(context, part)
            if module is not None:
                routers.append(module.router)
                # Routes are matched in order, one by one: a context's high-traffic routes go first.
                if hasattr(module, "hot_router"):
                    routers.insert(0, module.hot_router)
        pages_module = context_module(context, "pages")
        if pages_module is not None:
            for audience, item in getattr(pages_module, "NAV", ()):
                hub_links.setdefault(audience, []).append(item)
        folder = Path(__file__).resolve().parent / context / "templates"
        if folder.is_dir():
            template_dirs.append(folder)

    templates = Templates(
        template_dirs,
        city_name=settings.city_name,
        dev=settings.env == "dev",
        kiosk_idle_seconds=settings.services.kiosk_idle_seconds,
        timezone=settings.timezone,
    )
    responder = ProblemResponder()
    templates.install(responder)

    app.state.settings = settings
    app.state.db = db
    app.state.analytics = Analytics(settings.lake_dir, settings.analytics)
    app.state.relay = relay
    app.state.runtimes = runtimes
    app.state.audit = group_commit
    app.state.demo_accounts = lambda: demo_accounts(settings)
    app.state.region_index = None
    app.state.tenant_parents = None
    app.state.templates = templates
    app.state.responder = responder
    app.state.hub_links = hub_links

    install_error_handlers(app, responder)

    @app.get("/api/docs", include_in_schema=False)
    def api_docs(request: Request) -> HTMLResponse:
        # Swagger UI from the package's own static folder, started by a static script (the CSP allows no inline one).
        return templates.render(request, "web/api_docs.html", {"openapi_url": "/api/openapi.json"})

    if settings.security.oidc.enabled:
        # Authlib keeps the OIDC state and nonce in a short-lived signed cookie between redirect and callback.
        app.add_middleware(
            SessionMiddleware,
            secret_key=settings.web.session_secret.get_secret_value(),
            session_cookie="shgov_oidc",
            max_age=600,
            same_site="lax",
            https_only=settings.secure_cookies,
        )
        routers.append(oidc.router(settings))
    for r in routers:
        app.include_router(r)
    describe_problems(app)  # every operation's errors are declared: problem+json
    bound_integer_inputs(app)  # integers beyond 64 bits answer 422 naming the field, not a database error
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def too_large(scope: Scope) -> ASGIApp:
        async def answer(scope: Scope, receive: Receive, send: Send) -> None:
            request = Request(scope, receive)
            limit = settings.web.max_body_bytes
            problem = Problem(
                "payload-too-large",
                detail=N_("The request body exceeds the limit of {limit} bytes."),
                params={"limit": limit},
            )
            await responder.respond(request, problem)(scope, receive, send)

        return answer

    app.add_middleware(UnitOfWorkMiddleware)
    app.add_middleware(ActorMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.web.max_body_bytes, on_too_large=too_large)
    # Outermost: every answer, the 413 above included, carries the security headers and hardened cookies.
    app.add_middleware(SecurityHeadersMiddleware, secure=settings.secure_cookies)
    return app

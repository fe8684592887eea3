"""Jinja2 rendering with Babel translations, one environment per locale."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from shgov.core.calendar.service import city_today, default_calendar
from shgov.core.errors import Problem, ProblemResponder
from shgov.core.i18n import (
    LANG_COOKIE,
    LANGUAGE_TAGS,
    N_,
    SUPPORTED_LOCALES,
    gettext,
    normalise,
    remember_language,
    request_locale,
    translations,
)
from shgov.core.identity.deps import SIGN_IN
from shgov.core.identity.permissions import SYSTEM_ACTOR, SYSTEM_LABEL

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATE_DIR = WEB_DIR / "templates"


@dataclass(frozen=True)
class NavItem:
    """One entry of the main navigation: an audience and its landing page."""

    key: str
    label: str
    href: str
    description: str


# The four audiences of the platform; contexts add their pages under these hubs.
AUDIENCES: tuple[NavItem, ...] = (
    NavItem(
        "citizens",
        N_("Citizens and enterprises"),
        "/citizens",
        N_("Find a service, apply once, follow your cases and benefits."),
    ),
    NavItem("staff", N_("Window and case workers"), "/staff", N_("Accept applications and process cases on time.")),
    NavItem(
        "data",
        N_("Data management"),
        "/data",
        N_("Catalog, aggregate, govern and share the city's data resources."),
    ),
    NavItem(
        "operations",
        N_("City operations centre"),
        "/operations",
        N_("Work orders, city vital signs and early warnings."),
    ),
)


# Names of the five levels, for tables and breadcrumbs.
# Display modes a visitor can switch to (kept in a cookie): large type for elders, a touch kiosk.
MODE_COOKIE = "shgov_mode"
MODES = ("elder", "kiosk")


def request_mode(request: Request) -> str:
    """The visitor's display mode: ``elder``, ``kiosk`` or ``""`` (standard)."""
    mode = request.cookies.get(MODE_COOKIE, "")
    return mode if mode in MODES else ""


LEVEL_LABELS: dict[str, str] = {
    "city": N_("City"),
    "district": N_("District"),
    "township": N_("Township (subdistrict / town)"),
    "community": N_("Community (residents' / village committee)"),
    "grid": N_("Grid"),
}


def safe_url(value: object) -> str:
    """``value`` when it is a link a page may follow — a same-site path or an http(s) address — else ``""``.

    Autoescaping keeps a stored address from breaking out of its attribute, not from being ``javascript:``
    or ``data:``; every link whose address came from data goes through this filter.
    """
    text = str(value or "").strip()
    if text.startswith("/") and not text.startswith("//") and "\\" not in text:
        return text
    scheme = urlsplit(text).scheme.lower() if ":" in text else ""
    return text if scheme in ("http", "https") and "\\" not in text else ""


class Templates:
    """Renders templates from the web shell and every context's ``templates/`` folder."""

    def __init__(
        self,
        extra_dirs: Sequence[Path] = (),
        *,
        city_name: str = "上海市",
        dev: bool = False,
        kiosk_idle_seconds: int = 90,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self.dirs = [TEMPLATE_DIR, *extra_dirs]
        self.city_name = city_name
        self.dev = dev
        self.kiosk_idle_seconds = kiosk_idle_seconds
        self.zone = ZoneInfo(timezone)
        self._envs: dict[str, Environment] = {}
        self._static_versions: dict[str, str] = {}

    def env(self, locale: str) -> Environment:
        """The environment for ``locale`` with its catalogue installed."""
        if locale not in self._envs:
            env = Environment(
                loader=FileSystemLoader([str(d) for d in self.dirs]),
                autoescape=select_autoescape(["html", "xml"]),
                extensions=["jinja2.ext.i18n"],
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
            env.globals.update(
                static=self.static_url,
                audiences=AUDIENCES,
                city_name=self.city_name,
                level_labels=LEVEL_LABELS,
                kiosk_idle_seconds=self.kiosk_idle_seconds,
            )
            env.filters["local_time"] = self.local_time
            env.filters["safe_url"] = safe_url
            system = translations(locale).gettext(SYSTEM_LABEL)
            env.filters["actor"] = lambda name: system if name == SYSTEM_ACTOR else name
            self._envs[locale] = env
        return self._envs[locale]

    def local_time(self, value: datetime | str | None) -> str:
        """A stored time (UTC, naive or aware, or ISO text) as the city's local ``YYYY-MM-DD HH:MM``."""
        if value is None or value == "":
            return ""
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")

    def static_url(self, path: str) -> str:
        """URL of a static asset with a content hash, so browsers may cache it for long."""
        version = self._static_versions.get(path)
        if version is None:
            file = STATIC_DIR / path
            version = hashlib.sha256(file.read_bytes()).hexdigest()[:10] if file.is_file() else "missing"
            self._static_versions[path] = version
        return f"/static/{path}?v={version}"

    def render(
        self, request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
    ) -> HTMLResponse:
        """Render ``name`` in the request's locale."""
        locale = request_locale(request)
        others = [loc for loc in SUPPORTED_LOCALES if loc != locale]
        page = (
            self.env(locale)
            .get_template(name)
            .render(
                request=request,
                locale=locale,
                lang_tag=LANGUAGE_TAGS[locale],
                other_locales=others,
                lang_cookie=LANG_COOKIE,
                current_path=request.url.path,
                mode=request_mode(request),
                dev=self.dev,
                principal=getattr(request.state, "principal", None),
                calendar_gap=default_calendar().schedule_gap(city_today()),
                csrf_token=getattr(request.state, "csrf_token", ""),
                **(context or {}),
            )
        )
        response = HTMLResponse(page, status_code=status_code, headers={"Content-Language": LANGUAGE_TAGS[locale]})
        if normalise(request.query_params.get("lang")) == locale and request.cookies.get(LANG_COOKIE) != locale:
            # ?lang= chose the language of this page: remember it, or the form on it would answer in another
            remember_language(response, locale)
        return response

    def error_page(self, request: Request, problem: Problem) -> Response:
        """The friendly HTML page shown to browsers instead of a problem document (a page that needs a
        session sends a visitor without one to sign in, and back)."""
        back = problem.extra.get(SIGN_IN)
        if problem.slug == "unauthenticated" and isinstance(back, str):
            return RedirectResponse(f"/login?next={quote(back)}", status_code=303)
        locale = request_locale(request)
        response = self.render(
            request,
            "web/error.html",
            {
                "status": problem.type.status,
                "title": gettext(problem.type.title, locale),
                "slug": problem.slug,
                # what was wrong, field by field (a form the page could not show again with its errors)
                "errors": [(e.field.rsplit(".", 1)[-1], e.message) for e in problem.errors],
            },
            status_code=problem.type.status,
        )
        response.headers.update(problem.headers)
        return response

    def install(self, responder: ProblemResponder) -> None:
        """Make ``responder`` answer browsers with the HTML error page."""
        responder.html_renderer = self.error_page

"""Languages: zh-CN first, English second, with Babel message catalogues.

Message ids in code and templates are English; the zh_CN catalogue translates them. Web pages are
Chinese unless the visitor switched (``?lang=`` or the ``shgov_lang`` cookie); API clients choose with
``Accept-Language``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.support import NullTranslations, Translations
from starlette.requests import Request
from starlette.responses import Response

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DEFAULT_LOCALE = "zh_CN"
SUPPORTED_LOCALES: tuple[str, ...] = ("zh_CN", "en")
LANG_COOKIE = "shgov_lang"
# BCP 47 tags for the html lang attribute and Content-Language.
LANGUAGE_TAGS = {"zh_CN": "zh-CN", "en": "en"}


def N_(message: str) -> str:  # noqa: N802 - the conventional gettext marker name
    """Mark ``message`` for extraction without translating it now."""
    return message


@cache
def translations(locale: str) -> NullTranslations:
    """The compiled catalogue for ``locale`` (English ids pass through untranslated)."""
    if locale == "en":
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [locale], domain="messages")


def gettext(message: str, locale: str) -> str:
    """Translate ``message`` into ``locale``."""
    return translations(locale).gettext(message)


def normalise(tag: str | None) -> str | None:
    """Map a language tag such as ``zh-CN``, ``zh-Hans`` or ``en-US`` onto a supported locale."""
    if not tag:
        return None
    try:
        parsed = Locale.parse(tag.strip().replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return None
    if parsed.language == "zh":
        return "zh_CN"
    if parsed.language == "en":
        return "en"
    return None


def from_accept_language(header: str | None) -> str | None:
    """The best supported locale named in an ``Accept-Language`` header, or None."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        locale = normalise(tag)
        if locale and quality > 0:
            ranked.append((-quality, position, locale))
    return sorted(ranked)[0][2] if ranked else None


def request_locale(request: Request, *, default: str = DEFAULT_LOCALE) -> str:
    """The locale of ``request``: explicit choice, then (for API clients) Accept-Language."""
    cached = getattr(request.state, "locale", None)
    if isinstance(cached, str):
        return cached
    locale = normalise(request.query_params.get("lang")) or normalise(request.cookies.get(LANG_COOKIE))
    if locale is None and is_api_request(request):
        locale = from_accept_language(request.headers.get("accept-language"))
    chosen = locale or default
    request.state.locale = chosen
    return chosen


LANG_COOKIE_SECONDS = 365 * 24 * 3600


def remember_language(response: Response, locale: str) -> None:
    """Keep the visitor's language choice in a cookie."""
    response.set_cookie(LANG_COOKIE, locale, max_age=LANG_COOKIE_SECONDS, samesite="lax")


API_PREFIXES = ("/api/", "/open311/", "/healthz", "/readyz")


def is_api_request(request: Request) -> bool:
    """True for machine clients: API paths, or a client that does not accept HTML."""
    path = request.url.path
    if path.startswith(API_PREFIXES) or path in ("/api", "/open311"):
        return True
    return "text/html" not in request.headers.get("accept", "")

"""Every answer — a page, a JSON document, a problem, a static file — carries the security headers, and
every cookie leaves HttpOnly and SameSite, Secure in production."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from shgov.app import create_app
from shgov.core.db import Database
from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.core.regions.service import RegionIndex
from shgov.core.settings import Settings
from shgov.web.templating import safe_url
from tests.conftest import LiveServer, make_settings

# The served app on SQLite (the headers do not depend on the backend).
SQLITE = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)

HTML = {"accept": "text/html"}
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def directives(response: httpx.Response) -> dict[str, list[str]]:
    """The response's Content-Security-Policy as directive → sources."""
    policy = response.headers.get("content-security-policy", "")
    parsed: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def assert_protected(response: httpx.Response) -> None:
    """The headers every answer must carry, and a policy that runs no inline or evaluated script."""
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] in ("strict-origin-when-cross-origin", "same-origin", "no-referrer")
    policy = directives(response)
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]
    # <style> elements only from our own files; only style attributes may be inline (ECharts' tooltips).
    assert policy["style-src"] == ["'self'"]
    for sources in policy.values():
        assert "'unsafe-eval'" not in sources
        assert "*" not in sources


@pytest.mark.parametrize(
    ("path", "headers", "kind"),
    [
        ("/", HTML, "text/html"),
        ("/services", HTML, "text/html"),
        ("/api/docs", HTML, "text/html"),
        ("/api/v1/regions?level=district", {"accept": "application/json"}, "application/json"),
        ("/api/openapi.json", {}, "application/json"),
        ("/api/v1/no-such-thing", {"accept": "application/json"}, "application/problem+json"),
        ("/no-such-page", HTML, "text/html"),
        ("/static/css/app.css", {}, "text/css"),
        ("/static/js/sensing-devices.js", {}, "javascript"),
        ("/healthz", {}, "application/json"),
    ],
)
@SQLITE
def test_every_answer_carries_the_security_headers(
    client: httpx.Client, path: str, headers: dict[str, str], kind: str
) -> None:
    response = client.get(path, headers=headers)
    assert kind in response.headers["content-type"]
    assert_protected(response)
    # Over plain http in a test environment there is no HSTS (it would pin a developer's localhost).
    assert "strict-transport-security" not in response.headers


@SQLITE
def test_a_page_has_no_inline_script_or_handler(client: httpx.Client) -> None:
    for path in ("/", "/login", "/services", "/api/docs", "/opendata", "/ratings"):
        page = client.get(path, headers=HTML).text
        for tag in re.findall(r"<script\b[^>]*>", page):
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
        assert not re.search(r"\son[a-z]+\s*=", page), path
        assert "javascript:" not in page, path


@SQLITE
def test_the_api_docs_start_from_a_static_script(client: httpx.Client) -> None:
    page = client.get("/api/docs", headers=HTML).text
    assert 'data-openapi-url="/api/openapi.json"' in page
    assert re.search(r'<script src="/static/js/api-docs\.js\?v=[0-9a-f]{10}"></script>', page)
    script = client.get("/static/js/api-docs.js")
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.text


def cookie_flags(response: httpx.Response, name: str) -> set[str]:
    """The attribute names (lower case) of the ``Set-Cookie`` header that sets ``name``."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return {part.split("=", 1)[0].strip().lower() for part in header.split(";")[1:]}
    raise AssertionError(f"no cookie {name} in {response.headers.get_list('set-cookie')}")


def sign_in(base_url: str) -> httpx.Response:
    """Sign a demo administrator in over the web form; the answer that sets the session cookie.

    The form's anonymous cookie is sent back by hand: a client keeps a ``Secure`` cookie off plain http."""
    with httpx.Client(base_url=base_url, headers=HTML) as browser:
        form = browser.get("/login")
        found = CSRF.search(form.text)
        assert found is not None
        anon = form.headers["set-cookie"].split(";", 1)[0]
        return browser.post(
            "/login",
            data={"username": "pudong.admin", "password": DEMO_PASSWORD, "csrf_token": found.group(1)},
            headers={"cookie": anon},
        )


@SQLITE
def test_cookies_are_http_only_and_same_site_but_not_secure_over_http_in_test(client: httpx.Client) -> None:
    language = client.get("/lang/en", params={"next": "/"})
    assert cookie_flags(language, "shgov_lang") >= {"httponly", "samesite"}
    assert "secure" not in cookie_flags(language, "shgov_lang")
    mode = client.get("/mode/elder", params={"next": "/"})
    assert cookie_flags(mode, "shgov_mode") >= {"httponly", "samesite"}
    signed = sign_in(str(client.base_url))
    assert signed.status_code == 303
    assert cookie_flags(signed, "shgov_session") >= {"httponly", "samesite"}


@pytest.fixture
def production_url(
    live_server: LiveServer, tmp_path: Path, settings: Settings, db: Database, region_index: RegionIndex
) -> Iterator[str]:
    """The app as production configures it (``SHGOV_ENV=prod``), served on the session's server."""
    prod = make_settings(
        tmp_path / "prod",
        env="prod",
        database={"url": settings.database.url},
        web={"session_secret": "prod-session-secret-0123456789abcdef"},
    )
    application: FastAPI = create_app(prod, database=db, background=False)
    application.state.region_index = region_index
    live_server.switch.target = application
    yield live_server.url
    live_server.switch.target = None
    for runtime in application.state.runtimes.values():
        runtime.stop()


@SQLITE
def test_in_production_every_cookie_is_secure_and_https_is_pinned(production_url: str) -> None:
    with httpx.Client(base_url=production_url) as client:
        page = client.get("/", headers=HTML)
        assert_protected(page)
        assert page.headers["strict-transport-security"].startswith("max-age=")
        language = client.get("/lang/en", params={"next": "/"})
        assert cookie_flags(language, "shgov_lang") >= {"httponly", "samesite", "secure"}
        login = client.get("/login", headers=HTML)
        assert cookie_flags(login, "shgov_anon") >= {"httponly", "samesite", "secure"}
    signed = sign_in(production_url)
    assert signed.status_code == 303
    assert cookie_flags(signed, "shgov_session") >= {"httponly", "samesite", "secure"}


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("/cases/1", True),
        ("https://example.org/a.jpg", True),
        ("HTTP://example.org/", True),
        ("javascript:alert(1)", False),
        (" JavaScript:alert(1)", False),
        ("java\tscript:alert(1)", False),
        ("\x01javascript:alert(1)", False),
        ("data:text/html,<script>alert(1)</script>", False),
        ("vbscript:x", False),
        ("//evil.example/", False),
        ("/\\evil.example", False),
        ("", False),
        (None, False),
    ],
)
def test_only_paths_and_http_addresses_become_links(value: str | None, kept: bool) -> None:
    assert (safe_url(value) != "") is kept

"""The web shell: Chinese first, an English switch, the four audiences, local assets, complete catalogues."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from babel.messages.pofile import read_po

from shgov.core.i18n import LOCALE_DIR

HTML = {"accept": "text/html"}


def test_the_home_page_is_chinese_by_default(client: httpx.Client) -> None:
    response = client.get("/", headers=HTML | {"accept-language": "en-US,en;q=0.9"})
    assert response.status_code == 200
    assert '<html lang="zh-CN">' in response.text
    for label in ("市民/企业", "窗口/经办", "数据管理", "城运中心"):
        assert label in response.text


def test_switching_to_english_sets_a_cookie_and_returns_to_the_page(client: httpx.Client) -> None:
    response = client.get("/lang/en", params={"next": "/staff"})
    assert response.status_code == 303
    assert response.headers["location"] == "/staff"
    assert "shgov_lang=en" in response.headers["set-cookie"]
    page = client.get("/staff", headers=HTML)
    assert '<html lang="en">' in page.text
    assert "Window and case workers" in page.text


def test_a_page_opened_with_lang_keeps_that_language_for_what_follows(client: httpx.Client) -> None:
    """A form on a page opened with ?lang=en answers in English (its POST carries no ?lang)."""
    page = client.get("/login", params={"lang": "en"}, headers=HTML)
    assert '<html lang="en">' in page.text
    assert "shgov_lang=en" in page.headers["set-cookie"]
    assert '<html lang="en">' in client.get("/staff", headers=HTML).text
    assert "set-cookie" not in client.get("/staff", params={"lang": "en"}, headers=HTML).headers  # known already


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_the_language_switch_never_redirects_off_site(client: httpx.Client, target: str) -> None:
    response = client.get("/lang/zh-CN", params={"next": target})
    assert response.headers["location"] == "/"


def test_an_unknown_language_is_not_found(client: httpx.Client) -> None:
    assert client.get("/lang/xx").status_code == 404


@pytest.mark.parametrize("path", ["/citizens", "/staff", "/data", "/operations"])
def test_every_audience_has_a_hub_page(client: httpx.Client, path: str) -> None:
    response = client.get(path, headers=HTML)
    assert response.status_code == 200
    assert 'aria-current="page"' in response.text


@pytest.mark.parametrize("asset", ["vendor/htmx.min.js", "vendor/echarts.min.js", "css/app.css"])
def test_front_end_assets_are_served_locally(client: httpx.Client, asset: str) -> None:
    response = client.get(f"/static/{asset}")
    assert response.status_code == 200
    assert len(response.content) > 1000


def test_pages_reference_no_external_hosts(client: httpx.Client) -> None:
    for path in ("/", "/api/docs"):
        text = client.get(path, headers=HTML).text
        assert not re.search(r"""(src|href)=["']https?://""", text), path


def test_the_api_documentation_and_schema_are_served(client: httpx.Client) -> None:
    assert "swagger-ui" in client.get("/api/docs").text
    schema = client.get("/api/openapi.json").json()
    assert "/healthz" in schema["paths"]


def test_the_chinese_catalogue_translates_every_message() -> None:
    with (LOCALE_DIR / "messages.pot").open("rb") as f:
        template = {m.id for m in read_po(f) if m.id}
    with (LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalogue = read_po(f)
    untranslated = sorted(str(m.id) for m in catalogue if m.id and (not m.string or m.fuzzy))
    assert untranslated == []
    assert template <= {m.id for m in catalogue if m.id}


def test_templates_hold_no_untranslated_text() -> None:
    """Visible text in templates goes through gettext: no bare CJK or English words between tags."""
    root = Path(__file__).resolve().parents[2] / "src" / "shgov"
    offenders: list[str] = []
    for template in root.rglob("templates/**/*.html"):
        source = re.sub(r"{[{%#].*?[}%#]}", "", template.read_text(), flags=re.DOTALL)
        source = re.sub(r"<(script|style)\b.*?</\1>", "", source, flags=re.DOTALL)
        for text in re.findall(r">([^<>]+)<", source):
            if re.search(r"[A-Za-z\u4e00-\u9fff]{2,}", text) and text.strip() not in {"English", "中文"}:
                offenders.append(f"{template.name}: {text.strip()}")
    assert offenders == []

"""A real Chromium (Debian's, driven by Playwright) sees the shell in Chinese, then in English."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("engine", ["sqlite"], indirect=True)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: `make test` installs it")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="en-US")
    tab = context.new_page()
    yield tab
    context.close()


def test_the_home_page_opens_in_chinese_and_switches_to_english(page: Page, server_url: str) -> None:
    page.goto(server_url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", level=1)).to_have_text("一网通办 · 一网统管")
    expect(page.get_by_role("navigation", name="主导航")).to_contain_text("市民/企业")

    page.get_by_test_id("lang-en").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("One network for services, one network for operations")
    expect(page.get_by_role("navigation", name="Main navigation")).to_contain_text("Citizens and enterprises")

    page.get_by_test_id("lang-zh_CN").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")


def test_the_first_tab_reaches_the_skip_link(page: Page, server_url: str) -> None:
    page.goto(server_url + "/")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent.trim()")
    assert focused == "跳到主要内容"


def test_the_shell_fits_a_phone_screen(browser: Browser, server_url: str) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2, is_mobile=True)
    phone = context.new_page()
    phone.goto(server_url + "/")
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    expect(phone.get_by_role("link", name="城运中心").first).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "home-phone.png"), full_page=True)
    context.close()

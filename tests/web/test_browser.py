"""A real Chromium (Debian's, driven by Playwright) sees the shell in Chinese, then in English."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from shgov.core.identity.demo import DEMO_PASSWORD

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


def test_the_home_map_draws_the_sixteen_districts(page: Page, server_url: str) -> None:
    page.goto(server_url + "/")
    chart = page.get_by_test_id("district-map")
    expect(chart).to_have_attribute("data-ready", "true", timeout=10_000)
    expect(chart.locator("canvas")).to_have_count(1)
    assert page.locator("tr[data-code]").count() == 16
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(ARTIFACTS / "home-desktop.png"), full_page=True)


def test_a_person_signs_in_and_out_in_the_browser(page: Page, server_url: str) -> None:
    page.goto(server_url + "/login")
    page.get_by_label("用户名").fill("pudong.admin")
    page.get_by_label("密码").fill("wrong password")
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_test_id("login-error")).to_contain_text("用户名或密码错误")
    page.get_by_label("密码").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_test_id("signed-in-as")).to_have_text("浦东新区管理员 李强")
    page.get_by_role("button", name="退出登录").click()
    expect(page.get_by_role("link", name="登录")).to_be_visible()

"""账户安全 in a real Chromium on a 360 px phone: a staff member sets up the TOTP second factor (QR code drawn on
the server, the secret as text), confirms it with a code (pyotp, on the injected clock), then needs a code to
sign in, and turns it off again with a current code — in Chinese, with no script blocked by the CSP."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from shgov.core.identity.demo import DEMO_PASSWORD
from tests.web.test_browser import ARTIFACTS, browser  # noqa: F401 - the module's Chromium fixture

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("engine", ["sqlite"], indirect=True)]


def _code(totp: pyotp.TOTP) -> str:
    return totp.at(datetime.now(UTC))  # the injected clock, which the served app shares


def _sign_in(phone: Page, server_url: str) -> None:
    phone.goto(server_url + "/login?next=/account/security")
    phone.get_by_label("用户名").fill("pudong.admin")
    phone.get_by_label("密码").fill(DEMO_PASSWORD)
    phone.get_by_role("button", name="登录").click()


def test_a_staff_member_sets_up_uses_and_turns_off_a_second_factor_on_a_phone(
    browser: Browser,  # noqa: F811 - the fixture imported above
    server_url: str,
    later: Callable[[float], None],
) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2, is_mobile=True)
    phone = context.new_page()
    blocked: list[str] = []
    phone.on(
        "console",
        lambda m: blocked.append(m.text) if m.type == "error" and "Content Security Policy" in m.text else None,
    )
    _sign_in(phone, server_url)
    expect(phone.get_by_role("heading", level=1)).to_have_text("账户安全")
    expect(phone.get_by_test_id("totp-state")).to_contain_text("未开启")

    phone.get_by_test_id("totp-begin").click()
    expect(phone.get_by_test_id("totp-enrolment")).to_be_visible()
    qr = phone.locator(".qr-code svg")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box is not None
    assert box["width"] <= 360
    secret = phone.get_by_test_id("totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret)
    assert phone.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "account-security-phone.png"), full_page=True)

    totp = pyotp.TOTP(secret)
    phone.get_by_label("验证码").fill("000000" if _code(totp) != "000000" else "111111")
    phone.get_by_role("button", name="确认").click()
    expect(phone.get_by_test_id("security-error")).to_contain_text("验证码错误")
    phone.get_by_label("验证码").fill(_code(totp))
    phone.get_by_role("button", name="确认").click()
    expect(phone.get_by_test_id("security-message")).to_contain_text("双重验证已开启")
    expect(phone.get_by_test_id("totp-state")).to_contain_text("已开启")
    assert secret not in phone.content()  # shown once, on the enrolment page only

    # Signing in now asks for a code (the next step's: the confirming code is used up).
    phone.get_by_role("button", name="退出登录").click()
    later(31)
    _sign_in(phone, server_url)
    expect(phone.get_by_test_id("login-code")).to_be_visible()
    phone.get_by_label("验证码").fill(_code(totp))
    phone.get_by_role("button", name="确认").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("账户安全")

    # Turning it off needs a current code (or the password); a wrong one leaves it on.
    phone.get_by_label("密码").fill("not-my-password")
    phone.get_by_role("button", name="关闭双重验证").click()
    expect(phone.get_by_test_id("security-error")).to_contain_text("仍保持开启")
    later(31)
    phone.get_by_label("验证码").fill(_code(totp))
    phone.get_by_role("button", name="关闭双重验证").click()
    expect(phone.get_by_test_id("security-message")).to_contain_text("双重验证已关闭")
    expect(phone.get_by_test_id("totp-state")).to_contain_text("未开启")

    phone.get_by_test_id("lang-en").click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("Account security")
    assert blocked == []
    context.close()

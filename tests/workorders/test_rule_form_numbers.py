"""A rule id typed into the rule editor's form: beyond 64 bits or not a number, the page says so — never a
server error (SQLite cannot even bind such a number)."""

from __future__ import annotations

import re

import httpx
import pytest

from shgov.core.identity.demo import DEMO_PASSWORD

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


@pytest.mark.parametrize("rule_id", ["99999999999999999999", "-99999999999999999999", "²", "abc", "12345678901"])
def test_a_rule_id_that_fits_no_rule_is_refused_on_the_page(server_url: str, rule_id: str) -> None:
    with httpx.Client(base_url=server_url, headers={"accept": "text/html"}) as browser:
        login = CSRF.search(browser.get("/login").text)
        assert login is not None
        browser.post("/login", data={"username": "admin", "password": DEMO_PASSWORD, "csrf_token": login.group(1)})
        token = CSRF.search(browser.get("/ops/rules").text)
        assert token is not None
        for op in ("delete", "up"):
            answer = browser.post(
                "/ops/rules", data={"csrf_token": token.group(1), "op": op, "rule_id": rule_id}, follow_redirects=False
            )
            assert answer.status_code < 500, (op, answer.status_code)
            assert answer.status_code != 303, op

"""Numbers typed into the policy workbench: a budget is exact money within 64 bits, a version a whole number —
anything else is refused on the page naming the field, never a server error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from shgov.benefits.models import PolicyVersion
from shgov.core.db import Database
from shgov.core.identity.demo import DEMO_PASSWORD

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


@contextmanager
def manager(server_url: str) -> Iterator[tuple[httpx.Client, str]]:
    """A browser signed in as the platform administrator, and the CSRF token its forms carry."""
    with httpx.Client(base_url=server_url, headers={"accept": "text/html"}) as browser:
        login = CSRF.search(browser.get("/login").text)
        assert login is not None
        browser.post("/login", data={"username": "admin", "password": DEMO_PASSWORD, "csrf_token": login.group(1)})
        token = CSRF.search(browser.get("/ops/benefits/new").text)
        assert token is not None
        yield browser, token.group(1)


def policy(csrf: str, budget: str) -> dict[str, str]:
    """The workbench form of a small policy with ``budget`` yuan."""
    return {
        "csrf_token": csrf,
        "op": "save",
        "code": "form_numbers",
        "name": "表单数字（示例）",
        "target": "person",
        "department_code": "310000.mz",
        "legal_basis": "示例",
        "mode": "auto",
        "period": "once",
        "effective_from": "2026-01-01",
        "conditions": 'district_code != ""',
        "amount": "100",
        "budget_yuan": budget,
    }


def test_budgets_and_versions_typed_into_the_workbench(server_url: str, lake_dir: Path, db: Database) -> None:
    with manager(server_url) as (browser, csrf):
        for budget in ("1e30", "NaN", "Infinity", "-5", "0.001", "1e999999999", str(2**64)):
            refused = browser.post("/ops/benefits", data=policy(csrf, budget), follow_redirects=False)
            assert refused.status_code < 500, (budget, refused.status_code)
            assert refused.status_code != 303, budget
            assert "预算应为金额" in refused.text, budget
        saved = browser.post("/ops/benefits", data=policy(csrf, "36000000.00"), follow_redirects=False)
        assert saved.status_code == 303, saved.text[:300]
        with db.session() as session:
            stored = session.scalar(select(PolicyVersion.budget_fen).where(PolicyVersion.policy_code == "form_numbers"))
        assert stored == 3_600_000_000
        for version in ("99999999999999999999", "abc", "²"):
            refused = browser.post(
                "/ops/benefits",
                data={"csrf_token": csrf, "op": "activate", "code": "form_numbers", "version": version},
                follow_redirects=False,
            )
            assert refused.status_code < 500, (version, refused.status_code)
            assert refused.status_code != 303, version

"""The dispute pages: a resident reports a wrong value, the department corrects it, the resident sees the answer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from shgov.core.identity.demo import DEMO_PASSWORD

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@contextmanager
def browser_for(server_url: str, username: str, password: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, headers={"accept": "text/html"}, follow_redirects=True) as browser:
        form = browser.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form)
        assert csrf is not None
        signed = browser.post("/login", data={"username": username, "password": password, "csrf_token": csrf.group(1)})
        assert signed.status_code in (200, 303)
        yield browser


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


def test_a_resident_reports_and_the_department_corrects_through_the_pages(
    server_url: str, resident: tuple[str, str], lake_dir: object
) -> None:
    with browser_for(server_url, "resident", "Resident#2026x") as me:
        page = me.get("/disputes")
        assert "我的信息有误" in page.text
        filed = me.post(
            "/disputes",
            data={
                "element": "address",
                "proposed_value": "浦东新区某路8号",
                "reason": "地址已变更",
                "csrf_token": csrf_of(page.text),
            },
        )
        assert filed.status_code == 200  # followed the redirect back to the list
        assert "已提交" in filed.text
        missing_csrf = me.post("/disputes", data={"element": "address", "reason": "再次提交"})
        assert missing_csrf.status_code == 403
    with browser_for(server_url, "admin", DEMO_PASSWORD) as department:
        routed = department.get("/data/disputes")
        assert "浦东新区某路8号" in routed.text
        dispute_id = re.search(r'data-dispute="([0-9a-f-]+)"', routed.text)
        assert dispute_id is not None
        done = department.post(
            f"/data/disputes/{dispute_id.group(1)}",
            data={
                "action": "correct",
                "reason": "核实无误，已更正",
                "corrected_value": "浦东新区某路8号",
                "csrf_token": csrf_of(routed.text),
            },
        )
        assert done.status_code == 200
        assert "已更正" in done.text
    with browser_for(server_url, "resident", "Resident#2026x") as me:
        assert "核实无误，已更正" in me.get("/disputes").text


def test_the_department_page_is_for_departments(server_url: str, resident: tuple[str, str], lake_dir: object) -> None:
    with browser_for(server_url, "resident", "Resident#2026x") as me:
        assert me.get("/data/disputes").status_code == 403

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


def test_evidence_goes_with_a_filing_from_the_page_and_bad_files_lose_nothing(
    server_url: str, resident: tuple[str, str], lake_dir: object
) -> None:
    pdf = b"%PDF-1.4\n%%EOF\n"
    with browser_for(server_url, "resident", "Resident#2026x") as me:
        page = me.get("/disputes")
        assert 'enctype="multipart/form-data"' in page.text
        refused = me.post(
            "/disputes",
            data={"element": "address", "reason": "地址已变更", "csrf_token": csrf_of(page.text)},
            files=[("evidence", ("证明.pdf", b"not a pdf", "application/pdf"))],
        )
        assert refused.status_code == 200
        assert 'data-testid="dispute-error"' in refused.text
        assert "data-dispute=" not in refused.text  # the refused filing left no dispute behind
        filed = me.post(
            "/disputes",
            data={"element": "address", "reason": "地址已变更", "csrf_token": csrf_of(page.text)},
            files=[("evidence", ("居住证明.pdf", pdf, "application/pdf"))],
        )
        assert "居住证明.pdf" in filed.text
        link = re.search(r'href="(/disputes/[0-9a-f-]+/evidence/[0-9a-f-]+)"', filed.text)
        assert link is not None
        assert me.get(link.group(1)).content == pdf
        # No file chosen: the browser's empty part is not evidence.
        plain = me.post(
            "/disputes",
            data={"element": "marital_status", "reason": "已离婚", "csrf_token": csrf_of(page.text)},
            files=[("evidence", ("", b"", "application/octet-stream"))],
        )
        assert plain.text.count("data-dispute=") == 2
    with browser_for(server_url, "admin", DEMO_PASSWORD) as department:
        routed = department.get("/data/disputes")
        assert 'data-testid="evidence"' in routed.text
        assert department.get(link.group(1)).content == pdf
    with browser_for(server_url, "pudong.window", DEMO_PASSWORD) as stranger:
        assert stranger.get(link.group(1)).status_code == 404

"""The services pages over real HTTP: search and guides are public; the bundle admin page checks uploads
and saves all or nothing."""

from __future__ import annotations

import json

import httpx
import pytest

from shgov.core.db import Database
from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.core.settings import Settings
from shgov.services import service as services
from tests.disputes.test_pages import browser_for, csrf_of

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@pytest.fixture
def seeded(db: Database, settings: Settings) -> None:
    with db.session() as session:
        services.seed_demo(session, settings)


def test_search_and_guides_are_public_and_generated_from_the_data(client: httpx.Client, seeded: None) -> None:
    found = client.get("/services", params={"q": "出生"})
    assert found.status_code == 200
    assert 'href="/services/bundles/birth"' in found.text
    by_event = client.get("/services", params={"life_event": "开办企业"})
    assert 'href="/services/bundles/company"' in by_event.text
    assert "没有找到" in client.get("/services", params={"q": "火星移民签证"}).text
    guide = client.get("/services/bundles/birth")
    assert guide.status_code == 200
    assert guide.text.count("<td>结婚证</td>") == 1  # merged: asked by several items, listed once
    assert "出生医学证明首次签发" in guide.text
    assert 'href="/apply/bundle/birth"' in guide.text
    item = client.get("/services/items/310000-WJ-0001")
    assert "母婴保健法" in item.text  # the legal basis
    assert client.get("/services/items/NO-SUCH").status_code == 404
    assert client.get("/services/other/birth").status_code == 404


def test_the_admin_page_refuses_a_bad_bundle_whole_and_saves_a_good_one(
    server_url: str, seeded: None, db: Database
) -> None:
    birth = next(
        b for b in services.load_bundle_file(services.DATA / "bundles" / "bundles.json") if b["code"] == "birth"
    )
    bpmn = (services.DATA / "bundles" / "birth.bpmn").read_bytes()
    first = {**birth, "code": "birth2", "name": "小孩出生一件事（新版）", "bpmn": "birth.bpmn"}
    evil = {**birth, "code": "birth3", "bpmn": "evil.bpmn"}
    evil_bpmn = bpmn.replace(b"want_social_card == True", b"__import__('os').system('id')")
    with httpx.Client(base_url=server_url, headers={"accept": "text/html"}) as anonymous:
        assert anonymous.get("/data/services").status_code == 303  # sign in first
    with browser_for(server_url, "pudong.window", DEMO_PASSWORD) as clerk:
        assert clerk.get("/data/services").status_code == 403
    with browser_for(server_url, "admin", DEMO_PASSWORD) as admin:
        page = admin.get("/data/services")
        assert page.status_code == 200
        refused = admin.post(
            "/data/services/bundles",
            data={"csrf_token": csrf_of(page.text)},
            files=[
                ("definition", ("bundles.json", json.dumps([first, evil]).encode(), "application/json")),
                ("bpmn", ("birth.bpmn", bpmn, "application/xml")),
                ("bpmn", ("evil.bpmn", evil_bpmn, "application/xml")),
            ],
        )
        assert refused.status_code == 422
        assert 'data-testid="admin-error"' in refused.text
        assert "birth2" not in refused.text  # the good one in the same upload is not saved either
        saved = admin.post(
            "/data/services/bundles",
            data={"csrf_token": csrf_of(page.text)},
            files=[
                ("definition", ("bundles.json", json.dumps(first).encode(), "application/json")),
                ("bpmn", ("birth.bpmn", bpmn, "application/xml")),
            ],
        )
        assert saved.status_code == 200
        assert "birth2" in saved.text
        missing = admin.post(
            "/data/services/bundles",
            data={"csrf_token": csrf_of(page.text)},
            files=[("definition", ("b.json", json.dumps({**first, "code": "birth4"}).encode(), "application/json"))],
        )
        assert missing.status_code == 422
        assert "birth.bpmn" in missing.text
    assert client_guide(server_url, "birth2") == 200


def client_guide(server_url: str, code: str) -> int:
    with httpx.Client(base_url=server_url) as anyone:
        return anyone.get(f"/services/bundles/{code}").status_code

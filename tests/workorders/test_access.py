"""One answer for a work order the caller may not know exists (issue #26, point 3): another district's order is
the same 404 as a made-up id, in the API and on the pages, while its owners still see it; a merge and a transfer
are checked against the order they touch."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shgov.core.identity.demo import DEMO_PASSWORD
from tests.disputes.test_pages import browser_for, csrf_of
from tests.workorders.test_loop import auth, staff

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
SQUARE = {"lat": 31.2304, "lng": 121.4737}  # 人民广场, 黄浦区 310101
LUJIAZUI = {"lat": 31.2397, "lng": 121.4998}  # 陆家嘴, 浦东新区 310115
MADE_UP = str(uuid.UUID(int=0xDEADBEEF))


def hotline(client: httpx.Client, token: str, place: dict[str, float], text: str) -> dict[str, Any]:
    made = client.post(
        "/api/v1/workorders",
        json={
            "channel": "hotline",
            "description": text,
            "category_code": "02.03.001",
            "caller_name": "王先生",
            "caller_phone": "13900005678",
            **place,
        },
        headers=auth(token),
    )
    assert made.status_code == 201, made.text
    order: dict[str, Any] = made.json()
    return order


def same_404(hidden: httpx.Response, missing: httpx.Response, hidden_id: str) -> None:
    """Two answers that cannot be told apart but by the id the caller typed."""
    assert hidden.status_code == missing.status_code == 404, (hidden.text, missing.text)
    assert hidden.headers["content-type"] == missing.headers["content-type"]
    assert hidden.text.replace(hidden_id, MADE_UP) == missing.text


@pytest.fixture
def huangpu_order(client: httpx.Client, token_for: Callable[[str], str]) -> dict[str, Any]:
    """A hotline order of 黄浦区, taken by the city's centre."""
    return hotline(client, token_for("admin"), SQUARE, "人民广场路口的路灯不亮，晚上一片漆黑")


def test_another_districts_order_is_the_same_404_as_a_made_up_id_in_the_api(
    client: httpx.Client, token_for: Callable[[str], str], db: Any, huangpu_order: dict[str, Any]
) -> None:
    order_id = huangpu_order["id"]
    pudong = auth(token_for("pudong.ops"))  # Pudong's operations centre
    citizen = auth(token_for("citizen"))  # not the reporter
    for headers in (pudong, citizen):
        for method, path, body in (
            ("GET", "/api/v1/workorders/{}", None),
            ("POST", "/api/v1/workorders/{}/steps", {"action": "close"}),
            ("POST", "/api/v1/workorders/{}/steps", {"action": "merge", "target": MADE_UP}),
            ("POST", "/api/v1/workorders/{}/tasks/road", {"note": "已处置完毕"}),
        ):
            hidden = client.request(method, path.format(order_id), json=body, headers=headers)
            missing = client.request(method, path.format(MADE_UP), json=body, headers=headers)
            same_404(hidden, missing, order_id)
            assert hidden.headers["content-type"].startswith("application/problem+json")
    not_an_id = client.get("/api/v1/workorders/not-an-id", headers=pudong)
    assert not_an_id.status_code == 404

    # its owners still see it: the city's centre, and the unit it was dispatched to
    assert client.get(f"/api/v1/workorders/{order_id}", headers=auth(token_for("admin"))).status_code == 200
    unit = staff(db, "huangpu.unit", "310101", huangpu_order["lead_unit"].split(".", 1)[1])
    seen = client.get(f"/api/v1/workorders/{order_id}", headers=auth(unit))
    assert seen.status_code == 200, seen.text
    assert seen.json()["number"] == huangpu_order["number"]


def test_a_merge_into_and_a_transfer_to_another_district_are_refused(
    client: httpx.Client, token_for: Callable[[str], str], huangpu_order: dict[str, Any]
) -> None:
    pudong = token_for("pudong.ops")
    mine = hotline(client, pudong, LUJIAZUI, "陆家嘴环路路灯不亮")
    assert mine["district_code"] == "310115"
    steps = f"/api/v1/workorders/{mine['id']}/steps"

    hidden = client.post(steps, json={"action": "merge", "target": huangpu_order["id"]}, headers=auth(pudong))
    missing = client.post(steps, json={"action": "merge", "target": MADE_UP}, headers=auth(pudong))
    same_404(hidden, missing, huangpu_order["id"])

    moved = client.post(
        steps, json={"action": "transfer", "unit": huangpu_order["lead_unit"], "note": "转黄浦"}, headers=auth(pudong)
    )
    assert moved.status_code == 422, moved.text
    assert "不能转派" in moved.text
    admin = auth(token_for("admin"))
    after = client.get(f"/api/v1/workorders/{huangpu_order['id']}", headers=admin).json()
    assert after["status"] == huangpu_order["status"]
    assert all("合并" not in event["note"] for event in after["history"])
    still = client.get(f"/api/v1/workorders/{mine['id']}", headers=admin).json()
    assert still["lead_unit"] == mine["lead_unit"]
    assert still["status"] == "dispatched"


def test_another_districts_order_is_the_same_404_as_a_made_up_id_on_the_pages(
    client: httpx.Client, server_url: str, huangpu_order: dict[str, Any]
) -> None:
    order_id = huangpu_order["id"]
    pages = ("/ops/orders/{}", "/my/reports/{}", "/workorders/{}/photos/0")
    with httpx.Client(base_url=server_url, headers={"accept": "text/html"}) as anonymous:
        for page in pages:
            for some in (order_id, MADE_UP):
                sent = anonymous.get(page.format(some), follow_redirects=False)
                assert sent.status_code == 303, (page, sent.text)
                assert sent.headers["location"].startswith("/login?next=")

    for visitor in ("pudong.ops", "citizen"):
        with browser_for(server_url, visitor, DEMO_PASSWORD) as browser:
            for page in pages:
                same_404(browser.get(page.format(order_id)), browser.get(page.format(MADE_UP)), order_id)
            csrf = csrf_of(browser.get("/ops/orders" if visitor == "pudong.ops" else "/my/reports").text)
            for page, form in (
                ("/ops/orders/{}", {"action": "close"}),
                ("/ops/orders/{}/tasks/road", {"note": "已处置完毕"}),
                ("/my/reports/{}", {"action": "rate", "satisfaction": "1"}),
            ):
                hidden = browser.post(page.format(order_id), data={**form, "csrf_token": csrf})
                missing = browser.post(page.format(MADE_UP), data={**form, "csrf_token": csrf})
                same_404(hidden, missing, order_id)
                assert hidden.headers["content-type"].startswith("text/html")

    with browser_for(server_url, "admin", DEMO_PASSWORD) as owner:
        page = owner.get(f"/ops/orders/{order_id}")
        assert page.status_code == 200
        assert huangpu_order["number"] in page.text
        assert re.search(r'data-testid="order-status"', page.text)

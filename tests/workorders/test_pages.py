"""一网统管 in a real Chromium: a citizen's 随申拍 is classified, located and dispatched, the unit replies, the
citizen reads the answer and rates it; bad reports are refused with nothing kept. Over HTTP: the hotline
form's hints, the rule editor, and the dashboard's scope and live stream."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from shgov.core.db import Database
from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import assign_role, create_user
from shgov.core.settings import Settings
from shgov.workorders import service as workorders
from shgov.workorders.models import RoutingRule, WorkOrder
from tests.cases.test_pages import sign_in, tabs  # noqa: F401 - the tabs fixture
from tests.disputes.test_pages import browser_for, csrf_of
from tests.web.test_browser import browser  # noqa: F401 - the module's Chromium fixture
from tests.workorders.test_photo import count, jpeg

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
STAFF_PASSWORD = "Staff#2026xy"
SQUARE = (31.2304, 121.4737)  # 人民广场, 黄浦区


def unit_staff(db: Database, username: str, district: str, department: str, role: str = "case_worker") -> str:
    with db.session() as session:
        user = create_user(
            session,
            kind="staff",
            username=username,
            display_name=username,
            password=STAFF_PASSWORD,
            tenant_code=district,
            department_code=department,
        )
        assign_role(session, user.id, role, Scope(district, department if role == "case_worker" else None))
    return username


def attach(page: Page, name: str, data: bytes, mime: str) -> None:
    page.locator("#photos").set_input_files(files=[{"name": name, "mimeType": mime, "buffer": data}])


@pytest.mark.browser
def test_a_citizen_reports_by_photo_the_unit_replies_and_the_citizen_rates_the_answer(
    tabs: Callable[..., Page],  # noqa: F811 - the imported fixture
    server_url: str,
    trained: Settings,
    db: Database,
) -> None:
    unit = unit_staff(db, "huangpu.zj", "310101", "310101.zj")
    citizen = tabs(viewport={"width": 390, "height": 844})  # a phone
    sign_in(citizen, server_url, "citizen", DEMO_PASSWORD, "/report")
    attach(citizen, "scene.jpg", jpeg(*SQUARE), "image/jpeg")
    citizen.locator("#description").fill("人民广场路口的路灯不亮，晚上一片漆黑，行人很不安全")
    citizen.get_by_test_id("send-report").click()
    expect(citizen.get_by_test_id("received")).to_be_visible()
    expect(citizen.get_by_test_id("report-status")).to_have_attribute("data-status", "dispatched")
    expect(citizen.get_by_test_id("report-category")).to_contain_text("路灯不亮")
    expect(citizen.get_by_test_id("report-place")).to_contain_text("黄浦区")
    expect(citizen.get_by_test_id("report-unit")).to_contain_text("黄浦")
    expect(citizen.get_by_test_id("photos").locator("img")).to_have_count(1)
    report_url = citizen.url.split("?")[0]
    order_id = report_url.rsplit("/", 1)[1]

    staff = tabs()
    sign_in(staff, server_url, unit, STAFF_PASSWORD, "/ops/orders")
    staff.locator(f"[data-testid=orders] a[href='/ops/orders/{order_id}']").click()
    staff.locator("[data-step=sign] button").click()
    expect(staff.get_by_test_id("order-status")).to_have_attribute("data-status", "signed")
    staff.locator("[data-step=reply] button").click()  # a reply without words is refused
    expect(staff.get_by_test_id("order-error")).to_be_visible()
    staff.locator("#reply-note").fill("已更换灯泡，路灯恢复照明。")
    staff.locator("[data-step=reply] button").click()
    expect(staff.get_by_test_id("order-status")).to_have_attribute("data-status", "replied")

    citizen.goto(report_url)
    expect(citizen.get_by_test_id("answer")).to_contain_text("已更换灯泡")
    citizen.locator("input[name=satisfaction][value='4']").check()
    citizen.get_by_test_id("rate").get_by_role("button").click()
    expect(citizen.get_by_test_id("report-status")).to_have_attribute("data-status", "visited")
    expect(citizen.get_by_test_id("my-rating")).to_contain_text("满意")
    citizen.goto(f"{server_url}/my/inbox")
    expect(citizen.locator("body")).to_contain_text("已答复")

    with db.session() as session:
        order = session.get(WorkOrder, uuid.UUID(order_id))
        assert order is not None
        assert order.satisfaction == 4
        assert [e.action for e in workorders.history(session, order.id)][-1] == "rate"


@pytest.mark.browser
def test_bad_photo_reports_are_refused_clearly_and_nothing_is_kept(
    tabs: Callable[..., Page],  # noqa: F811 - the imported fixture
    server_url: str,
    trained: Settings,
    db: Database,
) -> None:
    page = tabs(geolocation={"latitude": SQUARE[0], "longitude": SQUARE[1]}, permissions=["geolocation"])
    sign_in(page, server_url, "citizen", DEMO_PASSWORD, "/report")
    before = count(db)
    cases: list[tuple[Callable[[], None], str]] = [
        (lambda: None, "照片"),  # no photo at all
        (lambda: attach(page, "notes.txt", b"just text", "text/plain"), "不是可以打开的图片"),
        (lambda: attach(page, "big.png", b"\x89PNG" + b"0" * (trained.max_upload_bytes + 10), "image/png"), "上限"),
        (lambda: attach(page, "nowhere.jpg", jpeg(), "image/jpeg"), "位置"),  # no location anywhere
        (lambda: attach(page, "tokyo.jpg", jpeg(35.68, 139.76), "image/jpeg"), "不在本市范围内"),
    ]
    for prepare, message in cases:
        page.goto(f"{server_url}/report")
        page.locator("#description").fill("小区门口垃圾桶满溢，垃圾清运不及时")
        prepare()
        page.get_by_test_id("send-report").click()
        expect(page.get_by_test_id("report-error")).to_contain_text(message)
        expect(page.locator("#description")).to_have_value("小区门口垃圾桶满溢，垃圾清运不及时")
    page.goto(f"{server_url}/report")
    attach(page, "scene.jpg", jpeg(*SQUARE), "image/jpeg")
    page.get_by_test_id("send-report").click()  # empty text
    expect(page.get_by_test_id("report-error")).to_contain_text("描述")
    assert count(db) == before

    page.goto(f"{server_url}/report")  # the device's position fills the form
    page.get_by_test_id("use-location").click()
    expect(page.locator("#lat")).to_have_value(f"{SQUARE[0]:.6f}")
    expect(page.locator("#lng")).to_have_value(f"{SQUARE[1]:.6f}")


def test_the_hotline_form_suggests_categories_flags_duplicates_and_takes_the_call(
    server_url: str, trained: Settings, db: Database
) -> None:
    with browser_for(server_url, "ops.operator", DEMO_PASSWORD) as agent:
        form = agent.get("/ops/hotline")
        assert form.status_code == 200
        text = "人民广场路口的路灯不亮，晚上一片漆黑"
        place = {"lat": str(SQUARE[0]), "lng": str(SQUARE[1])}
        hints = agent.get("/ops/hotline/hints", params={"description": text, **place})
        assert 'data-category="02.03.001"' in hints.text
        assert "黄浦区" in hints.text
        assert "附近没有相似工单" in hints.text
        made = agent.post(
            "/ops/hotline",
            data={"description": text, "caller_name": "张先生", "caller_phone": "13900001234", **place}
            | {"csrf_token": csrf_of(form.text)},
        )
        assert made.status_code == 200
        assert "/ops/orders/" in str(made.url)
        assert "139****1234" in made.text  # the caller's phone is masked on the page
        again = agent.get("/ops/hotline/hints", params={"description": text, **place})
        assert 'data-testid="duplicate-hints"' in again.text
        assert str(made.url).rsplit("/", 1)[1] in again.text  # the first call is a likely duplicate

        refused = agent.post(
            "/ops/hotline", data={"description": "灯", "csrf_token": csrf_of(form.text)}
        )  # too short, and nowhere
        assert refused.status_code == 422
        assert "至少 4 个字" in refused.text


def test_the_rule_editor_adds_tries_moves_and_deletes_rules_and_refuses_bad_ones(
    server_url: str, trained: Settings, db: Database, client: httpx.Client, token_for: Callable[[str], str]
) -> None:
    with browser_for(server_url, "admin", DEMO_PASSWORD) as admin:
        page = admin.get("/ops/rules")
        assert page.status_code == 200
        csrf = csrf_of(page.text)
        rule = {
            "name": "黄浦区路灯：街道牵头",
            "category_prefix": "02.03",
            "area_prefix": "310101",
            "lead_level": "township",
            "lead_department_key": "street",
            "assisting": "zj",
            "active": "on",
            "op": "save",
            "csrf_token": csrf,
        }
        bad = admin.post("/ops/rules", data=rule | {"lead_department_key": "nosuch"})
        assert bad.status_code == 422
        assert "nosuch" in bad.text
        bad = admin.post("/ops/rules", data=rule | {"category_prefix": "99"})
        assert bad.status_code == 422
        added = admin.post("/ops/rules", data=rule)
        assert added.status_code == 200
        with db.session() as session:
            new = session.scalar(select(RoutingRule).where(RoutingRule.name == rule["name"]))
            assert new is not None
            new_id, last = new.id, new.position
        trial = admin.get("/ops/rules", params={"try_category": "02.03.001", "try_area": "310101002"})
        assert "道路与照明" in trial.text  # the new rule is tried last, after the broader one
        admin.post("/ops/rules", data={"op": "up", "rule_id": str(new_id), "csrf_token": csrf})
        with db.session() as session:
            ordered = [r.id for r in workorders.all_rules(session)]
        assert ordered.index(new_id) == len(ordered) - 2
        moved = client.post(
            f"/api/v1/workorders/rules/{new_id}/move",
            params={"offset": -100},
            headers={"Authorization": f"Bearer {token_for('admin')}"},
        )
        assert moved.json()[0]["id"] == new_id
        trial = admin.get("/ops/rules", params={"try_category": "02.03.001", "try_area": "310101002"})
        assert "黄浦区路灯" in trial.text
        assert "南京东路街道" in trial.text  # the township's office leads
        admin.post("/ops/rules", data={"op": "delete", "rule_id": str(new_id), "csrf_token": csrf})
        with db.session() as session:
            assert session.get(RoutingRule, new_id) is None
        assert last > 0
        assert "黄浦区路灯" not in admin.get("/ops/rules").text

    with browser_for(server_url, "ops.operator", DEMO_PASSWORD) as operator:
        page = operator.get("/ops/rules")
        assert page.status_code == 200  # the centre reads the rules …
        refused = operator.post("/ops/rules", data=rule | {"csrf_token": csrf_of(page.text)})
        assert refused.status_code == 403  # … but only their managers change them


def test_the_dashboard_shows_a_district_operator_only_the_district_and_streams_changes(
    server_url: str, trained: Settings, db: Database, token_for: Callable[[str], str], client: httpx.Client
) -> None:
    centre = token_for("admin")
    for lat, lng, text in ((31.2304, 121.4737, "人民广场路灯不亮"), (31.2397, 121.4998, "陆家嘴道路破损，坑洼很深")):
        made = client.post(
            "/api/v1/workorders",
            json={"channel": "hotline", "description": text, "lat": lat, "lng": lng},
            headers={"Authorization": f"Bearer {centre}"},
        )
        assert made.status_code == 201, made.text
    with browser_for(server_url, "pudong.ops", DEMO_PASSWORD) as pudong:
        own = pudong.get("/ops/dashboard", params={"district": "310101"})  # asks for Huangpu, gets Pudong
        assert own.status_code == 200
        data = json.loads(own.text.split('id="ops-data">', 1)[1].split("</script>", 1)[0])
        assert data["district"] == "310115"
        assert data["total"]["open"] == 1
        assert {a["code"][:6] for a in data["by_area"] if a["code"]} <= {"310115"}
        api = pudong.get("/api/v1/workorders/overview")
        assert api.json()["district"] == "310115"
        with pudong.stream("GET", "/ops/dashboard/stream") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            event = next(line for line in lines if line.startswith("data:"))
            assert json.loads(event[5:])["district"] == "310115"
    with browser_for(server_url, "ops.operator", DEMO_PASSWORD) as city:
        whole = city.get("/api/v1/workorders/overview").json()
        assert whole["district"] is None
        assert whole["total"]["open"] == 2
        assert {"310101", "310115"} <= {a["code"] for a in whole["by_area"]}
    with browser_for(server_url, "citizen", DEMO_PASSWORD) as citizen:
        assert citizen.get("/ops/dashboard").status_code == 403

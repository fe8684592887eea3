"""好差评 in a real Chromium: a citizen rates a concluded case badly, the department verifies, rectifies and
answers within the deadlines, the citizen reads the answer and re-rates; overdue loops are supervised; an
appeal is decided by a supervisor; a desk is rated through its QR code and at a kiosk; bad inputs are refused
clearly; the public page draws its charts."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from shgov.core.calendar.service import city_today
from shgov.core.db import Database
from shgov.core.identity.models import User
from shgov.core.identity.service import create_user
from shgov.ratings import service as ratings
from shgov.ratings.models import Rating, Rectification
from tests.cases.conftest import PASSWORD
from tests.cases.test_api import auth
from tests.cases.test_pages import STAFF_PASSWORD, sign_in, staff, tabs  # noqa: F401 - fixtures
from tests.ratings.conftest import make_case
from tests.web.test_browser import browser  # noqa: F401 - the module's Chromium fixture

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("engine", ["sqlite"], indirect=True)]

SUPERVISOR_PASSWORD = "Super#2026xy"


def rating_count(db: Database) -> int:
    """Ratings of cases (the demo city has ratings of its desks)."""
    with db.session() as session:
        return session.scalar(select(func.count()).where(Rating.subject_kind == "case")) or 0


def choose(page: Page, testid: str, label: str) -> None:
    page.get_by_test_id(testid).get_by_label(label, exact=True).check()


def step(page: Page, testid: str, fields: dict[str, str]) -> None:
    form = page.get_by_test_id(testid)
    for label, value in fields.items():
        form.get_by_label(label).fill(value)
    form.get_by_role("button").click()


def test_a_bad_rating_is_rectified_answered_and_re_rated_in_the_browser(
    tabs: Callable[..., Page],  # noqa: F811 - the imported fixture
    server_url: str,
    client: httpx.Client,
    parent: tuple[str, str, str],
    staff: dict[str, str],  # noqa: F811 - the imported fixture
    admin_token: str,
    supervisor: str,
    db: Database,
) -> None:
    _id, token, _district = parent
    case = make_case(client, token, admin_token, "p-1")
    citizen = tabs()
    sign_in(citizen, server_url, "mother", PASSWORD)
    citizen.goto(f"{server_url}/cases/{case['id']}")
    citizen.get_by_test_id("rate-case").click()
    expect(citizen.get_by_test_id("rated-subject")).to_have_text("小孩出生一件事")

    # bad inputs: a level the form does not offer, a comment over the limit (the server checks both)
    citizen.get_by_test_id("level").get_by_label("非常不满意").evaluate("e => e.value = '6'")
    choose(citizen, "level", "非常不满意")
    citizen.get_by_test_id("submit-rating").click()
    expect(citizen.get_by_test_id("rating-error")).to_have_attribute("data-field", "level")
    expect(citizen.get_by_test_id("rating-error")).to_contain_text("非常满意")
    assert rating_count(db) == 0
    citizen.locator("#comment").evaluate("e => e.removeAttribute('maxlength')")
    citizen.locator("#comment").fill("长" * 501)
    choose(citizen, "level", "非常不满意")
    citizen.get_by_test_id("submit-rating").click()
    expect(citizen.get_by_test_id("rating-error")).to_have_attribute("data-field", "comment")
    expect(citizen.get_by_test_id("rating-error")).to_contain_text("500")
    expect(citizen.locator("#comment")).to_have_value("长" * 501)  # nothing typed is lost
    assert rating_count(db) == 0

    # the bad rating, with the guide's accuracy rated bad too
    citizen.locator("#comment").fill("办事指南写的材料和窗口要求不一致")
    choose(citizen, "level", "非常不满意")
    citizen.get_by_text("详细评价").click()
    choose(citizen, "score-guide_accuracy", "不满意")
    citizen.get_by_test_id("submit-rating").click()
    expect(citizen.get_by_test_id("rated")).to_be_visible()
    mine = citizen.get_by_test_id("my-rating")
    expect(mine).to_have_count(1)
    expect(mine.get_by_test_id("rectification-status")).to_have_attribute("data-status", "opened")
    expect(citizen.get_by_test_id("awaiting")).to_have_count(0)
    # rating twice: the form sends the rater to the rating given; a second submission is refused
    citizen.goto(f"{server_url}/my/cases/{case['id']}/rate")
    expect(citizen).to_have_url(f"{server_url}/my/ratings#rating-{mine.get_attribute('data-rating')}")
    again = citizen.request.post(
        f"{server_url}/my/cases/{case['id']}/rate",
        form={"level": "5", "stage": "conclude", "csrf_token": csrf(citizen, server_url)},
    )
    assert again.status == 409
    assert "已评价" in again.text()
    assert rating_count(db) == 1

    # someone else's case is not theirs to rate
    with db.session() as session:
        create_user(session, kind="citizen", username="neighbour", display_name="邻居", password=PASSWORD)
    stranger = tabs()
    sign_in(stranger, server_url, "neighbour", PASSWORD)
    refused = stranger.goto(f"{server_url}/my/cases/{case['id']}/rate")
    assert refused is not None
    assert refused.status == 404

    # the department: contact, verify, rectify, answer — each within its deadline
    worker = tabs()
    sign_in(worker, server_url, staff["wj"], STAFF_PASSWORD)
    worker.goto(f"{server_url}/staff/ratings")
    row = worker.locator("[data-testid=rectifications] tr[data-item=birth]")
    expect(row).to_have_attribute("data-status", "opened")
    expect(row.locator("[data-overdue]")).to_have_count(0)
    row.get_by_role("link").click()
    expect(worker.get_by_test_id("comment")).to_have_text("办事指南写的材料和窗口要求不一致")
    expect(worker.get_by_test_id("rater")).to_contain_text("13900002222")  # the handler may call the rater
    expect(worker.get_by_test_id("step-rectify")).to_have_count(0)  # not before verification
    step(worker, "step-contact", {"联系评价人的方式和时间": "x"})
    expect(worker.get_by_test_id("step-error")).to_have_attribute("data-field", "note")
    step(worker, "step-contact", {"联系评价人的方式和时间": "11月25日电话联系评价人"})
    expect(worker.get_by_test_id("rectification")).to_have_attribute("data-status", "contacted")
    step(worker, "step-verify", {"核实情况": "指南所列材料与窗口要求不一致，属实"})
    expect(worker.get_by_test_id("rectification")).to_have_attribute("data-status", "verified")
    step(worker, "step-rectify", {"原因": "指南未随新规更新", "整改措施": "", "责任单位": "区卫健委"})
    expect(worker.get_by_test_id("step-error")).to_have_attribute("data-field", "measures")
    expect(worker.get_by_test_id("step-rectify").get_by_label("原因")).to_have_value("指南未随新规更新")
    step(
        worker,
        "step-rectify",
        {"原因": "指南未随新规更新", "整改措施": "修订办事指南，培训窗口人员", "责任单位": "区卫健委"},
    )
    expect(worker.get_by_test_id("rectification")).to_have_attribute("data-status", "rectified")
    step(worker, "step-answer", {"给评价人的答复": "您反映的问题已整改，办事指南已更新，感谢监督。"})
    expect(worker.get_by_test_id("rectification")).to_have_attribute("data-status", "answered")
    with db.session() as session:
        rect = session.scalars(select(Rectification).where(Rectification.department_code.endswith(".wj"))).one()
        assert rect.contacted_at is not None
        assert rect.contacted_at.date() <= rect.contact_due
        assert city_today() <= rect.rectify_due

    # another department sees neither the loop nor the rater
    police = tabs()
    sign_in(police, server_url, staff["ga"], STAFF_PASSWORD)
    police.goto(f"{server_url}/staff/ratings")
    expect(police.locator("[data-testid=rectifications] tr[data-item=birth]")).to_have_count(0)
    hidden = police.goto(worker.url)
    assert hidden is not None
    assert hidden.status == 404

    # the citizen reads the answer (also in the inbox) and rates again
    citizen.goto(f"{server_url}/my/inbox")
    expect(citizen.get_by_test_id("notices")).to_contain_text("部门已回复")
    citizen.goto(f"{server_url}/my/ratings")
    expect(citizen.get_by_test_id("feedback")).to_have_text("您反映的问题已整改，办事指南已更新，感谢监督。")
    choose(citizen, "rerate-level", "满意")
    citizen.get_by_test_id("submit-rerate").click()
    expect(citizen.get_by_test_id("rerated")).to_have_text("满意")
    expect(citizen.get_by_test_id("rectification-status")).to_have_attribute("data-status", "concluded")
    worker.reload()
    actions = worker.locator("[data-testid=history] tr[data-action]")
    expect(actions).to_have_count(6)
    assert [a.get_attribute("data-action") for a in actions.all()] == [
        "open",
        "contact",
        "verify",
        "rectify",
        "answer",
        "rerate",
    ]

    # the item-level report surfaces the item whose guide was rated inaccurate; marking it reviewed
    admin = tabs()
    sign_in(admin, server_url, "t.supervisor", SUPERVISOR_PASSWORD)
    admin.goto(f"{server_url}/staff/ratings/report")
    flagged = admin.locator("[data-testid=items] tr[data-item=birth]")
    expect(flagged).to_have_attribute("data-guide", "open")
    flagged.get_by_placeholder("更正了什么").fill("已按窗口要求修订材料清单")
    flagged.get_by_role("button", name="已复核").click()
    expect(admin.locator("[data-testid=items] tr[data-item=birth]")).not_to_have_attribute("data-guide", "open")
    download = admin.request.get(f"{server_url}/api/v1/ratings/stats.csv")
    assert download.ok
    assert "birth" in download.body().decode("utf-8-sig")


def csrf(page: Page, server_url: str) -> str:
    """The CSRF token of the signed-in tab (every page's sign-out form carries it)."""
    page.goto(f"{server_url}/my/ratings")
    return page.locator("input[name=csrf_token]").first.input_value()


def test_overdue_loops_appeals_desks_and_kiosks_in_the_browser(
    tabs: Callable[..., Page],  # noqa: F811 - the imported fixture
    server_url: str,
    client: httpx.Client,
    parent: tuple[str, str, str],
    staff: dict[str, str],  # noqa: F811 - the imported fixture
    admin_token: str,
    supervisor: str,
    db: Database,
) -> None:
    _id, token, district = parent
    case = make_case(client, token, admin_token, "p-2")
    bad = {"level": 1, "channel": "web", "comment": "窗口人员态度差"}
    appealed = client.post(f"/api/v1/ratings/cases/{case['id']}", json={**bad, "stage": "accept"}, headers=auth(token))
    late = client.post(f"/api/v1/ratings/cases/{case['id']}", json=bad, headers=auth(token))
    assert appealed.status_code == late.status_code == 201
    # nobody acted on the second one for three weeks: the sweep puts it under supervision
    with db.session() as session:
        rect = session.get(Rectification, uuid.UUID(late.json()["rectification_id"]))
        assert rect is not None
        start = city_today() - timedelta(days=21)
        rect.opened_on, rect.contact_due, rect.rectify_due = start, start + timedelta(days=1), start + timedelta(days=7)
        rect.conclude_due = start + timedelta(days=19)
        assert ratings.sweep(session).supervised >= 1
    boss = tabs()
    sign_in(boss, server_url, "t.supervisor", SUPERVISOR_PASSWORD)
    boss.goto(f"{server_url}/staff/ratings?view=overdue")
    overdue = boss.locator(f"tr[data-rect='{rect.id}']")
    expect(overdue.get_by_test_id("supervised")).to_be_visible()
    expect(overdue.locator("[data-overdue=conclude]")).to_be_visible()

    # the department appeals the first one as malicious; the evidence is required
    worker = tabs()
    sign_in(worker, server_url, staff["wj"], STAFF_PASSWORD)
    worker.goto(f"{server_url}/staff/ratings/{appealed.json()['rectification_id']}")
    worker.get_by_test_id("step-appeal").get_by_label("申诉理由").select_option("malicious")
    step(worker, "step-appeal", {"证据（录音、记录等）": ""})
    expect(worker.get_by_test_id("step-error")).to_have_attribute("data-field", "evidence")
    worker.get_by_test_id("step-appeal").get_by_label("申诉理由").select_option("malicious")
    step(worker, "step-appeal", {"证据（录音、记录等）": "通话录音显示评价人未到窗口办理"})
    expect(worker.get_by_test_id("rectification")).to_have_attribute("data-status", "appealed")
    expect(worker.get_by_test_id("decide-appeal")).to_have_count(0)  # the department does not decide it

    # the supervisor decides, with a reason
    boss.goto(f"{server_url}/staff/ratings?view=appealed")
    boss.locator(f"tr[data-rect='{appealed.json()['rectification_id']}'] a").click()
    decide = boss.get_by_test_id("decide-appeal")
    decide.get_by_role("button", name="同意：剔除该评价").click()
    expect(boss.get_by_test_id("step-error")).to_have_attribute("data-field", "note")
    boss.get_by_test_id("decide-appeal").get_by_label("审核意见").fill("录音证据充分，予以剔除")
    boss.get_by_test_id("decide-appeal").get_by_role("button", name="同意：剔除该评价").click()
    expect(boss.get_by_test_id("rectification")).to_have_attribute("data-status", "excluded")
    expect(boss.locator("[data-testid=history] tr[data-action=approve]")).to_have_count(1)
    figures = client.get("/api/v1/ratings/stats", params={"dimension": "item"}, headers=auth(supervisor)).json()
    assert next(r for r in figures if r["key"] == "birth")["ratings"] == 1  # the excluded one is left out

    # a desk's QR code: its staff may not rate it; a citizen rates it once a day
    with db.session() as session:
        worker_id = session.scalar(select(User.id).where(User.username == staff["wj"]))
    desk = {
        "name": "卫健窗口 2 号",
        "department_code": f"{district}.wj",
        "tenant_code": district,
        "staff_ids": [str(worker_id)],
    }
    assert client.put("/api/v1/ratings/desks/T-WJ-2", json=desk, headers=auth(supervisor)).status_code == 204
    boss.goto(f"{server_url}/staff/ratings/desks/T-WJ-2")
    url = boss.get_by_test_id("desk-url").inner_text().strip()
    assert url.endswith("/rate/desk/T-WJ-2")
    expect(boss.get_by_test_id("desk-code").locator("svg")).to_be_visible()
    worker.goto(url)
    choose(worker, "level", "非常满意")
    worker.get_by_test_id("submit-rating").click()
    expect(worker.get_by_test_id("rating-error")).to_contain_text("工作人员不能评价自己")
    citizen = tabs()
    sign_in(citizen, server_url, "mother", PASSWORD)
    citizen.goto(url)
    expect(citizen.get_by_test_id("rated-subject")).to_have_text("卫健窗口 2 号")
    expect(citizen.get_by_test_id("score-attitude")).to_be_attached()  # a window's indicators
    choose(citizen, "level", "满意")
    citizen.get_by_test_id("submit-rating").click()
    expect(citizen.get_by_test_id("rated")).to_be_visible()
    citizen.goto(url)
    choose(citizen, "level", "满意")
    citizen.get_by_test_id("submit-rating").click()
    expect(citizen.get_by_test_id("rating-error")).to_contain_text("已评价")

    # at a kiosk: the concluded case waiting for its rating is rated on the kiosk channel
    other = make_case(client, token, admin_token, "p-3")
    kiosk = tabs()
    kiosk.goto(f"{server_url}/kiosk")
    sign_in(kiosk, server_url, "mother", PASSWORD, "/kiosk")
    kiosk.get_by_test_id("kiosk-rate").click()
    kiosk.locator(f"[data-testid=awaiting] li[data-case='{other['number']}'] a").click()
    expect(kiosk.locator(".lead")).to_contain_text("自助终端")
    choose(kiosk, "level", "非常满意")
    kiosk.get_by_test_id("submit-rating").click()
    expect(kiosk.get_by_test_id("rated")).to_be_visible()
    with db.session() as session:
        given = session.scalar(select(Rating).where(Rating.subject_ref == other["id"]))
        assert given is not None
        assert (given.channel, given.level) == ("kiosk", 5)

    # the public page: no sign-in, the published figures drawn by ECharts
    public = tabs()
    public.goto(f"{server_url}/ratings")
    total = client.get("/api/v1/ratings/public").json()["total"]["ratings"]
    expect(public.get_by_test_id("total-ratings")).to_have_text(str(total))
    expect(public.get_by_test_id("chart-district")).to_have_attribute("data-ready", re.compile(r"^[1-9]"))
    expect(public.get_by_test_id("chart-district").locator("canvas")).to_be_visible()
    expect(public.get_by_test_id("chart-month").locator("canvas")).to_be_visible()

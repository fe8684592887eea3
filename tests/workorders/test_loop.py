"""The work-order loop through the API: intake from the hotline, classification (or triage), dispatch by the
rules, the unit's steps, the centre's close and follow-up, reopening, returns, escalation and isolation."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from shgov.core.db import Database, utcnow
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import assign_role, create_user, issue_token
from shgov.core.settings import Settings
from shgov.workorders import service as workorders

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
SQUARE = {"lat": 31.2304, "lng": 121.4737}  # 人民广场, 黄浦区 310101


def staff(db: Database, username: str, district: str, key: str) -> str:
    with db.session() as session:
        user = create_user(
            session,
            kind="staff",
            username=username,
            display_name=username,
            password="Staff#2026xy",
            tenant_code=district,
            department_code=f"{district}.{key}",
        )
        assign_role(session, user.id, "case_worker", Scope(district, f"{district}.{key}"))
        return issue_token(session, user.id, "password", 3600)[0]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def step(client: httpx.Client, token: str, order: dict, **body: object) -> httpx.Response:
    return client.post(f"/api/v1/workorders/{order['id']}/steps", json=body, headers=auth(token))


def test_a_hotline_call_is_classified_dispatched_handled_closed_and_followed_up(
    client: httpx.Client, token_for: Callable[[str], str], trained: Settings, db: Database
) -> None:
    centre = token_for("admin")
    hints = client.get(
        "/api/v1/workorders/suggest", params={"text": "路口的路灯不亮，晚上一片漆黑"}, headers=auth(centre)
    )
    assert hints.json()[0]["category_code"] == "02.03.001"
    made = client.post(
        "/api/v1/workorders",
        json={
            "channel": "hotline",
            "description": "人民广场路口的路灯不亮，晚上一片漆黑",
            **SQUARE,
            "caller_name": "张先生",
            "caller_phone": "13900001234",
        },
        headers=auth(centre),
    )
    assert made.status_code == 201, made.text
    order = made.json()
    assert order["category_code"] == "02.03.001"
    assert order["classified_by"] == "model"
    assert order["district_code"] == "310101"
    assert order["status"] == "dispatched"
    assert order["lead_unit"] == "310101.zj"
    assert order["rule_name"].startswith("道路与照明")
    assert order["sign_due"]
    assert order["reply_due"]
    assert order["conclude_due"]

    unit = staff(db, "huangpu.zj", "310101", "zj")
    elsewhere = staff(db, "pudong.zj", "310115", "zj")
    assert client.get(f"/api/v1/workorders/{order['id']}", headers=auth(elsewhere)).status_code == 404
    assert order["number"] in [o["number"] for o in client.get("/api/v1/workorders", headers=auth(unit)).json()]
    assert order["number"] not in [
        o["number"] for o in client.get("/api/v1/workorders", headers=auth(elsewhere)).json()
    ]
    seen = client.get(f"/api/v1/workorders/{order['id']}", headers=auth(unit)).json()
    assert seen["reporter_phone"] == "139****1234"

    assert step(client, unit, order, action="close").status_code == 403  # the centre closes, not the unit
    assert step(client, unit, order, action="sign").json()["status"] == "signed"
    assert step(client, unit, order, action="reply").status_code == 422  # a reply needs words
    replied = step(client, unit, order, action="reply", note="已更换灯泡，路灯恢复照明").json()
    assert replied["status"] == "replied"
    assert step(client, centre, order, action="close").json()["status"] == "closed"
    assert step(client, centre, order, action="visit", satisfaction=7).status_code == 422
    assert step(client, centre, order, action="visit", satisfaction=1).json()["status"] == "visited"
    reopened = step(client, centre, order, action="reopen").json()
    assert reopened["status"] == "dispatched"
    assert reopened["reply"] == ""
    step(client, unit, order, action="sign")
    step(client, unit, order, action="reply", note="再次检修")
    step(client, centre, order, action="close")
    step(client, centre, order, action="visit", satisfaction=2)
    assert step(client, centre, order, action="reopen").status_code == 409  # only once
    actions = [h["action"] for h in reopened["history"]]
    assert actions[:2] == ["accept", "classify"]
    assert "reopen" in actions


def test_triage_returns_transfers_merges_and_escalation(
    client: httpx.Client, token_for: Callable[[str], str], trained: Settings, db: Database, settings: Settings
) -> None:
    centre = token_for("admin")
    vague = client.post(
        "/api/v1/workorders",
        json={"channel": "hotline", "description": "嗯嗯我想问一下那个事情", **SQUARE},
        headers=auth(centre),
    ).json()
    assert vague["status"] == "triage"
    assert vague["lead_unit"] is None
    classified = step(client, centre, vague, action="classify", category_code="02.01.001").json()
    assert classified["status"] == "dispatched"
    assert classified["classified_by"] == "triage"
    unit = staff(db, "huangpu.zj2", "310101", "zj")
    assert step(client, unit, vague, action="return").status_code == 422  # a reason is needed
    assert step(client, unit, vague, action="return", note="不属于本单位职责").json()["status"] == "returned"
    again = step(client, centre, vague, action="redispatch", category_code="01.01.001").json()
    assert again["lead_unit"] == "310101.lh"
    moved = step(client, centre, vague, action="transfer", unit="310101.cgzf", note="转城管").json()
    assert moved["lead_unit"] == "310101.cgzf"

    other = client.post(
        "/api/v1/workorders",
        json={"channel": "patrol", "description": "同一处垃圾满溢", "category_code": "01.01.001", **SQUARE},
        headers=auth(centre),
    ).json()
    merged = step(client, centre, other, action="merge", target=vague["id"]).json()
    assert merged["status"] == "merged"

    with db.session() as session:
        order = workorders.get_order(session, uuid.UUID(vague["id"]))
        order.sign_due = utcnow() - timedelta(hours=1)
        raised = workorders.escalate_overdue(session, settings)
        assert [o.number for o in raised] == [vague["number"]]
        assert order.lead_unit == "310000.cy"
        assert order.escalation == 1


def test_a_flooded_road_opens_parallel_tasks_and_is_answered_when_all_are_done(
    client: httpx.Client, token_for: Callable[[str], str], trained: Settings, db: Database
) -> None:
    centre = token_for("admin")
    order = client.post(
        "/api/v1/workorders",
        json={
            "channel": "patrol",
            "description": "人民广场路口严重积水，车辆无法通行",
            "category_code": "02.02.001",
            **SQUARE,
        },
        headers=auth(centre),
    ).json()
    assert order["status"] == "dispatched"
    tasks = {t["key"]: t for t in order["tasks"]}
    assert set(tasks) == {"drain", "traffic", "order", "street"}
    assert tasks["traffic"]["unit"] == "310101.ga"
    assert tasks["drain"]["unit"] == "310000.shui"  # no district water authority: the city's
    police = staff(db, "huangpu.ga", "310101", "ga")
    assert client.get(f"/api/v1/workorders/{order['id']}", headers=auth(police)).status_code == 200  # assisting

    def done(token: str, key: str, note: str = "已处置完毕") -> httpx.Response:
        return client.post(f"/api/v1/workorders/{order['id']}/tasks/{key}", json={"note": note}, headers=auth(token))

    assert done(police, "drain").status_code == 403  # another unit's part
    assert done(police, "traffic", "已安排警力疏导交通").status_code == 200
    assert done(police, "traffic").status_code == 409  # once
    for key in ("drain", "order"):
        assert done(centre, key).json()["status"] == "dispatched"
    answered = done(centre, "street").json()
    assert answered["status"] == "replied"
    assert "交通疏导（公安交警）：已安排警力疏导交通" in answered["reply"]


def test_orders_of_one_kind_in_one_place_make_a_hot_spot(
    client: httpx.Client, token_for: Callable[[str], str], trained: Settings
) -> None:
    centre = token_for("admin")
    for i in range(3):
        made = client.post(
            "/api/v1/workorders",
            json={
                "channel": "patrol",
                "description": f"第{i}处占道经营，流动摊贩",
                "category_code": "01.02.002",
                "lat": 31.2304 + i * 0.0005,
                "lng": 121.4737,
            },
            headers=auth(centre),
        )
        assert made.status_code == 201
    spots = client.get("/api/v1/workorders/hotspots", params={"min_count": 3}, headers=auth(centre)).json()
    assert spots[0]["category_code"] == "01.02.002"
    assert spots[0]["count"] == 3
    assert spots[0]["district_code"] == "310101"
    assert client.get("/api/v1/workorders/hotspots", headers=auth(token_for("citizen"))).status_code == 403


def test_a_sensor_batch_creates_the_good_reports_and_names_each_refused_one(
    client: httpx.Client, token_for: Callable[[str], str], trained: Settings
) -> None:
    reports = [
        {
            "channel": "sensor",
            "description": "液位传感器报警：路面积水 25 厘米",
            "category_code": "02.02.001",
            **SQUARE,
        },
        {"channel": "sensor", "description": "液位传感器报警", "category_code": "02.02.001", "lat": 39.9, "lng": 116.4},
        {"channel": "sensor", "description": "报警", "category_code": "02.02.001", **SQUARE},
        {"channel": "sensor", "description": "井盖位移传感器报警", "category_code": "99.99.999", **SQUARE},
        {"channel": "patrol", "description": "巡查发现路灯不亮，晚上很黑", **SQUARE},
    ]
    answers = client.post(
        "/api/v1/workorders/batch", json={"reports": reports}, headers=auth(token_for("admin"))
    ).json()
    assert [bool(a.get("number")) for a in answers] == [True, False, False, False, True]
    assert answers[1]["error"]["field"] == "reports[1].lat"
    assert answers[2]["error"]["field"] == "reports[2].description"
    assert answers[3]["error"]["field"] == "reports[3].category_code"
    assert answers[4]["status"] == "dispatched"
    citizen = client.post("/api/v1/workorders/batch", json={"reports": reports[:1]}, headers=auth(token_for("citizen")))
    assert citizen.status_code == 403

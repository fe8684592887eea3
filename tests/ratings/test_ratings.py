"""好差评 over the API: a citizen rates a concluded case badly, the department closes the loop within its
deadlines, the citizen re-rates; appeals, supervision of overdue rectifications, invitations, throttling
and the statistics recomputed from the immutable ratings."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from openpyxl import load_workbook
from sqlalchemy import select

from shgov.core.calendar.service import add_working_days, city_today
from shgov.core.db import Database
from shgov.core.identity.models import User
from shgov.core.notify import Notification
from shgov.core.regions.service import RegionIndex
from shgov.core.settings import Settings
from shgov.ratings import service as ratings
from shgov.ratings.models import Desk, Rating, RatingInvitation, Rectification, RectificationEvent
from tests.cases.test_api import auth
from tests.ratings.conftest import TokenFor, make_case

BAD = {
    "level": 1,
    "channel": "web",
    "stage": "conclude",
    "scores": {"guide_accuracy": 2, "efficiency": 1},
    "comment": "办事指南写的材料和窗口要求不一致",
}


def test_a_bad_rating_is_verified_rectified_answered_and_re_rated(
    client: httpx.Client, parent: tuple[str, str, str], admin_token: str, rating_roles: None, db: Database
) -> None:
    _id, token, _district = parent
    published = client.get("/api/v1/ratings/public").json()["total"]["ratings"]  # the demo desks' ratings
    case = make_case(client, token, admin_token, "r-1")
    rated = client.post(f"/api/v1/ratings/cases/{case['id']}", json=BAD, headers=auth(token))
    assert rated.status_code == 201, rated.text
    rating = rated.json()
    assert rating["scores"] == {"guide_accuracy": 2, "efficiency": 1, "overall": 1}
    assert rating["item_code"] == "birth"
    rect_id = rating["rectification_id"]
    assert rect_id
    # 一事一评: the same stage once; bad inputs are refused naming the field
    again = client.post(f"/api/v1/ratings/cases/{case['id']}", json=BAD, headers=auth(token))
    assert again.status_code == 409
    for body, field in (
        ({**BAD, "stage": "accept", "level": 6}, "level"),
        ({**BAD, "stage": "accept", "comment": "长" * 501}, "comment"),
        ({**BAD, "stage": "accept", "channel": "window"}, "scores.guide_accuracy"),
        ({**BAD, "stage": "accept", "channel": "fax"}, "channel"),
    ):
        refused = client.post(f"/api/v1/ratings/cases/{case['id']}", json=body, headers=auth(token))
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert field in refused.text
    stranger = client.post(
        f"/api/v1/ratings/cases/{case['id']}", json={**BAD, "stage": "accept"}, headers=auth(admin_token)
    )
    assert stranger.status_code == 404  # only the applicant rates (real-name, matched to the case)
    # the department's loop, with Shanghai's 1 / 5 / 15 working days
    rect = client.get(f"/api/v1/ratings/rectifications/{rect_id}", headers=auth(admin_token)).json()
    today = city_today()
    assert rect["contact_due"] == add_working_days(today, 1).isoformat()
    assert rect["rectify_due"] == add_working_days(today, 5).isoformat()
    assert rect["conclude_due"] == add_working_days(today, 15).isoformat()
    assert rect["rating"]["comment"] == BAD["comment"]

    def act(body: dict) -> httpx.Response:
        return client.post(f"/api/v1/ratings/rectifications/{rect_id}/steps", json=body, headers=auth(admin_token))

    assert act({"action": "rectify", "cause": "x", "measures": "y", "responsible_unit": "z"}).status_code == 409
    assert act({"action": "contact", "note": ""}).status_code == 422
    assert act({"action": "contact", "note": "已电话联系评价人"}).json()["status"] == "contacted"
    assert (
        act({"action": "verify", "verdict": "valid", "note": "指南所列材料与窗口不一致，属实"}).json()["status"]
        == "verified"
    )
    missing = act({"action": "rectify", "cause": "指南未更新", "measures": "", "responsible_unit": "区卫健委"})
    assert missing.status_code == 422
    assert "measures" in missing.text
    done = act(
        {
            "action": "rectify",
            "cause": "指南未更新",
            "measures": "已修订办事指南并培训窗口",
            "responsible_unit": "区卫健委",
        }
    )
    assert done.json()["status"] == "rectified"
    early = client.post(
        f"/api/v1/ratings/rectifications/{rect_id}/rerate", json={"level": 5, "channel": "web"}, headers=auth(token)
    )
    assert early.status_code == 409  # re-rating waits for the answer
    answered = act({"action": "answer", "note": "您反映的问题已整改，办事指南已更新。"})
    assert answered.json()["status"] == "answered"
    with db.session() as session:
        told = session.scalars(select(Notification).where(Notification.subject.contains("部门已回复"))).all()
        assert told
    mine = client.get("/api/v1/ratings/mine", headers=auth(token)).json()
    assert mine[0]["rectification_id"] == rect_id
    seen = client.get(f"/api/v1/ratings/rectifications/{rect_id}", headers=auth(token)).json()
    assert seen["feedback"] == "您反映的问题已整改，办事指南已更新。"
    rerated = client.post(
        f"/api/v1/ratings/rectifications/{rect_id}/rerate", json={"level": 4, "channel": "web"}, headers=auth(token)
    )
    assert rerated.status_code == 201, rerated.text
    assert rerated.json()["round"] == 2
    final = client.get(f"/api/v1/ratings/rectifications/{rect_id}", headers=auth(admin_token)).json()
    assert final["status"] == "concluded"
    assert [h["action"] for h in final["history"]] == ["open", "contact", "verify", "rectify", "answer", "rerate"]
    # statistics: the re-rating takes the place of the original; the guide is flagged for review
    figures = client.get("/api/v1/ratings/stats", params={"dimension": "item"}, headers=auth(admin_token)).json()
    birth = next(r for r in figures if r["dimension"] == "item" and r["key"] == "birth")
    assert (birth["ratings"], birth["bad"], birth["satisfied"]) == (1, 0, 1)
    guides = client.get("/api/v1/ratings/guides", headers=auth(admin_token)).json()
    assert guides[0]["item_code"] == "birth"
    assert guides[0]["bad_ratings"] == 1
    on_time = client.get("/api/v1/ratings/on-time", headers=auth(admin_token)).json()
    assert next(t for t in on_time if t["key"] == rating["department_code"])["rate"] == 1.0
    as_csv = client.get("/api/v1/ratings/stats.csv", headers=auth(admin_token))
    assert as_csv.status_code == 200
    assert "birth" in as_csv.content.decode("utf-8-sig")
    as_xlsx = client.get("/api/v1/ratings/stats.xlsx", headers=auth(admin_token))
    sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
    assert sheet is not None
    assert any(row[1] == "birth" for row in sheet.iter_rows(values_only=True))
    assert client.get("/api/v1/ratings/stats", headers=auth(token)).status_code == 403
    unknown = client.get("/api/v1/ratings/stats", params={"dimension": "weekday"}, headers=auth(admin_token))
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "dimension"
    public = client.get("/api/v1/ratings/public")
    assert public.status_code == 200
    assert public.json()["total"]["ratings"] == published + 1


def test_an_appeal_needs_another_person_and_overdue_loops_are_supervised(
    client: httpx.Client, parent: tuple[str, str, str], admin_token: str, supervisor: str, db: Database
) -> None:
    _id, token, _district = parent
    case = make_case(client, token, admin_token, "r-2")
    first = client.post(
        f"/api/v1/ratings/cases/{case['id']}", json={**BAD, "stage": "accept"}, headers=auth(token)
    ).json()
    second = client.post(f"/api/v1/ratings/cases/{case['id']}", json=BAD, headers=auth(token)).json()
    appeal = {"action": "appeal", "verdict": "malicious", "evidence": "评价内容与本办件无关，系重复刷评（见通话录音）"}
    rect = client.post(
        f"/api/v1/ratings/rectifications/{first['rectification_id']}/steps", json=appeal, headers=auth(admin_token)
    )
    assert rect.json()["status"] == "appealed"
    url = f"/api/v1/ratings/rectifications/{first['rectification_id']}/appeal"
    own = client.post(url, json={"decision": "approve", "note": "同意"}, headers=auth(admin_token))
    assert own.status_code == 403  # who filed the appeal does not decide it
    assert client.post(url, json={"decision": "approve", "note": "同意"}, headers=auth(token)).status_code == 403
    decided = client.post(url, json={"decision": "approve", "note": "证据充分，予以剔除"}, headers=auth(supervisor))
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "excluded"
    figures = client.get("/api/v1/ratings/stats", headers=auth(supervisor)).json()
    birth = next(r for r in figures if r["dimension"] == "item" and r["key"] == "birth")
    assert birth["ratings"] == 1  # the excluded rating is left out, the other still counts
    # nobody touched the second one: past its deadlines a sweep puts it under supervision, once
    with db.session() as session:
        late = city_today() + timedelta(days=40)
        assert ratings.sweep(session, late).supervised >= 1  # this one and the demo desks' open ones
        assert ratings.sweep(session, late).supervised == 0
    history = client.get(
        f"/api/v1/ratings/rectifications/{second['rectification_id']}", headers=auth(supervisor)
    ).json()
    assert history["history"][-1]["action"] == "supervise"
    assert history["supervised_at"]
    assert history["history"][-1]["note"] == "overdue: contact, rectify, conclude"


def test_invitations_desks_throttling_and_bursts(
    client: httpx.Client, parent: tuple[str, str, str], admin_token: str, token_for: TokenFor, db: Database
) -> None:
    _id, token, district = parent
    case = make_case(client, token, admin_token, "r-3")
    with db.session() as session:
        assert ratings.sweep(session, city_today()).invited == 0  # concluded today: too early
        assert ratings.sweep(session, city_today() + timedelta(days=3)).invited == 1
        assert ratings.sweep(session, city_today() + timedelta(days=4)).invited == 0
        assert session.scalar(select(RatingInvitation.case_id)) == case["id"]
    with db.session() as session:
        admin_id = str(session.scalar(select(User.id).where(User.username == "admin")))
    desk = {"name": "1 号窗口", "department_code": f"{district}.mz", "tenant_code": district, "staff_ids": [admin_id]}
    assert client.put("/api/v1/ratings/desks/D-1", json=desk, headers=auth(admin_token)).status_code == 204
    good = {"level": 5, "channel": "window", "scores": {"attitude": 5}}
    own = client.post("/api/v1/ratings/desks/D-1", json=good, headers=auth(admin_token))
    assert own.status_code == 403  # staff do not rate their own desk
    given = client.post("/api/v1/ratings/desks/D-1", json=good, headers={**auth(token), "X-Device-Id": "phone-1"})
    assert given.status_code == 201, given.text
    twice = client.post("/api/v1/ratings/desks/D-1", json=good, headers=auth(token))
    assert twice.status_code == 409  # 一次一评: once per visit (day)
    assert client.post("/api/v1/ratings/desks/NOPE", json=good, headers=auth(token)).status_code == 404
    # throttling per account, device and address, and a burst on one desk flagged (never dropped)
    assert (
        client.put(
            "/api/v1/ratings/rules/*", json={"hourly_limit": 4, "burst_count": 3}, headers=auth(admin_token)
        ).status_code
        == 200
    )
    bad_rule = client.put(
        "/api/v1/ratings/rules/*", json={"rectify_days": 40, "conclude_days": 20}, headers=auth(admin_token)
    )
    assert bad_rule.status_code == 422
    with db.session() as session:
        for n in range(2):
            session.add(
                Desk(
                    code=f"D-{n + 2}", name="窗口", department_code=f"{district}.mz", tenant_code=district, staff_ids=[]
                )
            )
    others = [token_for(name) for name in ("pudong.window", "pudong.caseworker", "minzheng.admin")]
    results = [
        client.post("/api/v1/ratings/desks/D-1", json=good, headers={**auth(t), "X-Device-Id": f"d-{i}"})
        for i, t in enumerate(others)
    ]
    assert [r.status_code for r in results] == [201, 201, 201]
    assert results[-1].json()["flags"] == ["burst"]
    for n in range(2):
        client.post(f"/api/v1/ratings/desks/D-{n + 2}", json=good, headers=auth(token))
    limited = client.post(f"/api/v1/ratings/cases/{case['id']}", json=BAD, headers=auth(token))
    assert limited.status_code == 429
    assert limited.headers["content-type"].startswith("application/problem+json")


def test_the_published_figures_need_no_sign_in_and_add_up(client: httpx.Client, rating_roles: None) -> None:
    public = client.get("/api/v1/ratings/public")
    assert public.status_code == 200, public.text
    figures = public.json()
    for dimension in ("district", "channel", "month"):
        rows = [r for r in figures["rows"] if r["dimension"] == dimension]
        assert sum(r["ratings"] for r in rows) == figures["total"]["ratings"], dimension
        assert sum(r["bad"] for r in rows) == figures["total"]["bad"], dimension


def test_a_work_order_follow_up_becomes_a_rating_once(
    db: Database, settings: Settings, region_index: RegionIndex, rating_roles: None
) -> None:
    """The reporter's satisfaction in a follow-up (the workorders event) is recorded as a rating of the
    follow-up channel; a bad one opens a rectification for the lead unit; a repeated event adds nothing."""
    from shgov.core.events import Event
    from shgov.workorders import service as workorders

    with db.session() as session:
        report = workorders.Report(
            channel="hotline", description="小区门口路灯不亮已经一周了", address="浦东新区世纪大道100号"
        )
        order = workorders.intake(session, settings, region_index, report)
        order_id = order.id
    handlers = {name: handler for name, _pattern, handler in ratings.subscribers(db, settings)}
    payload = {"order_id": str(order_id), "status": "visited", "satisfaction": 2}
    event = Event(uuid.uuid4(), "workorders.order.rate", payload, datetime.now(UTC))
    handlers["ratings.workorder-followup"](event)
    handlers["ratings.workorder-followup"](event)
    with db.session() as session:
        given = session.scalars(select(Rating).where(Rating.subject_ref == str(order_id))).all()
        assert [(r.channel, r.level, r.stage) for r in given] == [("followup", 2, "followup")]
        assert ratings.rectification_of(session, given[0].id) is not None


def test_the_demo_desks_rectifications_open_on_the_day_of_their_rating(db: Database) -> None:
    with db.session() as session:
        rows = session.execute(
            select(Rating.created_at, RectificationEvent.at)
            .join(Rectification, Rectification.rating_id == Rating.id)
            .join(RectificationEvent, RectificationEvent.rectification_id == Rectification.id)
            .where(Rating.subject_kind == "desk", RectificationEvent.action == "open")
        ).all()
    assert rows, "the demo seeds bad desk ratings"
    assert {(rated.date(), opened.date()) for rated, opened in rows if rated.date() != opened.date()} == set()
    assert len({opened.date() for _rated, opened in rows}) > 1  # spread over the week, not all stamped today

"""Readings over HTTP from a gateway account: both batch forms, the sender's districts, refusals answered and
kept, the ingest counters, the reject store, and the history of a measure over a district."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import orjson
from fastapi import FastAPI

from shgov.core.db import Database
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import assign_role, create_user, issue_token
from shgov.sensing.readings import BINARY, encode_binary
from tests.cases.test_api import auth
from tests.ratings.conftest import TokenFor
from tests.sensing.conftest import NOW


def gateway(db: Database, district: str) -> str:
    with db.session() as session:
        user = create_user(
            session,
            kind="client",
            username=f"gw-{district}",
            display_name="网关",
            password="x" * 20,
            tenant_code=district,
            check_strength=False,
        )
        assign_role(session, user.id, "sensor_gateway", Scope(district, None, True))
        token, _ = issue_token(session, user.id, "client_credentials", 3600)
    return token


def test_a_gateway_sends_batches_and_sees_what_was_refused(
    client: httpx.Client, db: Database, admin_token: str, token_for: TokenFor, app: FastAPI
) -> None:
    token = gateway(db, "310115")
    assert client.post("/api/v1/sensing/readings", content=b"[]").status_code == 401
    citizen = client.post("/api/v1/sensing/readings", content=b"[]", headers=auth(token_for("citizen")))
    assert citizen.status_code == 403

    batch = [
        ["WL-310115-0001", NOW, "depth_cm", 25.0],
        ["WL-310115-0002", NOW, "depth_cm", 4.0],
        ["WL-310101-0001", NOW, "depth_cm", 9.0],  # 黄浦区: not this gateway's district
        ["WL-310115-0003", NOW, "depth_cm", -4.0],
    ]
    sent = client.post(
        "/api/v1/sensing/readings",
        content=orjson.dumps(batch),
        headers={**auth(token), "content-type": "application/json"},
    )
    assert sent.status_code == 202, sent.text
    body = sent.json()
    assert (body["accepted"], body["refused"]) == (2, 2)
    assert body["reasons"] == {
        "device outside the sender's districts or departments": 1,
        "value outside the device type's range": 1,
    }
    assert {e["device_id"] for e in body["examples"]} == {"WL-310101-0001", "WL-310115-0003"}

    binary = encode_binary(
        ["MH-310115-0001", "MH-310115-0002"],
        ["open", "tilt_deg"],
        np.array([0, 1, 0, 1]),
        np.array([0, 0, 1, 1]),
        np.full(4, NOW),
        np.array([1.0, 0.0, 35.0, 1.5]),
    )
    taken = client.post("/api/v1/sensing/readings", content=binary, headers={**auth(token), "content-type": BINARY})
    assert taken.status_code == 202, taken.text
    assert taken.json()["accepted"] == 4

    nothing = client.post(
        "/api/v1/sensing/readings", content=orjson.dumps([["NOPE", NOW, "x", 1]]), headers=auth(token)
    )
    assert nothing.status_code == 422
    assert nothing.headers["content-type"].startswith("application/problem+json")
    assert nothing.json()["errors"] == [{"field": "body", "message": "unknown device: 1"}]
    garbage = client.post("/api/v1/sensing/readings", content=b"{not json", headers=auth(token))
    assert garbage.status_code == 422
    assert garbage.json()["errors"][0]["field"] == "body"
    torn = client.post("/api/v1/sensing/readings", content=binary[:-3], headers={**auth(token), "content-type": BINARY})
    assert torn.status_code == 422

    # the city's operators see the counters and the reject store; a district's administrator does not
    stats = client.get("/api/v1/sensing/stats", headers=auth(admin_token)).json()
    assert stats["accepted"] == 6
    assert stats["refused"]["unknown device"] == 1
    assert client.get("/api/v1/sensing/stats", headers=auth(token_for("pudong.admin"))).status_code == 403
    kept = client.get("/api/v1/sensing/rejects", headers=auth(admin_token)).json()
    reasons = [r["reason"] for r in kept]
    assert "value outside the device type's range" in reasons
    assert sum(r.startswith("unreadable batch") for r in reasons) == 2
    assert any(r["device_id"] == "WL-310101-0001" for r in kept)

    # history: the water level in 浦东新区 over the last hour, by minute (the demo's readings and these)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    query = {
        "type": "water_level",
        "measure": "depth_cm",
        "level": "district",
        "area": "310115",
        "every": "minute",
        "since": since,
    }
    pudong = client.get("/api/v1/sensing/history", params=query, headers=auth(token_for("pudong.admin")))
    assert pudong.status_code == 200, pudong.text
    last = pudong.json()["points"][-1]
    assert last["readings"] == 2
    assert last["high"] == 25.0
    assert last["mean"] == 14.5
    assert pudong.json()["unit"] == "cm"
    other = client.get(
        "/api/v1/sensing/history", params={**query, "area": "310101"}, headers=auth(token_for("pudong.admin"))
    )
    assert other.status_code == 403
    wrong = client.get("/api/v1/sensing/history", params={**query, "measure": "pm25"}, headers=auth(admin_token))
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"] == "measure"
    week = client.get(
        "/api/v1/sensing/history", params={"type": "air_quality", "measure": "pm25"}, headers=auth(admin_token)
    )
    assert week.status_code == 200
    assert (week.json()["area"], week.json()["unit"], week.json()["every"]) == ("310000", "µg/m³", "hour")

    # the vital signs now: 浦东 has one waterlogged point (25 cm); its administrator sees 浦东 only
    signs = client.get("/api/v1/sensing/indicators", headers=auth(token_for("pudong.admin"))).json()
    water = next(i for i in signs if i["code"] == "waterlogging_points")
    assert [(v["district"], v["value"], v["grade"]) for v in water["values"]] == [("310115", 1.0, "blue")]
    assert client.get("/api/v1/sensing/indicators", headers=auth(token_for("citizen"))).status_code == 403
    assert app.state.runtimes["sensing"].watch_once() >= 1
    seen = client.get("/api/v1/sensing/warnings", headers=auth(token_for("pudong.admin"))).json()
    mine = [w for w in seen if w["indicator_code"] == "waterlogging_points"]
    assert [(w["area_code"], w["grade"], w["status"]) for w in mine] == [("310115", "blue", "open")]
    assert mine[0]["evidence"]["devices"] == [{"device_id": "WL-310115-0001", "value": 25.0}]

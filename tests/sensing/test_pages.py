"""The vital-signs dashboard and the device pages in a real Chromium: the districts on the map, readings moving
the figures live (server-sent events), a warning with its work order appearing, a district's trend, the device
list with its map and a device's latest values and readings; who may see them."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import orjson
import pytest
from fastapi import FastAPI
from playwright.sync_api import Page, expect

from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.sensing import watch
from shgov.sensing.readings import decode
from shgov.sensing.seasonal import Deviation
from tests.cases.test_pages import sign_in, tabs  # noqa: F401 - fixtures
from tests.web.test_browser import browser  # noqa: F401 - the module's Chromium fixture

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("engine", ["sqlite"], indirect=True)]


def test_the_vital_signs_follow_the_readings_live(
    tabs: Callable[..., Page],  # noqa: F811 - the imported fixture
    server_url: str,
    app: FastAPI,
) -> None:
    runtime = app.state.runtimes["sensing"]
    pipeline = runtime.pipeline()
    now = int(time.time() * 1000) - 5_000
    gauges = [f"WL-310115-{i:04d}" for i in range(1, 21)]
    turn = runtime.db.one_at_a_time  # the page's server shares the test's connection: take turns with it
    with turn():
        pipeline.ingest(decode(orjson.dumps([[g, now, "depth_cm", 0.0] for g in gauges])), "test")

    page = tabs()
    sign_in(page, server_url, "ops.operator", DEMO_PASSWORD, "/ops/vitals?indicator=waterlogging_points")
    page.goto(f"{server_url}/ops/vitals?indicator=waterlogging_points")
    expect(page.get_by_test_id("vitals-map")).to_have_attribute("data-ready", "true")
    expect(page.locator("[data-testid=vital-table] tbody tr")).to_have_count(16)
    expect(page.get_by_test_id("live-state")).to_have_attribute("data-live", "on")
    pudong = page.locator("[data-testid=vital-table] tr[data-code='310115']")
    expect(pudong).to_have_attribute("data-value", re.compile(r"^0(\.0)?$"))

    # water rises on three roads: the figure and the grade change without a reload
    deep = [[g, now + 1000, "depth_cm", d] for g, d in zip(gauges[:3], (25.0, 31.0, 18.0), strict=True)]
    with turn():
        pipeline.ingest(decode(orjson.dumps(deep)), "test")
    expect(pudong).to_have_attribute("data-value", re.compile(r"^3(\.0)?$"), timeout=10_000)
    expect(pudong).to_have_attribute("data-grade", "orange")
    with turn():
        assert runtime.watch_once() >= 2  # opened and dispatched
    warning = page.locator("[data-testid=warnings] tbody tr[data-grade='orange']")
    expect(warning).to_have_count(1, timeout=10_000)
    expect(warning).to_contain_text("积水点数")
    expect(warning.get_by_role("link", name="WL-310115-0001")).to_be_visible()
    expect(warning.locator("a[href^='/ops/orders/']")).to_have_count(1)
    expect(page.locator("[data-indicator='waterlogging_points'] [data-warned]")).to_have_text("1")
    # a district unusual for the time of day is listed by its kind, device type and measure
    with turn(), runtime.db.session() as session:
        watch.note_seasonal(session, [Deviation("traffic_flow", "vehicles", "310115", 60.0, 200, 20.0, 3.0, 9)])
    runtime.warnings_version += 1
    seasonal = page.locator("[data-testid=warnings] tbody tr[data-grade='yellow']")
    expect(seasonal).to_contain_text("同时段异常：交通流量检测器 · 车流量", timeout=10_000)
    expect(seasonal).to_contain_text("13.33")
    # the work order the warning opened, received by the system (named in the reader's language)
    order_link = warning.locator("a[href^='/ops/orders/']").get_attribute("href")
    page.goto(f"{server_url}{order_link}")
    expect(page.locator("[data-action='accept']")).to_contain_text("系统")
    expect(page.locator("[data-action='accept']")).not_to_contain_text("system")
    page.goto(f"{server_url}/ops/vitals?indicator=waterlogging_points")

    # the trend of the measure behind the indicator: the city's on the page, a district's on a map click
    expect(page.get_by_test_id("vitals-trend")).to_have_attribute("data-points", re.compile(r"^[1-9]"))
    # a longer period: the week's trend, hourly
    page.get_by_test_id("trend-period").get_by_role("button", name="7 天").click()
    expect(page.get_by_test_id("vitals-trend")).to_have_attribute("data-hours", "168")
    expect(page.get_by_test_id("trend-period").get_by_role("button", name="7 天")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(page.get_by_test_id("vitals-trend")).to_have_attribute("data-points", re.compile(r"^[1-9]"))
    week = page.request.get(f"{server_url}/ops/vitals/trend?indicator=waterlogging_points&hours=168").json()
    assert len({p[0][:13] for p in week["points"]}) == len(week["points"])  # one point an hour
    trend = page.request.get(f"{server_url}/ops/vitals/trend?indicator=waterlogging_points&district=310115").json()
    assert trend["district"] == "310115"
    assert max(p[2] for p in trend["points"]) == 31.0
    refused = page.request.get(f"{server_url}/ops/vitals/trend?indicator=nope")
    assert refused.status == 422

    # the device list (filtered to 浦东) and a device's page
    page.goto(f"{server_url}/ops/devices?district=310115&type=water_level")
    expect(page.get_by_test_id("device-total")).to_contain_text("20")
    expect(page.get_by_test_id("devices-map")).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("devices-map")).to_have_attribute("data-points", "20")
    page.get_by_role("link", name="WL-310115-0002").click()
    expect(page.get_by_test_id("latest")).to_contain_text("31 cm")
    expect(page.get_by_test_id("device-facts")).to_contain_text("浦东新区")
    expect(page.get_by_test_id("device-map")).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("device-readings")).to_have_attribute("data-count", "2")
    expect(page.get_by_test_id("device-readings")).to_have_attribute("data-drawn", "true")


def test_a_citizen_sees_no_vital_signs_and_a_district_sees_its_own(
    tabs: Callable[..., Page],  # noqa: F811 - the imported fixture
    server_url: str,
) -> None:
    citizen = tabs()
    sign_in(citizen, server_url, "citizen", DEMO_PASSWORD)
    assert citizen.goto(f"{server_url}/ops/vitals").status == 403  # type: ignore[union-attr]
    assert citizen.goto(f"{server_url}/ops/devices").status == 403  # type: ignore[union-attr]
    district = tabs()
    sign_in(district, server_url, "pudong.admin", DEMO_PASSWORD)
    district.goto(f"{server_url}/ops/vitals")
    expect(district.locator("[data-testid=vital-table] tbody tr")).to_have_count(1)
    expect(district.get_by_test_id("trend-area")).to_have_text("浦东新区")
    expect(district.get_by_test_id("vitals-trend")).to_have_attribute("data-points", re.compile(r"^\d+$"))
    assert district.goto(f"{server_url}/ops/devices/WL-310101-0001").status == 404  # type: ignore[union-attr]

"""Chart tooltips are text: script-like strings behind the open-data chart (its axis labels, the column's
title) and the vital-signs dashboard (the ids of the devices a warning names, shown as the warning arrives
live and on a reload) are opened in a real Chromium; the mouse hovers the bars, the district and the trend so
ECharts renders their tooltips, which show the strings as text while ``window.__pwned`` stays unset, no dialog
opens and the page's policy refuses nothing (see ``test_xss`` for the guard)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import datetime
from urllib.parse import quote

import httpx
import orjson
import pytest
from fastapi import FastAPI
from playwright.sync_api import Route, expect
from sqlalchemy import select

from shgov.core.db import Database
from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.core.regions.service import RegionIndex
from shgov.opendata.datastore import CHARTABLE
from shgov.opendata.models import OpenDataset
from shgov.sensing.readings import decode
from tests.cases.test_api import auth
from tests.cases.test_pages import sign_in
from tests.sensing.conftest import NOW, sensing_clock  # noqa: F401 - the sensing tests' clock, for the readings
from tests.web.test_browser import browser  # noqa: F401 - the module's Chromium fixture
from tests.web.test_xss import (
    BAR,
    IMG,
    LAST,
    LINK,
    PAYLOADS,
    PLACE,
    SCRIPT,
    SVG,
    Guard,
    guarded,  # noqa: F401 - fixture
    hover,
    inside,
)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("engine", ["sqlite"], indirect=True)]


def test_the_open_data_charts_labels_and_column_title_are_text(
    guarded: Callable[[], Guard],  # noqa: F811 - the imported fixture
    server_url: str,
    db: Database,
) -> None:
    with db.session() as session:
        datasets = session.scalars(
            select(OpenDataset)
            .where(OpenDataset.state == "active", OpenDataset.open_type == "unconditional")
            .order_by(OpenDataset.name)
        ).all()
        dataset = next(d for d in datasets if any(i["type"] in CHARTABLE for i in d.items))
        column = next(i for i in dataset.items if i["type"] in CHARTABLE)
        dataset.items = [i | {"title": IMG} if i is column else i for i in dataset.items]
        name = dataset.name

    # The server charts years and number ranges only; the page must still show any label as text, so the
    # chart's data is replaced here by the payloads (labels) the script would otherwise parse.
    served: list[str] = []

    def planted(route: Route) -> None:
        served.append(route.request.url)
        body = {"column": column["name"], "kind": "number", "labels": list(PAYLOADS), "counts": [3, 1, 4, 2]}
        route.fulfill(status=200, content_type="application/json", body=orjson.dumps(body))

    visitor = guarded()
    visitor.page.route(f"**/opendata/{name}/chart.json*", planted)
    visitor.visit(f"{server_url}/opendata/{name}")
    expect(visitor.page.locator("#chart-column")).to_contain_text(IMG)
    chart = visitor.page.locator("#chart")
    expect(chart).to_have_attribute("data-ready", "true", timeout=10_000)
    assert served, "the chart never asked for its data"
    for index, payload in enumerate(PAYLOADS):
        hover(visitor, "#chart", BAR, index, payload)


def test_device_ids_in_a_live_warning_and_the_vitals_tooltips_are_text(
    guarded: Callable[[], Guard],  # noqa: F811 - the imported fixture
    server_url: str,
    client: httpx.Client,
    admin_token: str,
    region_index: RegionIndex,
    app: FastAPI,
    sensing_clock: datetime,  # noqa: F811 - the imported fixture
) -> None:
    district = "310101"
    lng, lat = inside(region_index, district)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["device_id", "type", "department", "lng", "lat"])
    writer.writeheader()
    for payload in PAYLOADS:
        writer.writerow(
            {"device_id": payload, "type": "water_level", "department": f"{district}.zj"} | {"lng": lng, "lat": lat}
        )
    imported = client.post(
        "/api/v1/sensing/devices/import",
        files={"file": ("devices.csv", out.getvalue().encode(), "text/csv")},
        headers=auth(admin_token),
    )
    assert imported.status_code == 200, imported.text

    guard = guarded()
    sign_in(guard.page, server_url, "ops.operator", DEMO_PASSWORD)
    guard.visit(f"{server_url}/ops/vitals?indicator=waterlogging_points")
    page = guard.page
    expect(page.get_by_test_id("vitals-map")).to_have_attribute("data-ready", "true", timeout=10_000)
    expect(page.get_by_test_id("live-state")).to_have_attribute("data-live", "on", timeout=10_000)

    # the planted gauges are under water: the warning naming them arrives by the live stream, drawn by script
    runtime = app.state.runtimes["sensing"]
    runtime.pipeline().ingest(decode(orjson.dumps([[p, NOW, "depth_cm", 30.0] for p in PAYLOADS])), "test")
    runtime.watch_once()
    warning = page.locator("[data-testid=warnings] tbody tr", has=page.get_by_role("link", name=IMG, exact=True))
    expect(warning).to_have_count(1, timeout=10_000)
    for payload in PAYLOADS:
        expect(warning.get_by_role("link", name=payload, exact=True)).to_be_visible()
    guard.check("the live warning")

    area = page.locator(f"[data-testid=vital-table] tr[data-code='{district}']")
    expect(area).not_to_have_attribute("data-grade", "")
    hover(guard, "#vitals-map", PLACE, [lng, lat], area.locator("td").first.inner_text())
    page.mouse.down()  # a click on the district shows its trend, the planted gauges' readings in it
    page.mouse.up()
    expect(page.get_by_test_id("trend-area")).to_have_text(area.locator("td").first.inner_text())
    expect(page.get_by_test_id("vitals-trend")).to_have_attribute("data-points", re.compile(r"^[1-9]"))
    hover(guard, "#vitals-trend", LAST, None, ":")

    # the same warning drawn by the server on a reload, its links to the devices' own pages
    guard.visit(f"{server_url}/ops/vitals?indicator=waterlogging_points")
    warning = page.locator("[data-testid=warnings] tbody tr", has=page.get_by_role("link", name=SVG, exact=True))
    expect(warning).to_have_count(1)
    for payload in (SCRIPT, LINK):
        link = warning.get_by_role("link", name=payload, exact=True)
        assert (link.get_attribute("href") or "").startswith("/ops/devices/")

    # a planted gauge's own page: its readings' tooltip
    guard.visit(f"{server_url}/ops/devices/{quote(IMG, safe='')}")
    expect(page.get_by_test_id("device-readings")).to_have_attribute("data-drawn", "true")
    hover(guard, "#device-readings", LAST, None, "depth_cm")


def test_the_public_charts_tooltips_are_text(
    guarded: Callable[[], Guard],  # noqa: F811 - the imported fixture
    server_url: str,
    region_index: RegionIndex,
) -> None:
    guard = guarded()
    guard.visit(f"{server_url}/")
    expect(guard.page.get_by_test_id("district-map")).to_have_attribute("data-ready", "true", timeout=10_000)
    name = guard.page.locator("tr[data-code='310115'] td").first.inner_text()
    hover(guard, "#district-map", PLACE, list(inside(region_index, "310115")), name)
    guard.visit(f"{server_url}/ratings")
    if guard.page.locator("#chart-district[data-ready]").count():  # only when the run has published ratings
        hover(guard, "#chart-district", BAR, 0, "%")

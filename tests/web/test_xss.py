"""Stored script never runs: script-like strings planted in every text an attacker controls — a sensing device
id, a work order's description and address, a catalog entry's names, an open dataset's title, a case form's
free text, a rating's comment, a dispute's reason — are opened in a real Chromium by the staff or citizen who
would see them, the maps' and charts' tooltips shown. ``window.__pwned`` stays unset, no dialog opens, and the
browser reports no Content-Security-Policy violation at all: not of a planted script (the page inserted data
as text) and not of our own (no page carries an inline script or handler)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from shapely.geometry import shape
from sqlalchemy import select

from shgov.core.db import Database
from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.core.regions.service import RegionIndex
from shgov.opendata.models import OpenDataset
from tests.cases.conftest import PASSWORD as PARENT_PASSWORD
from tests.cases.conftest import city, lake_dir, parent  # noqa: F401 - fixtures
from tests.cases.test_api import auth, pdf_bytes, png_bytes, step
from tests.cases.test_pages import sign_in
from tests.catalog.test_catalog import entry
from tests.ratings.conftest import rating_roles  # noqa: F401 - fixture
from tests.web.test_browser import browser  # noqa: F401 - the module's Chromium fixture
from tests.workorders.conftest import trained  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("engine", ["sqlite"], indirect=True)]

# Each sets window.__pwned if it ever runs; each fits a device id (40 characters, no slash for a path).
IMG = "<img src=x onerror=window.__pwned=1>"
SVG = '"><svg onload=window.__pwned=2>'
SCRIPT = "'><script>window.__pwned=3</script>"
LINK = "javascript:window.__pwned=4"
PAYLOADS = (IMG, SVG, SCRIPT, LINK)
ALL = " ".join(PAYLOADS)

# Records every CSP violation the document sees, before any page script runs (Playwright's init scripts are
# not subject to the page's policy).
WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sourceFile || "") + ":" + e.lineNumber);
});
"""


class Guard:
    """Watches one tab: console messages about the policy, dialogs, uncaught errors."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self._console(m.type, m.text))
        page.on("dialog", self._dialog)

    def _console(self, kind: str, text: str) -> None:
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.console.append(f"{kind}: {text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def check(self, where: str) -> None:
        """Nothing ran and nothing was refused on the page now shown."""
        pwned = self.page.evaluate("window.__pwned")
        violations = self.page.evaluate("window.__violations || []")
        assert pwned is None, f"{where}: a planted script ran ({pwned})"
        assert not self.dialogs, f"{where}: a dialog opened {self.dialogs}"
        assert not violations, f"{where}: CSP violations {violations}"
        assert not self.console, f"{where}: CSP console errors {self.console}"

    def visit(self, url: str, where: str | None = None) -> None:
        """Open ``url``, let its scripts and HTMX loads settle, and check."""
        response = self.page.goto(url)
        assert response is not None
        assert response.status < 400, f"{url}: {response.status}"
        self.page.wait_for_load_state("networkidle")
        self.check(where or url)


@pytest.fixture
def guarded(browser: Browser) -> Iterator[Callable[[], Guard]]:  # noqa: F811 - the imported fixture
    """New guarded tabs, each in its own context (its own cookies), in Chinese, at a laptop's size."""
    contexts = []

    def open_tab() -> Guard:
        context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
        context.add_init_script(WATCH)
        contexts.append(context)
        return Guard(context.new_page())

    yield open_tab
    for context in contexts:
        context.close()


def show_tip(guard: Guard, testid: str, series: int, key: str, value: str, shown: str | None = None) -> None:
    """Show the tooltip of the chart item whose data ``key`` is ``value``: once by hovering its point with the
    mouse, once by ECharts' own action; the tooltip shows ``shown`` (default ``value``) as text."""
    page = guard.page
    chart = page.get_by_test_id(testid)
    found = page.evaluate(
        """([testid, series, key, value]) => {
             const chart = echarts.getInstanceByDom(document.querySelector(`[data-testid="${testid}"]`));
             const data = chart.getOption().series[series].data;
             const index = data.findIndex((d) => d[key] === value);
             if (index < 0) { return null; }
             const [x, y] = chart.convertToPixel({ seriesIndex: series }, data[index].value);
             return { index, x, y };
           }""",
        [testid, series, key, value],
    )
    assert found is not None, f"{value!r} is not on the chart {testid}"
    chart.scroll_into_view_if_needed()  # the mouse reaches only what the viewport shows
    box = chart.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + found["x"], box["y"] + found["y"])
    guard.check(f"{testid}: hovering {value!r}")
    page.evaluate(
        """([testid, series, index]) => {
             const chart = echarts.getInstanceByDom(document.querySelector(`[data-testid="${testid}"]`));
             chart.dispatchAction({ type: "showTip", seriesIndex: series, dataIndex: index });
           }""",
        [testid, series, found["index"]],
    )
    expect(chart).to_contain_text(shown or value)  # the tooltip holds the text itself, not what it would parse into
    guard.check(f"{testid}: the tooltip of {value!r}")


def hover(guard: Guard, where: str, pixel: str, arg: object, shows: str) -> None:
    """Move the mouse over the chart at the CSS selector ``where``, at the point the script ``pixel`` finds
    (given the chart and ``arg``, it returns ``[x, y]`` inside the chart), and wait for the tooltip to show
    ``shows`` as text."""
    page = guard.page
    chart = page.locator(where)
    found = page.evaluate(
        f"""([where, arg]) => {{
              const chart = echarts.getInstanceByDom(document.querySelector(where));
              return ({pixel})(chart, arg);
            }}""",
        [where, arg],
    )
    assert found is not None, f"nothing to hover on {where} for {arg!r}"
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + found[0], box["y"] + found[1])
    expect(chart).to_contain_text(shows)  # the tooltip holds the string itself, not what it would parse into
    guard.check(f"{where}: the tooltip at {arg!r}")


# The middle of a bar: the axis tooltip of its category.
BAR = """(chart, i) => {
  const d = chart.getOption().series[0].data;
  return chart.convertToPixel({ seriesIndex: 0 }, [i, d[i] / 2]);
}"""
# A place on a map series, by longitude and latitude.
PLACE = "(chart, lnglat) => chart.convertToPixel({ seriesIndex: 0 }, lnglat)"
# The last point of a line series: the axis tooltip of its time.
LAST = """(chart) => {
  const d = chart.getOption().series[0].data;
  return d.length ? chart.convertToPixel({ seriesIndex: 0 }, d[d.length - 1]) : null;
}"""


def inside(index: RegionIndex, district: str) -> tuple[float, float]:
    """A point inside a district's outline."""
    point = shape(index.boundaries[district]).representative_point()
    return point.x, point.y


def test_device_ids_are_text_on_the_operations_map_and_the_device_pages(
    guarded: Callable[[], Guard], server_url: str, client: httpx.Client, admin_token: str, region_index: RegionIndex
) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["device_id", "type", "department", "lng", "lat", "status"])
    writer.writeheader()
    for payload, district in zip(PAYLOADS, ("310101", "310104", "310115", "310112"), strict=True):
        lng, lat = inside(region_index, district)
        writer.writerow(
            {"device_id": payload, "type": "noise", "department": f"{district}.sthj", "lng": lng, "lat": lat}
            | {"status": "maintenance"}
        )
    imported = client.post(
        "/api/v1/sensing/devices/import",
        files={"file": ("devices.csv", out.getvalue().encode(), "text/csv")},
        headers=auth(admin_token),
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["created"] == len(PAYLOADS)

    guard = guarded()
    sign_in(guard.page, server_url, "admin", DEMO_PASSWORD)
    guard.visit(f"{server_url}/ops/devices?status=maintenance")
    expect(guard.page.get_by_test_id("devices-map")).to_have_attribute("data-ready", "true", timeout=10_000)
    for payload in PAYLOADS:
        expect(guard.page.get_by_test_id("devices").get_by_role("link", name=payload, exact=True)).to_be_visible()
        show_tip(guard, "devices-map", 0, "id", payload)
    for payload in (IMG, SVG, LINK):
        guard.visit(f"{server_url}/ops/devices/{quote(payload, safe='')}")
        expect(guard.page.get_by_test_id("device-map")).to_have_attribute("data-ready", "true", timeout=10_000)
        expect(guard.page.get_by_role("heading", level=1)).to_contain_text(payload)
        guard.check(f"the page of device {payload!r}")


def test_a_work_orders_description_and_address_are_text_for_staff(
    guarded: Callable[[], Guard],
    server_url: str,
    client: httpx.Client,
    trained: object,  # noqa: F811 - the imported fixture
    admin_token: str,
    region_index: RegionIndex,
) -> None:
    made = client.post(
        "/api/v1/workorders",
        json={
            "channel": "hotline",
            "description": "人民广场路灯不亮 " + ALL,
            "address": "黄浦区人民大道 " + ALL,
            "caller_name": IMG,
            "lat": 31.2304,
            "lng": 121.4737,
        },
        headers=auth(admin_token),
    )
    assert made.status_code == 201, made.text
    order = made.json()

    guard = guarded()
    sign_in(guard.page, server_url, "ops.operator", DEMO_PASSWORD)
    guard.visit(f"{server_url}/ops/orders")
    expect(guard.page.locator(f'[data-order="{order["number"]}"]')).to_be_visible()
    guard.visit(f"{server_url}/ops/orders/{order['id']}")
    expect(guard.page.locator("main")).to_contain_text(IMG)
    expect(guard.page.locator("main")).to_contain_text(SCRIPT)
    guard.visit(f"{server_url}/ops/dashboard")
    expect(guard.page.get_by_test_id("ops-map")).to_have_attribute("data-ready", "true", timeout=10_000)
    show_tip(guard, "ops-map", 1, "id", order["id"], order["number"])
    hover(guard, "#ops-map", PLACE, list(inside(region_index, "310115")), "浦东新区")  # a district's own tooltip
    # the hotline form's hints come back by HTMX from the description typed in
    guard.visit(f"{server_url}/ops/hotline")
    guard.page.locator("#description").fill("路灯 " + ALL)
    guard.page.wait_for_timeout(600)  # the form asks 400 ms after the last keystroke
    guard.page.wait_for_load_state("networkidle")
    guard.check("the hotline form's hints")


def test_catalog_names_and_open_data_titles_are_text(
    guarded: Callable[[], Guard], server_url: str, client: httpx.Client, token_for: Callable[[str], str], db: Database
) -> None:
    owner = auth(token_for("minzheng.admin"))
    created = client.post(
        "/api/v1/catalog/resources",
        json=entry(
            title="养老机构 " + IMG,
            summary=ALL,
            keywords=["养老", SVG],
            items=[
                {"name": "institution_code", "title": "机构代码 " + SCRIPT, "is_key": True, "required": True},
                {"name": "beds", "title": LINK, "description": IMG, "data_type": "integer"},
            ],
        ),
        headers=owner,
    )
    assert created.status_code == 201, created.text
    code = created.json()["code"]

    staff = guarded()
    sign_in(staff.page, server_url, "minzheng.admin", DEMO_PASSWORD)
    staff.visit(f"{server_url}/data/catalog/{code}")
    expect(staff.page.locator("main")).to_contain_text(IMG)
    staff.visit(f"{server_url}/data/catalog?q=养老")

    with db.session() as session:
        dataset = session.scalars(
            select(OpenDataset).where(OpenDataset.state == "active").order_by(OpenDataset.name)
        ).first()
        assert dataset is not None
        dataset.title = "开放数据 " + IMG
        dataset.notes = ALL
        dataset.tags = [SVG, LINK]
        name = dataset.name
    visitor = guarded()
    visitor.visit(f"{server_url}/opendata")
    expect(visitor.page.locator(f'[data-dataset="{name}"]')).to_contain_text(IMG)
    visitor.visit(f"{server_url}/opendata/{name}")
    expect(visitor.page.locator("main")).to_contain_text(SCRIPT)
    visitor.visit(f"{server_url}/opendata?q=" + quote(IMG))


def test_a_cases_free_text_a_rating_comment_and_a_dispute_reason_are_text(
    guarded: Callable[[], Guard],
    server_url: str,
    client: httpx.Client,
    parent: tuple[str, str, str],  # noqa: F811 - the imported fixture
    admin_token: str,
    rating_roles: None,  # noqa: F811 - the imported fixture
    tmp_path: Path,
) -> None:
    id_number, token, _district = parent
    form = {
        "child_name": "王小宝",
        "child_sex": "女",
        "child_birth_date": "2026-11-20",
        "bank_name": "上海银行 " + IMG,
        "client_token": f"xss-{uuid.uuid4()}",
    }
    files = {
        "material:name:医疗机构分娩记录": (f"{SVG}.pdf", pdf_bytes(1), "application/pdf"),
        "material:name:近期免冠证件照": ("photo.png", png_bytes(300, 420), "image/png"),
    }
    made = client.post("/api/v1/offerings/bundle/birth/applications", data=form, files=files, headers=auth(token))
    assert made.status_code == 201, made.text
    case = step(client, admin_token, made.json(), "accept", "approve", note=SCRIPT)
    rated = client.post(
        f"/api/v1/ratings/cases/{case['id']}",
        json={"level": 1, "channel": "web", "stage": "accept", "scores": {"guide_accuracy": 1, "efficiency": 1}}
        | {"comment": "材料要求不一致 " + ALL},
        headers=auth(token),
    )
    assert rated.status_code == 201, rated.text
    rectification = rated.json()["rectification_id"]
    filed = client.post(
        "/api/v1/disputes",
        json={
            "register": "person",
            "record_key": id_number,
            "element": "address",
            "proposed_value": "浦东新区某路8号 " + SVG,
            "reason": "地址已变更 " + ALL,
        },
        headers=auth(token),
    )
    assert filed.status_code == 201, filed.text

    staff = guarded()
    sign_in(staff.page, server_url, "admin", DEMO_PASSWORD)
    staff.visit(f"{server_url}/cases/{case['id']}")
    expect(staff.page.locator("main")).to_contain_text(SCRIPT)  # the window's note on accepting
    expect(staff.page.locator("main")).to_contain_text("svg onload")  # the material's file name
    staff.visit(f"{server_url}/staff/worklist")
    staff.visit(f"{server_url}/staff/ratings")
    staff.visit(f"{server_url}/staff/ratings/{rectification}")
    expect(staff.page.locator("main")).to_contain_text(SCRIPT)
    staff.visit(f"{server_url}/data/disputes")
    expect(staff.page.locator("main")).to_contain_text(LINK)

    citizen = guarded()
    sign_in(citizen.page, server_url, "mother", PARENT_PASSWORD)
    citizen.visit(f"{server_url}/my/cases")
    citizen.visit(f"{server_url}/cases/{case['id']}")
    citizen.visit(f"{server_url}/my/ratings")
    citizen.visit(f"{server_url}/disputes")
    expect(citizen.page.locator("[data-dispute]")).to_have_count(1)
    citizen.visit(f"{server_url}/my/inbox")


@pytest.mark.parametrize(
    "path",
    ["/", "/services", "/opendata", "/ratings", "/login", "/regions", "/api/docs", "/licences/verify", "/citizens"],
)
def test_public_pages_run_no_inline_script(guarded: Callable[[], Guard], server_url: str, path: str) -> None:
    guard = guarded()
    guard.visit(server_url + path)

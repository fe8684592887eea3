"""The portal's pages: plain HTTP for what they say, a real Chromium for the preview table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest
from playwright.sync_api import Browser, Page, expect

from shgov.lake.synthetic import SyntheticCity
from tests.web.test_browser import browser  # noqa: F401 - the module's Chromium fixture

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:  # noqa: F811 - the imported fixture
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True)
    tab = context.new_page()
    yield tab
    context.close()


def test_the_portal_searches_with_facets_and_shows_publishers(client: httpx.Client, lake_dir: Path) -> None:
    home = client.get("/opendata")
    assert home.status_code == 200
    assert 'data-dataset="enterprises"' in home.text
    assert "户籍人口信息" not in home.text  # never open
    narrowed = client.get("/opendata", params={"q": "企业", "organization": "310000-sc"})
    assert 'data-dataset="enterprises"' in narrowed.text
    assert 'data-dataset="standard-addresses"' not in narrowed.text
    assert 'data-facet="organization=310000-sc"' in narrowed.text
    assert "每日" in home.text  # update cycles and themes in the visitor's language
    english = client.get("/lang/en", params={"next": "/opendata"}, follow_redirects=True)
    assert "Daily" in english.text
    assert "Economy" in english.text
    client.get("/lang/zh_CN", params={"next": "/opendata"})
    org = client.get("/opendata/org/310000-sc")
    assert org.status_code == 200
    assert 'data-dataset="enterprises"' in org.text
    assert client.get("/opendata/org/310000-ga").status_code == 404  # publishes nothing open
    assert client.get("/opendata/population").status_code == 404
    conditional = client.get("/opendata/tax-registrations")
    assert 'data-testid="conditional"' in conditional.text
    assert "/preview" not in conditional.text
    assert client.get("/opendata/tax-registrations/preview").status_code == 404


def test_the_dataset_page_previews_sorts_filters_and_pages_in_a_browser(
    phone: Page, server_url: str, lake_dir: Path, city: SyntheticCity
) -> None:
    enterprises = city.get("enterprises")
    phone.goto(f"{server_url}/opendata/enterprises")
    expect(phone.get_by_test_id("dictionary")).to_contain_text("credit_code")
    expect(phone.get_by_test_id("dictionary")).not_to_contain_text("legal_representative_id")
    table = phone.get_by_test_id("preview-table")
    expect(table).to_be_visible()
    expect(phone.get_by_test_id("preview-total")).to_contain_text(str(enterprises.height))
    header = phone.locator("th", has=phone.locator('[data-sort="credit_code"]'))
    phone.locator('[data-sort="credit_code"]').click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    first = sorted(enterprises["credit_code"].to_list())[0]
    expect(table.locator("tbody tr").first).to_contain_text(first)
    phone.locator('[data-sort="credit_code"]').click()  # again: descending
    expect(header).to_have_attribute("aria-sort", "descending")
    last = sorted(enterprises["credit_code"].to_list())[-1]
    expect(table.locator("tbody tr").first).to_contain_text(last)
    phone.get_by_test_id("next").click()
    expect(phone.get_by_test_id("preview-table").locator("tbody tr").first).not_to_contain_text(last)
    expect(table.locator("tbody tr").first).to_contain_text(sorted(enterprises["credit_code"].to_list())[-21])
    word = enterprises["name"][0][:2]
    phone.get_by_label("筛选数据").fill(word)
    phone.get_by_role("button", name="筛选", exact=True).click()
    matching = enterprises.filter(pl.col("name").str.contains(word, literal=True)).height
    expect(phone.get_by_test_id("preview-total")).to_contain_text(f"{matching} 条数据")
    chart = phone.locator("#chart")
    expect(chart).to_have_attribute("data-ready", "true")
    expect(chart.locator("canvas")).to_have_count(1)
    capital = int(enterprises["registered_capital_fen"].is_not_null().sum())
    phone.select_option("#chart-column", "registered_capital_fen")
    expect(chart).to_have_attribute("data-total", str(capital))
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1  # the page fits the phone; wide tables scroll inside their own box


def test_the_chart_counts_rows_by_year_or_by_bucket(client: httpx.Client, lake_dir: Path, city: SyntheticCity) -> None:
    enterprises = city.get("enterprises")
    years = client.get("/opendata/enterprises/chart.json", params={"column": "established_on"}).json()
    expected = enterprises.group_by(pl.col("established_on").dt.year().alias("y")).len().sort("y")
    assert years["labels"] == [str(y) for y in expected["y"].to_list()]
    assert years["counts"] == expected["len"].to_list()
    capital = client.get("/opendata/enterprises/chart.json", params={"column": "registered_capital_fen"}).json()
    assert len(capital["counts"]) == 20
    assert sum(capital["counts"]) == enterprises.height
    assert client.get("/opendata/enterprises/chart.json", params={"column": "name"}).status_code == 422
    assert (
        client.get("/opendata/enterprises/chart.json", params={"column": "legal_representative_id"}).status_code == 422
    )
    assert client.get("/opendata/tax-registrations/chart.json", params={"column": "registered_on"}).status_code == 403

"""The lake's pages: resources with scores, loads with lineage and quarantined rows, for signed-in staff."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from shgov.core.identity.demo import DEMO_PASSWORD

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@contextmanager
def sign_in(server_url: str, username: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, headers={"accept": "text/html"}) as browser:
        form = browser.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form)
        assert csrf is not None
        browser.post("/login", data={"username": username, "password": DEMO_PASSWORD, "csrf_token": csrf.group(1)})
        yield browser


def test_anonymous_visitors_are_sent_to_sign_in(client: httpx.Client) -> None:
    response = client.get("/data/lake", headers={"accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_a_data_officer_sees_resources_loads_and_quarantined_rows(
    server_url: str,
    client: httpx.Client,
    token_for,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    header = (
        "id_number,name,sex,birth_date,household_no,relation,district_code,township_code,community_code,"
        "address,marital_status,updated_at"
    )
    place = "310104,310104003,310104003001,徐汇区某路1号,已婚,2026-11-20 08:00:00"
    rows = "\n".join(
        [
            header,
            f"31010419900307123X,张伟,男,1990-03-07,HH1,户主,{place}",
            f"310104199003071231,李娜,女,1990-03-07,HH1,配偶,{place}",
        ]
    )
    headers = {"Authorization": f"Bearer {token_for('data.officer')}"}
    created = client.post(
        "/api/v1/lake/resources/population/loads", files={"file": ("p.csv", rows.encode(), "text/csv")}, headers=headers
    )
    assert created.status_code == 201, created.text
    load_id = created.json()["load_id"]
    with sign_in(server_url, "data.officer") as browser:
        home = browser.get("/data/lake")
        assert home.status_code == 200
        assert "户籍人口信息" in home.text
        assert f"/data/lake/loads/{load_id}" in home.text
        detail = browser.get(f"/data/lake/loads/{load_id}")
        assert "隔离数据" in detail.text
        assert "310104199003071231" in detail.text
        assert "GB 11643" in detail.text
    with sign_in(server_url, "pudong.window") as window:
        assert "户籍人口信息" not in window.get("/data/lake").text
        assert window.get(f"/data/lake/loads/{load_id}").status_code == 404


def test_the_data_hub_links_to_the_lake(client: httpx.Client) -> None:
    assert "/data/lake" in client.get("/data", headers={"accept": "text/html"}).text


def test_the_quality_trend_follows_successive_loads(
    client: httpx.Client,
    token_for,  # type: ignore[no-untyped-def]
) -> None:
    headers = {"Authorization": f"Bearer {token_for('data.officer')}"}
    header = "licence_no,licence_type,holder_id,holder_name,issued_on,expires_on,trust_level,updated_at\n"
    row = (
        "JY{n},食品经营许可证,91310115MA1K4LXE3Y,上海申城示范科技有限公司,2024-05-01,2029-04-30,{level},"
        "2026-11-20 08:00:00\n"
    )
    deliveries = [
        header + row.format(n=1, level="C") + row.format(n=2, level="C"),
        header + row.format(n=1, level="C") + row.format(n=3, level="Z"),  # an unknown trust level
    ]
    for body in deliveries:
        response = client.post(
            "/api/v1/lake/resources/licences_food/loads",
            files={"file": ("food.csv", body.encode(), "text/csv")},
            headers=headers,
        )
        assert response.status_code == 201, response.text
    trend = client.get("/api/v1/lake/quality/trend", params={"resource": "licences_food"}, headers=headers).json()
    assert [p["score"] for p in trend["licences_food"]][-2:] == [100.0, 50.0]
    with sign_in(str(client.base_url), "data.officer") as browser:
        cell = re.search(r'data-testid="trend-licences_food">(.*?)</td>', browser.get("/data/lake").text, re.S)
        assert cell is not None
        assert cell.group(1).count("→") >= 1
        assert "50.0" in cell.group(1)

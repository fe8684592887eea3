"""Open311 GeoReport v2: read with the real `georeport` client (JSON and XML), write with raw form posts,
every bad input answered in the GeoReport error format."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import xmltodict
from georeport import GeoReport

from shgov.core.settings import Settings

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
PEOPLES_SQUARE = {"lat": "31.2304", "long": "121.4737"}  # 人民广场, 黄浦区


def post(client: httpx.Client, fmt: str = "json", **form: str) -> httpx.Response:
    return client.post(f"/open311/v2/requests.{fmt}", data=form)


def test_a_client_reads_services_posts_a_request_and_follows_it(
    client: httpx.Client, server_url: str, token_for: Callable[[str], str], trained: Settings
) -> None:
    reader = GeoReport(server_url + "/open311/v2")
    services = reader.get_service_list()
    codes = {s["service_code"]: s for s in services}
    assert "02.02.001" in codes
    assert codes["02.02.001"]["service_name"] == "道路积水"
    assert codes["02.02.001"]["group"] == "市政设施"
    definition = reader.get_service_definition("02.02.001")
    assert definition["attributes"][0]["code"] == "severity"
    assert {v["key"] for v in definition["attributes"][0]["values"]} == {"low", "medium", "high"}

    made = post(
        client,
        api_key=token_for("citizen"),
        service_code="02.02.001",
        description="人民广场地铁站出口道路积水很深，行人无法通过，联系我 13912345678",
        **PEOPLES_SQUARE,
        **{"attribute[severity]": "high"},
        first_name="小明",
        phone="13912345678",
    )
    assert made.status_code == 201, made.text
    answer = made.json()[0]
    number, token = answer["service_request_id"], answer["token"]
    assert client.get(f"/open311/v2/tokens/{token}.json").json()[0]["service_request_id"] == number

    one = reader.get_service_request(number)
    assert one["status"] == "open"
    assert one["service_code"] == "02.02.001"
    assert one["agency_responsible"]  # dispatched by the rules
    assert "13912345678" not in one["description"]  # personal data never in the public feed
    assert "小明" not in str(one)
    assert float(one["lat"]) == pytest.approx(31.2304)
    listed = reader.get_service_requests(service_code="02.02.001", status="open")
    assert number in [r["service_request_id"] for r in listed]
    assert reader.get_service_requests(service_code="03.02.001") == []

    xml_reader = GeoReport(server_url + "/open311/v2", output_format="xml")
    xml_services = xml_reader.get_service_list()
    assert "02.02.001" in [s["service_code"] for s in xml_services]
    assert xml_reader.get_service_request(number)["service_request_id"] == number
    xml_made = post(
        client,
        "xml",
        api_key=token_for("citizen"),
        service_code="01.01.001",
        description="垃圾桶满溢三天没人清运",
        **PEOPLES_SQUARE,
    )
    assert xml_made.status_code == 201
    assert xmltodict.parse(xml_made.content)["service_requests"]["request"]["service_request_id"].startswith("GD")


@pytest.mark.parametrize(
    ("form", "status", "says"),
    [
        ({"service_code": "NOPE", "description": "路面坑洼", **PEOPLES_SQUARE}, 404, "service_code"),
        ({"description": "路面坑洼", **PEOPLES_SQUARE}, 400, "service_code is required"),
        ({"service_code": "02.01.001", "description": "路面坑洼"}, 400, "location is required"),
        (
            {"service_code": "02.01.001", "description": "路面坑洼", "lat": "39.9042", "long": "116.4074"},
            400,
            "不在本市",
        ),
        ({"service_code": "02.01.001", "description": "", **PEOPLES_SQUARE}, 400, "description"),
        ({"service_code": "02.01.001", "description": "路面坑洼", "lat": "abc", "long": "121.47"}, 400, "coordinate"),
        (
            {"service_code": "02.01.001", "description": "路面坑洼", "attribute[severity]": "huge", **PEOPLES_SQUARE},
            400,
            "severity",
        ),
    ],
)
def test_a_bad_request_is_refused_with_a_georeport_error(
    client: httpx.Client, token_for: Callable[[str], str], trained: Settings, form: dict, status: int, says: str
) -> None:
    refused = post(client, api_key=token_for("citizen"), **form)
    assert refused.status_code == status, refused.text
    error = refused.json()[0]
    assert error["code"] == status
    assert says in error["description"]


def test_reading_rules_keys_formats_and_the_90_day_window(
    client: httpx.Client, trained: Settings, token_for: Callable[[str], str]
) -> None:
    assert (
        post(
            client, api_key="not-a-token", service_code="02.01.001", description="路面坑洼", **PEOPLES_SQUARE
        ).status_code
        == 403
    )
    assert post(client, service_code="02.01.001", description="路面坑洼", **PEOPLES_SQUARE).status_code == 403
    start = datetime(2026, 1, 1, tzinfo=UTC)
    wide = client.get(
        "/open311/v2/requests.json",
        params={"start_date": start.isoformat(), "end_date": (start + timedelta(days=91)).isoformat()},
    )
    assert wide.status_code == 400
    assert "90 days" in wide.json()[0]["description"]
    assert client.get("/open311/v2/requests.json", params={"start_date": "yesterday"}).status_code == 400
    assert client.get("/open311/v2/requests.json", params={"status": "pending"}).status_code == 400
    assert client.get("/open311/v2/services.csv").status_code == 404
    xml_error = client.get("/open311/v2/services/NOPE.xml")
    assert xml_error.status_code == 404
    assert xmltodict.parse(xml_error.content)["errors"]["error"]["code"] == "404"
    assert client.get("/open311/v2/services.json", params={"jurisdiction_id": "elsewhere"}).status_code == 404
    assert client.get("/open311/v2/requests/GD000.json").status_code == 404

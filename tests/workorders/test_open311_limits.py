"""Open311 reads ``jurisdiction_id`` wherever GeoReport v2 allows it (query string, form or JSON body) and refuses
an unknown one; ``javascript:``/``data:`` media addresses are refused on intake and never republished; NUL bytes
are refused on both databases."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from shgov.core.db import Database
from shgov.core.settings import Settings
from shgov.workorders.models import WorkOrder

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
PUDDLE = {"service_code": "02.02.001", "description": "人民广场道路积水", "lat": "31.2304", "long": "121.4737"}


def _count(db: Database) -> int:
    with db.session(write=False) as session:
        return len(session.scalars(select(WorkOrder.id)).all())


def test_an_unknown_jurisdiction_is_refused_in_the_query_the_form_and_a_json_body(
    client: httpx.Client, token_for: Callable[[str], str], trained: Settings, db: Database
) -> None:
    key = token_for("citizen")
    url = "/open311/v2/requests.json"
    attempts = [
        client.post(url, params={"jurisdiction_id": "elsewhere.gov"}, data={"api_key": key, **PUDDLE}),
        client.post(url, data={"api_key": key, "jurisdiction_id": "elsewhere.gov", **PUDDLE}),
        client.post(url, json={"api_key": key, "jurisdiction_id": "elsewhere.gov", **PUDDLE}),
        client.get("/open311/v2/services.json", params={"jurisdiction_id": "elsewhere.gov"}),
    ]
    for answer in attempts:
        assert answer.status_code == 404, answer.text
        assert "jurisdiction_id" in answer.json()[0]["description"]
    assert _count(db) == 0
    # the served jurisdiction, named in a JSON body, is accepted like a form
    made = client.post(url, json={"api_key": key, "jurisdiction_id": settings_jurisdiction(trained), **PUDDLE})
    assert made.status_code == 201, made.text
    assert _count(db) == 1


def settings_jurisdiction(settings: Settings) -> str:
    return settings.workorders.open311_jurisdiction


@pytest.mark.parametrize("address", ["javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,<b>x</b>"])
def test_script_and_data_addresses_are_refused_and_old_ones_never_republished(
    client: httpx.Client, token_for: Callable[[str], str], trained: Settings, db: Database, address: str
) -> None:
    key = token_for("citizen")
    refused = client.post("/open311/v2/requests.json", data={"api_key": key, **PUDDLE, "media_url": address})
    assert refused.status_code == 400, refused.text
    assert "media_url" in refused.json()[0]["description"]
    made = client.post("/open311/v2/requests.json", data={"api_key": key, **PUDDLE})
    number = made.json()[0]["service_request_id"]
    with db.session() as session:  # a row stored before addresses were checked
        order = session.scalars(select(WorkOrder).where(WorkOrder.number == number)).one()
        order.media = [{"url": address}]
    for feed in (
        f"/open311/v2/requests/{number}.json",
        "/open311/v2/requests.json",
        f"/open311/v2/requests/{number}.xml",
    ):
        answer = client.get(feed)
        assert answer.status_code == 200, answer.text
        assert address.split(":")[0].lower() + ":" not in answer.text.lower()


def test_nul_bytes_are_refused_before_they_reach_the_database(
    client: httpx.Client, token_for: Callable[[str], str], trained: Settings, db: Database
) -> None:
    key = token_for("citizen")
    for body in ({"description": "积水\x00"}, {"address_string": "人民大道\x00200号", "lat": "", "long": ""}):
        form = client.post("/open311/v2/requests.json", data={"api_key": key, **PUDDLE, **body})
        as_json = client.post("/open311/v2/requests.json", json={"api_key": key, **PUDDLE, **body})
        for answer in (form, as_json):
            assert answer.status_code == 422, answer.text
            assert "NUL" in answer.json()[0]["description"]
    assert _count(db) == 0


def test_control_characters_and_bottomless_json_are_refused_and_the_xml_feed_stays_valid(
    client: httpx.Client, token_for: Callable[[str], str], trained: Settings, db: Database
) -> None:
    """Replayed attacks: a description with a vertical tab broke the public XML feed for everyone; a JSON body
    nested 5,000 deep was a 500 before the key was even checked."""
    key = token_for("citizen")
    tab = client.post("/open311/v2/requests.json", data={"api_key": key, **PUDDLE, "description": "积水\x0b很深"})
    assert tab.status_code == 422, tab.text
    assert "control characters" in tab.json()[0]["description"]
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    bottomless = client.post("/open311/v2/requests.json", content=deep, headers={"Content-Type": "application/json"})
    assert bottomless.status_code == 400, bottomless.text
    assert _count(db) == 0
    made = client.post("/open311/v2/requests.json", data={"api_key": key, **PUDDLE})
    assert made.status_code == 201, made.text
    number = made.json()[0]["service_request_id"]
    with db.session() as session:  # a row stored before the check
        order = session.scalars(select(WorkOrder).where(WorkOrder.number == number)).one()
        order.description = "积水\x0b很深\x1f"
    feed = client.get("/open311/v2/requests.xml")
    assert feed.status_code == 200
    ET.fromstring(feed.content)  # noqa: S314 - our own answer, checked to be well-formed

"""A photo an Open311 client sends by its address (``media_url``): kept as that address, linked from the
order's page, and answered 404 — never a crash, never fetched or relayed — by the photo route."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import select

from shgov.core.db import Database
from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.core.settings import Settings
from shgov.workorders.models import WorkOrder

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
PEOPLES_SQUARE = {"lat": "31.2304", "long": "121.4737"}
PHOTO = "https://photos.example.org/reports/2026/11/puddle.jpg?size=large&v=2"


@contextmanager
def sign_in(server_url: str, username: str) -> Iterator[httpx.Client]:
    """A browser signed in as a demo account."""
    with httpx.Client(base_url=server_url, headers={"accept": "text/html"}) as browser:
        form = browser.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form)
        assert csrf is not None
        browser.post("/login", data={"username": username, "password": DEMO_PASSWORD, "csrf_token": csrf.group(1)})
        yield browser


def post(client: httpx.Client, token: str, **form: str) -> httpx.Response:
    """An Open311 service request for a puddle at People's Square, with ``form`` added."""
    data = {"api_key": token, "service_code": "02.02.001", "description": "人民广场道路积水", **PEOPLES_SQUARE, **form}
    return client.post("/open311/v2/requests.json", data=data)


def test_a_photo_sent_by_its_address_is_linked_and_the_photo_route_answers_404(
    client: httpx.Client, server_url: str, token_for: Callable[[str], str], trained: Settings, db: Database
) -> None:
    made = post(client, token_for("citizen"), media_url=PHOTO)
    assert made.status_code == 201, made.text
    number = made.json()[0]["service_request_id"]
    assert client.get(f"/open311/v2/requests/{number}.json").json()[0]["media_url"] == PHOTO
    with db.session() as session:
        order = session.scalars(select(WorkOrder).where(WorkOrder.number == number)).one()
        order_id = order.id
        assert order.media == [{"url": PHOTO}]

    with sign_in(server_url, "citizen") as browser:
        page = browser.get(f"/my/reports/{order_id}")
        assert page.status_code == 200
        assert 'href="https://photos.example.org/reports/2026/11/puddle.jpg?size=large&amp;v=2"' in page.text
        assert f'src="/workorders/{order_id}/photos/0"' not in page.text  # the page loads nothing from there
        photo = browser.get(f"/workorders/{order_id}/photos/0", follow_redirects=False)
        assert photo.status_code == 404
        api = browser.get(f"/workorders/{order_id}/photos/0", headers={"accept": "application/json"})
        assert api.status_code == 404
        assert api.headers["content-type"].startswith("application/problem+json")

        with db.session() as session:  # an address stored before addresses were checked is not linked
            stored = session.get(WorkOrder, order_id)
            assert stored is not None
            stored.media = [{"url": "javascript:alert(1)"}]
        page = browser.get(f"/my/reports/{order_id}")
        assert page.status_code == 200
        assert "javascript:" not in page.text
        assert browser.get(f"/workorders/{order_id}/photos/0").status_code == 404


@pytest.mark.parametrize(
    "address",
    [
        "javascript:alert(1)",
        "ftp://example.org/a.jpg",
        "photos/a.jpg",
        "https://",
        "https://[::1",
        "https://a.org/" + "x" * 1000,
        "https://a.org/a b.jpg",
    ],
)
def test_a_media_url_that_is_not_a_web_address_is_refused(
    client: httpx.Client, token_for: Callable[[str], str], trained: Settings, address: str
) -> None:
    refused = post(client, token_for("citizen"), media_url=address)
    assert refused.status_code == 400, refused.text
    assert "media_url" in refused.json()[0]["description"]

"""随申拍 photo reports: located from the photo's EXIF GPS, classified, dispatched, stored; duplicates
flagged; every bad input refused clearly with nothing kept."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from shgov.core.db import Database
from shgov.core.settings import Settings
from shgov.workorders.models import WorkOrder

pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


def jpeg(lat: float | None = None, lng: float | None = None, size: tuple[int, int] = (640, 480)) -> bytes:
    image = Image.new("RGB", size, (120, 130, 140))
    exif = Image.Exif()
    if lat is not None and lng is not None:

        def dms(value: float) -> tuple[float, float, float]:
            degrees = int(value)
            minutes = int((value - degrees) * 60)
            return float(degrees), float(minutes), round(((value - degrees) * 60 - minutes) * 60, 4)

        exif.get_ifd(0x8825).update({1: "N", 2: dms(lat), 3: "E", 4: dms(lng)})
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def report(client: httpx.Client, token: str, files: list, **data: str) -> httpx.Response:
    return client.post("/api/v1/workorders/photo", data=data, files=files, headers={"Authorization": f"Bearer {token}"})


def count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(WorkOrder)) or 0


def test_a_photo_report_is_located_from_exif_classified_and_dispatched(
    client: httpx.Client, token_for: Callable[[str], str], trained: Settings, db: Database
) -> None:
    citizen = token_for("citizen")
    made = report(
        client,
        citizen,
        [("photos", ("scene.jpg", jpeg(31.2304, 121.4737), "image/jpeg"))],
        description="小区门口垃圾桶满溢，垃圾清运不及时，异味很大",
    )
    assert made.status_code == 201, made.text
    order = made.json()
    assert order["channel"] == "photo"
    assert order["district_code"] == "310101"
    assert order["lat"] == pytest.approx(31.2304, abs=1e-4)
    assert order["category_code"] == "01.01.001"
    assert order["lead_unit"] == "310101.lh"
    again = report(
        client,
        citizen,
        [("photos", ("same.png", _png(), "image/png"))],
        description="小区门口的垃圾桶满溢了，垃圾没有清运",
        lat="31.2305",
        lng="121.4738",
    ).json()
    with db.session() as session:
        stored = session.get(WorkOrder, uuid.UUID(again["id"]))
        assert stored is not None
        assert stored.attributes["likely_duplicates"] == [order["number"]]
        assert stored.media[0]["media_type"] == "image/png"
    assert client.get(
        "/api/v1/workorders/duplicates",
        params={
            "lat": 31.2304,
            "lng": 121.4737,
            "text": "小区门口垃圾桶满溢，清运不及时",
            "category_code": "01.01.001",
        },
        headers={"Authorization": f"Bearer {token_for('admin')}"},
    ).json()[0]["number"] in (order["number"], again["number"])


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (10, 20, 30)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("files", "data", "says"),
    [
        ([("photos", ("a.jpg", jpeg(), "image/jpeg"))], {"description": "路灯不亮"}, "位置"),
        ([("photos", ("a.jpg", jpeg(39.9042, 116.4074), "image/jpeg"))], {"description": "路灯不亮"}, "不在本市"),
        ([("photos", ("a.jpg", jpeg(31.2304, 121.4737), "image/jpeg"))], {"description": "  "}, "描述"),
        (
            [("photos", ("a.jpg", b"\xff\xd8" + b"0" * (5 * 1024 * 1024 + 10), "image/jpeg"))],
            {"description": "路灯不亮"},
            "上限",
        ),
        (
            [("photos", ("a.jpg", b"%PDF-1.4 not a photo", "image/jpeg"))],
            {"description": "路灯不亮"},
            "不是可以打开的图片",
        ),
        ([], {"description": "路灯不亮", "lat": "31.23", "lng": "121.47"}, "至少上传一张"),
        ([("photos", ("a.jpg", jpeg(), "image/jpeg"))], {"description": "路灯不亮", "lat": "north", "lng": "1"}, "lat"),
    ],
)
def test_a_bad_photo_report_is_refused_and_keeps_nothing(
    client: httpx.Client,
    token_for: Callable[[str], str],
    trained: Settings,
    db: Database,
    files: list,
    data: dict,
    says: str,
) -> None:
    before = count(db)
    refused = report(client, token_for("citizen"), files, **data)
    assert refused.status_code in (400, 422), refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert says in refused.text
    assert count(db) == before

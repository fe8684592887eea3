"""The sensing registry over the API: device types as data, devices imported in bulk (every row checked,
a bad file refused whole unless partial), placed in their divisions, seen only within the caller's tenants."""

from __future__ import annotations

import csv
import io

import httpx
import numpy as np
import polars as pl
from shapely.geometry import shape
from sqlalchemy import inspect, select

from shgov.core.audit.models import AuditRecord
from shgov.core.db import Database
from shgov.core.identity.service import principal_by_username
from shgov.core.regions.service import RegionIndex
from shgov.sensing import service
from tests.cases.test_api import auth
from tests.ratings.conftest import TokenFor


def inside(index: RegionIndex, district: str) -> tuple[float, float]:
    """A point inside a district's outline."""
    point = shape(index.boundaries[district]).representative_point()
    return point.x, point.y


def as_csv(rows: list[dict[str, object]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["device_id", "type", "department", "lng", "lat", "status"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def upload(
    client: httpx.Client, token: str, body: bytes, name: str = "devices.csv", language: str | None = None, **params: str
) -> httpx.Response:
    headers = auth(token) | ({"Accept-Language": language} if language else {})
    return client.post(
        "/api/v1/sensing/devices/import", files={"file": (name, body, "text/csv")}, params=params, headers=headers
    )


def test_devices_are_imported_checked_placed_and_kept_within_their_district(
    client: httpx.Client, admin_token: str, token_for: TokenFor, region_index: RegionIndex
) -> None:
    kinds = client.get("/api/v1/sensing/types", headers=auth(admin_token)).json()
    air = next(t for t in kinds if t["code"] == "air_quality")
    assert {"code": "pm25", "name": "PM2.5", "unit": "µg/m³", "min": 0, "max": 1000, "state": False} in air["measures"]
    lift = next(t for t in kinds if t["code"] == "elevator")
    assert [m["code"] for m in lift["measures"] if m["state"]] == ["trapped", "fault"]
    pudong, huangpu = inside(region_index, "310115"), inside(region_index, "310101")
    good = [
        {
            "device_id": "AQ-PD-1",
            "type": "air_quality",
            "department": "310115.sthj",
            "lng": pudong[0],
            "lat": pudong[1],
        },
        {
            "device_id": "WL-PD-1",
            "type": "water_level",
            "department": "310115.swj",
            "lng": pudong[0],
            "lat": pudong[1],
            "status": "maintenance",
        },
        {"device_id": "MH-HP-1", "type": "manhole", "department": "310101.cgzf", "lng": huangpu[0], "lat": huangpu[1]},
    ]
    bad = [
        {"device_id": "XX-1", "type": "teleporter", "department": "310115.swj", "lng": pudong[0], "lat": pudong[1]},
        {"device_id": "AQ-PD-1", "type": "air_quality", "department": "310115.swj", "lng": pudong[0], "lat": pudong[1]},
        {"device_id": "NO-1", "type": "noise", "department": "310115.swj", "lng": "东经", "lat": pudong[1]},
        {"device_id": "FAR-1", "type": "noise", "department": "310115.swj", "lng": 0.0, "lat": 0.0},
        {
            "device_id": "ST-1",
            "type": "noise",
            "department": "310115.swj",
            "lng": pudong[0],
            "lat": pudong[1],
            "status": "lost",
        },
    ]
    refused = upload(client, admin_token, as_csv(good + bad))
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["refusals"] == [
        {"row": 4, "device_id": "XX-1", "reason": "unknown device type teleporter"},
        {"row": 5, "device_id": "AQ-PD-1", "reason": "device_id repeated in the file"},
        {"row": 6, "device_id": "NO-1", "reason": "lng and lat must be numbers (WGS-84)"},
        {"row": 7, "device_id": "FAR-1", "reason": "outside the city"},
        {"row": 8, "device_id": "ST-1", "reason": "status is one of active, maintenance, retired"},
    ]
    assert body["errors"][0]["field"] == "file"
    listed = client.get("/api/v1/sensing/devices", headers=auth(admin_token)).json()
    assert not any(d["id"] in ("AQ-PD-1", "WL-PD-1", "MH-HP-1") for d in listed["items"])  # nothing written

    taken = upload(client, admin_token, as_csv(good + bad), partial="true")
    assert taken.status_code == 200, taken.text
    assert (taken.json()["created"], taken.json()["refused"], taken.json()["written"]) == (3, 5, True)
    again = upload(client, admin_token, as_csv(good))
    assert (again.json()["created"], again.json()["updated"]) == (0, 3)
    device = client.get("/api/v1/sensing/devices/WL-PD-1", headers=auth(admin_token)).json()
    assert (device["tenant_code"], device["status"], device["type_code"]) == ("310115", "maintenance", "water_level")

    # a district administrator sees and manages their district only
    pudong_admin = token_for("pudong.admin")
    mine = client.get("/api/v1/sensing/devices", params={"limit": 1000}, headers=auth(pudong_admin)).json()
    assert {d["tenant_code"] for d in mine["items"]} == {"310115"}
    assert {"AQ-PD-1", "WL-PD-1"} <= {d["id"] for d in mine["items"]}
    assert client.get("/api/v1/sensing/devices/MH-HP-1", headers=auth(pudong_admin)).status_code == 404
    theirs = upload(client, pudong_admin, as_csv(good[2:]))
    assert theirs.status_code == 422
    assert theirs.json()["refusals"][0]["reason"] == "not a district or department you manage"
    # a file that is no table, and a missing column, are named
    assert upload(client, admin_token, b"\x00\x01", name="x.parquet").json()["errors"][0]["field"] == "file"
    no_lat = upload(client, admin_token, b"device_id,type,department,lng\nA,noise,d,121\n")
    assert no_lat.status_code == 422
    assert no_lat.json()["errors"][0]["field"] == "lat"


def test_an_import_is_one_audit_record_of_its_rows_named_after_the_importer(
    client: httpx.Client, admin_token: str, db: Database, region_index: RegionIndex
) -> None:
    lng, lat = inside(region_index, "310115")
    rows = [
        {"device_id": f"AU-{i}", "type": "noise", "department": "310115.sthj", "lng": lng, "lat": lat} for i in range(3)
    ]
    assert upload(client, admin_token, as_csv(rows)).status_code == 200
    newest = (
        select(AuditRecord).where(AuditRecord.action == "data.sensor_devices.upsert").order_by(AuditRecord.seq.desc())
    )
    with db.session() as session:
        record = session.scalars(newest).first()  # the demo seed's import came before
    assert record is not None
    assert record.actor_name == "admin"
    assert (record.details["count"], record.details["keys"]) == (3, ["AU-0", "AU-1", "AU-2"])


def test_a_large_import_rebuilds_the_indexes_and_a_refused_one_leaves_them(
    db: Database, region_index: RegionIndex
) -> None:
    rng = np.random.default_rng(5)
    count = service.REBUILD_INDEXES_FROM + 1000
    lng, lat = region_index.random_points("310104", count, rng)
    frame = pl.DataFrame(
        {
            "device_id": [f"BIG-{i:07d}" for i in range(count)],
            "type": "noise",
            "department": "310104.sthj",
            "lng": lng,
            "lat": lat,
        }
    ).with_columns(pl.all().cast(pl.Utf8))
    with db.session() as session:
        bad = frame.with_columns(
            pl.when(pl.col("device_id") == "BIG-0000007").then(pl.lit("nope")).otherwise(pl.col("type")).alias("type")
        )
        refused = service.import_devices(session, region_index, bad)
        assert (refused.written, refused.refused) == (False, 1)
        done = service.import_devices(session, region_index, frame)
        assert (done.created, done.refused) == (count, 0)
        names = {i["name"] for i in inspect(session.connection()).get_indexes("sensor_devices")}
        assert {"ix_sensor_devices_area", "ix_sensor_devices_department"} <= names
        total, page = service.list_devices(
            session, principal_by_username(session, "admin"), district="310104", type_code="noise", limit=1
        )  # type: ignore[arg-type]
        assert total >= count
        assert page[0].tenant_code == "310104"


def test_an_import_never_moves_another_districts_existing_device(
    client: httpx.Client, admin_token: str, token_for: TokenFor, region_index: RegionIndex
) -> None:
    """Issue #26: a district administrator re-imported another district's device id into its own district."""
    huangpu, pudong = inside(region_index, "310101"), inside(region_index, "310115")
    theirs = {"device_id": "MH-HP-KEEP", "type": "manhole", "department": "310101.cgzf", "lng": huangpu[0]}
    created = upload(client, admin_token, as_csv([{**theirs, "lat": huangpu[1]}]))
    assert created.status_code == 200, created.text
    huangpu_admin, pudong_admin = token_for("huangpu.admin"), token_for("pudong.admin")
    assert client.get("/api/v1/sensing/devices/MH-HP-KEEP", headers=auth(huangpu_admin)).status_code == 200

    # the same id, placed and owned in Pudong (a row Pudong's administrator may write, but not over Huangpu's)
    moved = {"device_id": "MH-HP-KEEP", "type": "manhole", "department": "310115.cgzf", "lng": pudong[0]}
    mine = {"device_id": "MH-PD-NEW", "type": "manhole", "department": "310115.cgzf", "lng": pudong[0]}
    rows = [{**moved, "lat": pudong[1]}, {**mine, "lat": pudong[1]}]
    refused = upload(client, pudong_admin, as_csv(rows))
    assert refused.status_code == 422, refused.text
    assert refused.json()["refusals"] == [
        {"row": 1, "device_id": "MH-HP-KEEP", "reason": "device_id belongs to a device you do not manage"}
    ]
    partly = upload(client, pudong_admin, as_csv(rows), partial="true")
    assert partly.status_code == 200, partly.text
    assert (partly.json()["created"], partly.json()["updated"], partly.json()["refused"]) == (1, 0, 1)

    # the owner still sees its device where it was; Pudong's administrator still may not know it
    kept = client.get("/api/v1/sensing/devices/MH-HP-KEEP", headers=auth(huangpu_admin))
    assert kept.status_code == 200, kept.text
    assert (kept.json()["tenant_code"], kept.json()["department_code"]) == ("310101", "310101.cgzf")
    assert client.get("/api/v1/sensing/devices/MH-HP-KEEP", headers=auth(pudong_admin)).status_code == 404
    assert client.get("/api/v1/sensing/devices/MH-PD-NEW", headers=auth(pudong_admin)).status_code == 200
    # the owner may update its own device by import as before
    again = upload(client, huangpu_admin, as_csv([{**theirs, "lat": huangpu[1], "status": "maintenance"}]))
    assert (again.status_code, again.json()["updated"]) == (200, 1), again.text


def test_control_characters_in_an_imported_device_are_refused(db: Database, region_index: RegionIndex) -> None:
    lng, lat = inside(region_index, "310104")
    frame = pl.DataFrame(
        {
            "device_id": ["NUL-00\x001", "CTL-0001", "OK-0001"],
            "type": "noise",
            "department": "310104.sthj",
            "lng": str(lng),
            "lat": str(lat),
            "name": ["a", "b\x07c", "正常"],
        }
    )
    with db.session() as session:
        result = service.import_devices(session, region_index, frame)
    assert (result.written, result.refused) == (False, 2)
    assert {r.row for r in result.refusals} == {1, 2}
    assert all("control characters" in r.reason for r in result.refusals)


def test_a_device_belongs_to_a_department_of_its_district_or_of_the_city(
    client: httpx.Client, token_for: TokenFor, region_index: RegionIndex, db: Database
) -> None:
    """Issue #26: a district administrator imported devices under another district's department, or under
    a department that does not exist; both are refused (the API and the command line alike)."""
    lng, lat = inside(region_index, "310115")
    rows = [
        {"device_id": "MH-PD-OWN", "type": "manhole", "department": "310115.cgzf", "lng": lng, "lat": lat},
        {"device_id": "MH-PD-HP", "type": "manhole", "department": "310101.cgzf", "lng": lng, "lat": lat},
        {"device_id": "MH-PD-NONE", "type": "manhole", "department": "310115.nosuch", "lng": lng, "lat": lat},
    ]
    refused = upload(client, token_for("pudong.admin"), as_csv(rows))
    assert refused.status_code == 422, refused.text
    assert [(r["device_id"], r["reason"]) for r in refused.json()["refusals"]] == [
        ("MH-PD-HP", service.UNKNOWN_DEPARTMENT),
        ("MH-PD-NONE", service.UNKNOWN_DEPARTMENT),
    ]
    # a city bureau's device in a district is its own (the operator's import, no principal)
    city = pl.DataFrame(
        {"device_id": ["WL-SW-1"], "type": "water_level", "department": "310000.shui", "lng": str(lng), "lat": str(lat)}
    )
    with db.session() as session:
        result = service.import_devices(session, region_index, city)
        unknown = service.import_devices(
            session, region_index, city.with_columns(pl.lit("310000.zzz").alias("department"))
        )
    assert (result.written, result.refused) == (True, 0)
    assert (unknown.written, unknown.refused) == (False, 1)


def test_a_small_parquet_file_of_too_many_rows_is_refused_before_it_is_read(
    client: httpx.Client, admin_token: str
) -> None:
    """Replayed attack: 53 KB of Parquet held 5,000,000 identical rows and took the server to 2 GB."""
    rows = service.MAX_UPLOADED_ROWS + 1
    frame = pl.DataFrame({"device_id": ["X-1"] * rows, "type": "noise", "department": "310115.sthj"})
    out = io.BytesIO()
    frame.write_parquet(out, compression="zstd")
    assert out.tell() < 1_000_000  # small on the wire
    answer = upload(client, admin_token, out.getvalue(), name="devices.parquet", language="en")
    assert answer.status_code == 422, answer.text
    assert "at most" in answer.text

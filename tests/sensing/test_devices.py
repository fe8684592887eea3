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


def upload(client: httpx.Client, token: str, body: bytes, name: str = "devices.csv", **params: str) -> httpx.Response:
    return client.post(
        "/api/v1/sensing/devices/import",
        files={"file": (name, body, "text/csv")},
        params=params,
        headers=auth(token),
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
            "department": "310115.sw",
            "lng": pudong[0],
            "lat": pudong[1],
            "status": "maintenance",
        },
        {"device_id": "MH-HP-1", "type": "manhole", "department": "310101.cg", "lng": huangpu[0], "lat": huangpu[1]},
    ]
    bad = [
        {"device_id": "XX-1", "type": "teleporter", "department": "310115.sw", "lng": pudong[0], "lat": pudong[1]},
        {"device_id": "AQ-PD-1", "type": "air_quality", "department": "310115.sw", "lng": pudong[0], "lat": pudong[1]},
        {"device_id": "NO-1", "type": "noise", "department": "310115.sw", "lng": "东经", "lat": pudong[1]},
        {"device_id": "FAR-1", "type": "noise", "department": "310115.sw", "lng": 0.0, "lat": 0.0},
        {
            "device_id": "ST-1",
            "type": "noise",
            "department": "310115.sw",
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

"""The real 五级 of Shanghai: counts, hierarchy, locating points, parsing addresses, grids."""

from __future__ import annotations

import math
from collections.abc import Callable

import h3
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from shapely.geometry import shape
from sqlalchemy import delete, select

from shgov.core.db import Database
from shgov.core.regions.geo import (
    CRS,
    CoordinateError,
    bd09_to_gcj02,
    distance_m,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    wgs84_to_gcj02,
)
from shgov.core.regions.models import Grid
from shgov.core.regions.service import (
    GRID_RESOLUTION,
    OutsideCityError,
    RegionDataError,
    RegionIndex,
    read_divisions,
    register_grid,
    register_grids,
)

PEOPLES_SQUARE = (121.4737, 31.2304)  # 黄浦区, WGS-84
ORIENTAL_PEARL = (121.4997, 31.2397)  # 浦东新区
CHONGMING = (121.40, 31.62)  # 崇明岛


def test_the_real_divisions_are_loaded_with_their_counts(region_index: RegionIndex) -> None:
    assert region_index.level_counts() == {"city": 1, "district": 16, "township": 234, "community": 6509}
    assert region_index.city is not None
    assert region_index.city.code == "310000"
    pudong = region_index.get("310115")
    assert pudong is not None
    assert pudong.name == "浦东新区"
    lujiazui = region_index.get("310115005")
    assert lujiazui is not None
    assert lujiazui.parent_code == "310115"
    assert [a.code for a in region_index.ancestors("310115005001")] == ["310000", "310115", "310115005"]
    assert region_index.descendant_counts("310000") == {"district": 16, "township": 234, "community": 6509}


@pytest.mark.parametrize(
    ("point", "district"),
    [(PEOPLES_SQUARE, "310101"), (ORIENTAL_PEARL, "310115"), (CHONGMING, "310151"), ((121.2, 31.13), "310117")],
)
def test_points_are_located_in_their_district(
    region_index: RegionIndex, point: tuple[float, float], district: str
) -> None:
    found = region_index.locate(*point)
    assert found.district.code == district
    assert h3.get_resolution(found.cell) == GRID_RESOLUTION
    assert h3.latlng_to_cell(point[1], point[0], GRID_RESOLUTION) == found.cell


def test_gcj02_points_are_converted_before_locating(region_index: RegionIndex) -> None:
    gcj = wgs84_to_gcj02(*ORIENTAL_PEARL)
    assert 300 < distance_m(*gcj, *ORIENTAL_PEARL) < 700  # the GCJ-02 offset in Shanghai
    found = region_index.locate(*gcj, CRS.GCJ02)
    assert math.isclose(found.lng, ORIENTAL_PEARL[0], abs_tol=1e-7)
    assert math.isclose(found.lat, ORIENTAL_PEARL[1], abs_tol=1e-7)
    bd = gcj02_to_bd09(*gcj)
    assert region_index.locate(*bd, CRS.BD09).cell == region_index.locate(*ORIENTAL_PEARL).cell


def test_coordinate_conversions_round_trip() -> None:
    for lng, lat in (PEOPLES_SQUARE, ORIENTAL_PEARL, CHONGMING):
        back = gcj02_to_wgs84(*wgs84_to_gcj02(lng, lat))
        assert distance_m(lng, lat, *back) < 0.01
        assert distance_m(*bd09_to_gcj02(*gcj02_to_bd09(lng, lat)), lng, lat) < 1


@pytest.mark.parametrize(
    ("lng", "lat", "field", "message"),
    [
        (31.2304, 121.4737, "lat", "swapped"),
        (float("nan"), 31.2, "lng", "finite"),
        (121.4, float("inf"), "lat", "finite"),
        (116.40, 39.90, "point", "outside 上海市"),
        (-121.47, 31.23, "point", "outside"),
        (200.0, 31.2, "lng", "outside"),
    ],
)
def test_bad_points_get_a_clear_error(
    region_index: RegionIndex, lng: float, lat: float, field: str, message: str
) -> None:
    with pytest.raises(CoordinateError, match=message) as caught:
        region_index.locate(lng, lat)
    assert caught.value.field == field


def test_a_point_just_outside_the_simplified_outline_is_approximate(region_index: RegionIndex) -> None:
    exact = region_index.locate(*PEOPLES_SQUARE)
    assert not exact.approximate
    outline = shape(region_index.boundaries["310115"])
    east_lng, east_lat = max(
        outline.exterior.coords
        if outline.geom_type == "Polygon"
        else (c for g in outline.geoms for c in g.exterior.coords)
    )
    near = region_index.locate(east_lng + 0.004, east_lat)
    assert near.approximate
    assert near.district.code == "310115"
    with pytest.raises(OutsideCityError):
        region_index.locate(123.5, 31.0)  # the East China Sea, far from any district


@pytest.mark.parametrize(
    ("address", "district", "township", "community", "remainder"),
    [
        ("上海市浦东新区陆家嘴街道梅园一村居委会浦东南路1号", "310115", "310115005", "310115005001", "浦东南路1号"),
        ("上海市黄浦区南京东路街道云南中路居民委员会", "310101", "310101002", "310101002001", ""),
        ("浦东新区川沙新镇", "310115", "310115103", None, ""),
        ("上海 静安区 南京西路街道 威海路500号", "310106", "310106012", None, "威海路500号"),
        ("陆家嘴街道梅园一村", "310115", "310115005", None, "梅园一村"),
        ("嘉定区南翔镇东园317号2102室", "310114", "310114102", "310114102022", "317号2102室"),  # a bare stem
        ("北京市朝阳区建国路", None, None, None, "北京市朝阳区建国路"),
    ],
)
def test_addresses_are_resolved_where_the_text_names_the_divisions(
    region_index: RegionIndex,
    address: str,
    district: str | None,
    township: str | None,
    community: str | None,
    remainder: str,
) -> None:
    parsed = region_index.parse_address(address)
    assert (parsed.district.code if parsed.district else None) == district
    assert (parsed.township.code if parsed.township else None) == township
    assert (parsed.community.code if parsed.community else None) == community
    assert parsed.remainder == remainder


def test_a_township_of_another_district_is_not_taken(region_index: RegionIndex) -> None:
    parsed = region_index.parse_address("黄浦区陆家嘴街道")
    assert parsed.district is not None
    assert parsed.district.code == "310101"
    assert parsed.township is None


def test_grids_get_15_digit_codes_under_their_community(db: Database, region_index: RegionIndex) -> None:
    index = RegionIndex(region_index.regions, region_index.boundaries, dict(region_index.grids_by_cell))
    cell = index.cell_of(*ORIENTAL_PEARL)
    with db.session() as session:
        # The demo seed lays grids over its addresses; start this community afresh.
        session.execute(delete(Grid).where(Grid.community_code == "310115005001"))
        index.grids_by_cell = {c: g for c, g in index.grids_by_cell.items() if g.community_code != "310115005001"}
        index.grids_by_cell.pop(cell, None)
        session.execute(delete(Grid).where(Grid.cell == cell))
        grid = register_grid(session, index, "310115005001", cell, "东方明珠网格")
        neighbour = next(c for c in h3.grid_disk(cell, 1) if c != cell and c not in index.grids_by_cell)
        second = register_grid(session, index, "310115005001", neighbour)
        with pytest.raises(RegionDataError, match="already a grid"):
            register_grid(session, index, "310115005002", cell)
        with pytest.raises(RegionDataError, match="not in the community's district"):
            register_grid(session, index, "310101002001", index.cell_of(*CHONGMING))
    assert grid.code == "310115005001001"
    assert second.code == "310115005001002"
    assert len(grid.code) == 15
    found = index.locate(*ORIENTAL_PEARL)
    assert found.grid == grid
    assert found.community is not None
    assert found.community.code == "310115005001"
    assert found.township is not None
    assert found.township.code == "310115005"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("code,name,level\n310000,上海市,city\n", "header lacks parent_code"),
        ("code,name,level,parent_code\n310000,上海市,city,\n3101,黄浦区,district,310000\n", "6 digits"),
        ("code,name,level,parent_code\n310000,上海市,city,\n310101,黄浦区,district,320000\n", "not in the file"),
        ("code,name,level,parent_code\n310000,上海市,city,\n310101002,街道,township,310000\n", "cannot sit under"),
        ("code,name,level,parent_code\n310000,上海市,city,\n310000,上海市,city,\n", "twice"),
    ],
)
def test_inconsistent_division_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(RegionDataError, match=message):
        read_divisions(text)


def test_the_region_api_is_public_and_validates_points(client: httpx.Client) -> None:
    city = client.get("/api/v1/regions/310000").json()
    assert city["counts"] == {"district": 16, "township": 234, "community": 6509}
    districts = client.get("/api/v1/regions", params={"parent": "310000"}).json()
    assert len(districts) == 16
    located = client.get("/api/v1/regions/locate", params={"lng": 121.4737, "lat": 31.2304}).json()
    assert located["district"]["name"] == "黄浦区"
    swapped = client.get(
        "/api/v1/regions/locate", params={"lng": 31.2304, "lat": 121.4737}, headers={"Accept-Language": "en"}
    )
    assert swapped.status_code == 422
    assert swapped.json()["errors"][0]["field"] == "lat"
    assert "swapped" in swapped.json()["detail"]
    nan = client.get("/api/v1/regions/locate", params={"lng": "nan", "lat": 31.2})
    assert nan.status_code == 422
    outside = client.get("/api/v1/regions/locate", params={"lng": 116.4, "lat": 39.9})
    assert outside.status_code == 422
    assert client.get("/api/v1/regions/999999").status_code == 404
    parsed = client.get("/api/v1/regions/parse-address", params={"q": "浦东新区陆家嘴街道"}).json()
    assert parsed["township"]["code"] == "310115005"
    geo = client.get("/api/v1/regions/boundaries.geojson").json()
    assert len(geo["features"]) == 16


def test_registering_a_grid_needs_the_permission_in_that_district(
    client: httpx.Client, token_for: Callable[[str], str], app: FastAPI, region_index: RegionIndex
) -> None:
    app.state.region_index = RegionIndex(
        region_index.regions, region_index.boundaries, dict(region_index.grids_by_cell)
    )
    cell = region_index.cell_of(*ORIENTAL_PEARL)
    body = {"community_code": "310115005001", "cell": cell}
    assert client.post("/api/v1/regions/grids", json=body).status_code == 401
    huangpu = client.post(
        "/api/v1/regions/grids", json=body, headers={"Authorization": f"Bearer {token_for('huangpu.admin')}"}
    )
    assert huangpu.status_code == 403
    window = client.post(
        "/api/v1/regions/grids", json=body, headers={"Authorization": f"Bearer {token_for('pudong.window')}"}
    )
    assert window.status_code == 403
    pudong = client.post(
        "/api/v1/regions/grids", json=body, headers={"Authorization": f"Bearer {token_for('pudong.admin')}"}
    )
    assert pudong.status_code == 201, pudong.text
    assert pudong.json()["code"] == "310115005001001"


def test_the_hierarchy_page_lists_counts(client: httpx.Client) -> None:
    page = client.get("/regions", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert 'data-testid="count-community">6509<' in page.text
    assert "浦东新区" in page.text
    district = client.get("/regions/310115", headers={"accept": "text/html"})
    assert "陆家嘴街道" in district.text
    assert client.get("/regions/123", headers={"accept": "text/html"}).status_code == 404


def test_many_points_are_located_in_one_pass_like_one_at_a_time(region_index: RegionIndex) -> None:
    rng = np.random.default_rng(7)
    lng = rng.uniform(120.85, 122.0, 2_000)
    lat = rng.uniform(30.7, 31.9, 2_000)
    found = region_index.locate_many(lng, lat)
    for i in range(0, 2_000, 7):
        try:
            one = region_index.locate(float(lng[i]), float(lat[i]))
        except OutsideCityError:
            assert found["district_code"][i] == ""
            assert found["cell"][i] == ""
            continue
        assert found["district_code"][i] == one.district.code
        assert bool(found["approximate"][i]) == one.approximate
        assert found["cell"][i] == one.cell
        assert found["grid_code"][i] == (one.grid.code if one.grid else None)
    assert (found["district_code"] == "").sum() > 0  # the box holds sea and neighbouring provinces


def test_many_grids_are_registered_at_once_and_refusals_are_reported(db: Database, region_index: RegionIndex) -> None:
    index = RegionIndex(region_index.regions, region_index.boundaries, dict(region_index.grids_by_cell))
    free = [c for c in h3.grid_disk(index.cell_of(*ORIENTAL_PEARL), 3) if c not in index.grids_by_cell]
    taken = next(iter(index.grids_by_cell))
    assignments = [
        (free[0], "310115005001"),
        (free[1], "310115005001"),
        (free[0], "310115005002"),  # the same cell again
        (free[2], "310101002001"),  # a 黄浦 community for a 浦东 cell
        (free[3], "310115005"),  # a township, not a community
        ("not-a-cell", "310115005001"),
        (taken, "310115005001"),  # already a grid: kept as it is
    ]
    with db.session() as session:
        plan = register_grids(session, index, assignments)
        stored = set(session.scalars(select(Grid.cell).where(Grid.cell.in_(free[:2]))))
    assert plan.created == 2
    assert plan.existing == 1
    assert set(plan.refused) == {free[0], free[2], free[3], "not-a-cell"}
    assert "assigned twice" in plan.refused[free[0]]
    assert "not in the community's district" in plan.refused[free[2]]
    assert "not a community" in plan.refused[free[3]]
    assert stored == set(free[:2])
    assert index.grids_by_cell[free[0]].code.startswith("310115005001")
    assert index.grids_by_cell[taken] == region_index.grids_by_cell[taken]


def test_grids_of_a_transaction_that_rolls_back_leave_the_index(db: Database, region_index: RegionIndex) -> None:
    index = RegionIndex(region_index.regions, region_index.boundaries, dict(region_index.grids_by_cell))
    cell = next(c for c in h3.grid_disk(index.cell_of(*ORIENTAL_PEARL), 4) if c not in index.grids_by_cell)
    with pytest.raises(RuntimeError), db.session() as session:
        register_grids(session, index, [(cell, "310115005001")])
        assert cell in index.grids_by_cell
        raise RuntimeError("the rest of the transaction fails")
    assert cell not in index.grids_by_cell

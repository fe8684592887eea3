"""The base registers: 一数一源, conflicts, versions and as-of, lineage, change feed, lookups."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import h3
import httpx
import polars as pl
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select

from shgov.core.db import Database, utcnow
from shgov.core.events import OutboxEvent
from shgov.core.regions.models import Grid
from shgov.core.regions.service import GRID_RESOLUTION, RegionIndex
from shgov.lake import service as lake
from shgov.lake.synthetic import CityConfig, SyntheticCity, generate
from shgov.registers import service as registers
from shgov.registers.elements import coverage

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="module")
def city(request: pytest.FixtureRequest) -> SyntheticCity:
    index: RegionIndex = request.getfixturevalue("region_index")
    return generate(index, CityConfig(persons=1_500, enterprises=200, seed=5, defect_rate=0.05))


@pytest.fixture
def lake_dir(tmp_path: Path, db: Database, city: SyntheticCity, region_index: RegionIndex) -> Path:
    """A lake with every delivery of the city loaded."""
    folder = tmp_path / "lake"
    with db.session() as session:
        lake.load_city(
            session, folder, city, tmp_path / "incoming", lake.make_context(folder, lake.region_codes(region_index))
        )
    return folder


def build(db: Database, lake_dir: Path, register: str) -> registers.BuildResult:
    with db.session() as session:
        return registers.build(session, lake_dir, register)


def test_each_element_comes_from_its_authoritative_source(db: Database, lake_dir: Path, city: SyntheticCity) -> None:
    result = build(db, lake_dir, "person")
    assert result.lineage["address"]["department"] == "310000.ga"
    assert result.lineage["marital_status"]["department"] == "310000.mz"
    assert result.lineage["education"]["department"] == "310000.rs"
    assert result.lineage["marital_status"]["load_id"]
    reader = registers.RegisterReader(lake_dir)
    loaded = lake.read_current(lake_dir, "population")
    assert loaded is not None
    marriages = city.get("marriages")
    married = loaded.filter(
        pl.col("id_number").is_in(marriages.filter(pl.col("marital_status") == "已婚")["id_number"].implode())
    )["id_number"][0]
    population = loaded.filter(pl.col("id_number") == married)
    with db.session() as session:
        record = registers.find_person(session, reader, married, ["marital_status", "address", "name"])
    assert record is not None
    assert record["marital_status"] == "已婚"  # from 民政, whatever 公安's copy says
    assert record["address"] == population["address"][0]
    never = loaded.filter(~pl.col("id_number").is_in(marriages["id_number"].implode()))
    with db.session() as session:
        single = registers.find_person(session, reader, never["id_number"][0], ["marital_status"])
    assert single is not None
    assert single["marital_status"] == "未婚"  # absent from 民政's records


def test_disagreements_between_departments_are_recorded_as_conflicts(db: Database, lake_dir: Path) -> None:
    result = build(db, lake_dir, "person")
    assert result.conflicts["address"] > 0  # 人社's stale addresses
    assert result.conflicts["marital_status"] > 0  # 公安's lagging marital status
    total, rows = registers.conflicts(lake_dir, "person", result.version, "address", None, 0, 5)
    assert total == result.conflicts["address"]
    assert rows[0]["authoritative_department"] == "310000.ga"
    assert rows[0]["reference_department"] == "310000.rs"
    assert rows[0]["authoritative_value"] != rows[0]["reference_value"]
    mine, _ = registers.conflicts(lake_dir, "person", result.version, None, {"310000.mz"}, 0, 5)
    assert mine == result.conflicts["marital_status"]


def test_versions_answer_as_of_queries_and_changes_are_announced(
    db: Database, lake_dir: Path, city: SyntheticCity, region_index: RegionIndex, tmp_path: Path
) -> None:
    first = build(db, lake_dir, "person")
    time.sleep(0.01)
    between = utcnow()
    time.sleep(0.01)
    population = lake.read_current(lake_dir, "population")
    assert population is not None
    moved = population["id_number"][10]
    old_address = population["address"][10]
    update = population.slice(10, 1).with_columns(
        pl.lit("浦东新区陆家嘴街道梅园一村8号101室").alias("address"), pl.col("updated_at").dt.offset_by("1d")
    )
    file = tmp_path / "delta.parquet"
    update.write_parquet(file)
    with db.session() as session:
        lake.load(
            session,
            lake_dir,
            "population",
            lake.Source(path=file),
            department_code="310000.ga",
            mode="incremental",
            context=lake.make_context(lake_dir, lake.region_codes(region_index)),
        )
    second = build(db, lake_dir, "person")
    assert second.version == first.version + 1
    assert second.changed == 1
    reader = registers.RegisterReader(lake_dir)
    with db.session() as session:
        now = registers.find_person(session, reader, moved, ["address"])
        then = registers.find_person(session, reader, moved, ["address"], as_of=between)
        events = session.scalars(select(OutboxEvent).where(OutboxEvent.type == "registers.person.changed")).all()
        with pytest.raises(Exception, match="not been built by then"):
            registers.find_person(session, reader, moved, ["address"], as_of=between - timedelta(days=365))
    assert now == {"id_number": moved, "address": "浦东新区陆家嘴街道梅园一村8号101室"}
    assert then == {"id_number": moved, "address": old_address}
    assert [(e.payload["key"], e.payload["elements"]) for e in events] == [(moved, ["address"])]


def test_enterprises_and_licences_are_looked_up_singly_and_in_batches(
    db: Database, lake_dir: Path, city: SyntheticCity
) -> None:
    for register in ("person", "enterprise", "licence"):
        build(db, lake_dir, register)
    reader = registers.RegisterReader(lake_dir)
    codes = city.get("tax_registrations")["credit_code"].head(3).to_list()
    with db.session() as session:
        found = registers.get_enterprises(session, reader, codes, ["name", "tax_status"])
        licences = registers.licences_of(session, reader, codes[0])
        person = city.get("population")["id_number"][0]
        person_licences = registers.licences_of(session, reader, person)
        with pytest.raises(Exception, match="unknown fields: shoe_size"):
            registers.find_person(session, reader, person, ["shoe_size"])
    assert [r["credit_code"] for r in found] == [c for c in codes if any(r["credit_code"] == c for r in found)]
    assert {r["licence_type"] for r in licences} >= {"营业执照"}
    assert {r["licence_type"] for r in person_licences} >= {"居民身份证"}


def test_coverage_of_authoritative_sources_meets_the_target(engine: object) -> None:
    figures = coverage()
    assert figures["all"] >= 80.0
    assert figures["person"] < 100.0  # phone has no authoritative source yet, and says so


def test_the_api_serves_lookups_to_authorised_callers_and_audits_them(
    client: httpx.Client,
    token_for: Callable[[str], str],
    db: Database,
    lake_dir: Path,
    app: FastAPI,
    city: SyntheticCity,
) -> None:
    app.state.settings.analytics.lake_dir = lake_dir
    admin = {"Authorization": f"Bearer {token_for('admin')}"}
    for register in ("person", "enterprise", "licence"):
        assert client.post(f"/api/v1/registers/{register}/builds", headers=admin).status_code == 201
    person = city.get("population")["id_number"][3]
    officer = {"Authorization": f"Bearer {token_for('data.officer')}"}
    record = client.get(f"/api/v1/registers/persons/{person}", params={"fields": "name,address"}, headers=officer)
    assert record.status_code == 200, record.text
    assert set(record.json()) == {"id_number", "name", "address"}
    window = {"Authorization": f"Bearer {token_for('pudong.window')}"}
    assert client.get(f"/api/v1/registers/persons/{person}", headers=window).status_code == 403
    assert client.get("/api/v1/registers/persons/31010419900307123X", headers=officer).status_code == 404
    bad = client.get(f"/api/v1/registers/persons/{person}", params={"fields": "shoe_size"}, headers=officer)
    assert bad.status_code == 422
    batch = client.post(
        "/api/v1/registers/persons/batch",
        json={"keys": city.get("population")["id_number"].head(5).to_list(), "fields": ["name"]},
        headers=officer,
    )
    assert len(batch.json()) >= 4
    conflicts = client.get("/api/v1/registers/person/conflicts", params={"element": "address"}, headers=officer).json()
    assert conflicts["total"] > 0
    builds = client.get("/api/v1/registers/person/builds", headers=officer).json()
    assert builds[0]["lineage"]["address"]["department"] == "310000.ga"
    assert client.get("/api/v1/registers/coverage", headers=officer).json()["coverage_percent"]["all"] >= 80
    auditor = {"Authorization": f"Bearer {token_for('auditor')}"}
    # The 身份证号 is stored as its keyed digest; the auditor finds the reads by the number itself.
    trail = client.get(
        "/api/v1/audit/records", params={"action": "registers.person.read", "object_id": person}, headers=auditor
    ).json()
    assert trail
    assert all(r["object_id"].startswith("h:") and r["object_id"] != person for r in trail)
    assert trail[0]["details"]["object_masked"] == f"{person[:4]}{'*' * 10}{person[-4:]}"


def test_the_address_register_places_every_address(
    db: Database, lake_dir: Path, city: SyntheticCity, region_index: RegionIndex
) -> None:
    for register in ("person", "enterprise"):
        build(db, lake_dir, register)
    with db.session() as session:
        result = registers.build(session, lake_dir, "address", index=region_index)
    reader = registers.RegisterReader(lake_dir)
    person = lake.read_current(lake_dir, "population")
    enterprise = lake.read_current(lake_dir, "enterprises")
    assert person is not None
    assert enterprise is not None
    with db.session() as session:
        home = registers.address(session, reader, person["address"][0])
        office = registers.address(session, reader, enterprise["address"][0])
    assert home is not None
    assert home["community_code"] == person["community_code"][0]
    assert home["precision"] == "community"
    assert office is not None
    assert office["district_code"] == enterprise["district_code"][0]
    assert office["township_code"] is not None  # the text names the township; parsed against the divisions
    assert office["placed_by"] == "parsed"
    assert result.rows >= person["address"].n_unique()


def grid_free_index(region_index: RegionIndex) -> RegionIndex:
    """A copy of the seeded index without grids, so a test can lay its own."""
    return RegionIndex(region_index.regions, region_index.boundaries, {})


def test_grids_are_laid_over_geocoded_addresses_and_addresses_are_placed_in_them(
    db: Database, lake_dir: Path, region_index: RegionIndex
) -> None:
    for register in ("person", "enterprise"):
        build(db, lake_dir, register)
    index = grid_free_index(region_index)
    with db.session() as session:
        session.execute(delete(Grid))
        plan = registers.derive_grids(session, lake_dir, index)
        again = registers.derive_grids(session, lake_dir, index)
        registers.build(session, lake_dir, "address", index=index)
        grids = {g.cell: g for g in session.scalars(select(Grid))}
    assert plan.created > 100
    assert again.created == 0
    assert again.existing == plan.created
    assert len(grids) == plan.created
    frame = lake.read_current(lake_dir, "register_address")
    assert frame is not None
    geocoded = frame.filter(pl.col("lng").is_not_null())
    assert geocoded.height > 0.9 * frame.height  # a few addresses were not surveyed or were quarantined
    in_grid = geocoded.filter(pl.col("grid_code").is_not_null())
    assert in_grid.height > 0.95 * geocoded.height
    assert set(in_grid["precision"]) == {"grid"}
    for row in in_grid.head(200).iter_rows(named=True):
        cell = h3.latlng_to_cell(row["lat"], row["lng"], GRID_RESOLUTION)
        assert row["cell"] == cell
        grid = grids[cell]
        assert row["grid_code"] == grid.code
        assert len(grid.code) == 15
        # A grid lies within the district of its community, and its code starts with that community's.
        assert grid.code.startswith(grid.community_code)
        assert grid.community_code[:6] == row["district_code"]
    # Most addresses sit in a grid of their own community (borders between communities are fuzzy).
    same = in_grid.filter(pl.col("grid_code").str.slice(0, 12) == pl.col("community_code")).height
    assert same > 0.6 * in_grid.filter(pl.col("community_code").is_not_null()).height


def test_coordinates_in_another_district_are_a_conflict_for_the_source_of_locations(
    db: Database, lake_dir: Path, region_index: RegionIndex, tmp_path: Path
) -> None:
    for register in ("person", "enterprise"):
        build(db, lake_dir, register)
    standard = lake.read_current(lake_dir, "standard_addresses")
    assert standard is not None
    target = standard.filter(pl.col("district_code") != "310151").row(0, named=True)["address"]
    moved = standard.with_columns(  # put one address on 崇明岛
        pl.when(pl.col("address") == target).then(121.40).otherwise(pl.col("lng")).alias("lng"),
        pl.when(pl.col("address") == target).then(31.62).otherwise(pl.col("lat")).alias("lat"),
    )
    file = tmp_path / "moved.parquet"
    moved.write_parquet(file)
    with db.session() as session:
        lake.load(
            session,
            lake_dir,
            "standard_addresses",
            lake.Source(path=file),
            department_code="310000.gh",
            context=lake.make_context(lake_dir, lake.region_codes(region_index)),
        )
        result = registers.build(session, lake_dir, "address", index=region_index)
        total, rows = registers.conflicts(lake_dir, "address", result.version, "location", {"310000.gh"}, 0, 500)
        _, others = registers.conflicts(lake_dir, "address", result.version, "location", {"310000.ga"}, 0, 500)
    assert result.conflicts.get("location", 0) >= 1
    mine = [r for r in rows if r["key"] == target]
    assert mine, f"no conflict for {target} among {total}"
    assert mine[0]["authoritative_value"].endswith("(310151)")
    assert mine[0]["reference_value"] != "310151"
    assert mine[0]["reference_department"] in {"310000.ga", "310000.sc"}
    assert others == []


def test_laying_grids_needs_a_city_level_role(
    client: httpx.Client, token_for: Callable[[str], str], lake_dir: Path, app: FastAPI, db: Database
) -> None:
    app.state.settings.analytics.lake_dir = lake_dir
    for register in ("person", "enterprise"):
        build(db, lake_dir, register)
    url = "/api/v1/registers/address/grids"
    assert client.post(url).status_code == 401
    pudong = {"Authorization": f"Bearer {token_for('pudong.admin')}"}
    assert client.post(url, headers=pudong).status_code == 403
    admin = {"Authorization": f"Bearer {token_for('admin')}"}
    laid = client.post(url, headers=admin)
    assert laid.status_code == 201, laid.text
    body = laid.json()
    assert body["created"] + body["existing"] > 0
    assert isinstance(body["refused"], dict)

"""The synthetic city: deterministic, valid identifiers, real divisions, census proportions, defects."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from stdnum.cn import ric, uscc

from shgov.core.regions.service import RegionIndex
from shgov.lake.synthetic import CityConfig, SyntheticCity, generate


@pytest.fixture(scope="module")
def clean_city(region_index: RegionIndex) -> SyntheticCity:
    return generate(region_index, CityConfig(persons=6_000, enterprises=1_200, seed=7, defect_rate=0.0))


pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


def test_the_same_seed_gives_the_same_city(region_index: RegionIndex, clean_city: SyntheticCity) -> None:
    again = generate(region_index, CityConfig(persons=6_000, enterprises=1_200, seed=7, defect_rate=0.0))
    for first, second in zip(clean_city.deliveries, again.deliveries, strict=True):
        assert first.frame.equals(second.frame), first.resource
    other = generate(region_index, CityConfig(persons=6_000, enterprises=1_200, seed=8, defect_rate=0.0))
    assert not other.get("population").equals(clean_city.get("population"))


def test_every_id_number_is_valid_and_matches_birth_date_and_sex(clean_city: SyntheticCity) -> None:
    population = clean_city.get("population")
    assert population["id_number"].n_unique() == population.height
    for row in population.sample(800, seed=1).iter_rows(named=True):
        assert ric.is_valid(row["id_number"]), row["id_number"]
        assert ric.get_birth_date(row["id_number"]) == row["birth_date"]
        assert (int(row["id_number"][16]) % 2 == 1) == (row["sex"] == "男")


def test_every_credit_code_is_valid_and_every_legal_representative_is_a_person(clean_city: SyntheticCity) -> None:
    enterprises = clean_city.get("enterprises")
    assert all(uscc.is_valid(code) for code in enterprises["credit_code"])
    persons = set(clean_city.get("population")["id_number"])
    assert set(enterprises["legal_representative_id"]) <= persons


def test_addresses_are_in_real_communities_and_districts_follow_the_census(
    clean_city: SyntheticCity, region_index: RegionIndex
) -> None:
    population = clean_city.get("population")
    for row in population.sample(300, seed=2).iter_rows(named=True):
        community = region_index.get(row["community_code"])
        assert community is not None
        assert community.level == "community"
        assert community.parent_code == row["township_code"]
        assert row["address"].startswith(region_index.regions[row["district_code"]].name)
    shares = population["district_code"].value_counts(normalize=True)
    share = dict(zip(shares["district_code"], shares["proportion"], strict=True))
    assert 0.18 < share["310115"] < 0.28  # 浦东新区: 22.8 % of the 2020 census
    assert 0.015 < share["310101"] < 0.045  # 黄浦区: 2.7 %


def test_households_live_together_and_couples_point_at_each_other(clean_city: SyntheticCity) -> None:
    population = clean_city.get("population")
    per_household = population.group_by("household_no").agg(pl.col("community_code").n_unique().alias("places"))
    assert per_household["places"].max() == 1
    assert 2.0 < population.height / per_household.height < 2.8
    marriages = clean_city.get("marriages").drop_nulls("spouse_id_number")
    spouses = dict(zip(marriages["id_number"], marriages["spouse_id_number"], strict=True))
    assert spouses
    assert all(spouses.get(b) == a for a, b in spouses.items())


def test_each_department_delivers_its_own_datasets(clean_city: SyntheticCity) -> None:
    owners = {d.resource: d.department_code for d in clean_city.deliveries}
    assert owners["population"] == "310000.ga"
    assert owners["marriages"] == "310000.mz"
    assert owners["births"] == "310000.wj"
    assert owners["employment"] == "310000.rs"
    assert owners["enterprises"] == "310000.sc"
    assert owners["tax_registrations"] == "310000.swj"
    assert owners["standard_addresses"] == "310000.gh"
    licence_types = {
        d.frame["licence_type"][0]
        for d in clean_city.deliveries
        if d.resource.startswith("licences_") and d.frame.height
    }
    assert {
        "居民身份证",
        "户口簿",
        "结婚证",
        "出生医学证明",
        "营业执照",
        "食品经营许可证",
        "社会保障卡",
    } <= licence_types
    levels = pl.concat([d.frame for d in clean_city.deliveries if d.resource.startswith("licences_")])["trust_level"]
    assert set(levels) <= {"A", "B", "C", "D"}


def test_defects_appear_at_about_the_configured_rate(region_index: RegionIndex, clean_city: SyntheticCity) -> None:
    city = generate(region_index, CityConfig(persons=6_000, enterprises=1_200, seed=7, defect_rate=0.1))
    population = city.get("population")
    bad_ids = sum(not ric.is_valid(v) for v in population["id_number"])
    assert 0.01 * population.height < bad_ids < 0.05 * population.height
    assert city.get("employment")["education"].null_count() > 0
    assert clean_city.get("employment")["education"].null_count() == 0
    # 人社's copy of addresses is stale for some people: the departments disagree.
    joined = population.join(city.get("employment"), on="id_number", suffix="_rs")
    disagree = (joined["address"] != joined["address_rs"]).sum()
    assert 0.05 * joined.height < disagree < 0.35 * joined.height


def test_the_city_is_written_per_department_with_a_manifest(clean_city: SyntheticCity, tmp_path: Path) -> None:
    files = clean_city.write(tmp_path, "csv")
    assert all(f.exists() for f in files)
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert {d["resource"] for d in manifest["deliveries"]} == {d.resource for d in clean_city.deliveries}
    population = pl.read_csv(tmp_path / "310000.ga" / "population.csv", infer_schema_length=0)
    assert population.height == clean_city.get("population").height


def test_every_address_is_geocoded_inside_its_district(region_index: RegionIndex, clean_city: SyntheticCity) -> None:
    standard = clean_city.get("standard_addresses")
    used = set(clean_city.get("population")["address"]) | set(clean_city.get("enterprises")["address"])
    assert used <= set(standard["address"])
    assert standard["address"].is_unique().all()
    assert standard["lng"].null_count() == 0  # no defects asked for
    found, approximate = region_index.districts_at(standard["lng"].to_numpy(), standard["lat"].to_numpy())
    assert (found == standard["district_code"].to_numpy()).all()
    assert not approximate.any()
    # Addresses of one community lie close together: a few hundred metres, not across the city.
    population = clean_city.get("population").join(standard, on="address")
    spread = population.group_by("community_code").agg(pl.col("lng").std(), pl.col("lat").std()).drop_nulls()
    assert spread["lng"].median() < 0.01
    assert spread["lat"].median() < 0.01


def test_some_addresses_lack_or_swap_coordinates_when_defects_are_asked_for(region_index: RegionIndex) -> None:
    city = generate(region_index, CityConfig(persons=6_000, enterprises=1_200, seed=7, defect_rate=0.1))
    standard = city.get("standard_addresses")
    assert 0.02 * standard.height < standard["lng"].null_count() < 0.1 * standard.height
    swapped = standard.filter(pl.col("lng") < 90)
    assert 0.005 * standard.height < swapped.height < 0.05 * standard.height
    assert swapped["lng"].min() > 30  # latitudes in the longitude column

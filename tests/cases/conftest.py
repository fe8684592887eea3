"""Fixtures of the case tests: a city with built person and licence registers, the demo catalogue of
services, department staff, and a married parent of the synthetic city with a citizen account."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from fastapi import FastAPI

from shgov.cases import service as cases
from shgov.core.db import Database
from shgov.core.identity.service import create_user, issue_token
from shgov.core.regions.service import RegionIndex
from shgov.core.settings import Settings
from shgov.lake.synthetic import CityConfig, SyntheticCity, generate
from shgov.services import service as services
from tests.conftest import served_lake

PASSWORD = "Parent#2026xy"


@pytest.fixture(scope="module")
def city(request: pytest.FixtureRequest) -> SyntheticCity:
    index: RegionIndex = request.getfixturevalue("region_index")
    return generate(index, CityConfig(persons=900, enterprises=120, seed=77, defect_rate=0.0))


@pytest.fixture
def lake_dir(
    tmp_path: Path, db: Database, city: SyntheticCity, region_index: RegionIndex, app: FastAPI, settings: Settings
) -> Path:
    lake = served_lake(tmp_path, db, city, region_index, app, ("person", "licence"))
    with db.session() as session:
        services.seed_demo(session, settings)
        cases.seed_demo(session, settings)
    return lake


def married_parent(city: SyntheticCity) -> tuple[str, str, str]:
    """(ID number, name, district) of a married adult under 45 with a spouse in the register."""
    married = city.get("marriages").filter(pl.col("marital_status") == "已婚").select("id_number", "spouse_id_number")
    people = city.get("population").join(married, on="id_number")
    row = (
        people.filter(pl.col("spouse_id_number").is_in(people["id_number"].implode()))
        .sort("birth_date", descending=True)
        .row(0, named=True)
    )
    return row["id_number"], row["name"], row["district_code"]


@pytest.fixture
def parent(db: Database, city: SyntheticCity, lake_dir: Path) -> tuple[str, str, str]:
    """(ID number, token, district) of a citizen account for a married parent."""
    id_number, name, district = married_parent(city)
    with db.session() as session:
        user = create_user(
            session,
            kind="citizen",
            username="mother",
            display_name=name,
            password=PASSWORD,
            id_number=id_number,
            phone="13900002222",
        )
        token, _ = issue_token(session, user.id, "password", 3600)
    return id_number, token, district

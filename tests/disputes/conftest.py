"""Fixtures of the dispute tests: a loaded lake, a built register and a resident of the synthetic city."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from fastapi import FastAPI

from shgov.core.db import Database
from shgov.core.identity.service import create_user, issue_token
from shgov.core.regions.service import RegionIndex
from shgov.lake.synthetic import CityConfig, SyntheticCity, generate
from tests.conftest import served_lake


@pytest.fixture(scope="module")
def city(request: pytest.FixtureRequest) -> SyntheticCity:
    index: RegionIndex = request.getfixturevalue("region_index")
    return generate(index, CityConfig(persons=800, enterprises=100, seed=21, defect_rate=0.0))


@pytest.fixture
def lake_dir(tmp_path: Path, db: Database, city: SyntheticCity, region_index: RegionIndex, app: FastAPI) -> Path:
    return served_lake(tmp_path, db, city, region_index, app, ("person",))


@pytest.fixture
def resident(db: Database, city: SyntheticCity) -> tuple[str, str]:
    """A citizen account for a married person of the synthetic city, and its token."""
    married = city.get("marriages").filter(pl.col("marital_status") == "已婚")["id_number"][0]
    name = city.get("population").filter(pl.col("id_number") == married)["name"][0]
    with db.session() as session:
        user = create_user(
            session,
            kind="citizen",
            username="resident",
            display_name=name,
            password="Resident#2026x",
            id_number=married,
        )
        token, _ = issue_token(session, user.id, "password", 3600)
    return married, token

"""A small city in the test's lake: its open datasets (enterprises, addresses, licences …) have rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from shgov.core.db import Database
from shgov.core.regions.service import RegionIndex
from shgov.lake.synthetic import CityConfig, SyntheticCity, generate
from tests.conftest import served_lake


@pytest.fixture(scope="module")
def city(request: pytest.FixtureRequest) -> SyntheticCity:
    index: RegionIndex = request.getfixturevalue("region_index")
    return generate(index, CityConfig(persons=600, enterprises=300, seed=61, defect_rate=0.0))


@pytest.fixture
def lake_dir(tmp_path: Path, db: Database, city: SyntheticCity, region_index: RegionIndex, app: FastAPI) -> Path:
    return served_lake(tmp_path, db, city, region_index, app, ())

"""Fixtures of the benefits tests: a synthetic city loaded into a lake with both registers built, served."""

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
    return generate(index, CityConfig(persons=2_000, enterprises=300, seed=9, defect_rate=0.03))


@pytest.fixture
def lake_dir(tmp_path: Path, db: Database, city: SyntheticCity, region_index: RegionIndex, app: FastAPI) -> Path:
    return served_lake(tmp_path, db, city, region_index, app, ("person", "enterprise"))

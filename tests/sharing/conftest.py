"""A small city in the test's lake with its registers built, and system clients of two departments."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from shgov.catalog import service as catalog
from shgov.core.db import Database
from shgov.core.identity.service import create_client, issue_token
from shgov.core.regions.service import RegionIndex
from shgov.lake.synthetic import CityConfig, SyntheticCity, generate
from tests.conftest import served_lake


@pytest.fixture(scope="module")
def city(request: pytest.FixtureRequest) -> SyntheticCity:
    index: RegionIndex = request.getfixturevalue("region_index")
    return generate(index, CityConfig(persons=1_200, enterprises=200, seed=33, defect_rate=0.0))


@pytest.fixture
def lake_dir(tmp_path: Path, db: Database, city: SyntheticCity, region_index: RegionIndex, app: FastAPI) -> Path:
    return served_lake(tmp_path, db, city, region_index, app, ("person", "enterprise"))


@pytest.fixture
def client_token(db: Database) -> Callable[[str], str]:
    """A client-credentials token for a new system client of ``department``."""

    def issue(department: str) -> str:
        with db.session() as session:
            user, _ = create_client(
                session, name=f"{department} 业务系统", tenant_code=department.split(".")[0], department_code=department
            )
            token, _ = issue_token(session, user.id, "client_credentials", 3600)
        return token

    return issue


@pytest.fixture
def codes(db: Database) -> dict[str, str]:
    """Catalog codes of the entries the tests use."""
    with db.session() as session:
        person = next(r for r in catalog.list_resources(session, None) if r.register_code == "person")
        tax = catalog.find_by_lake_resource(session, "tax_registrations")
        marriages = catalog.find_by_lake_resource(session, "marriages")
        assert tax is not None
        assert marriages is not None
        return {"person": person.code, "tax": tax.code, "marriages": marriages.code}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def file(client: httpx.Client, token: str, **body: object) -> httpx.Response:
    return client.post("/api/v1/sharing/requests", json=body, headers=auth(token))

"""Gateway clients carry no more than their maker holds: a client is made only where its maker manages clients,
serves only its own department's grants, and a grant that names another department's client gives it nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from shgov.lake.synthetic import SyntheticCity
from tests.sharing.conftest import auth
from tests.sharing.test_sharing import person_grant, pudong_resident_url

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
TokenFor = Callable[[str], str]


def _make_client(client: httpx.Client, admin_token: str, **where: str) -> httpx.Response:
    return client.post("/api/v1/identity/clients", json={"name": "网关调用方", **where}, headers=auth(admin_token))


def _client_token(client: httpx.Client, made: dict[str, str]) -> str:
    answer = client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(made["client_id"], made["client_secret"]),
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def test_a_client_serves_only_its_makers_department_and_grant(
    client: httpx.Client,
    token_for: TokenFor,
    codes: dict[str, str],
    lake_dir: Path,
    city: SyntheticCity,
) -> None:
    minzheng, pudong = token_for("minzheng.admin"), token_for("pudong.admin")
    # Nobody makes a client in a department they do not manage clients of.
    assert _make_client(client, pudong, tenant_code="310000", department_code="310000.mz").status_code == 403
    assert _make_client(client, minzheng, tenant_code="310115", department_code="310115.mz").status_code == 403
    ours = _make_client(client, minzheng, tenant_code="310000", department_code="310000.mz")
    theirs = _make_client(client, pudong, tenant_code="310115", department_code="310115.mz")
    assert ours.status_code == theirs.status_code == 201
    url = pudong_resident_url(city, codes)
    # A grant to 市民政局 limited to a client of another department lets neither in.
    person_grant(client, token_for, codes, items=["sex"], client_ids=[theirs.json()["user_id"]])
    assert client.get(url, headers=auth(_client_token(client, theirs.json()))).status_code == 403
    assert client.get(url, headers=auth(_client_token(client, ours.json()))).status_code == 403
    # A grant to the department: its own client reads, the other department's still does not.
    person_grant(client, token_for, codes, items=["sex"])
    assert client.get(url, headers=auth(_client_token(client, ours.json()))).status_code == 200
    assert client.get(url, headers=auth(_client_token(client, theirs.json()))).status_code == 403

"""Reusers: API keys, applications for datasets open on conditions, the publisher's decision, rate limits
and usage statistics — through the pages and the real ``ckanapi`` client."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import ckanapi
import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shgov.core.db import Database
from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.core.identity.models import User
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import assign_role, create_user
from shgov.opendata import service as opendata
from tests.disputes.test_pages import browser_for, csrf_of

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
TAX_ADMIN_PASSWORD = "Tax#Admin2026x"


@pytest.fixture
def tax_admin(db: Database) -> str:
    """An administrator of 市税务局, the publisher of tax registrations."""
    with db.session() as session:
        user = create_user(
            session,
            kind="staff",
            username="swj.admin",
            display_name="市税务局管理员",
            password=TAX_ADMIN_PASSWORD,
            tenant_code="310000",
            department_code="310000.swj",
        )
        assign_role(session, user.id, "department_admin", Scope("310000", "310000.swj", False))
    return "swj.admin"


def make_key(me: httpx.Client, name: str) -> str:
    account = me.get("/opendata/account")
    made = me.post("/opendata/account/keys", data={"name": name, "csrf_token": csrf_of(account.text)})
    assert made.status_code == 200
    found = re.search(r'data-testid="new-key">([^<]+)<', made.text)
    assert found is not None
    return found.group(1)


def test_a_reuser_applies_the_publisher_approves_and_the_key_reads_the_rows(
    server_url: str, lake_dir: Path, tax_admin: str, db: Database
) -> None:
    with browser_for(server_url, "citizen", DEMO_PASSWORD) as me:
        key = make_key(me, "研究项目")
        assert key.startswith("od_")
        portal = ckanapi.RemoteCKAN(server_url, apikey=key, user_agent="shgov-tests/1.0")
        tax = portal.action.package_show(id="tax-registrations")
        rid = tax["resources"][0]["id"]
        with pytest.raises(ckanapi.NotAuthorized):
            portal.action.datastore_search(resource_id=rid)  # not approved yet
        page = me.get("/opendata/tax-registrations")
        assert 'data-testid="apply"' in page.text
        refused = me.post(
            "/opendata/tax-registrations/apply",
            data={"purpose": "短", "organisation": "某大学", "csrf_token": csrf_of(page.text)},
        )
        assert refused.status_code == 422  # purpose too short, conditions not accepted: nothing filed
        applied = me.post(
            "/opendata/tax-registrations/apply",
            data={
                "purpose": "研究本市企业纳税登记的行业分布",
                "organisation": "某大学经济学院",
                "accept": "true",
                "csrf_token": csrf_of(page.text),
            },
        )
        assert applied.status_code == 200
        assert 'data-status="pending"' in applied.text
    with db.session() as session:
        pending = [a for a, d in opendata.applications_of(session, _user_id(session, "citizen"))]
    assert [a.status for a in pending] == ["pending"]
    with browser_for(server_url, "minzheng.admin", DEMO_PASSWORD) as other:
        page = other.get("/opendata/account")
        assert f'data-application="{pending[0].id}"' not in page.text  # not 民政局's to decide
        forbidden = other.post(
            f"/opendata/applications/{pending[0].id}", data={"action": "approve", "csrf_token": csrf_of(page.text)}
        )
        assert forbidden.status_code == 403
    with browser_for(server_url, tax_admin, TAX_ADMIN_PASSWORD) as publisher:
        page = publisher.get("/opendata/account")
        assert f'data-application="{pending[0].id}"' in page.text
        decided = publisher.post(
            f"/opendata/applications/{pending[0].id}",
            data={"action": "approve", "days": "30", "note": "同意", "csrf_token": csrf_of(page.text)},
        )
        assert decided.status_code == 200
    rows = portal.action.datastore_search(resource_id=rid, limit=5)
    assert rows["total"] > 0
    anonymous = ckanapi.RemoteCKAN(server_url, user_agent="shgov-tests/1.0")
    with pytest.raises(ckanapi.NotAuthorized):
        anonymous.action.datastore_search(resource_id=rid)
    download = httpx.get(f"{server_url}/opendata/tax-registrations/download.csv", headers={"X-CKAN-API-Key": key})
    assert download.status_code == 200
    assert httpx.get(f"{server_url}/opendata/tax-registrations/download.csv").status_code == 403
    # A revoked key reads nothing, not even open data.
    with db.session() as session:
        mine = opendata.keys_of(session, _user_id(session, "citizen"))
        opendata.revoke_key(session, mine[0].user_id, mine[0].id)
    with pytest.raises(ckanapi.NotAuthorized):
        portal.action.datastore_search(resource_id=rid)


def test_keys_are_rate_limited_and_use_is_counted(server_url: str, lake_dir: Path, db: Database) -> None:
    with browser_for(server_url, "citizen", DEMO_PASSWORD) as me:
        key = make_key(me, "限流测试")
    with db.session() as session:
        session.execute(update(opendata.OpenKey).values(rate_per_minute=3))
    portal = ckanapi.RemoteCKAN(server_url, apikey=key, user_agent="shgov-tests/1.0")
    rid = portal.action.package_show(id="enterprises")["resources"][0]["id"]
    portal.action.datastore_search(resource_id=rid, limit=1)
    portal.action.datastore_search(resource_id=rid, limit=1)
    limited = httpx.post(
        f"{server_url}/api/3/action/datastore_search", json={"resource_id": rid}, headers={"X-CKAN-API-Key": key}
    )
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["success"] is False
    assert httpx.get(f"{server_url}/opendata/enterprises/download.csv").status_code == 200
    with browser_for(server_url, "citizen", DEMO_PASSWORD) as me:
        account = me.get("/opendata/account").text
        assert re.search(r'data-testid="calls-today">3<', account)  # package_show and two searches; not the refused one
    stats = httpx.get(f"{server_url}/opendata/stats")
    assert stats.status_code == 200
    row = re.search(r'data-dataset="enterprises">.*?<td>(\d+)</td><td>(\d+)</td>', stats.text, re.DOTALL)
    assert row is not None
    assert (int(row.group(1)), int(row.group(2))) == (3, 1)  # package_show + two searches; one download
    bad = httpx.get(f"{server_url}/api/3/action/package_list", headers={"X-CKAN-API-Key": "od_forged"})
    assert bad.status_code == 403
    assert bad.json()["error"]["__type"] == "Authorization Error"


def _user_id(session: Session, username: str) -> uuid.UUID:
    found = session.scalar(select(User.id).where(User.username == username))
    assert found is not None
    return found

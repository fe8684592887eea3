"""An open-data API key carries only what its maker holds, now: it is made for oneself through the one
delegation check, names no other account, and reads nothing once its holder is disabled or locked."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import ckanapi
import httpx
import pytest
from sqlalchemy import select

from shgov.core.db import Database, utcnow
from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.core.identity.models import User
from shgov.opendata import service as opendata
from tests.disputes.test_pages import browser_for, csrf_of
from tests.opendata.test_reusers import make_key

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)


def test_a_key_is_its_makers_and_dies_with_the_account(server_url: str, lake_dir: Path, db: Database) -> None:
    with db.session() as session:
        enterprise = session.scalar(select(User.id).where(User.username == "enterprise"))
    with browser_for(server_url, "citizen", DEMO_PASSWORD) as me:
        key = make_key(me, "自己的钥匙")
        # Naming another account in the form does not make a key for it.
        account = me.get("/opendata/account")
        made = me.post(
            "/opendata/account/keys",
            data={"name": "别人的", "user_id": str(enterprise), "csrf_token": csrf_of(account.text)},
        )
        assert made.status_code == 200
    with db.session() as session:
        citizen = session.scalar(select(User).where(User.username == "citizen"))
        assert citizen is not None
        assert len(opendata.keys_of(session, citizen.id)) == 2
        assert opendata.keys_of(session, enterprise) == []  # type: ignore[arg-type]
    portal = ckanapi.RemoteCKAN(server_url, apikey=key, user_agent="shgov-tests/1.0")
    rid = portal.action.package_show(id="enterprises")["resources"][0]["id"]
    assert portal.action.datastore_search(resource_id=rid, limit=1)["total"] > 0
    # Locked: the key reads nothing, not even open data, until the lock ends.
    with db.session() as session:
        holder = session.scalar(select(User).where(User.username == "citizen"))
        assert holder is not None
        holder.locked_until = utcnow() + timedelta(minutes=15)
    with pytest.raises(ckanapi.NotAuthorized):
        portal.action.datastore_search(resource_id=rid, limit=1)
    headers = {"X-CKAN-API-Key": key}
    assert httpx.get(f"{server_url}/opendata/enterprises/download.csv", headers=headers).status_code == 403
    # Disabled: the same.
    with db.session() as session:
        holder = session.scalar(select(User).where(User.username == "citizen"))
        assert holder is not None
        holder.locked_until, holder.is_active = None, False
    with pytest.raises(ckanapi.NotAuthorized):
        portal.action.datastore_search(resource_id=rid, limit=1)
    with db.session() as session:
        holder = session.scalar(select(User).where(User.username == "citizen"))
        assert holder is not None
        holder.is_active = True
    assert portal.action.datastore_search(resource_id=rid, limit=1)["total"] > 0

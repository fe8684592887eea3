"""An administrator resets a forgotten password only for accounts in scope that hold no more than the
administrator (the delegation rule); the reset ends the account's tokens and sessions and is audited. The
holder turns their own second factor off only with a current code or the password."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from sqlalchemy import select

from shgov.core.audit.models import AuditRecord
from shgov.core.db import Database
from shgov.core.identity.models import User
from shgov.core.identity.service import create_user
from tests.core.identity.test_signin_guard import _enrol, bearer, password_token

TokenFor = Callable[[str], str]
NEW_PASSWORD = "Newhire#2026pass"


def _ids(db: Database, *usernames: str) -> dict[str, str]:
    with db.session() as session:
        rows = session.execute(select(User.username, User.id).where(User.username.in_(usernames))).all()
    return {name: str(user_id) for name, user_id in rows}


def test_an_administrator_resets_a_password_and_the_old_credentials_end(
    client: httpx.Client, token_for: TokenFor, db: Database
) -> None:
    with db.session() as session:
        create_user(
            session,
            kind="staff",
            username="pudong.newhire",
            display_name="新同事",
            password=NEW_PASSWORD,
            tenant_code="310115",
            department_code="310115.mz",
        )
    ids = _ids(db, "pudong.newhire")
    old = password_token(client, "pudong.newhire", NEW_PASSWORD).json()["access_token"]
    assert client.get("/api/v1/identity/me", headers=bearer(old)).status_code == 200
    reset = client.post(
        f"/api/v1/identity/users/{ids['pudong.newhire']}/password/reset",
        json={"reason": "本人来电忘记密码，已回拨核实"},
        headers=bearer(token_for("pudong.admin")),
    )
    assert reset.status_code == 200, reset.text
    assert reset.headers["cache-control"] == "no-store"
    body = reset.json()
    assert body["credentials_ended"] >= 1
    assert client.get("/api/v1/identity/me", headers=bearer(old)).status_code == 401
    assert password_token(client, "pudong.newhire", NEW_PASSWORD).status_code == 400  # the old password is gone
    fresh = password_token(client, "pudong.newhire", body["temporary_password"])
    assert fresh.status_code == 200, fresh.text
    with db.session() as session:
        record = session.scalar(select(AuditRecord).where(AuditRecord.action == "identity.password.reset"))
    assert record is not None
    assert record.object_id == ids["pudong.newhire"]
    assert record.details["reason"] == "本人来电忘记密码，已回拨核实"
    assert body["temporary_password"] not in str(record.details)


def test_nobody_resets_an_account_that_holds_more_or_lies_outside_their_scope(
    client: httpx.Client, token_for: TokenFor, db: Database
) -> None:
    ids = _ids(db, "pudong.window", "pudong.caseworker", "huangpu.admin", "pudong.admin", "admin", "citizen")
    reason = {"reason": "试试看"}
    pudong = bearer(token_for("pudong.admin"))
    answers = {
        name: client.post(f"/api/v1/identity/users/{ids[name]}/password/reset", json=reason, headers=pudong).status_code
        for name in ("pudong.window", "pudong.caseworker", "huangpu.admin", "admin", "pudong.admin", "citizen")
    }
    assert answers == {
        "pudong.window": 403,  # holds identity.user.proof, which the district administrator does not
        "pudong.caseworker": 403,  # holds case and work-order actions the district administrator does not
        "huangpu.admin": 404,  # another district: not even visible
        "admin": 404,  # the platform administrator belongs to the city
        "pudong.admin": 409,  # one's own password is changed with the current one
        "citizen": 404,  # no district's account
    }
    # The platform administrator holds it all, and may.
    done = client.post(
        f"/api/v1/identity/users/{ids['pudong.window']}/password/reset", json=reason, headers=bearer(token_for("admin"))
    )
    assert done.status_code == 200, done.text
    # Nor may a clerk without identity.user.manage.
    clerk = client.post(
        f"/api/v1/identity/users/{ids['pudong.admin']}/password/reset",
        json=reason,
        headers=bearer(token_for("pudong.window")),
    )
    assert clerk.status_code in (403, 404)


def test_turning_the_second_factor_off_needs_a_code_or_the_password(
    client: httpx.Client, later: Callable[[float], None]
) -> None:
    token = password_token(client, "pudong.admin").json()["access_token"]
    nothing = client.post("/api/v1/identity/me/totp/off", json={"password": "Shgov@2026demo"}, headers=bearer(token))
    assert nothing.status_code == 409  # no second factor to turn off
    totp = _enrol(client, token)
    empty = client.post("/api/v1/identity/me/totp/off", json={}, headers=bearer(token))
    assert empty.status_code == 422
    wrong = client.post("/api/v1/identity/me/totp/off", json={"password": "not-it-at-all"}, headers=bearer(token))
    assert wrong.status_code == 422
    used = client.post("/api/v1/identity/me/totp/off", json={"code": totp.at(datetime.now(UTC))}, headers=bearer(token))
    assert used.status_code == 422  # the enrolment's code was used already
    later(31)
    off = client.post("/api/v1/identity/me/totp/off", json={"code": totp.at(datetime.now(UTC))}, headers=bearer(token))
    assert off.status_code == 204, off.text
    assert password_token(client, "pudong.admin").status_code == 200  # no code needed any more

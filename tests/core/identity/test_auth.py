"""Signing in: OAuth 2.0 password and client-credentials flows, revocation, lockout, web sessions with CSRF."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from shgov.core.db import Database
from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.core.identity.models import AccessToken, User
from shgov.core.identity.service import verify_secret


def password_token(client: httpx.Client, username: str, password: str = DEMO_PASSWORD) -> httpx.Response:
    return client.post(
        "/api/v1/auth/token", data={"grant_type": "password", "username": username, "password": password}
    )


def test_the_password_flow_issues_a_bearer_token_that_works(client: httpx.Client) -> None:
    response = password_token(client, "pudong.admin")
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert 3500 < body["expires_in"] <= 3600
    me = client.get("/api/v1/identity/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["username"] == "pudong.admin"
    assert "identity.user.manage" in me.json()["actions"]


def test_tokens_are_stored_hashed(client: httpx.Client, db: Database) -> None:
    raw = password_token(client, "admin").json()["access_token"]
    with db.session() as session:
        stored = [t.token_hash for t in session.scalars(select(AccessToken))]
    assert raw not in stored
    assert all(len(h) == 64 for h in stored)


def test_a_revoked_token_stops_working(client: httpx.Client) -> None:
    raw = password_token(client, "admin").json()["access_token"]
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/identity/me", headers=headers).status_code == 200
    assert client.post("/api/v1/auth/revoke", data={"token": raw}, headers=headers).json() == {"revoked": True}
    after = client.get("/api/v1/identity/me", headers=headers)
    assert after.status_code == 401
    assert after.headers["www-authenticate"].startswith("Bearer")


def test_wrong_credentials_are_an_oauth_error_in_a_problem_document(client: httpx.Client) -> None:
    response = password_token(client, "admin", "wrong-password")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["error"] == "invalid_grant"
    unknown = password_token(client, "nobody", "whatever")
    assert unknown.json()["detail"] == response.json()["detail"]  # no hint that the user does not exist


def test_an_unsupported_grant_type_is_refused(client: httpx.Client) -> None:
    response = client.post("/api/v1/auth/token", data={"grant_type": "implicit"})
    assert response.json()["error"] == "unsupported_grant_type"


def test_an_administrator_can_lock_and_unlock_an_account(client: httpx.Client, token_for, db: Database) -> None:  # type: ignore[no-untyped-def]
    with db.session() as session:
        user_id = session.scalar(select(User.id).where(User.username == "pudong.window"))
    held = password_token(client, "pudong.window").json()["access_token"]
    headers = {"Authorization": f"Bearer {token_for('pudong.admin')}"}
    locked = client.post(
        f"/api/v1/identity/users/{user_id}/lock", json={"minutes": 30, "reason": "工号外借调查"}, headers=headers
    )
    assert locked.status_code == 204, locked.text
    # The token issued before the lock stops working, and the right password gets the usual refusal.
    assert client.get("/api/v1/identity/me", headers={"Authorization": f"Bearer {held}"}).status_code == 401
    refused = password_token(client, "pudong.window")
    assert refused.status_code == 400
    assert refused.json()["detail"] == password_token(client, "nobody", "whatever").json()["detail"]
    assert client.post(f"/api/v1/identity/users/{user_id}/unlock", headers=headers).status_code == 204
    assert password_token(client, "pudong.window").status_code == 200


def test_a_system_client_gets_a_secret_once_and_uses_client_credentials(
    client: httpx.Client, admin_token: str, db: Database
) -> None:
    created = client.post(
        "/api/v1/identity/clients",
        json={"name": "浦东城运对接系统", "tenant_code": "310115", "department_code": "310115.cy"},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert created.status_code == 201, created.text
    client_id, secret = created.json()["client_id"], created.json()["client_secret"]
    with db.session() as session:
        stored = session.scalar(select(User.secret_hash).where(User.username == client_id))
    assert stored is not None
    assert secret not in stored
    assert verify_secret(stored, secret)

    by_form = client.post(
        "/api/v1/auth/token", data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    assert by_form.status_code == 200, by_form.text
    by_basic = client.post("/api/v1/auth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert by_basic.status_code == 200
    me = client.get("/api/v1/identity/me", headers={"Authorization": f"Bearer {by_basic.json()['access_token']}"})
    assert me.json()["kind"] == "client"
    wrong = client.post("/api/v1/auth/token", data={"grant_type": "client_credentials"}, auth=(client_id, "nope"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    # A client cannot use the password flow, and a person cannot use client credentials.
    assert password_token(client, client_id, secret).status_code == 400


def test_a_malformed_authorization_header_is_a_401(client: httpx.Client) -> None:
    for header in ("Basic abc", "Bearer", "Bearer not-a-token"):
        response = client.get("/api/v1/identity/me", headers={"Authorization": header})
        assert response.status_code == 401, header


def _login_form(client: httpx.Client) -> str:
    page = client.get("/login", headers={"accept": "text/html"})
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
    assert match is not None
    return match.group(1)


def test_web_sign_in_needs_the_csrf_token_and_sets_a_safe_cookie(server_url: str) -> None:
    with httpx.Client(base_url=server_url, follow_redirects=False) as browser:
        csrf = _login_form(browser)
        forged = browser.post("/login", data={"username": "citizen", "password": DEMO_PASSWORD, "csrf_token": "0" * 64})
        assert forged.status_code == 403
        response = browser.post(
            "/login", data={"username": "citizen", "password": DEMO_PASSWORD, "csrf_token": csrf, "next": "/staff"}
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/staff"
        cookie = response.headers["set-cookie"]
        assert "shgov_session=" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        home = browser.get("/", headers={"accept": "text/html"})
        assert "张伟" in home.text
        me = browser.get("/api/v1/identity/me")
        assert me.json()["username"] == "citizen"
        assert me.json()["id_number"] == "31010419900307123X"  # one's own data is not masked


def test_a_cookie_session_must_send_the_csrf_token_to_change_anything(server_url: str) -> None:
    with httpx.Client(base_url=server_url, follow_redirects=False) as browser:
        csrf = _login_form(browser)
        browser.post("/login", data={"username": "admin", "password": DEMO_PASSWORD, "csrf_token": csrf})
        body = {"days": [{"date": "2027-01-01", "kind": "holiday"}]}
        refused = browser.put("/api/v1/calendar/years/2027", json=body)
        assert refused.status_code == 403
        assert "CSRF" in refused.json()["detail"]
        page = browser.get("/", headers={"accept": "text/html"})
        token = re.search(r'"X-CSRF-Token": "([0-9a-f]+)"', page.text)
        assert token is not None
        accepted = browser.put("/api/v1/calendar/years/2027", json=body, headers={"X-CSRF-Token": token.group(1)})
        assert accepted.status_code == 200, accepted.text


def test_signing_out_ends_the_session(server_url: str) -> None:
    with httpx.Client(base_url=server_url, follow_redirects=False) as browser:
        csrf = _login_form(browser)
        browser.post("/login", data={"username": "admin", "password": DEMO_PASSWORD, "csrf_token": csrf})
        page = browser.get("/", headers={"accept": "text/html"})
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
        assert token is not None
        cookie = browser.cookies.get("shgov_session")
        assert browser.post("/logout", data={"csrf_token": token.group(1)}).status_code == 303
        browser.cookies.set("shgov_session", cookie or "")
        assert browser.get("/api/v1/identity/me").status_code == 401


def test_a_wrong_web_sign_in_re_shows_the_form(server_url: str) -> None:
    with httpx.Client(base_url=server_url) as browser:
        csrf = _login_form(browser)
        response = browser.post(
            "/login",
            data={"username": "admin", "password": "nope", "csrf_token": csrf},
            headers={"accept": "text/html"},
        )
        assert response.status_code == 401
        assert "用户名或密码错误" in response.text


def test_dev_mode_lists_the_demo_accounts_on_the_sign_in_page(client: httpx.Client) -> None:
    page = client.get("/login", headers={"accept": "text/html"}).text
    assert "pudong.admin" not in page  # the test settings are not dev


@pytest.mark.parametrize("password", ["short1A!", "alllowercaseletters", "NoDigitsOrSymbols"])
def test_weak_passwords_are_refused(client: httpx.Client, admin_token: str, password: str) -> None:
    response = client.post(
        "/api/v1/identity/users",
        json={
            "kind": "staff",
            "username": "new.staff",
            "display_name": "新员工",
            "password": password,
            "tenant_code": "310115",
        },
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "password"


def test_in_dev_mode_the_sign_in_page_lists_one_account_per_role(
    live_server,
    db: Database,
    region_index,
    engine,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    from shgov.app import create_app
    from shgov.core.identity.demo import BUILTIN_ROLES
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, env="dev", database={"url": engine.url.render_as_string(hide_password=False)})
    app = create_app(settings, database=db, background=False)
    app.state.region_index = region_index
    live_server.switch.target = app
    try:
        page = httpx.get(f"{live_server.url}/login", headers={"accept": "text/html"}).text
    finally:
        live_server.switch.target = None
    assert "演示账号" in page
    assert DEMO_PASSWORD in page
    for _code, name, _en, _actions in BUILTIN_ROLES:
        assert name in page

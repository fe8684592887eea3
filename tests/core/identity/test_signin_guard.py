"""Sign-in abuse is throttled, not weaponised: growing delays per address and account (429 + Retry-After)
across processes, one message for every refusal, credentials ending with a lock or a new password, RFC 7009
revocation by the token's owner only, and a TOTP second factor for staff."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pyotp
from sqlalchemy import select

from shgov.core.db import Database
from shgov.core.identity import throttle
from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.core.identity.models import SigninThrottle, User
from shgov.core.identity.throttle import ADDRESS_FREE_FAILURES
from shgov.core.settings import SecuritySettings

TokenFor = Callable[[str], str]


def password_token(client: httpx.Client, username: str, password: str = DEMO_PASSWORD, **extra: str) -> httpx.Response:
    data = {"grant_type": "password", "username": username, "password": password, **extra}
    return client.post("/api/v1/auth/token", data=data)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_failures_slow_an_account_down_with_growing_delays_then_let_it_in(
    client: httpx.Client, later: Callable[[float], None]
) -> None:
    for _ in range(5):  # the free failures
        assert password_token(client, "pudong.window", "wrong-password").status_code == 400
    sixth = password_token(client, "pudong.window", "wrong-password")
    assert sixth.status_code == 400  # counted; from now on the name waits before the next try
    waiting = password_token(client, "pudong.window")  # even the right password waits: no hash is checked
    assert waiting.status_code == 429
    assert waiting.headers["content-type"].startswith("application/problem+json")
    assert int(waiting.headers["retry-after"]) == 1
    later(1.5)
    assert password_token(client, "pudong.window", "wrong-password").status_code == 400
    second_wait = password_token(client, "pudong.window")
    assert second_wait.status_code == 429
    assert int(second_wait.headers["retry-after"]) == 2  # doubled
    later(2.5)
    assert password_token(client, "pudong.window").status_code == 200  # a delay, never a lock


def test_an_unknown_name_is_throttled_exactly_like_a_real_one(client: httpx.Client) -> None:
    answers = []
    for username in ("pudong.window", "no.such.person"):
        for _ in range(6):
            password_token(client, username, "wrong-password")
        answers.append(password_token(client, username, "wrong-password"))
    assert [a.status_code for a in answers] == [429, 429]
    assert answers[0].json()["detail"] == answers[1].json()["detail"]


def test_one_address_guessing_many_accounts_gets_429(client: httpx.Client) -> None:
    statuses = [
        password_token(client, f"guess{i}", "wrong-password").status_code for i in range(ADDRESS_FREE_FAILURES + 2)
    ]
    assert statuses[:ADDRESS_FREE_FAILURES] == [400] * ADDRESS_FREE_FAILURES
    assert 429 in statuses
    refused = password_token(client, "admin")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1


def test_the_counters_are_in_the_database_for_every_process(client: httpx.Client, db: Database) -> None:
    password_token(client, "pudong.window", "wrong-password")
    with db.session() as session:
        rows = list(session.scalars(select(SigninThrottle)))
    assert rows
    assert all(r.failures >= 1 for r in rows)
    assert all("pudong.window" not in r.key for r in rows)  # names typed are kept only as digests


def test_nobody_elsewhere_can_keep_a_system_client_out(client: httpx.Client, admin_token: str, db: Database) -> None:
    created = client.post(
        "/api/v1/identity/clients",
        json={"name": "浦东城运对接系统", "tenant_code": "310115", "department_code": "310115.cy"},
        headers=bearer(admin_token),
    ).json()
    client_id, secret = created["client_id"], created["client_secret"]
    # An attacker at another address fails fifty times, as the sign-in would count them for that address.
    keys = throttle.keys_for(SecuritySettings(), client_id, "203.0.113.9", client=True)
    assert keys.account_wide is None
    waited = 0
    for _ in range(50):
        try:
            throttle.begin(db, keys)
        except throttle.Throttled:
            waited += 1
            continue
        throttle.settle(db, keys, "failed")
    assert waited > 0
    ok = client.post("/api/v1/auth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert ok.status_code == 200, ok.text


def test_unknown_user_wrong_password_and_locked_account_get_the_same_answer(
    client: httpx.Client, token_for: TokenFor, db: Database
) -> None:
    with db.session() as session:
        clerk = session.scalar(select(User.id).where(User.username == "pudong.window"))
    client.post(
        f"/api/v1/identity/users/{clerk}/lock",
        json={"minutes": 60, "reason": "调查"},
        headers=bearer(token_for("pudong.admin")),
    )
    answers = [
        password_token(client, "nobody.here", "whatever-123"),
        password_token(client, "huangpu.admin", "wrong-password"),
        password_token(client, "pudong.window"),  # locked, right password
    ]
    assert {a.status_code for a in answers} == {400}
    assert len({a.json()["detail"] for a in answers}) == 1
    assert len({a.json()["error"] for a in answers}) == 1


def test_disabling_or_a_new_password_ends_tokens_and_sessions(
    client: httpx.Client, token_for: TokenFor, db: Database
) -> None:
    with db.session() as session:
        clerk = session.scalar(select(User.id).where(User.username == "pudong.window"))
    first = password_token(client, "pudong.window").json()["access_token"]
    second = password_token(client, "pudong.window").json()["access_token"]
    changed = client.put(
        "/api/v1/identity/me/password",
        json={"current_password": DEMO_PASSWORD, "new_password": "Another#Pass2026"},
        headers=bearer(first),
    )
    assert changed.status_code == 204, changed.text
    assert client.get("/api/v1/identity/me", headers=bearer(first)).status_code == 401
    assert client.get("/api/v1/identity/me", headers=bearer(second)).status_code == 401
    fresh = password_token(client, "pudong.window", "Another#Pass2026").json()["access_token"]
    disabled = client.post(
        f"/api/v1/identity/users/{clerk}/disable", json={"reason": "离职"}, headers=bearer(token_for("pudong.admin"))
    )
    assert disabled.status_code == 204
    assert client.get("/api/v1/identity/me", headers=bearer(fresh)).status_code == 401


def test_a_wrong_current_password_changes_nothing(client: httpx.Client) -> None:
    token = password_token(client, "pudong.window").json()["access_token"]
    refused = client.put(
        "/api/v1/identity/me/password",
        json={"current_password": "wrong-password", "new_password": "Another#Pass2026"},
        headers=bearer(token),
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "current_password"
    assert client.get("/api/v1/identity/me", headers=bearer(token)).status_code == 200


def test_revocation_needs_the_owner_s_authentication(client: httpx.Client) -> None:
    victim = password_token(client, "huangpu.admin").json()["access_token"]
    stranger = password_token(client, "pudong.window").json()["access_token"]
    anonymous = client.post("/api/v1/auth/revoke", data={"token": victim})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_client"
    by_stranger = client.post("/api/v1/auth/revoke", data={"token": victim}, headers=bearer(stranger))
    assert by_stranger.status_code == 200  # RFC 7009 §2.2: the same answer as for an unknown token
    assert (
        by_stranger.json()
        == client.post("/api/v1/auth/revoke", data={"token": "no-such-token"}, headers=bearer(stranger)).json()
    )
    assert client.get("/api/v1/identity/me", headers=bearer(victim)).status_code == 200
    own = client.post("/api/v1/auth/revoke", data={"token": victim}, headers=bearer(victim))
    assert own.status_code == 200
    assert client.get("/api/v1/identity/me", headers=bearer(victim)).status_code == 401


def test_a_system_client_revokes_its_own_token_with_its_credentials(client: httpx.Client, admin_token: str) -> None:
    created = client.post(
        "/api/v1/identity/clients", json={"name": "对接系统", "tenant_code": "310115"}, headers=bearer(admin_token)
    ).json()
    auth = (created["client_id"], created["client_secret"])
    token = client.post("/api/v1/auth/token", data={"grant_type": "client_credentials"}, auth=auth).json()
    assert client.post("/api/v1/auth/revoke", data={"token": admin_token}, auth=auth).json() == {"revoked": False}
    assert client.get("/api/v1/identity/me", headers=bearer(admin_token)).status_code == 200
    wrong = client.post("/api/v1/auth/revoke", data={"token": token["access_token"]}, auth=(auth[0], "nope"))
    assert wrong.status_code == 401
    mine = client.post("/api/v1/auth/revoke", data={"token": token["access_token"]}, auth=auth)
    assert mine.json() == {"revoked": True}
    assert client.get("/api/v1/identity/me", headers=bearer(token["access_token"])).status_code == 401


def _enrol(client: httpx.Client, token: str) -> pyotp.TOTP:
    enrolled = client.post("/api/v1/identity/me/totp", headers=bearer(token))
    assert enrolled.status_code == 201, enrolled.text
    body = enrolled.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert body["qr_svg"].startswith("<svg")
    assert enrolled.headers["cache-control"] == "no-store"
    totp = pyotp.TOTP(body["secret"])
    confirmed = client.post(
        "/api/v1/identity/me/totp/confirm", json={"code": totp.at(datetime.now(UTC))}, headers=bearer(token)
    )
    assert confirmed.status_code == 204, confirmed.text
    return totp


def test_staff_enrol_a_second_factor_and_then_need_a_code(
    client: httpx.Client, later: Callable[[float], None], token_for: TokenFor, db: Database
) -> None:
    token = password_token(client, "pudong.admin").json()["access_token"]
    totp = _enrol(client, token)
    missing = password_token(client, "pudong.admin")
    assert missing.status_code == 400
    assert missing.json()["second_factor_required"] is True
    wrong = password_token(client, "pudong.admin", totp="000000" if totp.now() != "000000" else "111111")
    assert wrong.json()["detail"] == password_token(client, "nobody", "x-y-z-1234").json()["detail"]
    later(31)  # the enrolment code's step is used up: the next step's code
    code = totp.at(datetime.now(UTC))
    ok = password_token(client, "pudong.admin", totp=code)
    assert ok.status_code == 200, ok.text
    assert password_token(client, "pudong.admin", totp=code).status_code == 400  # a code works once
    assert client.get("/api/v1/identity/me", headers=bearer(ok.json()["access_token"])).json()["second_factor"]
    # Lost phone: an administrator who holds all the account holds resets it (audited), sessions end.
    with db.session() as session:
        user_id = session.scalar(select(User.id).where(User.username == "pudong.admin"))
    reset = client.post(
        f"/api/v1/identity/users/{user_id}/totp/reset",
        json={"reason": "手机遗失，本人到场核验"},
        headers=bearer(token_for("admin")),
    )
    assert reset.status_code == 204, reset.text
    assert client.get("/api/v1/identity/me", headers=bearer(ok.json()["access_token"])).status_code == 401
    assert password_token(client, "pudong.admin").status_code == 200


def test_a_district_administrator_cannot_strip_a_stronger_account_s_second_factor(
    client: httpx.Client, token_for: TokenFor, db: Database
) -> None:
    with db.session() as session:
        clerk = session.scalar(select(User.id).where(User.username == "pudong.window"))
    refused = client.post(
        f"/api/v1/identity/users/{clerk}/totp/reset", json={"reason": "试试"}, headers=bearer(token_for("pudong.admin"))
    )
    assert refused.status_code == 403  # the window role holds actions the district administrator does not


def _form_token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert match is not None
    return match.group(1)


def test_the_web_sign_in_asks_for_the_code_and_shows_throttling_in_chinese(
    server_url: str, later: Callable[[float], None]
) -> None:
    with httpx.Client(base_url=server_url, timeout=10) as api:
        token = password_token(api, "pudong.admin").json()["access_token"]
        totp = _enrol(api, token)
    later(31)
    with httpx.Client(base_url=server_url, follow_redirects=False, timeout=10) as browser:
        csrf = _form_token(browser.get("/login").text)
        first = browser.post(
            "/login", data={"csrf_token": csrf, "username": "pudong.admin", "password": DEMO_PASSWORD, "next": "/staff"}
        )
        assert first.status_code == 200
        assert "验证码" in first.text
        assert "shgov_session" not in first.headers.get("set-cookie", "")
        challenge = re.search(r'name="challenge" value="([^"]+)"', first.text)
        assert challenge is not None
        wrong = browser.post(
            "/login/code",
            data={"csrf_token": csrf, "challenge": challenge.group(1), "code": "12345x", "next": "/staff"},
        )
        assert wrong.status_code == 401
        assert "验证码错误" in wrong.text
        done = browser.post(
            "/login/code",
            data={
                "csrf_token": csrf,
                "challenge": challenge.group(1),
                "code": totp.at(datetime.now(UTC)),
                "next": "/staff",
            },
        )
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/staff"
        assert "shgov_session=" in done.headers["set-cookie"]
    with httpx.Client(base_url=server_url, follow_redirects=False, timeout=10) as browser:
        csrf = _form_token(browser.get("/login").text)
        for _ in range(7):
            last = browser.post("/login", data={"csrf_token": csrf, "username": "pudong.window", "password": "nope"})
        assert last.status_code == 429
        assert last.headers["retry-after"].isdigit()
        assert "登录失败次数过多" in last.text
        assert "用户名或密码错误" not in last.text

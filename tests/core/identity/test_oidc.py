"""OpenID Connect sign-in against a real (small) provider served over HTTP in the test."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import Engine

from shgov.app import create_app
from shgov.core.db import Database
from shgov.core.regions.service import RegionIndex
from tests.conftest import LiveServer, make_settings

CLIENT_ID = "shgov-test"
CLIENT_SECRET = "provider-secret-0123456789"


def provider(issuer: str, claims: dict[str, Any]) -> FastAPI:
    """A minimal OpenID provider: discovery, authorize (auto-approve), token, JWKS."""
    key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
    codes: dict[str, dict[str, str]] = {}
    idp = FastAPI()

    @idp.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    @idp.get("/authorize")
    def authorize(request: Request) -> RedirectResponse:
        params = request.query_params
        assert params["client_id"] == CLIENT_ID
        code = secrets.token_urlsafe(16)
        codes[code] = {"nonce": params.get("nonce", ""), "redirect_uri": params["redirect_uri"]}
        query = urlencode({"code": code, "state": params["state"]})
        return RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=302)

    @idp.post("/token")
    def token(request: Request, code: str = Form(), redirect_uri: str = Form()) -> dict[str, Any]:
        basic = httpx.BasicAuth(CLIENT_ID, CLIENT_SECRET)._auth_header  # the expected header value
        assert request.headers.get("authorization") == basic
        grant = codes.pop(code)
        assert grant["redirect_uri"] == redirect_uri
        now = int(time.time())
        payload = {"iss": issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": grant["nonce"], **claims}
        id_token = jwt.encode({"alg": "RS256", "kid": "test-key"}, payload, key)
        return {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }

    @idp.get("/jwks")
    def jwks() -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False)]}

    return idp


LI_NA = {"sub": "u-42", "preferred_username": "li.na", "name": "李娜"}


@pytest.fixture
def idp_claims() -> dict[str, Any]:
    """What the provider says about the person (a test overrides it to add the proven 身份证号)."""
    return LI_NA


@pytest.fixture
def oidc_app(
    live_server: LiveServer,
    db: Database,
    region_index: RegionIndex,
    engine: Engine,
    tmp_path: Path,
    idp_claims: dict[str, Any],
) -> Iterator[str]:
    issuer = f"{live_server.url}/test-idp"
    settings = make_settings(
        tmp_path,
        database={"url": engine.url.render_as_string(hide_password=False)},
        security={
            "oidc": {
                "enabled": True,
                "metadata_url": f"{issuer}/.well-known/openid-configuration",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            }
        },
    )
    app = create_app(settings, database=db, background=False)
    app.state.region_index = region_index
    app.mount("/test-idp", provider(issuer, idp_claims))
    live_server.switch.target = app
    live_server.switch.take_turns = False  # the app calls the provider it serves while answering a request
    yield live_server.url
    live_server.switch.take_turns = True
    live_server.switch.target = None


def test_a_person_signs_in_through_the_provider_and_comes_back_to_the_same_account(oidc_app: str) -> None:
    with httpx.Client(base_url=oidc_app, follow_redirects=True, timeout=20) as browser:
        landed = browser.get("/auth/oidc/login", params={"next": "/citizens"})
        assert landed.status_code == 200, landed.text
        assert landed.url.path == "/citizens"
        me = browser.get("/api/v1/identity/me").json()
        assert me["username"] == "li.na"
        assert me["display_name"] == "李娜"
        assert me["kind"] == "citizen"
    with httpx.Client(base_url=oidc_app, follow_redirects=True, timeout=20) as again:
        again.get("/auth/oidc/login")
        assert again.get("/api/v1/identity/me").json()["id"] == me["id"]


def test_a_callback_without_a_matching_state_is_refused(oidc_app: str) -> None:
    with httpx.Client(base_url=oidc_app, timeout=20) as browser:
        response = browser.get("/auth/oidc/callback", params={"code": "x", "state": "forged"})
        assert response.status_code == 401
        assert browser.get("/api/v1/identity/me").status_code == 401


def test_oidc_is_off_by_default(client: httpx.Client) -> None:
    assert client.get("/auth/oidc/login").status_code == 404


@pytest.mark.parametrize("idp_claims", [LI_NA | {"id_number": "310101199003077771"}])
def test_the_provider_s_claim_binds_the_proven_identity(oidc_app: str, idp_claims: dict[str, Any]) -> None:
    with httpx.Client(base_url=oidc_app, follow_redirects=True, timeout=20) as browser:
        browser.get("/auth/oidc/login")
        me = browser.get("/api/v1/identity/me").json()
    assert me["id_number"] == "310101199003077771"
    assert me["identity_source"] == "oidc"


@pytest.mark.parametrize("idp_claims", [LI_NA | {"id_number": "31010419900307123X"}])
def test_a_proven_account_with_the_same_identity_is_the_person_s(oidc_app: str, idp_claims: dict[str, Any]) -> None:
    with httpx.Client(base_url=oidc_app, follow_redirects=True, timeout=20) as browser:
        browser.get("/auth/oidc/login")
        me = browser.get("/api/v1/identity/me").json()
    assert me["username"] == "citizen"  # the seeded 张伟, linked to the provider's subject

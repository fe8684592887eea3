"""Who may see and change whose records: role × tenant × department, grants, 404 versus 403, masking."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from shgov.core.db import Database, utcnow
from shgov.core.identity.models import User
from shgov.core.identity.permissions import Principal, Scope

TokenFor = Callable[[str], str]

ACTORS = ["admin", "pudong.admin", "huangpu.admin", "minzheng.admin", "pudong.window", "pudong.caseworker", "citizen"]
TARGETS = ["pudong.window", "pudong.caseworker", "huangpu.admin", "minzheng.admin", "citizen"]

# Reading a user record (identity.user.read): 200 where the actor's scope covers the record's
# tenant / department or the record is the actor's own; 404 everywhere else — never 403, so that
# nobody learns that a record outside their scope exists.
READ = {
    "admin": dict.fromkeys(TARGETS, 200),
    "pudong.admin": {
        "pudong.window": 200,
        "pudong.caseworker": 200,
        "huangpu.admin": 404,
        "minzheng.admin": 404,
        "citizen": 404,
    },
    "huangpu.admin": {
        "pudong.window": 404,
        "pudong.caseworker": 404,
        "huangpu.admin": 200,
        "minzheng.admin": 404,
        "citizen": 404,
    },
    "minzheng.admin": {
        "pudong.window": 404,
        "pudong.caseworker": 404,
        "huangpu.admin": 404,
        "minzheng.admin": 200,
        "citizen": 404,
    },
    "pudong.window": {
        "pudong.window": 200,
        "pudong.caseworker": 404,
        "huangpu.admin": 404,
        "minzheng.admin": 404,
        "citizen": 404,
    },
    "pudong.caseworker": {
        "pudong.window": 404,
        "pudong.caseworker": 200,
        "huangpu.admin": 404,
        "minzheng.admin": 404,
        "citizen": 404,
    },
    "citizen": {
        "pudong.window": 404,
        "pudong.caseworker": 404,
        "huangpu.admin": 404,
        "minzheng.admin": 404,
        "citizen": 200,
    },
}

# Unlocking (identity.user.manage): 204 in scope; 403 where the actor may see but not manage; 404 otherwise.
MANAGE = {
    "admin": dict.fromkeys(TARGETS, 204),
    "pudong.admin": {
        "pudong.window": 204,
        "pudong.caseworker": 204,
        "huangpu.admin": 404,
        "minzheng.admin": 404,
        "citizen": 404,
    },
    "huangpu.admin": {
        "pudong.window": 404,
        "pudong.caseworker": 404,
        "huangpu.admin": 204,
        "minzheng.admin": 404,
        "citizen": 404,
    },
    "minzheng.admin": {
        "pudong.window": 404,
        "pudong.caseworker": 404,
        "huangpu.admin": 404,
        "minzheng.admin": 204,
        "citizen": 404,
    },
    "pudong.window": {
        "pudong.window": 403,
        "pudong.caseworker": 404,
        "huangpu.admin": 404,
        "minzheng.admin": 404,
        "citizen": 404,
    },
    "pudong.caseworker": {
        "pudong.window": 404,
        "pudong.caseworker": 403,
        "huangpu.admin": 404,
        "minzheng.admin": 404,
        "citizen": 404,
    },
    "citizen": {
        "pudong.window": 404,
        "pudong.caseworker": 404,
        "huangpu.admin": 404,
        "minzheng.admin": 404,
        "citizen": 403,  # one sees one's own account (200 above), so managing it is a 403, not a 404
    },
}


@pytest.fixture
def user_ids(db: Database) -> dict[str, str]:
    with db.session() as session:
        return {u.username: str(u.id) for u in session.scalars(select(User))}


@pytest.mark.parametrize(("actor", "target"), [(a, t) for a in ACTORS for t in TARGETS])
def test_reading_a_user_follows_the_matrix(
    client: httpx.Client, token_for: TokenFor, user_ids: dict[str, str], actor: str, target: str
) -> None:
    response = client.get(
        f"/api/v1/identity/users/{user_ids[target]}", headers={"Authorization": f"Bearer {token_for(actor)}"}
    )
    assert response.status_code == READ[actor][target], response.text


@pytest.mark.parametrize(("actor", "target"), [(a, t) for a in ACTORS for t in TARGETS])
def test_managing_a_user_follows_the_matrix(
    client: httpx.Client, token_for: TokenFor, user_ids: dict[str, str], actor: str, target: str
) -> None:
    response = client.post(
        f"/api/v1/identity/users/{user_ids[target]}/unlock", headers={"Authorization": f"Bearer {token_for(actor)}"}
    )
    assert response.status_code == MANAGE[actor][target], response.text


def test_a_user_list_holds_only_what_the_caller_may_read(client: httpx.Client, token_for: TokenFor) -> None:
    def names(actor: str) -> set[str]:
        response = client.get("/api/v1/identity/users", headers={"Authorization": f"Bearer {token_for(actor)}"})
        assert response.status_code == 200
        return {u["username"] for u in response.json()}

    # Pudong's staff: the core demo's, the case workers the cases demo adds and the operations demo's units.
    assert names("pudong.admin") == {
        "pudong.admin",
        "pudong.window",
        "pudong.caseworker",
        "pudong.wj",
        "pudong.ga",
        "pudong.yb",
        "pudong.ops",
        "pudong.jianguan",
        "lujiazui.jd",
    }
    assert names("huangpu.admin") == {"huangpu.admin"}
    assert names("pudong.window") == {"pudong.window"}
    assert "citizen" in names("admin")
    assert (
        client.get("/api/v1/identity/users", headers={"Authorization": f"Bearer {token_for('citizen')}"}).status_code
        == 403
    )


def test_a_grant_opens_another_department_s_records_until_revoked(
    client: httpx.Client, token_for: TokenFor, user_ids: dict[str, str], db: Database
) -> None:
    target = f"/api/v1/identity/users/{user_ids['pudong.window']}"
    caseworker = {"Authorization": f"Bearer {token_for('pudong.caseworker')}"}
    assert client.get(target, headers=caseworker).status_code == 404

    # Only the owning side may grant: the caseworker's own department cannot grant itself access.
    grant_body = {
        "grantee_department_code": "310115.rs",
        "owner_department_code": "310115.mz",
        "actions": ["identity.user.read"],
        "expires_at": (utcnow() + timedelta(days=30)).isoformat(),
        "reason": "低保审核需要核对窗口经办人",
    }
    minzheng = {"Authorization": f"Bearer {token_for('minzheng.admin')}"}
    assert client.post("/api/v1/identity/grants", json=grant_body, headers=minzheng).status_code == 403
    pudong = {"Authorization": f"Bearer {token_for('pudong.admin')}"}
    assert (
        client.post("/api/v1/identity/grants", json=grant_body, headers=pudong).status_code == 403
    )  # lacks grant.manage
    admin = {"Authorization": f"Bearer {token_for('admin')}"}
    created = client.post("/api/v1/identity/grants", json=grant_body, headers=admin)
    assert created.status_code == 201, created.text

    caseworker = {"Authorization": f"Bearer {token_for('pudong.caseworker')}"}
    read = client.get(target, headers=caseworker)
    assert read.status_code == 200
    assert read.json()["masked"] is True  # the grant covers reading, not personal data

    revoked = client.delete(f"/api/v1/identity/grants/{created.json()['id']}", headers=admin)
    assert revoked.status_code == 200
    caseworker = {"Authorization": f"Bearer {token_for('pudong.caseworker')}"}
    assert client.get(target, headers=caseworker).status_code == 404


def test_an_expired_or_unknown_action_grant_is_refused(client: httpx.Client, admin_token: str) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}
    body = {
        "grantee_department_code": "310115.rs",
        "owner_department_code": "310115.mz",
        "actions": ["identity.user.read"],
    }
    past = client.post("/api/v1/identity/grants", json=body | {"expires_at": "2020-01-01T00:00:00Z"}, headers=headers)
    assert past.status_code == 422
    assert past.json()["errors"][0]["field"] == "expires_at"
    unknown = client.post("/api/v1/identity/grants", json=body | {"actions": ["identity.user.eat"]}, headers=headers)
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "actions"


def test_personal_data_is_masked_unless_the_caller_is_authorised_for_it(
    client: httpx.Client, token_for: TokenFor, user_ids: dict[str, str]
) -> None:
    citizen = f"/api/v1/identity/users/{user_ids['citizen']}"
    clear = client.get(citizen, headers={"Authorization": f"Bearer {token_for('admin')}"}).json()
    assert clear["id_number"] == "31010419900307123X"
    assert clear["phone"] == "13812345678"
    own = client.get(citizen, headers={"Authorization": f"Bearer {token_for('citizen')}"}).json()
    assert own["masked"] is False


def test_a_district_administrator_creates_accounts_only_in_the_district(
    client: httpx.Client, token_for: TokenFor
) -> None:
    headers = {"Authorization": f"Bearer {token_for('pudong.admin')}"}
    body = {
        "kind": "staff",
        "username": "pd.new",
        "display_name": "新同事",
        "password": "Strong#Pass2026",
        "department_code": "310115.wj",
        "phone": "13912345678",
    }
    created = client.post("/api/v1/identity/users", json=body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["tenant_code"] == "310115"
    assert created.json()["phone"] == "13912345678"  # district administrators may read personal data in the district
    elsewhere = client.post(
        "/api/v1/identity/users", json=body | {"username": "hp.new", "department_code": "310101.wj"}, headers=headers
    )
    assert elsewhere.status_code == 403
    duplicate = client.post("/api/v1/identity/users", json=body, headers=headers)
    assert duplicate.status_code == 409
    bad_id = client.post(
        "/api/v1/identity/users", json=body | {"username": "pd.x", "id_number": "310104199003071231"}, headers=headers
    )
    # An account never claims a person's identity when created (see test_identity_proofing.py).
    assert bad_id.status_code == 422
    assert bad_id.json()["errors"][0]["field"] == "id_number"


def test_roles_can_be_given_only_within_the_giver_s_scope(
    client: httpx.Client, token_for: TokenFor, user_ids: dict[str, str]
) -> None:
    target = f"/api/v1/identity/users/{user_ids['pudong.caseworker']}/roles"
    pudong = {"Authorization": f"Bearer {token_for('pudong.admin')}"}
    inside = client.post(target, json={"role_code": "district_admin", "department_code": "310115.rs"}, headers=pudong)
    assert inside.status_code == 201, inside.text
    assert inside.json()["tenant_code"] == "310115"
    # The window role holds actions the district administrator does not (see test_no_escalation.py).
    more = client.post(target, json={"role_code": "window_clerk", "department_code": "310115.rs"}, headers=pudong)
    assert more.status_code == 403
    everywhere = client.post(target, json={"role_code": "platform_admin"}, headers=pudong)
    assert everywhere.status_code == 403
    other_district = client.post(target, json={"role_code": "window_clerk", "tenant_code": "310101"}, headers=pudong)
    assert other_district.status_code == 403


def test_scopes_contain_narrower_scopes() -> None:
    parents = {"310000": None, "310115": "310000", "310101": "310000"}
    city_wide = Scope("310000", None, include_subtenants=True)
    assert city_wide.contains(Scope("310115", None), parents)
    assert city_wide.contains(Scope("310115", "310115.mz"), parents)
    assert not Scope("310115", None).contains(Scope("310101", None), parents)
    assert not Scope("310115", None).contains(Scope("310000", None, include_subtenants=True), parents)
    assert Scope("310115", None).contains(Scope("310115", "310115.mz"), parents)
    assert not Scope("310115", "310115.mz").contains(Scope("310115", None), parents)
    assert Scope(None, None).contains(Scope(None, None), parents)


def test_a_principal_without_the_action_is_refused_everywhere() -> None:
    import uuid

    nobody = Principal(uuid.uuid4(), "x", "x", "staff", "310115", None)
    assert not nobody.allows("identity.user.read", "310115", None)
    assert nobody.tenants_for("identity.user.read") == set()


def test_the_platform_role_holds_actions_of_modules_added_later(client: httpx.Client, token_for: TokenFor) -> None:
    from shgov.core.identity.permissions import register_action

    later = register_action("later.module.act", "an action of a module that landed after the roles were seeded")
    me = client.get("/api/v1/identity/me", headers={"Authorization": f"Bearer {token_for('admin')}"}).json()
    assert later in me["actions"]
    roles = client.get("/api/v1/identity/roles", headers={"Authorization": f"Bearer {token_for('admin')}"}).json()
    assert next(r for r in roles if r["code"] == "platform_admin")["actions"] == ["*"]

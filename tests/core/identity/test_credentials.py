"""Credentials carry no more than their issuer holds: system clients (every demo staff account × every scope
a client can be made in, against the oracle of ``test_no_escalation``), and the one check's rule for keys and
tokens one issues for oneself."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from shgov.core.db import Database
from shgov.core.errors import Problem
from shgov.core.identity import permissions as perm
from shgov.core.identity.delegation import require_credential
from shgov.core.identity.models import RoleAssignment, User
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import principal_by_username
from tests.core.identity.test_no_escalation import STAFF, Oracle

TokenFor = Callable[[str], str]

CLIENT_SCOPES = (
    Scope("310000", None),
    Scope("310115", None),
    Scope("310101", None),
    Scope("310115", "310115.mz"),
    Scope("310115", "310115.rs"),
    Scope("310000", "310000.mz"),
    Scope("310000", "310000.dsj"),
)


def test_every_staff_account_creates_clients_only_where_it_manages_clients(
    client: httpx.Client, token_for: TokenFor, db: Database
) -> None:
    oracle = Oracle(db)
    outcomes = {True: 0, False: 0}
    for username in STAFF:
        headers = {"Authorization": f"Bearer {token_for(username)}"}
        for scope in CLIENT_SCOPES:
            body = {"name": "网关", "tenant_code": scope.tenant_code, "department_code": scope.department_code}
            response = client.post("/api/v1/identity/clients", json=body, headers=headers)
            expected = oracle.holds(username, perm.CLIENT_MANAGE, scope)
            assert response.status_code == (201 if expected else 403), (username, scope, response.text)
            outcomes[expected] += 1
            if expected:
                # The new client holds nothing: its roles are given later, through the same check.
                with db.session() as session:
                    new_id = uuid.UUID(response.json()["user_id"])
                    assert session.scalars(select(RoleAssignment).where(RoleAssignment.user_id == new_id)).all() == []
    assert outcomes[True] > 0
    assert outcomes[False] > 0


def test_a_client_maker_cannot_give_the_client_more_than_it_holds(
    client: httpx.Client, token_for: TokenFor, db: Database
) -> None:
    headers = {"Authorization": f"Bearer {token_for('pudong.admin')}"}
    made = client.post("/api/v1/identity/clients", json={"name": "浦东网关", "tenant_code": "310115"}, headers=headers)
    assert made.status_code == 201
    client_user = made.json()["user_id"]
    oracle = Oracle(db)
    outcomes = {True: 0, False: 0}
    for role in oracle.roles:
        for scope in (Scope("310115", None), Scope("310115", "310115.mz"), Scope("310101", None)):
            body = {"role_code": role, "tenant_code": scope.tenant_code, "department_code": scope.department_code}
            answer = client.post(f"/api/v1/identity/users/{client_user}/roles", json=body, headers=headers)
            expected = oracle.may_assign("pudong.admin", role, scope)
            assert answer.status_code == (201 if expected else 403), (role, scope, answer.text)
            outcomes[expected] += 1
    assert outcomes[False] > 0  # platform_admin, auditor, anything of another district
    # Extra fields (roles, actions) on creation are refused rather than ignored.
    extra = client.post(
        "/api/v1/identity/clients",
        json={"name": "x", "tenant_code": "310115", "actions": ["*"]},
        headers=headers,
    )
    assert extra.status_code == 422


def test_credentials_for_oneself_carry_only_what_one_holds(db: Database) -> None:
    oracle = Oracle(db)
    for username in STAFF:
        _check_own_credentials(db, oracle, username)


def _check_own_credentials(db: Database, oracle: Oracle, username: str) -> None:
    with db.session() as session:
        principal = principal_by_username(session, username)
        other = session.scalar(select(User.id).where(User.username == "citizen"))
    assert principal is not None
    assert other is not None
    require_credential(principal, principal.user_id)  # nothing beyond oneself: always allowed
    for scope in CLIENT_SCOPES:
        for action in (perm.AUDIT_READ, perm.USER_MANAGE, "*"):
            expected = oracle.holds(username, action, scope)
            try:
                require_credential(principal, principal.user_id, [action], scope)
                allowed = True
            except Problem:
                allowed = False
            assert allowed == expected, (username, action, scope)
    # A credential for somebody else needs a managing action, and only an existing one counts.
    with pytest.raises(Problem):
        require_credential(principal, other)

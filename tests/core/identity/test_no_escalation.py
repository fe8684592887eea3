"""Nobody grants more than they hold: every demo staff account × every role × a set of scopes, against an
oracle written here from the organisation tables (which tenant/department "cells" each scope reaches), not
from the code under test. Allowed exactly when the giver holds identity.role.assign and every action of
the role (``*`` itself for ``*``) over every cell of the scope."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from shgov.core.db import Database
from shgov.core.identity import permissions as perm
from shgov.core.identity.delegation import may_delegate
from shgov.core.identity.demo import DEMO_ACCOUNTS
from shgov.core.identity.models import Role, RoleAssignment, User
from shgov.core.identity.permissions import Scope
from shgov.core.identity.service import principal_by_username
from shgov.core.orgs.models import Department, Tenant

TokenFor = Callable[[str], str]
Cell = tuple[str, str | None]

SCOPES = (
    Scope(None, None),
    Scope("310000", None),
    Scope("310000", None, include_subtenants=True),
    Scope("310115", None),
    Scope("310101", None),
    Scope("310115", "310115.mz"),
    Scope("310115", "310115.rs"),
    Scope("310000", "310000.mz"),
    Scope("310000", "310000.dsj"),
)
STAFF = [a.username for a in DEMO_ACCOUNTS if a.kind == "staff"]


class Oracle:
    """What each account holds, as (action → cells), straight from the tables."""

    def __init__(self, db: Database) -> None:
        with db.session() as session:
            self.parents = {t.code: t.parent_code for t in session.scalars(select(Tenant))}
            self.departments = {d.code: d.tenant_code for d in session.scalars(select(Department))}
            self.roles = {r.code: list(r.actions) for r in session.scalars(select(Role))}
            self.assignments: dict[str, list[tuple[str, Scope]]] = {}
            for assignment, username in session.execute(
                select(RoleAssignment, User.username).join(User, User.id == RoleAssignment.user_id)
            ):
                self.assignments.setdefault(username, []).append(
                    (
                        assignment.role_code,
                        Scope(assignment.tenant_code, assignment.department_code, assignment.include_subtenants),
                    )
                )

    def cells(self, scope: Scope) -> set[Cell]:
        if scope.department_code is not None:
            return {(self.departments[scope.department_code], scope.department_code)}
        tenants = set(self.parents) if scope.tenant_code is None else {scope.tenant_code}
        if scope.include_subtenants:
            tenants |= {t for t, parent in self.parents.items() if parent == scope.tenant_code}
        return {(t, None) for t in tenants} | {(t, d) for d, t in self.departments.items() if t in tenants}

    def holds(self, username: str, action: str, scope: Scope, *, by_name: bool = False) -> bool:
        """Whether the account holds ``action`` over ``scope``: listed by a role, or implied by "*" (unless the
        action is given by name only and ``by_name`` asks for the name)."""
        wanted = self.cells(scope)
        implied = not (by_name and perm.is_by_name_only(action))
        return any(
            (action in self.roles[role] or (implied and "*" in self.roles[role])) and wanted <= self.cells(own)
            if action != "*"
            else "*" in self.roles[role] and wanted <= self.cells(own)
            for role, own in self.assignments.get(username, [])
        )

    def may_assign(self, username: str, role: str, scope: Scope, *, to_self: bool = False) -> bool:
        """An action given by name only is handed on by a holder of "*" to others, never to oneself."""
        needed = [perm.ROLE_ASSIGN, *self.roles[role]]
        return all(self.holds(username, action, scope, by_name=to_self) for action in needed)


@pytest.fixture
def oracle(db: Database) -> Oracle:
    return Oracle(db)


def test_the_one_check_allows_exactly_what_is_held(db: Database, oracle: Oracle) -> None:
    tried = allowed = 0
    with db.session() as session:
        for username in STAFF:
            principal = principal_by_username(session, username)
            assert principal is not None
            for role, actions in oracle.roles.items():
                for scope in SCOPES:
                    expected = oracle.may_assign(username, role, scope)
                    got = may_delegate(principal, actions, scope, via=perm.ROLE_ASSIGN)
                    assert got == expected, (username, role, scope)
                    tried += 1
                    allowed += got
    assert tried >= len(STAFF) * 8 * len(SCOPES)
    assert 0 < allowed < tried  # the matrix has both answers


@pytest.mark.parametrize("username", ["admin", "pudong.admin", "huangpu.admin", "minzheng.admin"])
def test_administrators_giving_roles_to_themselves_through_the_api(
    client: httpx.Client, token_for: TokenFor, db: Database, oracle: Oracle, username: str
) -> None:
    with db.session() as session:
        me = session.scalar(select(User.id).where(User.username == username))
    headers = {"Authorization": f"Bearer {token_for(username)}"}
    outcomes: dict[bool, int] = {True: 0, False: 0}
    for role in oracle.roles:
        for scope in SCOPES:
            body = {
                "role_code": role,
                "tenant_code": None if scope.department_code else scope.tenant_code,
                "department_code": scope.department_code,
                "include_subtenants": scope.include_subtenants,
            }
            response = client.post(f"/api/v1/identity/users/{me}/roles", json=body, headers=headers)
            expected = oracle.may_assign(username, role, scope, to_self=True)
            assert response.status_code == (201 if expected else 403), (role, scope, response.text)
            outcomes[expected] += 1
    assert outcomes[True] > 0
    assert outcomes[False] > 0 or username == "admin"  # the platform administrator holds "*" everywhere


def test_the_reported_attack_fails(client: httpx.Client, token_for: TokenFor, db: Database) -> None:
    """A district administrator giving itself and its window clerk platform_admin within the district."""
    with db.session() as session:
        ids = dict(
            session.execute(
                select(User.username, User.id).where(User.username.in_(["pudong.admin", "pudong.window"]))
            ).all()
        )
    headers = {"Authorization": f"Bearer {token_for('pudong.admin')}"}
    for username in ("pudong.admin", "pudong.window"):
        for body in (
            {"role_code": "platform_admin", "tenant_code": "310115"},
            {"role_code": "platform_admin", "department_code": "310115.mz"},
            {"role_code": "auditor", "tenant_code": "310115"},
        ):
            response = client.post(f"/api/v1/identity/users/{ids[username]}/roles", json=body, headers=headers)
            assert response.status_code == 403, (username, body)
    # Nor a grant or a client beyond what the giver holds.
    grant = client.post(
        "/api/v1/identity/grants",
        json={"grantee_department_code": "310115.rs", "owner_department_code": "310115.mz", "actions": ["*"]},
        headers={"Authorization": f"Bearer {token_for('minzheng.admin')}"},
    )
    assert grant.status_code == 403
    client_elsewhere = client.post(
        "/api/v1/identity/clients", json={"name": "x", "tenant_code": "310101"}, headers=headers
    )
    assert client_elsewhere.status_code == 403
    role = client.put(
        "/api/v1/identity/roles/sneaky", json={"name": "x", "actions": ["audit.log.read"]}, headers=headers
    )
    assert role.status_code == 403

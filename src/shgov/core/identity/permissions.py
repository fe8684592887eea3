"""Actions (in code), scopes, and the ``Principal`` that answers "may I do this to that?".

An action is a dotted name (``catalog.resource.publish``). Each module registers the actions it
checks; roles (data) list actions; a role assignment gives them within a scope. A department may
also act on another department's objects through an ``AccessGrant``.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shgov.core.i18n import N_

# Who a history or audit entry names when no person acted (a scheduled sweep, a sensor, a benefit run): stored
# as this code and shown translated (``SYSTEM_LABEL``) by the pages' ``actor`` filter.
SYSTEM_ACTOR = "system"
SYSTEM_LABEL = N_("the system")

_ACTIONS: dict[str, str] = {}
_BY_NAME_ONLY: set[str] = set()
_ORIGINS: dict[str, str] = {}  # action → the module that declared it


def register_action(name: str, description: str, *, by_name_only: bool = False) -> str:
    """Declare an action; returns its name (so modules keep it as a constant). An action ``by_name_only`` is
    held only by roles that list it: a role holding "*" (an administrator's) does not imply it."""
    parts = name.split(".")
    if len(parts) < 3 or not all(p.replace("_", "").isalnum() and p.islower() for p in parts):
        raise ValueError(f"action {name!r} must be context.object.verb in lower case")
    _ACTIONS[name] = description
    _ORIGINS[name] = sys._getframe(1).f_globals.get("__name__", "")
    if by_name_only:
        _BY_NAME_ONLY.add(name)
    return name


def declared_in(name: str) -> str:
    """The module that declared the action ``name`` ("" when unknown)."""
    return _ORIGINS.get(name, "")


def is_by_name_only(name: str) -> bool:
    """Whether ``name`` is held only by roles that list it (see ``register_action``)."""
    return name in _BY_NAME_ONLY


def implied_by_wildcard() -> list[str]:
    """The actions a role holding "*" holds: every registered one except those given by name only."""
    return [name for name in sorted(_ACTIONS) if name not in _BY_NAME_ONLY]


def known_actions() -> dict[str, str]:
    """Every registered action with its description."""
    return dict(sorted(_ACTIONS.items()))


def is_known_action(name: str) -> bool:
    """True when ``name`` has been registered."""
    return name in _ACTIONS


# Actions of the core modules.
USER_READ = register_action("identity.user.read", N_("Read user accounts"))
USER_READ_PERSONAL = register_action(
    "identity.user.read_personal", N_("See users' personal data (ID number, phone) unmasked")
)
USER_MANAGE = register_action("identity.user.manage", N_("Create, change and lock user accounts"))
# By name only: binding a person's identity is the window's work, never an administrator's (issue #26, point 1).
USER_PROOF = register_action(
    "identity.user.proof",
    N_("Bind a person's ID number or an enterprise's credit code to an account after checking the document in person"),
    by_name_only=True,
)
CLIENT_MANAGE = register_action("identity.client.manage", N_("Create system clients and their secrets"))
ROLE_MANAGE = register_action("identity.role.manage", N_("Define roles"))
ROLE_ASSIGN = register_action("identity.role.assign", N_("Give roles to users"))
GRANT_MANAGE = register_action("identity.grant.manage", N_("Grant another department access"))
AUDIT_READ = register_action("audit.log.read", N_("Read the audit log"))
AUDIT_VERIFY = register_action("audit.log.verify", N_("Verify the audit chain"))
CALENDAR_LOAD = register_action("calendar.schedule.load", N_("Load holiday schedules"))
GRID_MANAGE = register_action("regions.grid.manage", N_("Register management grids"))
DIVISIONS_LOAD = register_action("regions.division.load", N_("Load administrative divisions"))


@dataclass(frozen=True)
class Scope:
    """Where an assignment applies: everywhere (no tenant), a tenant (and maybe its sub-tenants), or a department."""

    tenant_code: str | None = None
    department_code: str | None = None
    include_subtenants: bool = False

    def covers(self, tenant_code: str | None, department_code: str | None, parents: Mapping[str, str | None]) -> bool:
        """True when an object of ``tenant_code`` / ``department_code`` lies in this scope."""
        if self.department_code is not None:
            return department_code == self.department_code
        if self.tenant_code is None:
            return True
        if tenant_code == self.tenant_code:
            return True
        return self.include_subtenants and tenant_code is not None and parents.get(tenant_code) == self.tenant_code

    def contains(self, other: Scope, parents: Mapping[str, str | None]) -> bool:
        """True when everything ``other`` reaches lies inside this scope (``other.tenant_code`` must be set
        whenever ``other`` names a department)."""
        if self.tenant_code is None and self.department_code is None:
            return True
        if self.department_code is not None:
            return other.department_code == self.department_code
        if other.tenant_code is None:
            return False
        if other.include_subtenants:
            return other.tenant_code == self.tenant_code and self.include_subtenants
        return self.covers(other.tenant_code, None, parents)


@dataclass(frozen=True)
class GrantInfo:
    """An active grant from ``owner_department_code`` to the principal's department."""

    owner_department_code: str
    actions: frozenset[str]


class Scoped(Protocol):
    """An object that belongs to a tenant and maybe a department (and maybe a person)."""

    @property
    def tenant_code(self) -> str | None: ...

    @property
    def department_code(self) -> str | None: ...


@dataclass
class Principal:
    """The authenticated caller and everything needed to decide access without more queries."""

    user_id: uuid.UUID
    username: str
    display_name: str
    kind: str
    tenant_code: str | None
    department_code: str | None
    scopes: dict[str, list[Scope]] = field(default_factory=dict)
    grants: list[GrantInfo] = field(default_factory=list)
    tenant_parents: Mapping[str, str | None] = field(default_factory=dict)
    roles: list[str] = field(default_factory=list)
    auth_method: str = "bearer"
    # Where the caller holds "*" itself (a role listing "*"), not merely every action known today: only
    # they may hand "*" on (see core/identity/delegation.py).
    wildcard: list[Scope] = field(default_factory=list)

    def has_action(self, action: str) -> bool:
        """True when any role gives ``action`` somewhere."""
        return bool(self.scopes.get(action))

    def allows(self, action: str, tenant_code: str | None = None, department_code: str | None = None) -> bool:
        """True when the caller may do ``action`` to an object of that tenant / department."""
        scopes = self.scopes.get(action)
        if not scopes:
            return False
        if any(s.covers(tenant_code, department_code, self.tenant_parents) for s in scopes):
            return True
        return department_code is not None and any(
            g.owner_department_code == department_code and action in g.actions for g in self.grants
        )

    def allows_scope(self, action: str, scope: Scope) -> bool:
        """True when the caller holds ``action`` over the whole of ``scope`` (e.g. to give roles in it)."""
        return any(own.contains(scope, self.tenant_parents) for own in self.scopes.get(action, []))

    def holds_wildcard(self, scope: Scope) -> bool:
        """True when a role of the caller lists "*" over the whole of ``scope``."""
        return any(own.contains(scope, self.tenant_parents) for own in self.wildcard)

    def allows_on(self, action: str, obj: Scoped) -> bool:
        """``allows`` for an object that carries its tenant and department."""
        return self.allows(action, obj.tenant_code, obj.department_code)

    def tenants_for(self, action: str) -> set[str | None] | None:
        """Tenants where ``action`` applies tenant-wide; None means everywhere (for list filters)."""
        result: set[str | None] = set()
        for scope in self.scopes.get(action, []):
            if scope.department_code is not None:
                continue
            if scope.tenant_code is None:
                return None
            result.add(scope.tenant_code)
            if scope.include_subtenants:
                result |= {t for t, parent in self.tenant_parents.items() if parent == scope.tenant_code}
        return result

    def city_wide(self, action: str) -> bool:
        """True when the caller holds ``action`` everywhere or across a top-level tenant (the city)."""
        tenants = self.tenants_for(action)
        return tenants is None or any(t is not None and self.tenant_parents.get(t) is None for t in tenants)

    def departments_for(self, action: str) -> set[str]:
        """Departments where ``action`` applies through a department scope or a grant."""
        result = {s.department_code for s in self.scopes.get(action, []) if s.department_code is not None}
        if self.has_action(action):
            result |= {g.owner_department_code for g in self.grants if action in g.actions}
        return result

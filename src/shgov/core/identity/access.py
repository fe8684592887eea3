"""The one loader and check per kind of identity object (accounts, grants), for the API, the pages and the CLI.

Built on ``deps.visible``: "does not exist" and "may not know it exists" are the same 404; an account one may
see but not manage is a 403 (``ManageableUser``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from shgov.core.errors import Problem
from shgov.core.i18n import N_
from shgov.core.identity import permissions as perm
from shgov.core.identity.deps import CurrentPrincipal, visible
from shgov.core.identity.models import AccessGrant, User
from shgov.core.identity.permissions import Principal
from shgov.core.orgs.service import find_department


def load_user(session: Session, user_id: uuid.UUID) -> User | None:
    """An account by id."""
    return session.get(User, user_id)


def may_see_user(session: Session, principal: Principal, user: User) -> bool:
    """One's own account, and accounts where the caller holds ``identity.user.read``."""
    return user.id == principal.user_id or principal.allows(perm.USER_READ, user.tenant_code, user.department_code)


def may_manage_user(principal: Principal, user: User) -> bool:
    """Whether the caller holds ``identity.user.manage`` where the account belongs."""
    return principal.allows(perm.USER_MANAGE, user.tenant_code, user.department_code)


def may_proof_account(session: Session, principal: Principal, user: User) -> bool:
    """The person stands at the window with their document: a clerk holding ``identity.user.proof`` reaches
    any citizen or enterprise account (which belong to no district), never a staff or client account."""
    return user.kind in ("citizen", "enterprise") and principal.has_action(perm.USER_PROOF)


def load_grant(session: Session, grant_id: uuid.UUID) -> AccessGrant | None:
    """An access grant by id."""
    return session.get(AccessGrant, grant_id)


def may_manage_grant(session: Session, principal: Principal, grant: AccessGrant) -> bool:
    """Grants are seen (and ended) by whoever may grant access to the owning department's objects."""
    owner = find_department(session, grant.owner_department_code)
    return owner is not None and principal.allows(perm.GRANT_MANAGE, owner.tenant_code, owner.code)


ReadableUser = Annotated[User, Depends(visible(load_user, may_see_user, param="user_id", convert=uuid.UUID))]


async def manageable_user(principal: CurrentPrincipal, user: ReadableUser) -> User:
    """The account named by ``user_id`` when the caller may manage it: 404 when they may not see it, 403 when
    they may see but not manage it."""
    if not may_manage_user(principal, user):
        raise Problem(
            "forbidden",
            detail=N_("This needs the permission {action} for this object."),
            params={"action": perm.USER_MANAGE},
        )
    return user


ManageableUser = Annotated[User, Depends(manageable_user)]
ProofableAccount = Annotated[User, Depends(visible(load_user, may_proof_account, param="user_id", convert=uuid.UUID))]
ManageableGrant = Annotated[
    AccessGrant, Depends(visible(load_grant, may_manage_grant, param="grant_id", convert=uuid.UUID))
]

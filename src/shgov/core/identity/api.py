"""The identity API: OAuth 2.0 tokens, accounts, roles, grants, tenants and departments."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shgov.core.db import utcnow
from shgov.core.deps import DatabaseDep, SessionDep, SettingsDep
from shgov.core.errors import FieldError, Problem
from shgov.core.http import JsonRoute
from shgov.core.identity import permissions as perm
from shgov.core.identity import schemas
from shgov.core.identity import service as identity
from shgov.core.identity.deps import CurrentPrincipal, audit, authorize, fetch_and_check, require_action
from shgov.core.identity.models import AccessGrant, User
from shgov.core.identity.permissions import Principal, Scope
from shgov.core.ids import mask_id_number, mask_phone, mask_uscc
from shgov.core.orgs import service as orgs

router = APIRouter(prefix="/api/v1", tags=["identity"], route_class=JsonRoute)


def _load_user(session: Session, raw_id: str) -> User | None:
    try:
        return identity.get_user(session, uuid.UUID(raw_id))
    except ValueError:
        return None


def _is_self(principal: Principal, user: User) -> bool:
    return user.id == principal.user_id


def user_out(session: Session, principal: Principal, user: User) -> schemas.UserOut:
    """``user`` as ``principal`` may see it: personal data masked unless authorised or their own."""
    clear = _is_self(principal, user) or principal.allows(
        perm.USER_READ_PERSONAL, user.tenant_code, user.department_code
    )
    return schemas.UserOut(
        id=user.id,
        kind=user.kind,
        username=user.username,
        display_name=user.display_name,
        tenant_code=user.tenant_code,
        department_code=user.department_code,
        id_number=user.id_number if clear or not user.id_number else mask_id_number(user.id_number),
        credit_code=user.credit_code if clear or not user.credit_code else mask_uscc(user.credit_code),
        phone=user.phone if clear or not user.phone else mask_phone(user.phone),
        is_active=user.is_active,
        locked_until=user.locked_until if user.locked_until and user.locked_until > utcnow() else None,
        roles=sorted({a.role_code for a in identity.roles_of(session, user.id)}),
        masked=not clear,
    )


# -- OAuth 2.0 ---------------------------------------------------------------------------------------


def _oauth_error(error: str, detail: str, status_slug: str = "bad-request") -> Problem:
    # Problem details with the RFC 6749 ``error`` member, so OAuth clients and problem clients both understand.
    headers = {"Cache-Control": "no-store"}
    if status_slug == "unauthenticated":
        headers["WWW-Authenticate"] = 'Basic realm="shgov"'
    return Problem(status_slug, detail=detail, extra={"error": error, "error_description": detail}, headers=headers)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _oauth_error("invalid_client", "Malformed Basic credentials.", "unauthenticated") from exc
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


@router.post("/auth/token", response_model=schemas.TokenOut, summary="OAuth 2.0 token endpoint")
def token(
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    grant_type: Annotated[str, Form()],
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
) -> Response:
    """Issue a bearer token: ``password`` grant for people, ``client_credentials`` for system clients."""
    kinds: tuple[str, ...]
    if grant_type == "password":
        if not username or not password:
            raise _oauth_error("invalid_request", "username and password are required")
        login, secret, kinds = username, password, ("citizen", "enterprise", "staff")
    elif grant_type == "client_credentials":
        basic = _basic_credentials(request)
        login, secret = basic if basic else (client_id or "", client_secret or "")
        if not login or not secret:
            raise _oauth_error("invalid_client", "client credentials are required", "unauthenticated")
        kinds = ("client",)
    else:
        raise _oauth_error("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
    result = identity.authenticate(db, settings.security, login, secret, kinds=kinds)
    if not result.ok or result.user_id is None:
        audit(
            request,
            None,
            "auth.token.issue",
            outcome="denied",
            actor_name=login,
            details={"reason": result.reason},
        )
        if result.reason == "locked" and result.locked_until:
            detail = f"The account is locked until {result.locked_until.isoformat(timespec='minutes')}."
        else:
            detail = "The credentials are wrong." if result.reason != "inactive" else "The account is disabled."
        if kinds == ("client",):
            raise _oauth_error("invalid_client", detail, "unauthenticated")
        raise _oauth_error("invalid_grant", detail)
    with db.session() as session:
        raw, expires = identity.issue_token(session, result.user_id, grant_type, settings.security.token_ttl_seconds)
    audit(
        request,
        None,
        "auth.token.issue",
        actor_name=result.username,
        object_type="user",
        object_id=str(result.user_id),
        details={"grant_type": grant_type},
    )
    body = schemas.TokenOut(access_token=raw, expires_in=int((expires - utcnow()).total_seconds()))
    return JSONResponse(body.model_dump(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@router.post("/auth/revoke", status_code=200, summary="OAuth 2.0 token revocation (RFC 7009)")
def revoke(request: Request, session: SessionDep, token: Annotated[str, Form()]) -> dict[str, bool]:
    """Revoke a token; unknown tokens are not an error."""
    user_id = identity.revoke_token(session, token)
    if user_id is not None:
        audit(request, None, "auth.token.revoke", object_type="user", object_id=str(user_id))
    return {"revoked": user_id is not None}


# -- accounts ----------------------------------------------------------------------------------------


@router.get("/identity/me", response_model=schemas.MeOut)
def me(session: SessionDep, principal: CurrentPrincipal) -> schemas.MeOut:
    """The caller's own account and permissions."""
    user = identity.get_user(session, principal.user_id)
    assert user is not None  # noqa: S101 - the principal was loaded from it
    return schemas.MeOut(**user_out(session, principal, user).model_dump(), actions=sorted(principal.scopes))


ReadableUser = Annotated[
    User,
    Depends(fetch_and_check(_load_user, perm.USER_READ, perm.USER_READ, path_param="user_id", is_owner=_is_self)),
]
ManageableUser = Annotated[
    User, Depends(fetch_and_check(_load_user, perm.USER_MANAGE, perm.USER_READ, path_param="user_id"))
]


@router.get("/identity/users", response_model=list[schemas.UserOut])
def list_users(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_action(perm.USER_READ))],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[schemas.UserOut]:
    """Accounts the caller may read."""
    users = identity.visible_users(session, principal, perm.USER_READ, limit, offset)
    audit(request, principal, "identity.user.list", object_type="user", details={"count": len(users)})
    return [user_out(session, principal, u) for u in users]


@router.get("/identity/users/{user_id}", response_model=schemas.UserOut)
def read_user(
    request: Request, session: SessionDep, principal: CurrentPrincipal, user: ReadableUser
) -> schemas.UserOut:
    """One account (audited: it holds personal data)."""
    out = user_out(session, principal, user)
    audit(
        request,
        principal,
        "identity.user.read",
        object_type="user",
        object_id=str(user.id),
        tenant_code=user.tenant_code,
        details={"masked": out.masked},
    )
    return out


@router.post("/identity/users", response_model=schemas.UserOut, status_code=201)
def create_user(
    request: Request,
    session: SessionDep,
    body: schemas.UserCreate,
    principal: Annotated[Principal, Depends(require_action(perm.USER_MANAGE))],
) -> schemas.UserOut:
    """Create an account in a tenant / department the caller manages."""
    tenant = body.tenant_code
    if body.department_code and not tenant:
        department = orgs.get_department(session, body.department_code)
        tenant = department.tenant_code if department else None
    if not principal.allows(perm.USER_MANAGE, tenant, body.department_code):
        raise Problem("forbidden", detail="You may not create accounts there.")
    user = identity.create_user(session, **body.model_dump())
    audit(
        request,
        principal,
        "identity.user.create",
        object_type="user",
        object_id=str(user.id),
        tenant_code=user.tenant_code,
        details={"username": user.username, "kind": user.kind},
    )
    return user_out(session, principal, user)


@router.post("/identity/users/{user_id}/unlock", status_code=204)
def unlock(request: Request, session: SessionDep, principal: CurrentPrincipal, user: ManageableUser) -> Response:
    """Lift a sign-in lockout."""
    identity.unlock_user(session, user.id)
    audit(request, principal, "identity.user.unlock", object_type="user", object_id=str(user.id))
    return Response(status_code=204)


@router.post("/identity/users/{user_id}/roles", response_model=schemas.AssignmentOut, status_code=201)
def assign(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    user: ManageableUser,
    body: schemas.AssignmentIn,
) -> schemas.AssignmentOut:
    """Give a role within a scope the caller controls."""
    tenant_code = body.tenant_code
    if body.department_code is not None:
        department = orgs.get_department(session, body.department_code)
        if department is None:
            raise Problem(
                "validation-failed",
                detail="No such department.",
                errors=[FieldError("department_code", "does not exist")],
            )
        tenant_code = department.tenant_code
    scope = Scope(tenant_code, body.department_code, body.include_subtenants)
    if not principal.allows_scope(perm.ROLE_ASSIGN, scope):
        raise Problem("forbidden", detail="You may not give roles in that scope.")
    assignment = identity.assign_role(session, user.id, body.role_code, scope)
    audit(
        request,
        principal,
        "identity.role.assign",
        object_type="user",
        object_id=str(user.id),
        details=body.model_dump(),
    )
    return schemas.AssignmentOut(
        id=assignment.id,
        user_id=user.id,
        role_code=body.role_code,
        tenant_code=tenant_code,
        department_code=body.department_code,
        include_subtenants=body.include_subtenants,
    )


@router.post("/identity/clients", response_model=schemas.ClientCreated, status_code=201)
def create_client(
    request: Request,
    session: SessionDep,
    body: schemas.ClientCreate,
    principal: Annotated[Principal, Depends(require_action(perm.CLIENT_MANAGE))],
) -> Response:
    """Create a system client; its secret is in this response only."""
    if not principal.allows(perm.CLIENT_MANAGE, body.tenant_code, body.department_code):
        raise Problem("forbidden", detail="You may not create clients there.")
    user, secret = identity.create_client(
        session, name=body.name, tenant_code=body.tenant_code, department_code=body.department_code
    )
    audit(
        request,
        principal,
        "identity.client.create",
        object_type="user",
        object_id=str(user.id),
        tenant_code=body.tenant_code,
        details={"client_id": user.username},
    )
    out = schemas.ClientCreated(client_id=user.username, client_secret=secret, user_id=user.id)
    return JSONResponse(out.model_dump(mode="json"), status_code=201, headers={"Cache-Control": "no-store"})


# -- roles, actions and grants -----------------------------------------------------------------------


@router.get("/identity/actions", response_model=list[schemas.ActionOut])
def actions(principal: CurrentPrincipal) -> list[schemas.ActionOut]:
    """Every permission a role can hold."""
    return [schemas.ActionOut(name=n, description=d) for n, d in perm.known_actions().items()]


@router.get("/identity/roles", response_model=list[schemas.RoleOut])
def roles(session: SessionDep, principal: CurrentPrincipal) -> list[schemas.RoleOut]:
    """Every role."""
    return [
        schemas.RoleOut(code=r.code, name=r.name, name_en=r.name_en, actions=r.actions)
        for r in identity.list_roles(session)
    ]


@router.put("/identity/roles/{code}", response_model=schemas.RoleOut)
def put_role(
    request: Request,
    session: SessionDep,
    code: str,
    body: schemas.RoleIn,
    principal: Annotated[Principal, Depends(require_action(perm.ROLE_MANAGE))],
) -> schemas.RoleOut:
    """Create or change a role (platform-wide administrators only: roles apply everywhere)."""
    if principal.tenants_for(perm.ROLE_MANAGE) is not None:
        raise Problem("forbidden", detail="Only a platform-wide administrator may define roles.")
    role = identity.define_role(session, code, body.name, body.actions, body.name_en)
    audit(
        request,
        principal,
        "identity.role.define",
        object_type="role",
        object_id=code,
        details=body.model_dump(),
    )
    return schemas.RoleOut(code=role.code, name=role.name, name_en=role.name_en, actions=role.actions)


def _grant_out(grant: AccessGrant) -> schemas.GrantOut:
    return schemas.GrantOut(
        id=grant.id,
        grantee_department_code=grant.grantee_department_code,
        owner_department_code=grant.owner_department_code,
        actions=grant.actions,
        expires_at=grant.expires_at,
        reason=grant.reason,
        revoked_at=grant.revoked_at,
        created_at=grant.created_at,
    )


@router.post("/identity/grants", response_model=schemas.GrantOut, status_code=201)
def create_grant(
    request: Request,
    session: SessionDep,
    body: schemas.GrantIn,
    principal: Annotated[Principal, Depends(require_action(perm.GRANT_MANAGE))],
) -> schemas.GrantOut:
    """The owning department (or an administrator above it) lets another department act on its objects."""
    owner = orgs.get_department(session, body.owner_department_code)
    if owner is None or not principal.allows(perm.GRANT_MANAGE, owner.tenant_code, owner.code):
        raise Problem("forbidden", detail="You may grant access only to your own department's objects.")
    grant = identity.create_grant(session, created_by=principal.user_id, **body.model_dump())
    audit(
        request,
        principal,
        "identity.grant.create",
        object_type="grant",
        object_id=str(grant.id),
        details=body.model_dump(mode="json"),
    )
    return _grant_out(grant)


@router.delete("/identity/grants/{grant_id}", response_model=schemas.GrantOut)
def revoke_grant(
    request: Request, session: SessionDep, grant_id: uuid.UUID, principal: CurrentPrincipal
) -> schemas.GrantOut:
    """End a grant."""
    grant = session.get(AccessGrant, grant_id)
    owner = orgs.get_department(session, grant.owner_department_code) if grant else None
    authorize(principal, owner, perm.GRANT_MANAGE, perm.GRANT_MANAGE)
    revoked = identity.revoke_grant(session, grant_id)
    audit(request, principal, "identity.grant.revoke", object_type="grant", object_id=str(grant_id))
    return _grant_out(revoked)


# -- organisations (public reference data) -----------------------------------------------------------


@router.get("/orgs/tenants", response_model=list[schemas.TenantOut], tags=["orgs"])
def tenants(session: SessionDep) -> list[schemas.TenantOut]:
    """The city and its districts (public)."""
    return [schemas.TenantOut(code=c, name=n, kind=k) for c, n, k in orgs.list_tenants(session)]


@router.get("/orgs/departments", response_model=list[schemas.DepartmentOut], tags=["orgs"])
def departments(session: SessionDep, tenant: str | None = None) -> list[schemas.DepartmentOut]:
    """Departments, optionally of one tenant (public)."""
    return [schemas.DepartmentOut(**vars(d)) for d in orgs.list_departments(session, tenant)]

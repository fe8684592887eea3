"""The identity API: OAuth 2.0 tokens, accounts, roles, grants, tenants and departments."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shgov.core.db import utcnow
from shgov.core.deps import DatabaseDep, SessionDep, SettingsDep
from shgov.core.errors import FieldError, Problem, problem_response, render
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_, gettext, request_locale
from shgov.core.identity import permissions as perm
from shgov.core.identity import proofing, schemas, throttle
from shgov.core.identity import service as identity
from shgov.core.identity.access import ManageableGrant, ManageableUser, ProofableAccount, ReadableUser
from shgov.core.identity.delegation import (
    EVERYWHERE,
    require_authority_over,
    require_credential,
    require_delegation,
    require_not_self,
)
from shgov.core.identity.deps import (
    CurrentPrincipal,
    audit,
    bearer_principal,
    client_ip,
    require_action,
)
from shgov.core.identity.models import AccessGrant, User
from shgov.core.identity.permissions import Principal, Scope
from shgov.core.identity.totp import sealing_key
from shgov.core.ids import mask_id_number, mask_phone, mask_uscc
from shgov.core.orgs import service as orgs
from shgov.core.qr import qr_svg

router = APIRouter(prefix="/api/v1", tags=["identity"], route_class=JsonRoute)


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
        identity_source=user.identity_source,
        second_factor=user.totp_confirmed_at is not None,
    )


# -- OAuth 2.0 ---------------------------------------------------------------------------------------


def _oauth_error(error: str, detail: str, status_slug: str = "bad-request", **params: Any) -> Problem:
    # Problem details with the RFC 6749 ``error`` member, so OAuth clients and problem clients both understand.
    # ``detail`` is a message id (translated); ``error_description`` stays English, for the client's developer.
    headers = {"Cache-Control": "no-store"}
    if status_slug == "unauthenticated":
        headers["WWW-Authenticate"] = 'Basic realm="shgov"'
    description = render(detail, params, "en")
    extra = {"error": error, "error_description": description}
    return Problem(status_slug, detail=detail, params=params, extra=extra, headers=headers)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _oauth_error("invalid_client", N_("Malformed Basic credentials."), "unauthenticated") from exc
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def _throttled(retry_after: int) -> Problem:
    # 429 with Retry-After, the same for every name typed (it says nothing about whether an account exists).
    detail = N_("Too many failed sign-ins from here or for this name; try again in {retry_after} seconds.")
    params = {"retry_after": retry_after}
    return Problem(
        "too-many-requests",
        detail=detail,
        params=params,
        extra={"error": "slow_down", "error_description": render(detail, params, "en"), "retry_after": retry_after},
        headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"},
    )


WRONG_CREDENTIALS = N_("The credentials are wrong.")


@router.post("/auth/token", response_model=schemas.TokenOut, summary="OAuth 2.0 token endpoint")
def token(
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    grant_type: Annotated[str, Form()],
    username: Annotated[str | None, Form(max_length=200)] = None,
    password: Annotated[str | None, Form(max_length=200)] = None,
    client_id: Annotated[str | None, Form(max_length=200)] = None,
    client_secret: Annotated[str | None, Form(max_length=200)] = None,
    totp: Annotated[str | None, Form(max_length=12, description="TOTP code, for accounts with a second factor")] = None,
) -> Response:
    """Issue a bearer token: ``password`` grant for people (plus ``totp`` when they set up a second factor),
    ``client_credentials`` for system clients. Failures are throttled per address and account (429 with
    ``Retry-After``); an unknown user, a wrong password and a locked or disabled account get the same answer."""
    kinds: tuple[str, ...]
    if grant_type == "password":
        if not username or not password:
            raise _oauth_error("invalid_request", N_("username and password are required"))
        login, secret, kinds = username, password, ("citizen", "enterprise", "staff")
    elif grant_type == "client_credentials":
        basic = _basic_credentials(request)
        login, secret = basic if basic else (client_id or "", client_secret or "")
        if not login or not secret:
            raise _oauth_error("invalid_client", N_("client credentials are required"), "unauthenticated")
        kinds = ("client",)
    else:
        raise _oauth_error(
            "unsupported_grant_type", N_("grant_type {grant_type!r} is not supported"), grant_type=grant_type
        )
    result = identity.authenticate(
        db,
        settings.security,
        login,
        secret,
        kinds=kinds,
        address=client_ip(request),
        code=totp,
        totp_key=sealing_key(settings),
    )
    if not result.ok or result.user_id is None:
        audit(
            request,
            None,
            "auth.token.issue",
            outcome="denied",
            actor_name=login[:80],
            details={"reason": result.reason, "retry_after": result.retry_after},
        )
        if result.public_reason == "throttled":
            raise _throttled(result.retry_after)
        if result.public_reason == "second_factor":
            detail = N_("This account needs a code from its authenticator app: send it as totp.")
            raise Problem(
                "bad-request",
                detail=detail,
                extra={"error": "invalid_grant", "error_description": detail, "second_factor_required": True},
                headers={"Cache-Control": "no-store"},
            )
        if kinds == ("client",):
            raise _oauth_error("invalid_client", WRONG_CREDENTIALS, "unauthenticated")
        raise _oauth_error("invalid_grant", WRONG_CREDENTIALS)
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


def _revoking_client(
    request: Request, db: DatabaseDep, settings: SettingsDep, form_id: str, form_secret: str
) -> uuid.UUID:
    """Who asks to revoke (RFC 7009 §2.1: the client authenticates): the bearer of a live token, or a system
    client by its credentials (Basic or form). 401 ``invalid_client`` otherwise."""
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        _scheme, _, raw = request.headers["authorization"].partition(" ")
        with db.session(write=False) as session:
            try:
                return bearer_principal(request, session, raw.strip())[0].user_id
            except Problem as exc:
                raise _oauth_error("invalid_client", N_("The bearer token is invalid."), "unauthenticated") from exc
    basic = _basic_credentials(request)
    login, secret = basic if basic else (form_id, form_secret)
    if not login or not secret:
        raise _oauth_error(
            "invalid_client", N_("Authenticate: a bearer token or client credentials."), "unauthenticated"
        )
    result = identity.authenticate(db, settings.security, login, secret, kinds=("client",), address=client_ip(request))
    if result.public_reason == "throttled":
        raise _throttled(result.retry_after)
    if not result.ok or result.user_id is None:
        audit(
            request,
            None,
            "auth.token.revoke",
            outcome="denied",
            actor_name=login[:80],
            details={"reason": result.reason},
        )
        raise _oauth_error("invalid_client", WRONG_CREDENTIALS, "unauthenticated")
    return result.user_id


@router.post("/auth/revoke", status_code=200, summary="OAuth 2.0 token revocation (RFC 7009)")
def revoke(
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    token: Annotated[str, Form(max_length=200)],
    token_type_hint: Annotated[str | None, Form(max_length=40)] = None,
    client_id: Annotated[str | None, Form(max_length=200)] = None,
    client_secret: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Revoke a token of the authenticated caller (a bearer token of the same account, or a system client's
    credentials). A token that is unknown or someone else's is left alone and still answered 200, as RFC 7009
    §2.2 says; without client authentication the answer is 401."""
    owner = _revoking_client(request, db, settings, client_id or "", client_secret or "")
    with db.session() as session:
        revoked = identity.revoke_token(session, token, owner)
    if revoked:
        audit(request, None, "auth.token.revoke", actor_name="", object_type="user", object_id=str(owner))
    return JSONResponse({"revoked": revoked}, headers={"Cache-Control": "no-store"})


# -- accounts ----------------------------------------------------------------------------------------


@router.get("/identity/me", response_model=schemas.MeOut)
def me(session: SessionDep, principal: CurrentPrincipal) -> schemas.MeOut:
    """The caller's own account and permissions."""
    user = identity.find_user(session, principal.user_id)
    assert user is not None  # noqa: S101 - the principal was loaded from it
    return schemas.MeOut(**user_out(session, principal, user).model_dump(), actions=sorted(principal.scopes))


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
        department = orgs.find_department(session, body.department_code)
        tenant = department.tenant_code if department else None
    if not principal.allows(perm.USER_MANAGE, tenant, body.department_code):
        raise Problem("forbidden", detail=N_("You may not create accounts there."))
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
def unlock(
    request: Request, session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal, user: ManageableUser
) -> Response:
    """Lift an administrator's lock and the account's city-wide sign-in delay."""
    identity.unlock_user(session, user.id, settings.security)
    audit(request, principal, "identity.user.unlock", object_type="user", object_id=str(user.id))
    return Response(status_code=204)


@router.post("/identity/users/{user_id}/lock", status_code=204)
def lock(
    request: Request, session: SessionDep, principal: CurrentPrincipal, user: ManageableUser, body: schemas.LockIn
) -> Response:
    """Lock an account for ``minutes``: its tokens and browser sessions end now."""
    until = utcnow() + timedelta(minutes=body.minutes)
    ended = identity.lock_user(session, user.id, until)
    audit(
        request,
        principal,
        "identity.user.lock",
        object_type="user",
        object_id=str(user.id),
        tenant_code=user.tenant_code,
        details={"until": until.isoformat(), "reason": body.reason, "credentials_ended": ended},
    )
    return Response(status_code=204)


@router.post("/identity/users/{user_id}/disable", status_code=204)
def disable(
    request: Request, session: SessionDep, principal: CurrentPrincipal, user: ManageableUser, body: schemas.ReasonIn
) -> Response:
    """Disable an account: it cannot sign in, and its tokens and browser sessions end now."""
    if user.id == principal.user_id:
        raise Problem("conflict", detail=N_("You cannot disable your own account."))
    ended = identity.set_active(session, user.id, False)
    audit(
        request,
        principal,
        "identity.user.disable",
        object_type="user",
        object_id=str(user.id),
        tenant_code=user.tenant_code,
        details={"reason": body.reason, "credentials_ended": ended},
    )
    return Response(status_code=204)


@router.post("/identity/users/{user_id}/enable", status_code=204)
def enable(
    request: Request, session: SessionDep, principal: CurrentPrincipal, user: ManageableUser, body: schemas.ReasonIn
) -> Response:
    """Enable a disabled account again."""
    identity.set_active(session, user.id, True)
    audit(
        request,
        principal,
        "identity.user.enable",
        object_type="user",
        object_id=str(user.id),
        tenant_code=user.tenant_code,
        details={"reason": body.reason},
    )
    return Response(status_code=204)


@router.post("/identity/users/{user_id}/identity", response_model=schemas.UserOut)
def proof_identity(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    body: schemas.IdentityProofIn,
    principal: Annotated[Principal, Depends(require_action(perm.USER_PROOF))],
    user: ProofableAccount,
) -> schemas.UserOut | Response:
    """In-person proofing: a clerk holding ``identity.user.proof`` checked the original document at the window
    and binds its 身份证号 (citizen account) or 统一社会信用代码 (enterprise account), provided the name on it is
    the base register's (``core/identity/proofing``). Audited, refusals too; an identity already bound is never
    replaced."""
    document = proofing.Document(body.document_type, body.name, body.id_number, body.credit_code)
    refused = proofing.proof_in_person(session, settings, principal, user, document, reason=body.reason, channel="api")
    if refused is not None:  # answered, not raised: the refusal's record and count commit with this request
        errors = [FieldError("name", gettext(refused, request_locale(request)))]
        problem = Problem("validation-failed", detail=refused, errors=errors)
        return problem_response(request, problem)
    return user_out(session, principal, user)


@router.put("/identity/me/password", status_code=204)
def change_password(
    request: Request, db: DatabaseDep, settings: SettingsDep, principal: CurrentPrincipal, body: schemas.PasswordChange
) -> Response:
    """Change one's own password; every token and browser session of the account ends (sign in again).
    Wrong current passwords count towards the sign-in throttle."""
    identity.check_password_strength(body.new_password)
    keys = throttle.keys_for(settings.security, principal.username, client_ip(request), client=False)
    try:
        throttle.begin(db, keys)
    except throttle.Throttled as exc:
        raise _throttled(exc.retry_after) from exc
    with db.session(write=False) as session:
        user = identity.find_user(session, principal.user_id)
        stored = user.secret_hash if user else None
    matches = identity.verify_secret(stored, body.current_password)  # slow: outside any writer
    new_hash = identity.hash_secret(body.new_password) if matches else ""
    throttle.settle(db, keys, "ok" if matches else "failed")
    if not matches:
        audit(request, principal, "identity.password.change", outcome="denied", object_type="user")
        raise Problem(
            "validation-failed",
            detail=N_("The current password is wrong."),
            errors=[FieldError("current_password", gettext(N_("is wrong"), request_locale(request)))],
        )
    with db.session() as session:
        ended = identity.set_password(session, principal.user_id, new_hash)
    audit(
        request,
        principal,
        "identity.password.change",
        object_type="user",
        object_id=str(principal.user_id),
        details={"credentials_ended": ended},
    )
    return Response(status_code=204)


@router.post("/identity/me/totp", response_model=schemas.TotpEnrolment, status_code=201)
def enrol_totp(request: Request, session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal) -> Response:
    """Start setting up a TOTP second factor (staff): the secret is in this answer only, as text, as an
    ``otpauth://`` URI and as a QR code. Nothing changes at sign-in until it is confirmed."""
    secret, uri = identity.begin_totp(session, principal.user_id, sealing_key(settings))
    audit(request, principal, "identity.totp.enrol", object_type="user", object_id=str(principal.user_id))
    out = schemas.TotpEnrolment(secret=secret, otpauth_uri=uri, qr_svg=qr_svg(uri))
    return JSONResponse(out.model_dump(), status_code=201, headers={"Cache-Control": "no-store"})


@router.post("/identity/me/totp/confirm", status_code=204)
def confirm_totp(
    request: Request, session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal, body: schemas.TotpCode
) -> Response:
    """Confirm the second factor with a code from the app; from now on sign-in asks for a code."""
    identity.confirm_totp(session, principal.user_id, sealing_key(settings), body.code)
    audit(request, principal, "identity.totp.confirm", object_type="user", object_id=str(principal.user_id))
    return Response(status_code=204)


@router.post("/identity/me/totp/off", status_code=204)
def turn_off_totp(
    request: Request, db: DatabaseDep, settings: SettingsDep, principal: CurrentPrincipal, body: schemas.TotpOff
) -> Response:
    """Turn one's own second factor off, proven with a current ``code`` or the ``password``. Wrong answers count
    towards the sign-in throttle (429 with ``Retry-After``)."""
    if not body.code and not body.password:
        raise Problem(
            "validation-failed",
            detail=N_("Give a current code or your password."),
            errors=[FieldError("code", gettext(N_("give a current code or your password"), request_locale(request)))],
        )
    result = identity.turn_off_totp(
        db,
        settings.security,
        principal.user_id,
        key=sealing_key(settings),
        code=body.code or "",
        password=body.password or "",
        address=client_ip(request),
    )
    if not result.ok:
        audit(
            request,
            principal,
            "identity.totp.off",
            outcome="denied",
            object_type="user",
            object_id=str(principal.user_id),
            details={"reason": result.reason},
        )
        if result.public_reason == "throttled":
            raise _throttled(result.retry_after)
        if result.reason == "no_factor":
            raise Problem("conflict", detail=N_("This account has no second factor to turn off."))
        field = "code" if body.code else "password"
        wrong = N_("The code is wrong.") if body.code else N_("The password is wrong.")
        errors = [FieldError(field, gettext(N_("is wrong"), request_locale(request)))]
        raise Problem("validation-failed", detail=wrong, errors=errors)
    audit(request, principal, "identity.totp.off", object_type="user", object_id=str(principal.user_id))
    return Response(status_code=204)


@router.post("/identity/users/{user_id}/password/reset", response_model=schemas.PasswordReset)
def reset_password(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    user: ManageableUser,
    body: schemas.ReasonIn,
) -> Response:
    """An administrator resets another account's password (the holder forgot it): only one who holds
    everything the account holds (taking an account over is handing on what it holds). Answers a temporary
    password, shown this once; every token and browser session of the account ends, and its sign-in delay is
    lifted. Audited with the reason."""
    if user.id == principal.user_id:
        raise Problem(
            "conflict", detail=N_("Change your own password with your current one (PUT /identity/me/password).")
        )
    if user.kind == "client":
        raise Problem(
            "conflict", detail=N_("A system client gets a new secret by being created again, not by a reset.")
        )
    require_authority_over(principal, identity.held_by(session, user.id), via=perm.USER_MANAGE)
    temporary = identity.temporary_password()
    ended = identity.reset_password(session, user.id, identity.hash_secret(temporary), settings.security)
    audit(
        request,
        principal,
        "identity.password.reset",
        object_type="user",
        object_id=str(user.id),
        tenant_code=user.tenant_code,
        details={"reason": body.reason, "credentials_ended": ended},
    )
    out = schemas.PasswordReset(temporary_password=temporary, credentials_ended=ended)
    return JSONResponse(out.model_dump(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@router.post("/identity/users/{user_id}/totp/reset", status_code=204)
def reset_totp(
    request: Request, session: SessionDep, principal: CurrentPrincipal, user: ManageableUser, body: schemas.ReasonIn
) -> Response:
    """Recovery when the phone is lost: an administrator (holding everything the account holds) removes the
    second factor; the account's tokens and sessions end, and the holder sets a new one up."""
    require_authority_over(principal, identity.held_by(session, user.id), via=perm.USER_MANAGE)
    ended = identity.reset_totp(session, user.id)
    audit(
        request,
        principal,
        "identity.totp.reset",
        object_type="user",
        object_id=str(user.id),
        tenant_code=user.tenant_code,
        details={"reason": body.reason, "credentials_ended": ended},
    )
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
        department = orgs.find_department(session, body.department_code)
        if department is None:
            raise Problem(
                "validation-failed",
                detail=N_("No such department."),
                errors=[FieldError("department_code", gettext(N_("does not exist"), request_locale(request)))],
            )
        tenant_code = department.tenant_code
    scope = Scope(tenant_code, body.department_code, body.include_subtenants)
    actions = identity.role_actions(session, body.role_code)
    require_delegation(principal, actions, scope, via=perm.ROLE_ASSIGN)
    require_not_self(principal, user.id, actions)
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
    """Create a system client (no roles yet: they are given like anyone's, checked the same way); its secret is
    in this response only. The caller needs ``identity.client.manage`` over the client's tenant / department."""
    require_credential(principal, None, (), Scope(body.tenant_code, body.department_code), via=perm.CLIENT_MANAGE)
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
    # Roles apply everywhere: only someone holding every one of the actions everywhere defines them.
    require_delegation(principal, identity.checked_actions(body.actions), EVERYWHERE, via=perm.ROLE_MANAGE)
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
    owner = orgs.find_department(session, body.owner_department_code)
    if owner is None:
        raise Problem("forbidden", detail=N_("You may grant access only to your own department's objects."))
    actions = identity.checked_actions(body.actions)
    require_delegation(principal, actions, Scope(owner.tenant_code, owner.code), via=perm.GRANT_MANAGE)
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
    request: Request, session: SessionDep, grant_id: uuid.UUID, principal: CurrentPrincipal, grant: ManageableGrant
) -> schemas.GrantOut:
    """End a grant."""
    revoked = identity.revoke_grant(session, grant.id)
    audit(request, principal, "identity.grant.revoke", object_type="grant", object_id=str(grant.id))
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

"""Accounts, sign-in with lockout, bearer tokens, web sessions, roles, assignments and grants.

Secrets (passwords, client secrets) are stored as argon2 hashes; tokens and session cookies are
random values stored as SHA-256, so a database leak reveals no usable credential and a token is
revoked by marking its row.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from shgov.core.db import ChangeCounter, Database, utcnow
from shgov.core.errors import ConflictError, InvalidError, NotFoundError
from shgov.core.identity.models import (
    USER_KINDS,
    AccessGrant,
    AccessToken,
    Role,
    RoleAssignment,
    User,
    WebSession,
)
from shgov.core.identity.permissions import GrantInfo, Principal, Scope, is_known_action, known_actions
from shgov.core.ids import validate_id_number, validate_phone, validate_uscc
from shgov.core.orgs.models import Department, Tenant
from shgov.core.settings import SecuritySettings

# Caches of who a credential stands for (the gateway's admissions) refill when any of these rows change.
CREDENTIALS = ChangeCounter(User, Role, RoleAssignment, AccessGrant, AccessToken, WebSession)

_hasher = PasswordHasher()
# Verified against when the username is unknown, so that the answer takes as long as for a real user.
_DUMMY_HASH = _hasher.hash("shgov-dummy-password")
MIN_PASSWORD_LENGTH = 10


def hash_secret(secret: str) -> str:
    """An argon2id hash of ``secret``."""
    return _hasher.hash(secret)


def verify_secret(stored: str | None, secret: str) -> bool:
    """True when ``secret`` matches ``stored`` (a missing hash never matches)."""
    try:
        return _hasher.verify(stored or _DUMMY_HASH, secret) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def digest(raw: str) -> str:
    """SHA-256 of a token or cookie value, as stored."""
    return hashlib.sha256(raw.encode()).hexdigest()


def check_password_strength(password: str) -> None:
    """Refuse short or single-class passwords."""
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
        )
    ) + any(not c.isalnum() for c in password)
    if len(password) < MIN_PASSWORD_LENGTH or classes < 3:
        raise InvalidError(
            f"a password needs at least {MIN_PASSWORD_LENGTH} characters and three of: lower case, upper case, "
            "digits, symbols",
            field="password",
        )


# -- accounts ----------------------------------------------------------------------------------------


def _check_org(session: Session, tenant_code: str | None, department_code: str | None) -> None:
    if tenant_code is not None and session.get(Tenant, tenant_code) is None:
        raise InvalidError(f"tenant {tenant_code} does not exist", field="tenant_code")
    if department_code is not None:
        department = session.get(Department, department_code)
        if department is None:
            raise InvalidError(f"department {department_code} does not exist", field="department_code")
        if tenant_code is not None and department.tenant_code != tenant_code:
            raise InvalidError(f"department {department_code} is not in tenant {tenant_code}", field="department_code")


def create_user(
    session: Session,
    *,
    kind: str,
    username: str,
    display_name: str,
    password: str | None = None,
    tenant_code: str | None = None,
    department_code: str | None = None,
    id_number: str | None = None,
    credit_code: str | None = None,
    phone: str | None = None,
    check_strength: bool = True,
) -> User:
    """Create an account; identifiers are validated and a duplicate username is a conflict."""
    if kind not in USER_KINDS:
        raise InvalidError(f"kind must be one of {', '.join(USER_KINDS)}", field="kind")
    if department_code is not None and tenant_code is None:
        department = session.get(Department, department_code)
        tenant_code = department.tenant_code if department else None
    if kind == "staff" and tenant_code is None:
        raise InvalidError("staff belong to a tenant", field="tenant_code")
    _check_org(session, tenant_code, department_code)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"username {username!r} is taken", field="username")
    if password is not None and check_strength:
        check_password_strength(password)
    user = User(
        id=uuid.uuid4(),
        kind=kind,
        username=username,
        display_name=display_name,
        secret_hash=hash_secret(password) if password is not None else None,
        tenant_code=tenant_code,
        department_code=department_code,
        id_number=_validated(validate_id_number, id_number, "id_number"),
        credit_code=_validated(validate_uscc, credit_code, "credit_code"),
        phone=_validated(validate_phone, phone, "phone"),
    )
    if user.id_number and session.scalar(select(User.id).where(User.id_number == user.id_number)):
        raise ConflictError("an account with this ID number exists", field="id_number")
    session.add(user)
    session.flush()
    return user


def _validated(validator: object, value: str | None, field: str) -> str | None:
    if value is None or value == "":
        return None
    try:
        result: str = validator(value)  # type: ignore[operator]
    except ValueError as exc:
        raise InvalidError(str(exc), field=field) from exc
    return result


def create_client(
    session: Session, *, name: str, tenant_code: str, department_code: str | None = None
) -> tuple[User, str]:
    """A system client for the client-credentials flow; the secret is returned once and stored hashed."""
    client_id = f"client-{secrets.token_hex(8)}"
    secret = secrets.token_urlsafe(32)
    user = create_user(
        session,
        kind="client",
        username=client_id,
        display_name=name,
        password=secret,
        tenant_code=tenant_code,
        department_code=department_code,
        check_strength=False,
    )
    return user, secret


def get_user(session: Session, user_id: uuid.UUID) -> User | None:
    """The account with ``user_id``."""
    return session.get(User, user_id)


# -- sign-in -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """The outcome of checking a username and secret."""

    ok: bool
    reason: str  # ok | bad_credentials | locked | inactive | wrong_kind
    user_id: uuid.UUID | None = None
    username: str = ""
    locked_until: datetime | None = None


def authenticate(
    db: Database,
    security: SecuritySettings,
    username: str,
    secret: str,
    *,
    kinds: Sequence[str] = ("citizen", "enterprise", "staff"),
) -> SignIn:
    """Check a sign-in in its own transaction, counting failures and locking after too many."""
    with db.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        now = utcnow()
        if user is None:
            verify_secret(None, secret)
            return SignIn(False, "bad_credentials", username=username)
        if user.locked_until is not None and user.locked_until > now:
            return SignIn(False, "locked", user.id, user.username, user.locked_until)
        if not verify_secret(user.secret_hash, secret):
            user.failed_logins += 1
            if user.failed_logins >= security.max_failed_logins:
                user.locked_until = now + timedelta(minutes=security.lockout_minutes)
                user.failed_logins = 0
                return SignIn(False, "locked", user.id, user.username, user.locked_until)
            return SignIn(False, "bad_credentials", user.id, user.username)
        if not user.is_active:
            return SignIn(False, "inactive", user.id, user.username)
        if user.kind not in kinds:
            return SignIn(False, "wrong_kind", user.id, user.username)
        user.failed_logins = 0
        user.locked_until = None
        user.last_login_at = now
        return SignIn(True, "ok", user.id, user.username)


def unlock_user(session: Session, user_id: uuid.UUID) -> None:
    """Lift a lockout."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError("no such user")
    user.failed_logins = 0
    user.locked_until = None


# -- tokens and sessions -----------------------------------------------------------------------------


def issue_token(session: Session, user_id: uuid.UUID, grant_type: str, ttl_seconds: int) -> tuple[str, datetime]:
    """A new bearer token (returned once) and its expiry."""
    raw = secrets.token_urlsafe(32)
    now = utcnow()
    expires = now + timedelta(seconds=ttl_seconds)
    session.add(
        AccessToken(token_hash=digest(raw), user_id=user_id, grant_type=grant_type, created_at=now, expires_at=expires)
    )
    session.flush()
    return raw, expires


def revoke_token(session: Session, raw: str) -> uuid.UUID | None:
    """Revoke a bearer token; returns its user, or None for an unknown token (RFC 7009: not an error)."""
    token = session.scalar(select(AccessToken).where(AccessToken.token_hash == digest(raw)))
    if token is None:
        return None
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token.user_id


def token_holder(session: Session, raw: str) -> tuple[User, datetime] | None:
    """The active user a live bearer token belongs to, and when the token expires."""
    row = session.execute(
        select(AccessToken, User)
        .join(User, User.id == AccessToken.user_id)
        .where(AccessToken.token_hash == digest(raw))
    ).first()
    if row is None:
        return None
    token, user = row
    if token.revoked_at is not None or token.expires_at <= utcnow() or not user.is_active:
        return None
    return user, token.expires_at


def start_web_session(session: Session, user_id: uuid.UUID, ttl_seconds: int, ip: str | None, user_agent: str) -> str:
    """A new browser session; returns the cookie value."""
    raw = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        WebSession(
            token_hash=digest(raw),
            user_id=user_id,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
            ip=ip,
            user_agent=user_agent[:300],
        )
    )
    session.flush()
    return raw


def end_web_session(session: Session, raw: str) -> None:
    """Sign a browser out."""
    row = session.scalar(select(WebSession).where(WebSession.token_hash == digest(raw)))
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()


def user_for_web_session(session: Session, raw: str) -> User | None:
    """The active user of a live session cookie."""
    row = session.execute(
        select(WebSession, User).join(User, User.id == WebSession.user_id).where(WebSession.token_hash == digest(raw))
    ).first()
    if row is None:
        return None
    web_session, user = row
    if web_session.revoked_at is not None or web_session.expires_at <= utcnow() or not user.is_active:
        return None
    return user


# -- permissions -------------------------------------------------------------------------------------


def load_principal(
    session: Session, user: User, tenant_parents: Mapping[str, str | None], auth_method: str
) -> Principal:
    """Everything needed to decide the user's access: role scopes and the grants to their department."""
    scopes: dict[str, list[Scope]] = {}
    roles: list[str] = []
    rows = session.execute(
        select(RoleAssignment, Role)
        .join(Role, Role.code == RoleAssignment.role_code)
        .where(RoleAssignment.user_id == user.id)
    ).all()
    for assignment, role in rows:
        roles.append(role.code)
        scope = Scope(assignment.tenant_code, assignment.department_code, assignment.include_subtenants)
        for action in known_actions() if ALL in role.actions else role.actions:
            scopes.setdefault(action, []).append(scope)
    grants: list[GrantInfo] = []
    if user.department_code is not None:
        now = utcnow()
        for grant in session.scalars(
            select(AccessGrant).where(
                AccessGrant.grantee_department_code == user.department_code,
                AccessGrant.revoked_at.is_(None),
                or_(AccessGrant.expires_at.is_(None), AccessGrant.expires_at > now),
            )
        ):
            grants.append(GrantInfo(grant.owner_department_code, frozenset(grant.actions)))
    return Principal(
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        kind=user.kind,
        tenant_code=user.tenant_code,
        department_code=user.department_code,
        scopes=scopes,
        grants=grants,
        tenant_parents=tenant_parents,
        roles=sorted(set(roles)),
        auth_method=auth_method,
    )


def principal_by_username(session: Session, username: str, auth_method: str = "system") -> Principal | None:
    """The principal of an account by its user name (for seeding, scripts and benchmarks)."""
    from shgov.core.orgs.service import tenant_parents

    user = session.scalar(select(User).where(User.username == username))
    return load_principal(session, user, tenant_parents(session), auth_method) if user is not None else None


ALL = "*"  # a role holding "*" holds every action, including those of modules added later


def _check_actions(actions: Iterable[str]) -> list[str]:
    result = sorted(set(actions))
    if ALL in result:
        return [ALL]
    unknown = [a for a in result if not is_known_action(a)]
    if unknown:
        raise InvalidError(f"unknown actions: {', '.join(unknown)}", field="actions")
    return result


def define_role(session: Session, code: str, name: str, actions: Iterable[str], name_en: str = "") -> Role:
    """Create a role or replace its name and actions."""
    checked = _check_actions(actions)
    role = session.get(Role, code)
    if role is None:
        role = Role(code=code, name=name, name_en=name_en, actions=checked)
        session.add(role)
    else:
        role.name, role.name_en, role.actions = name, name_en or role.name_en, checked
    session.flush()
    return role


def add_actions_to_role(session: Session, code: str, actions: Iterable[str]) -> None:
    """Give an existing role more actions (a module that lands adds its actions to the built-in roles)."""
    role = session.get(Role, code)
    if role is not None:
        role.actions = _check_actions([*role.actions, *actions])


def list_roles(session: Session) -> list[Role]:
    """Every role, by code."""
    return list(session.scalars(select(Role).order_by(Role.code)))


def assign_role(
    session: Session,
    user_id: uuid.UUID,
    role_code: str,
    scope: Scope,
) -> RoleAssignment:
    """Give ``role_code`` to a user within ``scope`` (idempotent)."""
    if session.get(Role, role_code) is None:
        raise InvalidError(f"role {role_code} does not exist", field="role_code")
    if session.get(User, user_id) is None:
        raise NotFoundError("no such user")
    _check_org(session, scope.tenant_code, scope.department_code)
    existing = session.scalar(
        select(RoleAssignment).where(
            RoleAssignment.user_id == user_id,
            RoleAssignment.role_code == role_code,
            RoleAssignment.tenant_code.is_(None)
            if scope.tenant_code is None
            else RoleAssignment.tenant_code == scope.tenant_code,
            RoleAssignment.department_code.is_(None)
            if scope.department_code is None
            else RoleAssignment.department_code == scope.department_code,
        )
    )
    if existing is not None:
        existing.include_subtenants = scope.include_subtenants
        return existing
    assignment = RoleAssignment(
        user_id=user_id,
        role_code=role_code,
        tenant_code=scope.tenant_code,
        department_code=scope.department_code,
        include_subtenants=scope.include_subtenants,
    )
    session.add(assignment)
    session.flush()
    return assignment


def roles_of(session: Session, user_id: uuid.UUID) -> list[RoleAssignment]:
    """The user's role assignments."""
    return list(session.scalars(select(RoleAssignment).where(RoleAssignment.user_id == user_id)))


def create_grant(
    session: Session,
    *,
    grantee_department_code: str,
    owner_department_code: str,
    actions: Iterable[str],
    expires_at: datetime | None = None,
    reason: str = "",
    created_by: uuid.UUID | None = None,
) -> AccessGrant:
    """Let one department act on another's objects for ``actions`` until ``expires_at``."""
    for field, code in (
        ("grantee_department_code", grantee_department_code),
        ("owner_department_code", owner_department_code),
    ):
        if session.get(Department, code) is None:
            raise InvalidError(f"department {code} does not exist", field=field)
    if grantee_department_code == owner_department_code:
        raise InvalidError("a department needs no grant to its own objects", field="grantee_department_code")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidError("the expiry is in the past", field="expires_at")
    grant = AccessGrant(
        grantee_department_code=grantee_department_code,
        owner_department_code=owner_department_code,
        actions=_check_actions(actions),
        expires_at=expires_at,
        reason=reason,
        created_by=created_by,
    )
    session.add(grant)
    session.flush()
    return grant


def revoke_grant(session: Session, grant_id: uuid.UUID) -> AccessGrant:
    """End a grant now."""
    grant = session.get(AccessGrant, grant_id)
    if grant is None:
        raise NotFoundError("no such grant")
    if grant.revoked_at is None:
        grant.revoked_at = utcnow()
    return grant


def scope_conditions(
    principal: Principal,
    action: str,
    tenant_column: InstrumentedAttribute[Any],
    department_column: InstrumentedAttribute[Any] | None = None,
) -> list[ColumnElement[bool]] | None:
    """The rows ``principal`` may act on with ``action``, as SQL conditions any one of which admits a row:
    their tenants (with sub-tenants where the scope says so) and, given the column, their departments
    (department scopes and grants). None means everywhere; an empty list, nowhere."""
    tenants = principal.tenants_for(action)
    if tenants is None:
        return None
    conditions: list[ColumnElement[bool]] = []
    if tenants:
        conditions.append(tenant_column.in_([t for t in tenants if t is not None]))
    if department_column is not None:
        departments = principal.departments_for(action)
        if departments:
            conditions.append(department_column.in_(departments))
    return conditions


def visible_users(session: Session, principal: Principal, action: str, limit: int, offset: int) -> list[User]:
    """Users whose records the principal may see for ``action`` (plus the principal), by username."""
    query = select(User).order_by(User.username).limit(limit).offset(offset)
    scoped = scope_conditions(principal, action, User.tenant_code, User.department_code)
    if scoped is not None:
        query = query.where(or_(User.id == principal.user_id, *scoped))
    return list(session.scalars(query))


def user_by_id_number(session: Session, id_number: str) -> User | None:
    """The citizen account registered with this ID number, if any."""
    return session.scalar(select(User).where(User.id_number == id_number.strip().upper()))


def accounts_by_key(session: Session, kind: str, keys: Collection[str]) -> dict[str, list[User]]:
    """The active accounts of citizens (by ID number) or enterprises (by credit code; an enterprise may have
    several), for many keys at once."""
    column = {"citizen": User.id_number, "enterprise": User.credit_code}[kind]
    wanted = sorted({k.strip().upper() for k in keys})
    found: dict[str, list[User]] = {}
    for start in range(0, len(wanted), 500):
        query = select(User).where(User.kind == kind, User.is_active, column.in_(wanted[start : start + 500]))
        for user in session.scalars(query):
            found.setdefault(str(user.id_number if kind == "citizen" else user.credit_code), []).append(user)
    return found

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

from shgov.core.audit.capture import SEED, SYSTEM, current_actor
from shgov.core.db import ChangeCounter, Database, utcnow
from shgov.core.errors import ConflictError, InvalidError, NotFoundError
from shgov.core.i18n import N_
from shgov.core.identity import throttle
from shgov.core.identity import totp as otp
from shgov.core.identity.models import (
    IDENTITY_SOURCES,
    USER_KINDS,
    AccessGrant,
    AccessToken,
    Role,
    RoleAssignment,
    User,
    WebSession,
)
from shgov.core.identity.permissions import (
    GrantInfo,
    Principal,
    Scope,
    implied_by_wildcard,
    is_known_action,
)
from shgov.core.ids import IdentifierError, validate_id_number, validate_phone, validate_uscc
from shgov.core.orgs.models import Department, Tenant
from shgov.core.settings import SecuritySettings

# Caches of who a credential stands for (the gateway's admissions) refill when any of these rows change.
CREDENTIALS = ChangeCounter(User, Role, RoleAssignment, AccessGrant, AccessToken, WebSession)

# OWASP's argon2id parameters (19 MiB, 2 passes, 1 lane): about a fifth of the library's default cost per
# sign-in, still far beyond what guessing at scale can afford. Hashes made with other parameters are
# rehashed at their owner's next sign-in.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
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
            N_("a password needs at least {length} characters and three of: lower case, upper case, digits, symbols"),
            field="password",
            length=MIN_PASSWORD_LENGTH,
        )


# -- accounts ----------------------------------------------------------------------------------------


def tenant_exists(session: Session, tenant_code: str) -> bool:
    """Whether a tenant (the city or a district) with this code exists."""
    # A longer code cannot exist, and PostgreSQL would refuse to compare it with the column.
    return len(tenant_code) <= 12 and session.get(Tenant, tenant_code) is not None


def _check_org(session: Session, tenant_code: str | None, department_code: str | None) -> None:
    if tenant_code is not None and not tenant_exists(session, tenant_code):
        raise InvalidError(N_("tenant {tenant} does not exist"), field="tenant_code", tenant=tenant_code)
    if department_code is not None:
        department = session.get(Department, department_code)
        if department is None:
            raise InvalidError(
                N_("department {department} does not exist"), field="department_code", department=department_code
            )
        if tenant_code is not None and department.tenant_code != tenant_code:
            raise InvalidError(
                N_("department {department} is not in tenant {tenant}"),
                field="department_code",
                department=department_code,
                tenant=tenant_code,
            )


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
        raise InvalidError(N_("kind must be one of {kinds}"), field="kind", kinds=", ".join(USER_KINDS))
    if department_code is not None and tenant_code is None:
        department = session.get(Department, department_code)
        tenant_code = department.tenant_code if department else None
    if kind == "staff" and tenant_code is None:
        raise InvalidError(N_("staff belong to a tenant"), field="tenant_code")
    _check_org(session, tenant_code, department_code)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(N_("username {username!r} is taken"), field="username", username=username)
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
        phone=_validated(validate_phone, phone, "phone"),
    )
    session.add(user)
    session.flush()
    if id_number or credit_code:
        # Only trusted in-process code binds an identity on creation: the demo seed, or code running as
        # the system (event handlers, tests). A request or a command goes through bind_identity with proof.
        actor = current_actor().name
        if actor not in (SEED.name, SYSTEM.name):
            raise InvalidError(
                N_("an identity is bound only by an identity provider or an in-person proofing step"),
                field="id_number" if id_number else "credit_code",
            )
        bind_identity(session, user, id_number=id_number, credit_code=credit_code, source=actor)
    return user


def bind_identity(
    session: Session,
    user: User,
    *,
    id_number: str | None = None,
    credit_code: str | None = None,
    source: str,
    bound_by: uuid.UUID | None = None,
) -> User:
    """Bind a proven 身份证号 (citizens) or 统一社会信用代码 (enterprises) to ``user``.

    ``source`` says how it was proven (``oidc``, ``proofing``, ``seed``, ``system``); callers prove it first —
    this only keeps the rules every binding shares: the right kind of account, one identity per account
    (never replaced), and one citizen account per ID number (an enterprise may have several accounts, one per
    经办人)."""
    if source not in IDENTITY_SOURCES:
        raise ValueError(f"unknown identity source {source!r}")
    checked_id = _validated(validate_id_number, id_number, "id_number")
    checked_code = _validated(validate_uscc, credit_code, "credit_code")
    if checked_id is None and checked_code is None:
        raise InvalidError(N_("an ID number or a credit code is needed"), field="id_number")
    if checked_id is not None and user.kind != "citizen":
        raise InvalidError(N_("only a citizen account carries an ID number"), field="id_number")
    if checked_code is not None and user.kind != "enterprise":
        raise InvalidError(N_("only an enterprise account carries a credit code"), field="credit_code")
    if user.id_number is not None or user.credit_code is not None:
        raise ConflictError(
            N_("this account's identity is bound already"), field="id_number" if checked_id else "credit_code"
        )
    if checked_id is not None and session.scalar(select(User.id).where(User.id_number == checked_id)):
        raise ConflictError(N_("an account with this ID number exists"), field="id_number")
    user.id_number, user.credit_code = checked_id, checked_code
    user.identity_source, user.identity_bound_at, user.identity_bound_by = source, utcnow(), bound_by
    session.flush()
    return user


def _validated(validator: object, value: str | None, field: str) -> str | None:
    if value is None or value == "":
        return None
    try:
        result: str = validator(value)  # type: ignore[operator]
    except IdentifierError as exc:
        raise InvalidError(N_("{reason}"), field=field, reason=exc) from exc
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


def find_user(session: Session, user_id: uuid.UUID) -> User | None:
    """The account with ``user_id``."""
    return session.get(User, user_id)


# -- sign-in -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """The outcome of checking a username and secret (and second factor).

    ``reason`` is for the audit log only: ok | bad_credentials | locked | inactive | wrong_kind | bad_code |
    throttled | second_factor. Callers show people just three things: signed in, "wrong credentials"
    (``public_reason``: the same for an unknown user, a wrong password, a locked or disabled account), or
    "wait ``retry_after`` seconds"; and ask for the code when ``reason`` is ``second_factor``."""

    ok: bool
    reason: str
    user_id: uuid.UUID | None = None
    username: str = ""
    retry_after: int = 0

    @property
    def public_reason(self) -> str:
        """What the caller may be told: ok, throttled, second_factor or bad_credentials."""
        return self.reason if self.reason in ("ok", "throttled", "second_factor") else "bad_credentials"


def authenticate(
    db: Database,
    security: SecuritySettings,
    username: str,
    secret: str,
    *,
    kinds: Sequence[str] = ("citizen", "enterprise", "staff"),
    address: str | None = None,
    code: str | None = None,
    totp_key: bytes | None = None,
) -> SignIn:
    """Check a sign-in, throttled per address and account (see ``throttle``).

    The attempt is counted before the hash is checked and settled after it, each in a short writer
    transaction; the hash itself is checked outside any transaction: it is slow on purpose, and a writer
    waiting on it would hold every other write in the process. An account with a confirmed second factor
    needs ``code`` too (checked with ``totp_key``); without one the answer is ``second_factor`` and the
    attempt does not count as a failure."""
    keys = throttle.keys_for(security, username, address, client=tuple(kinds) == ("client",))
    try:
        throttle.begin(db, keys)
    except throttle.Throttled as exc:
        return SignIn(False, "throttled", username=username, retry_after=exc.retry_after)
    result = _check_credentials(db, username, secret, kinds, code, totp_key)
    outcome = "ok" if result.ok else "neutral" if result.reason == "second_factor" else "failed"
    wait = throttle.settle(db, keys, outcome)
    if not result.ok and wait:
        return SignIn(False, result.reason, result.user_id, result.username, retry_after=wait)
    return result


def _check_credentials(
    db: Database,
    username: str,
    secret: str,
    kinds: Sequence[str],
    code: str | None,
    totp_key: bytes | None,
) -> SignIn:
    with db.session(write=False) as session:
        found = session.execute(select(User.id, User.secret_hash).where(User.username == username)).first()
    if found is None:
        verify_secret(None, secret)  # as slow as for a real account
        return SignIn(False, "bad_credentials", username=username)
    user_id, stored = found
    matches = verify_secret(stored, secret)
    rehashed = hash_secret(secret) if matches and stored and _hasher.check_needs_rehash(stored) else None
    with db.session() as session:
        user = session.get(User, user_id)
        now = utcnow()
        if user is None:
            return SignIn(False, "bad_credentials", username=username)
        if matches and user.secret_hash != stored:  # changed meanwhile (a new password, a rehash): check again
            matches = verify_secret(user.secret_hash, secret)
        refusal = _refusal(user, matches, kinds, now)
        if refusal is not None:
            return SignIn(False, refusal, user.id, user.username)
        if user.totp_confirmed_at is not None:
            if not code:
                return SignIn(False, "second_factor", user.id, user.username)
            if totp_key is None or not _accept_code(user, totp_key, code, now):
                return SignIn(False, "bad_code", user.id, user.username)
        if rehashed is not None:  # hashed with older, costlier or weaker parameters: bring it to today's
            user.secret_hash = rehashed
        user.last_login_at = now
        return SignIn(True, "ok", user.id, user.username)


def _refusal(user: User, matches: bool, kinds: Sequence[str], now: datetime) -> str | None:
    if not matches:
        return "bad_credentials"
    if user.locked_until is not None and user.locked_until > now:
        return "locked"
    if not user.is_active:
        return "inactive"
    if user.kind not in kinds:
        return "wrong_kind"
    return None


def _accept_code(user: User, key: bytes, code: str, now: datetime) -> bool:
    secret = otp.unseal(key, user.totp_secret or "", str(user.id))
    if secret is None:
        return False
    step = otp.matching_step(secret, code, now, user.totp_last_step)
    if step is None:
        return False
    user.totp_last_step = step
    return True


def second_factor(
    db: Database, security: SecuritySettings, user_id: uuid.UUID, code: str, *, address: str | None, totp_key: bytes
) -> SignIn:
    """The second step of a web sign-in whose password was right: check the TOTP code, throttled like the
    first step (under the account's name, so the two steps share their counters)."""
    with db.session(write=False) as session:
        username = session.scalar(select(User.username).where(User.id == user_id)) or ""
    keys = throttle.keys_for(security, username, address, client=False)
    try:
        throttle.begin(db, keys)
    except throttle.Throttled as exc:
        return SignIn(False, "throttled", username=username, retry_after=exc.retry_after)
    with db.session() as session:
        user = session.get(User, user_id)
        now = utcnow()
        if user is None or _refusal(user, True, ("staff", "citizen", "enterprise"), now) is not None:
            result = SignIn(False, "bad_credentials", username=username)
        elif user.totp_confirmed_at is None or not _accept_code(user, totp_key, code, now):
            result = SignIn(False, "bad_code", user.id, user.username)
        else:
            user.last_login_at = now
            result = SignIn(True, "ok", user.id, user.username)
    wait = throttle.settle(db, keys, "ok" if result.ok else "failed")
    if not result.ok and wait:
        return SignIn(False, result.reason, result.user_id, result.username, retry_after=wait)
    return result


def revoke_credentials(session: Session, user_id: uuid.UUID) -> int:
    """End every live bearer token and browser session of a user (a new password, a lock, a disabled
    account, a reset second factor); returns how many ended."""
    now = utcnow()
    ended = 0
    rows: list[AccessToken | WebSession] = [
        *session.scalars(select(AccessToken).where(AccessToken.user_id == user_id, AccessToken.revoked_at.is_(None))),
        *session.scalars(select(WebSession).where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))),
    ]
    for row in rows:
        row.revoked_at = now
        ended += 1
    session.flush()
    return ended


def _user(session: Session, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(N_("no such user"))
    return user


def unlock_user(session: Session, user_id: uuid.UUID, security: SecuritySettings | None = None) -> None:
    """Lift an administrator's lock (and, given the settings, the account's city-wide sign-in delay)."""
    user = _user(session, user_id)
    user.locked_until = None
    if security is not None:
        throttle.clear_account(session, security, user.username)


def lock_user(session: Session, user_id: uuid.UUID, until: datetime) -> int:
    """Lock an account until ``until``; its tokens and sessions end now. Returns how many ended."""
    user = _user(session, user_id)
    user.locked_until = until
    return revoke_credentials(session, user.id)


def set_active(session: Session, user_id: uuid.UUID, active: bool) -> int:
    """Enable or disable an account; disabling ends its tokens and sessions. Returns how many ended."""
    user = _user(session, user_id)
    user.is_active = active
    return 0 if active else revoke_credentials(session, user.id)


def set_password(session: Session, user_id: uuid.UUID, password_hash: str) -> int:
    """Store a new password hash (made outside the transaction with ``hash_secret`` after
    ``check_password_strength``); every token and session of the account ends. Returns how many ended."""
    user = _user(session, user_id)
    user.secret_hash = password_hash
    return revoke_credentials(session, user.id)


# -- second factor -------------------------------------------------------------------------------------


def begin_totp(session: Session, user_id: uuid.UUID, key: bytes) -> tuple[str, str]:
    """Start (or restart) enrolment of a staff member's TOTP: a new secret, sealed and unconfirmed. Returns
    the secret and its ``otpauth://`` URI — shown this once."""
    user = _user(session, user_id)
    if user.kind != "staff":
        raise InvalidError(N_("only staff accounts use a second factor"), field="kind")
    if user.totp_confirmed_at is not None:
        raise ConflictError(N_("a second factor is set up already; an administrator can reset it"))
    secret = otp.new_secret()
    user.totp_secret = otp.seal(key, secret, str(user.id))
    user.totp_last_step = None
    return secret, otp.provisioning_uri(secret, user.username)


def confirm_totp(session: Session, user_id: uuid.UUID, key: bytes, code: str) -> None:
    """Confirm enrolment with a code from the authenticator; from now on sign-in needs a code."""
    user = _user(session, user_id)
    if user.totp_secret is None or user.totp_confirmed_at is not None:
        raise ConflictError(N_("there is no second factor waiting for confirmation"))
    if not _accept_code(user, key, code, utcnow()):
        raise InvalidError(N_("the code is wrong or expired"), field="code")
    user.totp_confirmed_at = utcnow()


def reset_totp(session: Session, user_id: uuid.UUID) -> int:
    """Remove a second factor (an administrator's recovery); the account's tokens and sessions end."""
    user = _user(session, user_id)
    user.totp_secret = None
    user.totp_confirmed_at = None
    user.totp_last_step = None
    return revoke_credentials(session, user.id)


def turn_off_totp(
    db: Database,
    security: SecuritySettings,
    user_id: uuid.UUID,
    *,
    key: bytes,
    code: str = "",
    password: str = "",
    address: str | None = None,
) -> SignIn:
    """The holder turns their own second factor off, proving it is them with a current code or their password.

    Throttled and counted like a sign-in (under the account's name), so it is no way round the sign-in
    throttle; the password is checked outside any writer (it is slow on purpose). ``reason``: ok, throttled,
    bad_code, bad_credentials or no_factor (nothing to turn off; not counted as a failure)."""
    with db.session(write=False) as session:
        found = session.execute(select(User.username, User.secret_hash).where(User.id == user_id)).first()
    if found is None or not (code or password):  # nothing offered: nothing to count
        return SignIn(False, "bad_credentials")
    username, stored = found
    keys = throttle.keys_for(security, username, address, client=False)
    try:
        throttle.begin(db, keys)
    except throttle.Throttled as exc:
        return SignIn(False, "throttled", user_id, username, retry_after=exc.retry_after)
    password_ok = bool(password) and verify_secret(stored, password)
    with db.session() as session:
        user = _user(session, user_id)
        if user.totp_confirmed_at is None:
            result = SignIn(False, "no_factor", user.id, username)
        elif password_ok or (code and _accept_code(user, key, code, utcnow())):
            user.totp_secret, user.totp_confirmed_at, user.totp_last_step = None, None, None
            result = SignIn(True, "ok", user.id, username)
        else:
            result = SignIn(False, "bad_code" if code else "bad_credentials", user.id, username)
    outcome = "ok" if result.ok else "neutral" if result.reason == "no_factor" else "failed"
    wait = throttle.settle(db, keys, outcome)
    if not result.ok and wait:
        return SignIn(False, result.reason, result.user_id, result.username, retry_after=wait)
    return result


def temporary_password() -> str:
    """A strong random password an administrator hands over after a reset (shown once)."""
    while True:
        candidate = secrets.token_urlsafe(12) + "-" + str(secrets.randbelow(10))
        try:
            check_password_strength(candidate)
        except InvalidError:
            continue
        return candidate


def reset_password(session: Session, user_id: uuid.UUID, password_hash: str, security: SecuritySettings) -> int:
    """An administrator's reset: store the new hash (made outside the transaction), end every token and
    session of the account and lift its sign-in delay. Returns how many credentials ended."""
    user = _user(session, user_id)
    throttle.clear_account(session, security, user.username)
    return set_password(session, user_id, password_hash)


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


def revoke_token(session: Session, raw: str, owner_id: uuid.UUID) -> bool:
    """Revoke a bearer token of ``owner_id``. A token of anyone else, or none, is left alone and is not an
    error either (RFC 7009 §2.2: the answer must not tell the caller whether a stranger's token exists)."""
    token = session.scalar(select(AccessToken).where(AccessToken.token_hash == digest(raw)))
    if token is None or token.user_id != owner_id:
        return False
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return True


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
    if token.revoked_at is not None or token.expires_at <= utcnow() or not usable(user):
        return None
    return user, token.expires_at


def usable(user: User) -> bool:
    """True when the account may act now: active and not locked (checked on every request, so a lock
    takes effect even for a credential the lock's revocation somehow missed)."""
    return user.is_active and (user.locked_until is None or user.locked_until <= utcnow())


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
    if web_session.revoked_at is not None or web_session.expires_at <= utcnow() or not usable(user):
        return None
    return user


# -- permissions -------------------------------------------------------------------------------------


def load_principal(
    session: Session, user: User, tenant_parents: Mapping[str, str | None], auth_method: str
) -> Principal:
    """Everything needed to decide the user's access: role scopes and the grants to their department."""
    scopes: dict[str, list[Scope]] = {}
    wildcard: list[Scope] = []
    roles: list[str] = []
    rows = session.execute(
        select(RoleAssignment, Role)
        .join(Role, Role.code == RoleAssignment.role_code)
        .where(RoleAssignment.user_id == user.id)
    ).all()
    for assignment, role in rows:
        roles.append(role.code)
        scope = Scope(assignment.tenant_code, assignment.department_code, assignment.include_subtenants)
        if ALL in role.actions:
            wildcard.append(scope)
        for action in implied_by_wildcard() if ALL in role.actions else role.actions:
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
        wildcard=wildcard,
    )


def principal_by_username(session: Session, username: str, auth_method: str = "system") -> Principal | None:
    """The principal of an account by its user name (for seeding, scripts and benchmarks)."""
    from shgov.core.orgs.service import tenant_parents

    user = session.scalar(select(User).where(User.username == username))
    return load_principal(session, user, tenant_parents(session), auth_method) if user is not None else None


ALL = "*"  # a role holding "*" holds every action, including those of modules added later


def checked_actions(actions: Iterable[str]) -> list[str]:
    """``actions`` sorted without duplicates (``["*"]`` when they include it); 422 naming ``actions`` for an
    unknown one."""
    return _check_actions(actions)


def _check_actions(actions: Iterable[str]) -> list[str]:
    result = sorted(set(actions))
    if ALL in result:
        return [ALL]
    unknown = [a for a in result if not is_known_action(a)]
    if unknown:
        raise InvalidError(N_("unknown actions: {actions}"), field="actions", actions=", ".join(unknown))
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
        raise InvalidError(N_("role {role} does not exist"), field="role_code", role=role_code)
    if session.get(User, user_id) is None:
        raise NotFoundError(N_("no such user"))
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


def held_by(session: Session, user_id: uuid.UUID) -> list[tuple[list[str], Scope]]:
    """Each role the user holds: its actions and the scope it was given in."""
    rows = session.execute(
        select(RoleAssignment, Role.actions)
        .join(Role, Role.code == RoleAssignment.role_code)
        .where(RoleAssignment.user_id == user_id)
    ).all()
    return [(list(actions), Scope(a.tenant_code, a.department_code, a.include_subtenants)) for a, actions in rows]


def role_actions(session: Session, role_code: str) -> list[str]:
    """The actions of a role; 422 naming ``role_code`` when there is no such role."""
    role = session.get(Role, role_code)
    if role is None:
        raise InvalidError(N_("role {role} does not exist"), field="role_code", role=role_code)
    return list(role.actions)


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
            raise InvalidError(N_("department {department} does not exist"), field=field, department=code)
    if grantee_department_code == owner_department_code:
        raise InvalidError(N_("a department needs no grant to its own objects"), field="grantee_department_code")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidError(N_("the expiry is in the past"), field="expires_at")
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
        raise NotFoundError(N_("no such access grant"))
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

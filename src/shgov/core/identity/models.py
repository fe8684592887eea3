"""Identity and permission tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shgov.core.db import Base, TimestampMixin, UUIDKeyMixin
from shgov.core.numbers import BigInt

USER_KINDS = ("citizen", "enterprise", "staff", "client")
# How a person's identity (身份证号 / 统一社会信用代码) came to be bound to an account: an identity provider's
# claim, an in-person proofing step at a window, or the demo seed / trusted in-process code.
IDENTITY_SOURCES = ("oidc", "proofing", "seed", "system")


class User(UUIDKeyMixin, TimestampMixin, Base):
    """A person, an enterprise account, a staff member or a system client (client_id = username)."""

    __tablename__ = "users"

    kind: Mapped[str] = mapped_column(String(12), index=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    # argon2 hash of the password (or of the client secret); None when the user signs in only via OIDC.
    secret_hash: Mapped[str | None] = mapped_column(String(200))
    tenant_code: Mapped[str | None] = mapped_column(ForeignKey("tenants.code"), index=True)
    department_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"), index=True)
    id_number: Mapped[str | None] = mapped_column(String(18), unique=True)
    credit_code: Mapped[str | None] = mapped_column(String(18), index=True)
    phone: Mapped[str | None] = mapped_column(String(20))
    oidc_subject: Mapped[str | None] = mapped_column(String(200), unique=True)
    # Who proved the identity above (see IDENTITY_SOURCES), when, and the clerk who checked the document.
    identity_source: Mapped[str | None] = mapped_column(String(20))
    identity_bound_at: Mapped[datetime | None]
    identity_bound_by: Mapped[uuid.UUID | None]
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set by an administrator (lock); sign-in failures slow down (SigninThrottle), they never lock.
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    # TOTP second factor (staff): the secret sealed with AES-GCM under a key derived from the app's secret
    # key; confirmed once the holder typed a code; the last accepted time step (a code works only once).
    totp_secret: Mapped[str | None] = mapped_column(String(200))
    totp_confirmed_at: Mapped[datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(BigInt)


class Role(TimestampMixin, Base):
    """A named set of actions — data, edited by administrators."""

    __tablename__ = "roles"

    code: Mapped[str] = mapped_column(String(60), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120), default="")
    actions: Mapped[list[str]] = mapped_column(JSON)


class RoleAssignment(UUIDKeyMixin, TimestampMixin, Base):
    """A role given to a user within a scope: everywhere, a tenant (optionally with its sub-tenants),
    or one department."""

    __tablename__ = "role_assignments"
    __table_args__ = (UniqueConstraint("user_id", "role_code", "tenant_code", "department_code"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role_code: Mapped[str] = mapped_column(ForeignKey("roles.code"))
    tenant_code: Mapped[str | None] = mapped_column(ForeignKey("tenants.code"))
    department_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"))
    include_subtenants: Mapped[bool] = mapped_column(Boolean, default=False)


class AccessGrant(UUIDKeyMixin, TimestampMixin, Base):
    """Lets one department act on another department's objects, for some actions, until it expires."""

    __tablename__ = "access_grants"

    grantee_department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"), index=True)
    owner_department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"), index=True)
    actions: Mapped[list[str]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(500), default="")
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AccessToken(UUIDKeyMixin, Base):
    """An API bearer token (stored as its SHA-256 only)."""

    __tablename__ = "access_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    grant_type: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class WebSession(UUIDKeyMixin, Base):
    """A signed-in browser (the cookie holds a random value; the table its SHA-256)."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str] = mapped_column(String(300), default="")


class SigninThrottle(Base):
    """Sign-in failures counted per key (an address, an account at an address, an account anywhere), shared
    by every server process; the key is stored as its SHA-256 so that no typed name is kept."""

    __tablename__ = "signin_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(BigInt, default=0)
    last_failure_at: Mapped[datetime | None]
    blocked_until: Mapped[datetime | None]

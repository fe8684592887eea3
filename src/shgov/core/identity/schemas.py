"""Request and response models of the identity API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shgov.core.ids import CreditCode, IdNumber, MobilePhone


class TokenOut(BaseModel):
    """An OAuth 2.0 access-token response (RFC 6749 §5.1)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int


class UserOut(BaseModel):
    """An account as the caller may see it (personal data masked unless authorised)."""

    id: uuid.UUID
    kind: str
    username: str
    display_name: str
    tenant_code: str | None
    department_code: str | None
    id_number: str | None
    credit_code: str | None
    phone: str | None
    is_active: bool
    locked_until: datetime | None
    roles: list[str] = []
    masked: bool
    # How the identity above was proven (oidc | proofing | seed | system), None while there is none.
    identity_source: str | None = None
    second_factor: bool = False


class MeOut(UserOut):
    """The caller, with the actions they hold."""

    actions: list[str]


class UserCreate(BaseModel):
    """A new account. It carries no 身份证号 or credit code: those are bound only by an identity provider or
    an in-person proofing step (``POST /identity/users/{id}/identity``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["citizen", "enterprise", "staff"]
    username: str = Field(min_length=3, max_length=80, pattern=r"^[A-Za-z0-9_.@\-]+$")
    display_name: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=200)
    tenant_code: str | None = None
    department_code: str | None = None
    phone: MobilePhone | None = None


DocumentType = Literal["resident_id_card", "temporary_id_card", "business_licence"]


class IdentityProofIn(BaseModel):
    """A clerk's record of checking a person's (or an enterprise's) original document in person."""

    model_config = ConfigDict(extra="forbid")

    id_number: IdNumber | None = None
    credit_code: CreditCode | None = None
    # as printed on the document (the person's or the enterprise's name): compared with the base register
    name: str = Field(min_length=1, max_length=100)
    document_type: DocumentType
    # The clerk confirms they held the original and compared its photo with the person at the window.
    document_checked: Literal[True]
    reason: str = Field(min_length=2, max_length=500)


class ReasonIn(BaseModel):
    """Why an administrator did something to another account (kept in the audit log)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=2, max_length=500)


class LockIn(ReasonIn):
    """Lock an account for a while (its tokens and sessions end now)."""

    minutes: int = Field(default=60, ge=1, le=366 * 24 * 60)


class PasswordChange(BaseModel):
    """A new password for the caller's own account (every token and session of it ends)."""

    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=200)


class TotpEnrolment(BaseModel):
    """A new TOTP secret, shown this once: type it or scan the QR code, then confirm with a code."""

    secret: str
    otpauth_uri: str
    qr_svg: str


class TotpCode(BaseModel):
    """A code from the authenticator."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=6, max_length=8, pattern=r"^[0-9 ]+$")


class TotpOff(BaseModel):
    """Turn one's own second factor off: a current code, or the account's password."""

    model_config = ConfigDict(extra="forbid")

    code: str | None = Field(default=None, min_length=6, max_length=8, pattern=r"^[0-9 ]+$")
    password: str | None = Field(default=None, min_length=1, max_length=200)


class PasswordReset(BaseModel):
    """An administrator's password reset: the temporary password, shown this once (hand it over in person)."""

    temporary_password: str
    credentials_ended: int


class ClientCreate(BaseModel):
    """A new system client (client-credentials flow)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    tenant_code: str
    department_code: str | None = None


class ClientCreated(BaseModel):
    """The new client's credentials — the secret is shown only this once."""

    client_id: str
    client_secret: str
    user_id: uuid.UUID


class AssignmentIn(BaseModel):
    """A role to give, and where it applies."""

    model_config = ConfigDict(extra="forbid")

    role_code: str
    tenant_code: str | None = None
    department_code: str | None = None
    include_subtenants: bool = False


class AssignmentOut(AssignmentIn):
    """A role assignment."""

    id: uuid.UUID
    user_id: uuid.UUID


class RoleIn(BaseModel):
    """A role's name and actions."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    name_en: str = ""
    actions: list[str]


class RoleOut(RoleIn):
    """A role."""

    code: str


class ActionOut(BaseModel):
    """A permission that roles can hold."""

    name: str
    description: str


class GrantIn(BaseModel):
    """Access for one department to another department's objects."""

    model_config = ConfigDict(extra="forbid")

    grantee_department_code: str
    owner_department_code: str
    actions: list[str] = Field(min_length=1)
    expires_at: datetime | None = None
    reason: str = Field(default="", max_length=500)


class GrantOut(GrantIn):
    """A grant."""

    id: uuid.UUID
    revoked_at: datetime | None
    created_at: datetime


class DepartmentOut(BaseModel):
    """A department."""

    code: str
    key: str
    name: str
    short_name: str
    tenant_code: str
    counterpart_code: str | None


class TenantOut(BaseModel):
    """A tenant (the city or a district)."""

    code: str
    name: str
    kind: str

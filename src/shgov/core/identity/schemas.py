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


class MeOut(UserOut):
    """The caller, with the actions they hold."""

    actions: list[str]


class UserCreate(BaseModel):
    """A new account."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["citizen", "enterprise", "staff"]
    username: str = Field(min_length=3, max_length=80, pattern=r"^[A-Za-z0-9_.@\-]+$")
    display_name: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=200)
    tenant_code: str | None = None
    department_code: str | None = None
    id_number: IdNumber | None = None
    credit_code: CreditCode | None = None
    phone: MobilePhone | None = None


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

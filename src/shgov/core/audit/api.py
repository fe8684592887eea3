"""The audit API: read records within the caller's tenants, and verify the chain."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import or_, select
from starlette.requests import Request

from shgov.core.audit.chain import search_form
from shgov.core.audit.models import AuditRecord
from shgov.core.audit.service import current
from shgov.core.audit.verify import verify_chain
from shgov.core.deps import SessionDep
from shgov.core.http import JsonRoute
from shgov.core.identity import permissions as perm
from shgov.core.identity.deps import audit, require_action
from shgov.core.identity.permissions import Principal

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], route_class=JsonRoute)


class AuditRecordOut(BaseModel):
    """One audit record (details are stored masked; a personal object id as its keyed digest ``h:…``)."""

    seq: int
    id: uuid.UUID
    ts: datetime
    actor_id: str | None
    actor_name: str
    tenant_code: str | None
    department_code: str | None
    action: str
    object_type: str | None
    object_id: str | None
    outcome: str
    ip: str | None
    details: dict[str, Any]
    hash: str


class FindingOut(BaseModel):
    """One thing wrong with the log: what (``kind``), from which record to which, in English and Chinese."""

    kind: str
    seq: int | None
    last_seq: int | None
    en: str
    zh: str


class VerificationOut(BaseModel):
    """The result of walking the chain and comparing its end with the signed checkpoints."""

    ok: bool
    checked: int
    first_broken_seq: int | None
    reason: str
    findings: list[FindingOut]
    checkpoints: int
    last_checkpoint_seq: int | None


@router.get("/records", response_model=list[AuditRecordOut])
def records(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_action(perm.AUDIT_READ))],
    action: str | None = None,
    object_id: str | None = None,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditRecordOut]:
    """Newest first; auditors of a tenant see that tenant's records only. ``object_id`` may be a person's
    身份证号 or phone or a credit code: it is digested the way such ids are stored."""
    query = select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(limit)
    tenants = principal.tenants_for(perm.AUDIT_READ)
    if tenants is not None:
        named = AuditRecord.tenant_code.in_([t for t in tenants if t is not None])
        # Records of no tenant (anonymous sign-in attempts, platform acts) belong to the city level.
        query = query.where(
            or_(named, AuditRecord.tenant_code.is_(None)) if principal.city_wide(perm.AUDIT_READ) else named
        )
    if action:
        query = query.where(AuditRecord.action == action)
    if object_id:
        query = query.where(AuditRecord.object_id == search_form(current().key, object_id))
    if before_seq:
        query = query.where(AuditRecord.seq < before_seq)
    rows = [AuditRecordOut.model_validate(r, from_attributes=True) for r in session.scalars(query)]
    audit(request, principal, "audit.log.read", details={"count": len(rows), "action": action})
    return rows


@router.post("/verify", response_model=VerificationOut)
def verify(
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_action(perm.AUDIT_VERIFY))],
) -> VerificationOut:
    """Walk the whole chain, and compare its end with the signed checkpoints."""
    result = verify_chain(session)
    audit(
        request,
        principal,
        "audit.log.verify",
        outcome="ok" if result.ok else "failed",
        details={"checked": result.checked, "first_broken_seq": result.first_broken_seq},
    )
    findings = [FindingOut(**vars(f)) for f in result.findings]
    return VerificationOut(**{**vars(result), "findings": findings})

"""Who may see a register record: the one rule per kind the API (and any other reader) checks records with."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shgov.core.identity.permissions import Principal
from shgov.registers import service as registers


def _in_district(principal: Principal, action: str, record: dict[str, Any]) -> bool:
    # A record belongs to the district it is registered in; city-wide roles see all of them.
    return principal.allows(action, record.get("district_code") or None) or principal.allows(action, None)


def may_see_person(session: Session, principal: Principal, record: dict[str, Any]) -> bool:
    """A person's record is seen by those who read persons in its district (or city-wide)."""
    return _in_district(principal, registers.PERSON_READ, record)


def may_see_enterprise(session: Session, principal: Principal, record: dict[str, Any]) -> bool:
    """An enterprise's record is seen by those who read enterprises in its district (or city-wide)."""
    return _in_district(principal, registers.ENTERPRISE_READ, record)

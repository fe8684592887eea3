"""The registers API: lookups for other modules and departments, builds, conflicts and coverage."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request

from shgov.core.deps import SessionDep, SettingsDep
from shgov.core.errors import Problem
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_
from shgov.core.identity.deps import access, audit, require_action
from shgov.core.identity.permissions import Principal
from shgov.core.regions.api import get_region_index
from shgov.core.regions.service import RegionIndex
from shgov.registers import service as registers
from shgov.registers.access import may_see_enterprise, may_see_person
from shgov.registers.elements import REGISTERS, coverage
from shgov.registers.schemas import (
    BatchIn,
    BuildOut,
)

router = APIRouter(prefix="/api/v1/registers", tags=["registers"], route_class=JsonRoute)


def get_reader(settings: SettingsDep) -> registers.RegisterReader:
    """The process's register reader for the configured lake."""
    return registers.shared_reader(settings.lake_dir)


ReaderDep = Annotated[registers.RegisterReader, Depends(get_reader)]
FieldsQuery = Annotated[str | None, Query(description="comma-separated element names; all when omitted")]


def _fields(raw: str | None) -> list[str] | None:
    return [f.strip() for f in raw.split(",") if f.strip()] if raw else None


@router.get("/persons/{id_number}")
def person(
    request: Request,
    session: SessionDep,
    reader: ReaderDep,
    id_number: str,
    principal: Annotated[Principal, Depends(require_action(registers.PERSON_READ))],
    fields: FieldsQuery = None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """A person's record from the 自然人 register (audited)."""
    wanted = _fields(fields)
    record = registers.find_person(session, reader, id_number, [*wanted, "district_code"] if wanted else None, as_of)
    record = access(session, principal, record, may_see_person)
    audit(
        request,
        principal,
        "registers.person.read",
        object_type="person",
        object_id=id_number,
        details={"fields": wanted or "all", "as_of": as_of.isoformat() if as_of else None},
    )
    return {k: v for k, v in record.items() if not wanted or k in wanted or k == "id_number"}


@router.post("/persons/batch")
def persons(
    request: Request,
    session: SessionDep,
    reader: ReaderDep,
    body: BatchIn,
    principal: Annotated[Principal, Depends(require_action(registers.PERSON_READ))],
) -> list[dict[str, Any]]:
    """Several persons at once; unknown or invisible ones are left out (audited once, with the count)."""
    fields = [*body.fields, "district_code"] if body.fields else None
    rows = [
        r
        for r in registers.get_persons(session, reader, body.keys, fields, body.as_of)
        if may_see_person(session, principal, r)
    ]
    audit(
        request,
        principal,
        "registers.person.read",
        object_type="person",
        details={"asked": len(body.keys), "returned": len(rows), "fields": body.fields or "all"},
    )
    return [{k: v for k, v in r.items() if not body.fields or k in body.fields or k == "id_number"} for r in rows]


@router.get("/enterprises/{credit_code}")
def enterprise(
    request: Request,
    session: SessionDep,
    reader: ReaderDep,
    credit_code: str,
    principal: Annotated[Principal, Depends(require_action(registers.ENTERPRISE_READ))],
    fields: FieldsQuery = None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """An enterprise's record from the 法人 register."""
    wanted = _fields(fields)
    record = registers.find_enterprise(
        session, reader, credit_code, [*wanted, "district_code"] if wanted else None, as_of
    )
    record = access(session, principal, record, may_see_enterprise)
    audit(request, principal, "registers.enterprise.read", object_type="enterprise", object_id=credit_code)
    return {k: v for k, v in record.items() if not wanted or k in wanted or k == "credit_code"}


@router.get("/licences")
def licences(
    request: Request,
    session: SessionDep,
    reader: ReaderDep,
    holder: Annotated[str, Query(min_length=1, max_length=40)],
    principal: Annotated[Principal, Depends(require_action(registers.LICENCE_READ))],
) -> list[dict[str, Any]]:
    """The e-licences of a holder (a person's 身份证号, a household number or a credit code)."""
    if not principal.city_wide(registers.LICENCE_READ):
        raise Problem(
            "forbidden", detail=N_("E-licences are read with a city-level role (or through a sharing grant).")
        )
    rows = registers.licences_of(session, reader, holder)
    audit(
        request,
        principal,
        "registers.licence.read",
        object_type="holder",
        object_id=holder,
        details={"count": len(rows)},
    )
    return rows


@router.get("/addresses")
def address(
    session: SessionDep,
    reader: ReaderDep,
    text: Annotated[str, Query(min_length=2, max_length=300)],
    principal: Annotated[Principal, Depends(require_action(registers.PERSON_READ))],
) -> dict[str, Any]:
    """Where an address of the registers lies (the 空间地理 register)."""
    record = registers.address(session, reader, text)
    if record is None:
        raise Problem("not-found", detail=N_("The address is not in the register."))
    return record


@router.post("/{register}/builds", response_model=BuildOut, status_code=201)
def build(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    register: str,
    principal: Annotated[Principal, Depends(require_action(registers.BUILD))],
) -> BuildOut:
    """Build a new version of a register from the lake's live versions."""
    if not principal.city_wide(registers.BUILD):
        raise Problem("forbidden", detail=N_("Registers are built city-wide: this needs a city-level role."))
    if register not in (*REGISTERS, "licence", "address"):
        raise Problem("not-found", detail=N_("No register {register}."), params={"register": register})
    result = registers.build(session, settings.lake_dir, register, principal.username)
    audit(
        request,
        principal,
        "registers.register.build",
        object_type="register",
        object_id=register,
        details={"version": result.version, "rows": result.rows, "changed": result.changed},
    )
    return BuildOut(**vars(result))


@router.post("/address/grids", status_code=201)
def derive_grids(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    index: Annotated[RegionIndex, Depends(get_region_index)],
    principal: Annotated[Principal, Depends(require_action(registers.BUILD))],
) -> dict[str, Any]:
    """Lay the management grid over the geocoded addresses (cells that are grids already are kept);
    rebuild the address register afterwards to place addresses in the new grids."""
    if not principal.city_wide(registers.BUILD):
        raise Problem("forbidden", detail=N_("Grids are laid city-wide: this needs a city-level role."))
    plan = registers.derive_grids(session, settings.lake_dir, index)
    audit(
        request,
        principal,
        "registers.grids.derive",
        object_type="register",
        object_id="address",
        details={"created": plan.created, "existing": plan.existing, "refused": len(plan.refused)},
    )
    return {"created": plan.created, "existing": plan.existing, "refused": plan.refused}


@router.get("/{register}/builds", response_model=list[BuildOut])
def builds(
    session: SessionDep,
    register: str,
    principal: Annotated[Principal, Depends(require_action(registers.CONFLICT_READ))],
) -> list[BuildOut]:
    """The builds of a register, newest first, with per-element lineage and conflict counts."""
    return [BuildOut.model_validate(r, from_attributes=True) for r in registers.list_builds(session, register)]


@router.get("/{register}/conflicts")
def conflict_list(
    session: SessionDep,
    settings: SettingsDep,
    register: str,
    principal: Annotated[Principal, Depends(require_action(registers.CONFLICT_READ))],
    element: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Records where another department disagrees with the authoritative source; a department sees
    the conflicts on the elements it is the source of, city-level roles see all."""
    latest = registers.latest_build(session, register)
    if latest is None:
        raise Problem(
            "not-found", detail=N_("The {register} register has not been built."), params={"register": register}
        )
    city = principal.city_wide(registers.CONFLICT_READ)
    departments = None if city else principal.departments_for(registers.CONFLICT_READ)
    total, rows = registers.conflicts(settings.lake_dir, register, latest.version, element, departments, offset, limit)
    return {"version": latest.version, "total": total, "counts": latest.conflicts, "rows": rows}


@router.get("/coverage")
def coverage_figure(
    principal: Annotated[Principal, Depends(require_action(registers.CONFLICT_READ))],
) -> dict[str, Any]:
    """Share of register elements with an authoritative source (一数一源 coverage; target ≥ 80 %)."""
    return {
        "coverage_percent": coverage(),
        "elements": {
            code: [
                {
                    "name": e.name,
                    "source": list(e.source) if e.source else None,
                    "references": [list(r) for r in e.references],
                    "description": e.description,
                }
                for e in reg.elements
            ]
            for code, reg in REGISTERS.items()
        },
    }

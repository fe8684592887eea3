"""The benefits API: write, check, test, dry-run, activate and run policies (managers); a holder's own
grants and explanations, decline and appeal; reversal by staff."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from shgov.benefits import service as benefits
from shgov.benefits.models import BenefitGrant
from shgov.benefits.schemas import (
    DryRunOut,
    GrantOut,
    PolicyIn,
    PolicyOut,
    ReasonIn,
    RunIn,
    RunOut,
    TraceLineOut,
    TraceOut,
    VersionOut,
)
from shgov.core.calendar.service import city_today
from shgov.core.deps import SessionDep, SettingsDep
from shgov.core.errors import ForbiddenError, NotFoundError
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_
from shgov.core.identity.deps import CurrentPrincipal, audit, require_action
from shgov.core.identity.permissions import Principal

router = APIRouter(prefix="/api/v1/benefits", tags=["benefits"], route_class=JsonRoute)
Manager = Annotated[Principal, Depends(require_action(benefits.MANAGE))]


def _policy_out(session: SessionDep, found: benefits.Found, with_versions: bool) -> PolicyOut:
    policy = found.policy
    return PolicyOut(
        code=policy.code,
        name=policy.name,
        target=policy.target,
        department_code=policy.department_code,
        latest_version=policy.latest_version,
        active_version=policy.active_version,
        current=VersionOut.model_validate(found.version),
        versions=[VersionOut.model_validate(v) for v in benefits.versions_of(session, policy.code)]
        if with_versions
        else [],
    )


def _managing(principal: Principal, found: benefits.Found) -> None:
    if not principal.allows(benefits.MANAGE, None, found.policy.department_code):
        raise ForbiddenError(N_("This policy belongs to another department"))


def _trace_out(trace: benefits.Trace) -> TraceOut:
    data = trace.as_json()
    return TraceOut(
        code=trace.code,
        name=trace.name,
        version=trace.version,
        as_of=trace.as_of,
        found=trace.found,
        in_force=trace.in_force,
        eligible=trace.eligible,
        missing=trace.missing,
        amount_fen=trace.amount_fen,
        amount=trace.amount_text,
        conditions=[TraceLineOut(text=line.text, outcome=line.outcome) for line in trace.lines],
        values=data["values"],
    )


@router.get("/schema")
def schema(session: SessionDep, _principal: Manager) -> dict[str, Any]:
    """The fields and relations a policy may use, per target, with their types and descriptions."""
    found = benefits.register_schema(session)
    return {
        target: {
            "key": entity.key,
            "fields": {f: {"type": t, "description": entity.descriptions.get(f, "")} for f, t in entity.fields.items()},
            "relations": {
                r: {"target": rel.target, "description": rel.description} for r, rel in entity.relations.items()
            },
        }
        for target, entity in found.entities.items()
    }


@router.get("/policies")
def list_policies(session: SessionDep, principal: CurrentPrincipal) -> list[PolicyOut]:
    """Active policies for everyone signed in; managers also see drafts and retired ones."""
    managing = principal.has_action(benefits.MANAGE)
    out = []
    for policy in benefits.list_policies(session):
        if policy.active_version is None and not managing:
            continue
        out.append(_policy_out(session, benefits.get_version(session, policy.code), False))
    return out


@router.post("/policies", status_code=201)
def save_policy(request: Request, body: PolicyIn, session: SessionDep, principal: Manager) -> PolicyOut:
    """Check a policy and save it as its next version (refused with the field, line and column of an error)."""
    if not principal.allows(benefits.MANAGE, None, body.department_code):
        raise ForbiddenError(N_("You may only write policies of your own department"))
    spec = benefits.PolicySpec(**body.model_dump())
    version = benefits.save_policy(session, benefits.register_schema(session), spec, principal.username)
    audit(request, principal, "benefits.policy.save", object_type="benefit_policy", object_id=body.code)
    return _policy_out(session, benefits.get_version(session, body.code, version.version), True)


@router.get("/policies/{code}")
def get_policy(code: str, session: SessionDep, principal: CurrentPrincipal) -> PolicyOut:
    """A policy (its active version, or for managers the latest and every version)."""
    found = benefits.get_version(session, code)
    managing = principal.allows(benefits.MANAGE, None, found.policy.department_code)
    if found.policy.active_version is None and not managing:
        raise NotFoundError(N_("no policy {code!r}"), field="code", code=code)
    return _policy_out(session, found, managing)


@router.post("/policies/{code}/versions/{version}/activate")
def activate(request: Request, code: str, version: int, session: SessionDep, principal: Manager) -> PolicyOut:
    """Make a version the one that runs."""
    _managing(principal, benefits.get_version(session, code, version))
    benefits.activate(session, code, version)
    audit(request, principal, "benefits.policy.activate", object_type="benefit_policy", object_id=code)
    return _policy_out(session, benefits.get_version(session, code), True)


@router.post("/policies/{code}/retire")
def retire(request: Request, code: str, session: SessionDep, principal: Manager) -> PolicyOut:
    """Stop a policy (grants already made stay)."""
    _managing(principal, benefits.get_version(session, code))
    benefits.retire(session, code)
    audit(request, principal, "benefits.policy.retire", object_type="benefit_policy", object_id=code)
    return _policy_out(session, benefits.get_version(session, code), True)


@router.get("/policies/{code}/dry-run")
def dry_run(
    code: str,
    session: SessionDep,
    settings: SettingsDep,
    principal: Manager,
    version: Annotated[int | None, Query(ge=1)] = None,
    as_of: date | None = None,
) -> DryRunOut:
    """How many would qualify and for how much, without granting anything."""
    _managing(principal, benefits.get_version(session, code, version))
    result = benefits.dry_run(session, settings.lake_dir, code, as_of or city_today(), version)
    return DryRunOut(**{**result.__dict__, "within_budget": result.within_budget})


@router.get("/policies/{code}/explain")
def explain(
    request: Request,
    code: str,
    session: SessionDep,
    settings: SettingsDep,
    principal: Manager,
    key: Annotated[str, Query(min_length=1, max_length=40)],
    version: Annotated[int | None, Query(ge=1)] = None,
    as_of: date | None = None,
) -> TraceOut:
    """Test a policy against one person or enterprise: each condition, the values it saw, the amount.
    Reads register data, so every call is audited."""
    _managing(principal, benefits.get_version(session, code, version))
    trace = benefits.explain(session, settings.lake_dir, code, key, as_of or city_today(), version)
    audit(
        request,
        principal,
        "benefits.policy.explain",
        object_type="benefit_policy",
        object_id=code,
        details={"entity_key": key},
    )
    return _trace_out(trace)


@router.post(
    "/policies/{code}/runs",
    status_code=201,
    responses={202: {"description": "A run over the whole population, queued; follow `Location`", "model": RunOut}},
)
def run(
    request: Request,
    response: Response,
    code: str,
    body: RunIn,
    session: SessionDep,
    settings: SettingsDep,
    principal: Manager,
) -> RunOut:
    """Run the active version: grant or invite every qualifying entity not yet served this period.

    A run over the whole population is queued and answered ``202 Accepted`` with the run (status
    ``queued``) and a ``Location`` to follow it: it is written in short transactions outside the request, so
    that it never holds the database's writer. A run for a few ``keys`` is done in the request (``201``)."""
    _managing(principal, benefits.get_version(session, code))
    as_of = body.as_of or city_today()
    if body.keys is None:
        record = benefits.request_run(session, code, as_of, principal.username)
        response.status_code = 202
        response.headers["Location"] = f"{router.prefix}/policies/{code}/runs/{record.id}"
    else:
        record = benefits.run(session, settings.lake_dir, code, as_of, keys=body.keys)
    audit(
        request,
        principal,
        "benefits.policy.run",
        object_type="benefit_policy",
        object_id=code,
        details={"run_id": str(record.id), "as_of": as_of.isoformat(), "queued": body.keys is None},
    )
    return RunOut.model_validate(record)


@router.get("/policies/{code}/runs/{run_id}")
def run_status(code: str, run_id: uuid.UUID, session: SessionDep, principal: Manager) -> RunOut:
    """A run's status (``queued``, ``running``, ``done``, ``failed``, ``stopped``) and its counts so far."""
    found = benefits.get_version(session, code)
    record = benefits.get_run(session, run_id)
    if record.policy_code != code or not principal.allows(benefits.MANAGE, None, found.policy.department_code):
        raise NotFoundError(N_("no such run"), field="run_id")  # another department's runs are not told
    return RunOut.model_validate(record)


def _holder(session: SessionDep, principal: Principal) -> tuple[str, str]:
    holder = benefits.holder_key(session, principal)
    if holder is None:
        raise ForbiddenError(N_("only a citizen or an enterprise account has benefits"))
    return holder


@router.get("/mine")
def mine(session: SessionDep, principal: CurrentPrincipal) -> list[GrantOut]:
    """The caller's grants and invitations, newest first."""
    target, key = _holder(session, principal)
    return [GrantOut.model_validate(g) for g in benefits.grants_for(session, target, key)]


@router.get("/mine/{code}/explain")
def explain_mine(code: str, session: SessionDep, settings: SettingsDep, principal: CurrentPrincipal) -> TraceOut:
    """为什么我符合/不符合 an active policy."""
    target, key = _holder(session, principal)
    found = benefits.get_version(session, code)
    if found.policy.active_version is None or found.policy.target != target:
        raise NotFoundError(N_("no policy {code!r} for you"), field="code", code=code)
    return _trace_out(benefits.explain(session, settings.lake_dir, code, key, city_today()))


def _stepped(request: Request, principal: Principal, action: str, grant: BenefitGrant) -> GrantOut:
    audit(request, principal, f"benefits.grant.{action}", object_type="benefit_grant", object_id=str(grant.id))
    return GrantOut.model_validate(grant)


@router.post("/grants/{grant_id}/decline")
def decline(
    request: Request, grant_id: uuid.UUID, body: ReasonIn, session: SessionDep, principal: CurrentPrincipal
) -> GrantOut:
    """The holder does not want it."""
    return _stepped(request, principal, "decline", benefits.decline(session, principal, grant_id, body.reason))


@router.post("/grants/{grant_id}/appeal")
def appeal(
    request: Request, grant_id: uuid.UUID, body: ReasonIn, session: SessionDep, principal: CurrentPrincipal
) -> GrantOut:
    """The holder disputes it; staff look again."""
    return _stepped(request, principal, "appeal", benefits.appeal(session, principal, grant_id, body.reason))


@router.post("/grants/{grant_id}/uphold")
def uphold(
    request: Request,
    grant_id: uuid.UUID,
    body: ReasonIn,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_action(benefits.REVERSE))],
) -> GrantOut:
    """Staff answer an appeal by keeping the grant, with the reason."""
    return _stepped(request, principal, "uphold", benefits.uphold(session, principal, grant_id, body.reason))


@router.post("/grants/{grant_id}/reverse")
def reverse(
    request: Request,
    grant_id: uuid.UUID,
    body: ReasonIn,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require_action(benefits.REVERSE))],
) -> GrantOut:
    """Staff take a grant back with the reason."""
    return _stepped(request, principal, "reverse", benefits.reverse(session, principal, grant_id, body.reason))

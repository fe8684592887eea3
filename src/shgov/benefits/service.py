"""免申即享 and 政策找人: policies saved as checked, versioned text; evaluated by DuckDB over the live registers
(the whole population, or one entity with the reasons); runs that grant each qualifying entity at most once
per period within the budget; the grant's history (decline, appeal, reverse)."""

from __future__ import annotations

import calendar
import hashlib
import itertools
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from shgov.benefits import evaluation, events, language
from shgov.benefits.evaluation import Registers
from shgov.benefits.language import Checked, Compiled, Dates, Entity, PolicyError, Relation, Schema, Source
from shgov.benefits.models import BenefitGrant, GrantEvent, Policy, PolicyRun, PolicyVersion
from shgov.core.calendar.service import city_today
from shgov.core.db import Database, utcnow
from shgov.core.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from shgov.core.events import Event, emit
from shgov.core.i18n import N_
from shgov.core.identity.permissions import SYSTEM_ACTOR, Principal, register_action
from shgov.core.identity.service import accounts_by_key, add_actions_to_role, find_user
from shgov.core.notify import Notice, notify
from shgov.core.settings import Settings
from shgov.registers import service as registers
from shgov.registers.events import RecordChanged, RegisterRebuilt

log = logging.getLogger("shgov.benefits")

MANAGE = register_action("benefits.policy.manage", N_("Write, test, activate and run benefit policies"))
REVERSE = register_action("benefits.grant.reverse", N_("Reverse a benefit grant, with the reason"))

TARGETS: dict[str, str] = {"person": "person", "enterprise": "enterprise"}  # policy target → register
MODES: dict[str, str] = {
    "auto": N_("granted without application"),
    "invite": N_("invitation to apply"),
    "apply": N_("on application"),
}
PERIODS: dict[str, str] = {"once": N_("once"), "year": N_("once a year"), "month": N_("once a month")}
KINDS: dict[str, language.Type] = {"string": "text", "integer": "int", "number": "decimal", "date": "date"}
CODE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
LIVE = ("granted", "invited", "appealed")  # grants that count towards the budget


# -- the schema policies are written against ------------------------------------------------------------


def register_schema(session: Session) -> Schema:
    """The persons and enterprises of the registers as the policy language sees them: every element with an
    authoritative source, typed from its lake column; a person's household (同户成员, the person included)."""
    entities = {}
    for target, register in TARGETS.items():
        kinds = registers.element_kinds(session, register)
        fields = {name: KINDS[kind] for name, (kind, _d) in kinds.items() if kind in KINDS}
        descriptions = {name: description for name, (_k, description) in kinds.items()}
        relations = (
            {"household": Relation("person", "household_no", "household_no", "同户成员（含本人）")}
            if target == "person"
            else {
                "legal_representative": Relation(
                    "person", "legal_representative_id", "id_number", "法定代表人", one=True
                )
            }
        )
        key = registers.REGISTERS[register].key
        entities[target] = Entity(target, key, fields, relations, descriptions)
    return Schema(entities)


# -- writing policies -----------------------------------------------------------------------------------


@dataclass
class PolicySpec:
    """What an officer writes: the policy's text and settings (saved as a new version)."""

    code: str
    name: str
    target: str
    department_code: str
    legal_basis: str
    mode: str
    period: str
    effective_from: date
    effective_to: date | None
    conditions: list[str]
    amount: str = "0"
    budget_fen: int | None = None

    @property
    def source(self) -> Source:
        """What the language checks: the target, conditions and amount."""
        return _source(self.code, self.target, self.conditions, self.amount)


def _source(code: str, target: str, conditions: list[str], amount: str) -> Source:
    return Source(code, target, tuple(conditions), amount or "0")


def _resolver(session: Session) -> language.Resolver:
    """Other policies by code, as their latest saved text."""

    def resolve(code: str) -> Source | None:
        found = latest_version(session, code)
        return _source(code, found.policy.target, found.version.conditions, found.version.amount) if found else None

    return resolve


def check_spec(session: Session, schema: Schema, spec: PolicySpec) -> Checked:
    """Check a policy before it is saved; a problem is an InvalidError naming the field (``conditions[0]``,
    ``amount``, …) with the line and column of the error in the text."""
    if not CODE.match(spec.code):
        raise InvalidError(
            N_("The code is 2–40 lowercase letters, digits or underscores, starting with a letter"), field="code"
        )
    if not spec.name.strip():
        raise InvalidError(N_("Please enter the policy name"), field="name")
    if spec.target not in TARGETS:
        raise InvalidError(N_("target must be one of {choices}"), field="target", choices=", ".join(TARGETS))
    if spec.mode not in MODES:
        raise InvalidError(N_("mode must be one of {choices}"), field="mode", choices=", ".join(MODES))
    if spec.period not in PERIODS:
        raise InvalidError(N_("period must be one of {choices}"), field="period", choices=", ".join(PERIODS))
    if not spec.legal_basis.strip():
        raise InvalidError(N_("Please enter the legal basis (the document and its article)"), field="legal_basis")
    if spec.effective_to is not None and spec.effective_to < spec.effective_from:
        raise InvalidError(N_("The end of the validity period is before its start"), field="effective_to")
    if spec.budget_fen is not None and spec.budget_fen < 0:
        raise InvalidError(N_("The budget cannot be negative"), field="budget_fen")
    if not spec.conditions:
        raise InvalidError(N_("At least one condition is needed"), field="conditions")
    try:
        return language.check(schema, spec.source, _resolver(session))
    except PolicyError as exc:
        part = exc.part
        name = "amount" if part == "amount" else f"conditions[{int(part.split()[-1]) - 1}]" if part else "target"
        if not exc.line:  # the target: the error says all there is to say
            exc.field = name
            raise
        raise InvalidError(
            N_("line {line}, column {column}: {reason}"), field=name, line=exc.line, column=exc.column, reason=exc
        ) from exc


def save_policy(session: Session, schema: Schema, spec: PolicySpec, actor: str) -> PolicyVersion:
    """Check a policy and save it as its next version (the first saves the policy as a draft)."""
    check_spec(session, schema, spec)
    policy = session.get(Policy, spec.code)
    if policy is None:
        policy = Policy(
            code=spec.code, name=spec.name, target=spec.target, department_code=spec.department_code, latest_version=0
        )
        session.add(policy)
    elif policy.target != spec.target:
        raise InvalidError(
            N_("the policy is about {target}; its target cannot change"), field="target", target=policy.target
        )
    policy.name, policy.department_code = spec.name, spec.department_code
    policy.latest_version += 1
    version = PolicyVersion(
        policy_code=spec.code,
        version=policy.latest_version,
        name=spec.name,
        legal_basis=spec.legal_basis,
        mode=spec.mode,
        period=spec.period,
        effective_from=spec.effective_from,
        effective_to=spec.effective_to,
        conditions=list(spec.conditions),
        amount=spec.amount or "0",
        budget_fen=spec.budget_fen,
        created_by=actor,
    )
    session.add(version)
    session.flush()
    return version


@dataclass(frozen=True)
class Found:
    """A policy with one of its versions."""

    policy: Policy
    version: PolicyVersion


def latest_version(session: Session, code: str) -> Found | None:
    """A policy with its latest saved version, or None."""
    policy = session.get(Policy, code)
    if policy is None:
        return None
    version = session.scalar(
        select(PolicyVersion).where(PolicyVersion.policy_code == code, PolicyVersion.version == policy.latest_version)
    )
    return Found(policy, version) if version else None


def get_version(session: Session, code: str, number: int | None = None) -> Found:
    """A policy with one version: ``number``, else the active one, else the latest."""
    policy = session.get(Policy, code)
    if policy is None:
        raise NotFoundError(N_("no policy {code!r}"), field="code", code=code)
    wanted = number or policy.active_version or policy.latest_version
    version = session.scalar(
        select(PolicyVersion).where(PolicyVersion.policy_code == code, PolicyVersion.version == wanted)
    )
    if version is None:
        raise NotFoundError(N_("policy {code!r} has no version {version}"), field="version", code=code, version=wanted)
    return Found(policy, version)


def list_policies(session: Session) -> list[Policy]:
    """Every policy, by code."""
    return list(session.scalars(select(Policy).order_by(Policy.code)))


def versions_of(session: Session, code: str) -> list[PolicyVersion]:
    """A policy's versions, newest first."""
    return list(
        session.scalars(
            select(PolicyVersion).where(PolicyVersion.policy_code == code).order_by(PolicyVersion.version.desc())
        )
    )


def activate(session: Session, code: str, number: int) -> Policy:
    """Make a version the one that runs and that citizens see."""
    found = get_version(session, code, number)
    found.policy.active_version = found.version.version
    emit(session, events.PolicyActivated(code=code, version=number))
    return found.policy


def retire(session: Session, code: str) -> Policy:
    """Stop a policy: no more runs; the grants made stay."""
    found = get_version(session, code)
    found.policy.active_version = None
    emit(session, events.PolicyRetired(code=code))
    return found.policy


# -- evaluation -----------------------------------------------------------------------------------------


def period_key(period: str, as_of: date) -> str:
    """The period a grant belongs to: ``once``, the year or the month of ``as_of``."""
    return {"once": "once", "year": f"{as_of:%Y}", "month": f"{as_of:%Y-%m}"}[period]


def period_dates(period: str, as_of: date, effective_from: date, effective_to: date | None) -> Dates:
    """The evaluation date and the bounds of its period (a ``once`` policy: its effective period)."""
    if period == "year":
        return Dates(as_of, date(as_of.year, 1, 1), date(as_of.year, 12, 31))
    if period == "month":
        last = calendar.monthrange(as_of.year, as_of.month)[1]
        return Dates(as_of, date(as_of.year, as_of.month, 1), date(as_of.year, as_of.month, last))
    return Dates(as_of, effective_from, effective_to or as_of)


def dates_for(version: PolicyVersion, as_of: date) -> Dates:
    """The evaluation dates of a saved version."""
    return period_dates(version.period, as_of, version.effective_from, version.effective_to)


def in_force(version: PolicyVersion, as_of: date) -> bool:
    """Whether ``as_of`` falls in the version's effective period."""
    return version.effective_from <= as_of and (version.effective_to is None or as_of <= version.effective_to)


@contextmanager
def opened(session: Session, lake_dir: Path) -> Iterator[Registers]:
    """The live registers for the length of a ``with`` block, in the engine of the session's database."""
    views = evaluation.registers_for(session, lake_dir, TARGETS, register_schema)
    try:
        yield views
    finally:
        views.close()


def _checked(session: Session, schema: Schema, found: Found) -> Checked:
    source = _source(found.policy.code, found.policy.target, found.version.conditions, found.version.amount)
    try:
        return language.check(schema, source, _resolver(session))
    except PolicyError as exc:  # a referenced policy changed after this one was saved
        raise ConflictError(
            N_("the policy no longer checks: {reason}"), field="conditions", reason=exc.placed()
        ) from exc


@dataclass(frozen=True)
class DryRun:
    """How many would qualify now, and for how much, before a policy is activated."""

    code: str
    version: int
    as_of: date
    evaluated: int
    qualified: int
    total_fen: int
    budget_fen: int | None
    missing: int  # entities no condition failed for but one could not be decided (缺少数据)

    @property
    def within_budget(self) -> bool:
        """Whether the total fits the budget (always, without one)."""
        return self.budget_fen is None or self.total_fen <= self.budget_fen


def dry_run(session: Session, lake_dir: Path, code: str, as_of: date, number: int | None = None) -> DryRun:
    """Evaluate a version over the whole population without granting anything."""
    found = get_version(session, code, number)
    with opened(session, lake_dir) as views:
        checked = _checked(session, views.schema, found)
        compiled = views.compiled(checked, dates_for(found.version, as_of))
        count = len(checked.conditions)
        unknown = " OR ".join(f"c{i} IS NULL" for i in range(count)) or "FALSE"
        failed = " OR ".join(f"c{i} = FALSE" for i in range(count)) or "FALSE"
        row = next(
            views.rows(
                "SELECT COUNT(*) AS evaluated, COALESCE(SUM(CASE WHEN eligible THEN 1 ELSE 0 END), 0) AS qualified,"
                " COALESCE(SUM(amount_fen), 0) AS total_fen,"
                f" COALESCE(SUM(CASE WHEN ({unknown}) AND NOT ({failed}) THEN 1 ELSE 0 END), 0) AS missing"
                f" FROM ({compiled.sql}) AS q"
            )
        )
    if not in_force(found.version, as_of):
        row = {**row, "qualified": 0, "total_fen": 0}
    return DryRun(
        code,
        found.version.version,
        as_of,
        int(row["evaluated"]),
        int(row["qualified"]),
        int(row["total_fen"]),
        found.version.budget_fen,
        int(row["missing"]),
    )


@dataclass(frozen=True)
class TraceLine:
    """One condition of an explanation: its text and whether it held (``pass``, ``fail``, ``missing``)."""

    text: str
    outcome: str


@dataclass
class Trace:
    """为什么我符合/不符合: each condition with its outcome, the values it saw, and the amount."""

    code: str
    name: str
    version: int
    entity_key: str
    as_of: date
    found: bool
    in_force: bool
    eligible: bool
    amount_fen: int | None
    amount_text: str
    lines: list[TraceLine] = field(default_factory=list)
    values: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def missing(self) -> bool:
        """Whether the decision waits on missing data (缺少数据): no condition failed, one could not be decided."""
        outcomes = {line.outcome for line in self.lines}
        return "missing" in outcomes and "fail" not in outcomes

    def as_json(self) -> dict[str, Any]:
        """The trace as stored with a grant and shown to the citizen."""
        return {
            "code": self.code,
            "version": self.version,
            "entity_key": self.entity_key,
            "as_of": self.as_of.isoformat(),
            "found": self.found,
            "in_force": self.in_force,
            "eligible": self.eligible,
            "amount_fen": self.amount_fen,
            "amount": self.amount_text,
            "conditions": [{"text": line.text, "outcome": line.outcome} for line in self.lines],
            "values": [{"name": name, "value": _plain(value)} for name, value in self.values],
        }

    def digest(self) -> str:
        """A SHA-256 of the trace (recorded with a grant, so the reason cannot change unseen)."""
        canonical = json.dumps(self.as_json(), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def _outcome(value: Any) -> str:
    return "missing" if value is None else "pass" if value else "fail"


def _trace(found: Found, compiled: Compiled, key: str, as_of: date, row: dict[str, Any] | None) -> Trace:
    version = found.version
    trace = Trace(
        found.policy.code,
        version.name,
        version.version,
        key,
        as_of,
        row is not None,
        in_force(version, as_of),
        False,
        None,
        version.amount,
    )
    if row is None:
        return trace
    for column in compiled.columns:
        if column.kind == "condition":
            trace.lines.append(TraceLine(column.label, _outcome(row[column.name])))
        elif column.kind == "value":
            trace.values.append((column.label, row[column.name]))
    trace.eligible = bool(row["eligible"]) and trace.in_force
    trace.amount_fen = int(row["amount_fen"]) if trace.eligible and row["amount_fen"] is not None else None
    return trace


def _explain_in(session: Session, views: Registers, found: Found, key: str, as_of: date) -> Trace:
    compiled = views.compiled(_checked(session, views.schema, found), dates_for(found.version, as_of))
    row = next(views.rows(compiled.one_entity_sql, {"key": key}), None)
    return _trace(found, compiled, key, as_of, row)


def explain(session: Session, lake_dir: Path, code: str, key: str, as_of: date, number: int | None = None) -> Trace:
    """Evaluate a policy for one entity with the same query, condition by condition."""
    found = get_version(session, code, number)
    with opened(session, lake_dir) as views:
        return _explain_in(session, views, found, key.strip().upper(), as_of)


def explain_all(session: Session, lake_dir: Path, target: str, key: str, as_of: date) -> list[Trace]:
    """Every active policy about ``target``, evaluated for one entity (政策找人: what could I get, and why not)."""
    policies = active_policies(session, target)
    if not policies:
        return []
    with opened(session, lake_dir) as views:
        return [_explain_in(session, views, found, key.strip().upper(), as_of) for found in policies]


# -- runs and grants ------------------------------------------------------------------------------------


def _history(
    session: Session, grant: BenefitGrant, actor: str, action: str, before: str | None, note: str = ""
) -> None:
    session.add(
        GrantEvent(grant_id=grant.id, actor=actor, action=action, from_status=before, to_status=grant.status, note=note)
    )


ACCOUNT_KINDS = {"person": "citizen", "enterprise": "enterprise"}  # policy target → the accounts of its holders
ONE_BY_ONE = 64  # a register change touching this few entities evaluates each with the one-entity query
GRANT_BATCH = 5_000  # grants written (and their holders told) per statement
RUN_CHUNK = 5_000  # qualifying entities per writer transaction of a run in chunks (``run_in_chunks``)

# Tells the holders of a batch of new grants (rows of benefit_grants) about them.
Notifier = Callable[[Session, PolicyVersion, list[dict[str, Any]]], None]


def _tell_holders(session: Session, target: str, told: list[tuple[str, str, str, str]]) -> None:
    """Send (entity key, subject, body, link) to every account of each holder: a person's own, or each of an
    enterprise's; holders without an account see it on their page when they sign up."""
    accounts = accounts_by_key(session, ACCOUNT_KINDS[target], [key for key, *_rest in told])
    for key, subject, body, link in told:
        for user in accounts.get(key, []):
            notify(session, Notice(user.id, subject, body, link, "benefits.grant", phone=user.phone))


def _tell_holder(session: Session, grant: BenefitGrant, subject: str, body: str) -> None:
    _tell_holders(session, grant.target, [(grant.entity_key, subject, body, f"/my/benefits/{grant.id}")])


def _notify_holders(session: Session, version: PolicyVersion, grants: list[dict[str, Any]]) -> None:
    """免申即享: "granted, nothing to apply for"; 政策找人: "you may qualify, please apply"."""
    by_target: dict[str, list[tuple[str, str, str, str]]] = {}
    for grant in grants:
        amount = f"{grant['amount_fen'] / 100:.2f} 元"
        if grant["status"] == "granted":
            subject, body = f"【免申即享】{version.name}", f"您符合条件，已为您办理，金额 {amount}，无需申请。"
        else:
            subject, body = f"【政策找人】{version.name}", f"您可能符合条件（预计 {amount}），欢迎申请。"
        told = (grant["entity_key"], subject, body, f"/my/benefits/{grant['id']}")
        by_target.setdefault(grant["target"], []).append(told)
    for target, told_list in by_target.items():
        _tell_holders(session, target, told_list)


def _qualifying(
    views: Registers, compiled: Compiled, target: str, keys: list[str] | None
) -> tuple[int, Iterator[dict[str, Any]]]:
    """(entities evaluated, the qualifying rows in key order): the whole population in one query; a few
    entities one by one (the query for one key reads only what that entity needs); more, filtered."""
    table, key_column = views.tables[target], views.schema.entity(target).key
    if keys is not None and len(keys) <= ONE_BY_ONE:
        rows = [row for key in keys for row in views.rows(compiled.one_entity_sql, {"key": key})]
        return len(rows), iter([row for row in rows if row["eligible"]])
    population = f"SELECT COUNT(*) AS n FROM {table}"  # one row per entity: no need to evaluate to count them
    wanted = f"SELECT * FROM ({compiled.sql}) AS q WHERE eligible"
    params: dict[str, Any] = {}
    if keys is not None:
        params["keys"] = keys
        population += f" WHERE {views.in_keys(key_column)}"
        wanted += f" AND {views.in_keys('entity_key')}"
    evaluated = int(next(views.rows(population, params))["n"])
    return evaluated, views.rows(f"{wanted} ORDER BY entity_key", params)


@dataclass
class _Plan:
    """What a run grants, fixed when it opens: the active version as checked and compiled, the period."""

    run_id: uuid.UUID
    found: Found
    compiled: Compiled
    as_of: date
    period: str
    kind: str
    status: str  # what a new grant is: granted (免申即享) or invited (政策找人)

    @property
    def code(self) -> str:
        return self.found.policy.code


def _runnable(session: Session, code: str) -> Found:
    """The policy with its active version, if it can run (active, and not ``apply``), under its lock."""
    policy = session.get(Policy, code, with_for_update=True)  # a row lock on PostgreSQL: runs take turns
    if policy is None:
        raise NotFoundError(N_("no policy {code!r}"), field="code", code=code)
    if policy.active_version is None:
        raise ConflictError(N_("the policy is not active"), field="code")
    found = get_version(session, code, policy.active_version)
    if found.version.mode == "apply":
        raise ConflictError(N_("A policy granted on application is not granted or offered unasked"), field="mode")
    return found


def _new_record(found: Found, as_of: date, kind: str, status: str) -> PolicyRun:
    version = found.version
    return PolicyRun(
        id=uuid.uuid4(),
        policy_code=found.policy.code,
        version=version.version,
        kind=kind,
        period=period_key(version.period, as_of),
        as_of=as_of,
        status=status,
        evaluated=0,
        qualified=0,
        granted=0,
        already=0,
        over_budget=0,
        total_fen=0,
        error="",
    )


def _unless_in_force(session: Session, record: PolicyRun, found: Found) -> None:
    if not in_force(found.version, record.as_of):
        record.status, record.finished_at, record.error = "done", utcnow(), "政策不在有效期内"
        session.flush()


def _open(session: Session, code: str, as_of: date, kind: str) -> tuple[PolicyRun, Found]:
    """Check that the policy can run and add the run's record (status ``running``)."""
    found = _runnable(session, code)
    record = _new_record(found, as_of, kind, "running")
    session.add(record)
    session.flush()  # the grants refer to it
    _unless_in_force(session, record, found)
    return record, found


RUN_REQUESTED = events.RunRequested.EVENT_TYPE


def request_run(session: Session, code: str, as_of: date, requested_by: str, kind: str = "manual") -> PolicyRun:
    """Queue a run over the whole population (status ``queued``), to be written by ``run_in_chunks`` outside
    the caller's transaction: a request that ran it would hold the writer for the whole run. The policy is
    checked now, so a run that cannot happen is refused to the caller; the run itself starts when the
    ``benefits.run.requested`` event emitted here is delivered (``subscribers``)."""
    found = _runnable(session, code)
    record = _new_record(found, as_of, kind, "queued")
    session.add(record)
    session.flush()
    emit(session, events.RunRequested(run_id=record.id, code=code, as_of=as_of, kind=kind, requested_by=requested_by))
    return record


def _take(session: Session, run_id: uuid.UUID) -> PolicyRun | tuple[PolicyRun, Found]:
    """Start a queued run: mark it ``running`` with the version active now. A run that is not ``queued`` any
    more — taken already by this or another worker process (an event re-delivered after its lease ran out),
    finished, or refused — is returned as it is, not started twice."""
    record = session.get(PolicyRun, run_id, with_for_update=True)  # PostgreSQL: one taker; SQLite: the writer
    if record is None:
        raise NotFoundError(N_("no run {run_id}"), field="run", run_id=run_id)
    if record.status != "queued":
        return record
    try:
        found = _runnable(session, record.policy_code)
    except (NotFoundError, ConflictError) as exc:  # retired or changed since it was asked for
        record.status, record.finished_at, record.error = "failed", utcnow(), str(exc)[:2000]
        session.flush()
        return record
    record.version, record.period = found.version.version, period_key(found.version.period, record.as_of)
    record.status, record.started_at = "running", utcnow()
    session.flush()
    _unless_in_force(session, record, found)
    return record, found


def get_run(session: Session, run_id: uuid.UUID) -> PolicyRun:
    """A run's record by id."""
    record = session.get(PolicyRun, run_id)
    if record is None:
        raise NotFoundError(N_("no such run"), field="run_id")
    return record


def runs_of(session: Session, code: str, limit: int = 10) -> list[PolicyRun]:
    """A policy's latest runs, newest first."""
    return list(
        session.scalars(
            select(PolicyRun).where(PolicyRun.policy_code == code).order_by(PolicyRun.started_at.desc()).limit(limit)
        )
    )


def _grant_chunk(session: Session, plan: _Plan, rows: list[dict[str, Any]], notify_holders: Notifier) -> PolicyRun:
    """Grant (or invite) the qualifying ``rows`` that have nothing for the period yet, in key order, while the
    budget lasts — in the caller's transaction, with their history and their holders' notices. What is
    granted already and what the period spent are read again here, under the policy's row lock (SQLite: the
    write turn), so that runs of one policy that overlap, or a run repeated after a crash, grant nobody twice
    and stay within the budget. The run's record counts what the chunk did."""
    version = plan.found.version
    target = plan.found.policy.target
    session.get(Policy, plan.code, with_for_update=True)
    record = session.get(PolicyRun, plan.run_id)
    if record is None:
        raise NotFoundError(N_("no run {run_id}"), field="run", run_id=plan.run_id)
    keys = [str(row["entity_key"]) for row in rows]
    given = set(
        session.scalars(
            select(BenefitGrant.entity_key).where(
                BenefitGrant.policy_code == plan.code,
                BenefitGrant.period_key == plan.period,
                BenefitGrant.entity_key.in_(keys),
            )
        )
    )
    spent = 0
    if version.budget_fen is not None:
        spent = int(
            session.scalar(
                select(func.coalesce(func.sum(BenefitGrant.amount_fen), 0)).where(
                    BenefitGrant.policy_code == plan.code,
                    BenefitGrant.period_key == plan.period,
                    BenefitGrant.status.in_(LIVE),
                )
            )
            or 0
        )
    pending: list[dict[str, Any]] = []
    for row, key in zip(rows, keys, strict=True):
        record.qualified += 1
        amount = int(row["amount_fen"] or 0)
        if key in given:
            record.already += 1
            continue
        if version.budget_fen is not None and spent + amount > version.budget_fen:
            record.over_budget += 1
            continue
        trace = _trace(plan.found, plan.compiled, key, plan.as_of, row)
        pending.append(
            {
                "id": uuid.uuid4(),
                "policy_code": plan.code,
                "version": version.version,
                "period_key": plan.period,
                "target": target,
                "entity_key": key,
                "amount_fen": amount,
                "status": plan.status,
                "trace": trace.as_json(),
                "trace_digest": trace.digest(),
                "run_id": plan.run_id,
            }
        )
        given.add(key)
        spent += amount
        record.granted += 1
        record.total_fen += amount
    if pending:
        session.execute(insert(BenefitGrant), pending)
        action = "grant" if plan.status == "granted" else "invite"
        history = {"actor": SYSTEM_ACTOR, "action": action, "from_status": None, "to_status": plan.status}
        session.execute(
            insert(GrantEvent), [{**history, "grant_id": g["id"], "note": f"{plan.kind} run"} for g in pending]
        )
        notify_holders(session, version, pending)
    session.flush()
    return record


def _chunks(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while chunk := list(itertools.islice(rows, size)):
        yield chunk


def _finish(session: Session, record: PolicyRun) -> None:
    record.status, record.finished_at = "done", utcnow()
    session.flush()
    emit(
        session,
        events.RunDone(code=record.policy_code, run_id=record.id, granted=record.granted, total_fen=record.total_fen),
    )


def _wanted(keys: list[str] | None) -> list[str] | None:
    return sorted({k.strip().upper() for k in keys}) if keys is not None else None


def run(
    session: Session,
    lake_dir: Path,
    code: str,
    as_of: date,
    kind: str = "manual",
    keys: list[str] | None = None,
    notify_holders: Notifier = _notify_holders,
) -> PolicyRun:
    """Evaluate the active version and grant (免申即享) or invite (政策找人) every qualifying entity that has
    nothing for the period yet, in key order, while the period's budget lasts — all in the caller's
    transaction: for a few entities (a register change) or a small population. A full run over a city uses
    ``run_in_chunks``, which does not hold one writer for its whole length. Repeating a run — or running
    again after one failed midway — grants nobody twice: a grant is unique per policy, period and entity,
    and each batch reads what is granted already under the policy's lock. ``keys`` limits the run to those
    entities."""
    record, found = _open(session, code, as_of, kind)
    if record.status == "done":
        return record
    with opened(session, lake_dir) as views:
        checked = _checked(session, views.schema, found)
        compiled = views.compiled(checked, dates_for(found.version, as_of))
        plan = _plan(record, found, compiled, as_of, kind)
        record.evaluated, rows = _qualifying(views, compiled, found.policy.target, _wanted(keys))
        for chunk in _chunks(rows, GRANT_BATCH):
            record = _grant_chunk(session, plan, chunk, notify_holders)
    _finish(session, record)
    return record


def _plan(record: PolicyRun, found: Found, compiled: Compiled, as_of: date, kind: str) -> _Plan:
    status = "granted" if found.version.mode == "auto" else "invited"
    return _Plan(record.id, found, compiled, as_of, record.period, kind, status)


def run_in_chunks(
    db: Database,
    lake_dir: Path,
    code: str,
    as_of: date,
    kind: str = "manual",
    keys: list[str] | None = None,
    *,
    chunk: int = RUN_CHUNK,
    notify_holders: Notifier = _notify_holders,
    run_id: uuid.UUID | None = None,
) -> PolicyRun:
    """``run`` for a whole population, written ``chunk`` qualifying entities per short writer transaction
    (each through the database's writer discipline, so requests and other writers interleave with a run of
    a million persons instead of waiting for it).

    The evaluation streams from one reader; each chunk is committed with its grants, their history, their
    holders' notices and the run's counts, so the run's record shows its progress (``running``, then
    ``done``; ``failed`` with the error when it stopped on one). A run that stopped midway — an error, or the
    process killed — is resumed by running again: what the stopped run granted stands, the new run grants
    the rest, and nobody gets anything twice (see ``_grant_chunk``). A run still marked ``running`` from
    before is marked ``stopped`` by the next full run of its policy and period.

    ``run_id`` writes a run queued by ``request_run`` (its policy, date and kind are the record's); one that
    is not ``queued`` any more is returned as it is."""
    if chunk < 1:
        raise InvalidError(N_("a chunk holds at least one entity"), field="chunk")
    with db.session() as session:
        if run_id is None:
            record, found = _open(session, code, as_of, kind)
        else:
            taken = _take(session, run_id)
            if isinstance(taken, PolicyRun):
                return taken
            record, found = taken
            code, as_of, kind = record.policy_code, record.as_of, record.kind
        if record.status == "done":
            return record
        if keys is None:
            _stop_earlier(session, record)
        with opened(session, lake_dir) as views:  # on PostgreSQL: copies a new register version now, briefly
            compiled = views.compiled(_checked(session, views.schema, found), dates_for(found.version, as_of))
        plan = _plan(record, found, compiled, as_of, kind)
    try:
        with db.session(write=False) as reader, opened(reader, lake_dir) as views:
            evaluated, rows = _qualifying(views, compiled, found.policy.target, _wanted(keys))
            with db.session() as session:
                record = _counted(session, plan)
                record.evaluated = evaluated
            for rows_chunk in _chunks(rows, chunk):
                with db.session() as session:
                    record = _grant_chunk(session, plan, rows_chunk, notify_holders)
        with db.session() as session:
            record = _counted(session, plan)
            _finish(session, record)
    except Exception as exc:
        with db.session() as session:
            record = _counted(session, plan)
            record.status, record.finished_at, record.error = "failed", utcnow(), str(exc)[:2000] or type(exc).__name__
        raise
    return record


def _counted(session: Session, plan: _Plan) -> PolicyRun:
    record = session.get(PolicyRun, plan.run_id)
    if record is None:
        raise NotFoundError(N_("no run {run_id}"), field="run", run_id=plan.run_id)
    return record


def _stop_earlier(session: Session, record: PolicyRun) -> None:
    """Runs of the policy and period still marked ``running`` stopped without finishing (a killed process):
    say so on their record. (One that is in fact still going marks itself ``done`` when it ends.)"""
    earlier = session.scalars(
        select(PolicyRun).where(
            PolicyRun.policy_code == record.policy_code,
            PolicyRun.period == record.period,
            PolicyRun.status == "running",
            PolicyRun.id != record.id,
        )
    )
    for stopped in earlier:
        stopped.status = "stopped"
        stopped.error = f"未完成即中断；其已发放的保留，其余由运行 {record.id} 发放"
    session.flush()


def grants_for(session: Session, target: str, entity_key: str) -> list[BenefitGrant]:
    """An entity's grants and invitations, newest first."""
    return list(
        session.scalars(
            select(BenefitGrant)
            .where(BenefitGrant.target == target, BenefitGrant.entity_key == entity_key.strip().upper())
            .order_by(BenefitGrant.created_at.desc())
        )
    )


def get_grant(session: Session, grant_id: uuid.UUID) -> BenefitGrant:
    """A grant by id."""
    grant = session.get(BenefitGrant, grant_id)
    if grant is None:
        raise NotFoundError(N_("no such grant"), field="grant_id")
    return grant


def grant_history(session: Session, grant_id: uuid.UUID) -> list[GrantEvent]:
    """A grant's steps, oldest first."""
    return list(session.scalars(select(GrantEvent).where(GrantEvent.grant_id == grant_id).order_by(GrantEvent.id)))


def holder_key(session: Session, principal: Principal) -> tuple[str, str] | None:
    """(target, key) of the caller's own benefits: a citizen's ID number or an enterprise's credit code."""
    user = find_user(session, principal.user_id)
    if user is None:
        return None
    if user.kind == "citizen" and user.id_number:
        return "person", user.id_number
    if user.kind == "enterprise" and user.credit_code:
        return "enterprise", user.credit_code
    return None


def _own(session: Session, principal: Principal, grant: BenefitGrant) -> None:
    if holder_key(session, principal) != (grant.target, grant.entity_key):
        raise NotFoundError(N_("no such grant"), field="grant_id")  # never say whose it is


def _reason(reason: str) -> str:
    reason = reason.strip()
    if len(reason) < 2:
        raise InvalidError(N_("Please give the reason"), field="reason")
    return reason[:2000]


def decline(session: Session, principal: Principal, grant_id: uuid.UUID, reason: str = "") -> BenefitGrant:
    """The holder does not want the benefit (or the invitation)."""
    grant = get_grant(session, grant_id)
    _own(session, principal, grant)
    if grant.status not in ("granted", "invited"):
        raise ConflictError(N_("a {status} grant cannot be declined"), field="status", status=grant.status)
    before, grant.status = grant.status, "declined"
    _history(session, grant, principal.display_name, "decline", before, reason.strip()[:2000])
    emit(session, events.GrantDeclined(grant_id=grant.id, code=grant.policy_code))
    return grant


def appeal(session: Session, principal: Principal, grant_id: uuid.UUID, reason: str) -> BenefitGrant:
    """The holder disputes the amount or the decision; staff look at it again."""
    grant = get_grant(session, grant_id)
    _own(session, principal, grant)
    if grant.status not in ("granted", "invited"):
        raise ConflictError(N_("a {status} grant cannot be appealed"), field="status", status=grant.status)
    why = _reason(reason)
    before, grant.status = grant.status, "appealed"
    _history(session, grant, principal.display_name, "appeal", before, why)
    emit(session, events.GrantAppealed(grant_id=grant.id, code=grant.policy_code))
    return grant


def _staff_grant(session: Session, principal: Principal, grant_id: uuid.UUID) -> BenefitGrant:
    grant = get_grant(session, grant_id)
    policy = session.get(Policy, grant.policy_code)
    if policy is None or not principal.allows(REVERSE, None, policy.department_code):
        raise ForbiddenError(N_("you may not decide on this policy's grants"))
    return grant


def reverse(session: Session, principal: Principal, grant_id: uuid.UUID, reason: str) -> BenefitGrant:
    """Staff take a grant back, with the reason (the history keeps both steps)."""
    grant = _staff_grant(session, principal, grant_id)
    if grant.status == "reversed":
        raise ConflictError(N_("the grant is already reversed"), field="status")
    why = _reason(reason)
    before, grant.status = grant.status, "reversed"
    _history(session, grant, principal.display_name, "reverse", before, why)
    _tell_holder(session, grant, "【政策待遇】已撤销", f"经复核，该项待遇已撤销。理由：{why}")
    emit(session, events.GrantReversed(grant_id=grant.id, code=grant.policy_code))
    return grant


def uphold(session: Session, principal: Principal, grant_id: uuid.UUID, reason: str) -> BenefitGrant:
    """Staff answer an appeal by keeping the grant as it was, saying why (the holder sees the answer)."""
    grant = _staff_grant(session, principal, grant_id)
    if grant.status != "appealed":
        raise ConflictError(N_("a {status} grant has no appeal to answer"), field="status", status=grant.status)
    why = _reason(reason)
    appealed = [e for e in grant_history(session, grant.id) if e.action == "appeal"]
    before, grant.status = grant.status, (appealed[-1].from_status if appealed else None) or "granted"
    _history(session, grant, principal.display_name, "uphold", before, why)
    _tell_holder(session, grant, "【政策待遇】申诉答复", f"经复核，维持原决定。答复：{why}")
    emit(session, events.GrantUpheld(grant_id=grant.id, code=grant.policy_code))
    return grant


def appealed_grants(session: Session, code: str) -> list[tuple[BenefitGrant, str]]:
    """A policy's grants under appeal, oldest first, each with the holder's reason."""
    grants = session.scalars(
        select(BenefitGrant)
        .where(BenefitGrant.policy_code == code, BenefitGrant.status == "appealed")
        .order_by(BenefitGrant.updated_at)
    )
    out = []
    for grant in grants:
        appeals = [e.note for e in grant_history(session, grant.id) if e.action == "appeal"]
        out.append((grant, appeals[-1] if appeals else ""))
    return out


def active_policies(session: Session, target: str | None = None) -> list[Found]:
    """The active policies (optionally about one target) with their active versions."""
    query = select(Policy).where(Policy.active_version.is_not(None)).order_by(Policy.code)
    if target is not None:
        query = query.where(Policy.target == target)
    return [get_version(session, p.code, p.active_version) for p in session.scalars(query)]


def subscribers(db: Database, settings: Settings) -> list[tuple[str, str, Callable[[Event], None]]]:
    """A register change (a birth, a new enterprise, a status change) re-evaluates the entity it touched
    under every active policy about that register that grants or invites; a rebuild that changed too many
    records to announce one by one re-evaluates the whole population (a run grants nobody twice)."""

    def rerun(register: str, keys: list[str] | None) -> None:
        with db.session(write=False) as session:
            codes = [f.policy.code for f in active_policies(session, register) if f.version.mode != "apply"]
        for code in codes:
            if keys is None:  # the whole population: in short transactions
                run_in_chunks(db, settings.lake_dir, code, city_today(), "event")
            else:
                with db.session() as session:
                    run(session, settings.lake_dir, code, city_today(), "event", keys=keys)

    def on_register_change(event: Event) -> None:
        change = RecordChanged.of(event)
        if change.key:
            rerun(change.register_name, [change.key])

    def on_register_rebuilt(event: Event) -> None:
        rerun(RegisterRebuilt.of(event).register_name, None)

    def on_run_requested(event: Event) -> None:
        # The bus calls this in a worker thread; the run writes in short transactions. A run that fails is
        # marked ``failed`` with the error on its record, which is where its requester looks: not raised, as
        # a re-delivery would find it failed and do nothing.
        wanted = events.RunRequested.of(event)
        try:
            run_in_chunks(db, settings.lake_dir, wanted.code, wanted.as_of, run_id=wanted.run_id)
        except Exception:
            log.exception("benefit run %s failed", wanted.run_id)

    return [
        ("benefits.rerun-on-register-change", "registers.*.changed", on_register_change),
        ("benefits.rerun-on-register-rebuild", "registers.*.rebuilt", on_register_rebuilt),
        ("benefits.run-requested", RUN_REQUESTED, on_run_requested),
    ]


def grants_of_policy(session: Session, code: str, limit: int = 1000) -> list[BenefitGrant]:
    """A policy's grants, by entity key."""
    return list(
        session.scalars(
            select(BenefitGrant).where(BenefitGrant.policy_code == code).order_by(BenefitGrant.entity_key).limit(limit)
        )
    )


# -- the demo -------------------------------------------------------------------------------------------

DEMO_POLICIES = Path(__file__).resolve().parent / "data" / "demo_policies.json"


def spec_from_json(raw: dict[str, Any]) -> PolicySpec:
    """A policy as written in a JSON file (dates as YYYY-MM-DD); a missing or unknown key is refused."""
    names = set(PolicySpec.__dataclass_fields__)
    required = names - {"amount", "budget_fen", "effective_to"}
    if not isinstance(raw, dict):
        raise InvalidError(N_("a policy is a JSON object"), field="policy")
    unknown, missing = set(raw) - names, required - set(raw)
    if unknown or missing:
        raise InvalidError(
            N_("unknown keys {unknown}; missing keys {missing}"),
            field=next(iter(unknown | missing)),
            unknown=sorted(unknown),
            missing=sorted(missing),
        )
    try:
        effective_from = date.fromisoformat(raw["effective_from"])
        effective_to = date.fromisoformat(raw["effective_to"]) if raw.get("effective_to") else None
    except (TypeError, ValueError) as exc:
        raise InvalidError(N_("dates are written YYYY-MM-DD"), field="effective_from") from exc
    return PolicySpec(**{**raw, "effective_from": effective_from, "effective_to": effective_to})


def demo_specs() -> list[PolicySpec]:
    """The demo city's policies (persons and enterprises), written in the policy language."""
    return [spec_from_json(raw) for raw in json.loads(DEMO_POLICIES.read_text(encoding="utf-8"))]


def seed_demo_chunked(db: Database, settings: Settings, *, chunk: int = RUN_CHUNK) -> dict[str, int]:
    """Save and activate the demo policies (those not saved yet), then run those that grant or invite over the
    demo registers, in chunks (``run_in_chunks``): at a million persons one transaction would hold the writer
    for minutes. Safe to repeat after a crash midway: a saved policy is not saved again, a run grants only
    what is missing."""
    specs = demo_specs()
    with db.session() as session:
        add_actions_to_role(session, "department_admin", (MANAGE, REVERSE))
        add_actions_to_role(session, "data_officer", (MANAGE,))
        schema = register_schema(session)
        saved = set(session.scalars(select(Policy.code).where(Policy.code.in_([s.code for s in specs]))))
        for spec in specs:
            if spec.code not in saved:
                version = save_policy(session, schema, spec, "demo seed")
                activate(session, spec.code, version.version)
    granted = 0
    for spec in specs:
        if spec.mode != "apply":
            record = run_in_chunks(db, settings.lake_dir, spec.code, city_today(), "scheduled", chunk=chunk)
            granted += record.granted
    return {"policies": len(specs), "grants": granted}

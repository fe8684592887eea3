"""Disputes (异议): a citizen about their own record, or a department about data it uses, says a register
value is wrong; the dispute goes to the element's authoritative department (一数一源) with a deadline in
working days; the department verifies, then corrects or rejects with a written reason.

A correction is made where the value comes from: a one-row incremental delivery of the department's
own resource (checked by the same quality rules as any load), then a new register version — so the
history stays in the lake's and the register's versions, and the register's change event tells every
subscriber of the record. The filer is told through ``disputes.dispute.decided``.

Transitions (who may set what) are a table; every step is appended to ``dispute_history``.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shgov.core.calendar.service import city_today, default_calendar
from shgov.core.db import utcnow
from shgov.core.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from shgov.core.events import emit
from shgov.core.files import FileStore
from shgov.core.i18n import N_
from shgov.core.identity.permissions import SYSTEM_ACTOR, Principal, register_action
from shgov.core.identity.service import add_actions_to_role, scope_conditions
from shgov.core.settings import Settings
from shgov.disputes import events
from shgov.disputes.models import Dispute, DisputeAttachment, DisputeDeadline, DisputeEvent
from shgov.lake import service as lake
from shgov.registers import service as registers

FILE = register_action("disputes.dispute.file", N_("File a dispute about data the department uses"))
DECIDE = register_action("disputes.dispute.decide", N_("Verify, correct or reject disputes about own data"))
READ = register_action("disputes.dispute.read", N_("See disputes routed to the department"))
DEADLINE_MANAGE = register_action("disputes.deadline.manage", N_("Set the deadlines for settling disputes"))
ALL_ACTIONS = (FILE, DECIDE, READ, DEADLINE_MANAGE)

OPEN = ("filed", "verifying")
# Status names as shown on pages (the catalogue translates them).
STATUS_NAMES = (N_("filed"), N_("verifying"), N_("corrected"), N_("rejected"))
# status → {action: next status}; only the authoritative department acts on a dispute.
TRANSITIONS: dict[str, dict[str, str]] = {
    "filed": {"verify": "verifying", "correct": "corrected", "reject": "rejected"},
    "verifying": {"correct": "corrected", "reject": "rejected"},
}


@dataclass(frozen=True)
class Filing:
    """What a filer says."""

    register: str
    record_key: str
    element: str
    proposed_value: str | None
    reason: str
    evidence: list[dict[str, Any]]


def deadline_days(session: Session, register: str, element: str, default: int) -> int:
    """Working days for a dispute on ``register.element``: its own rule, else the register's, else ``default``."""
    for key in (element, "*"):
        rule = session.get(DisputeDeadline, (register, key))
        if rule is not None:
            return rule.working_days
    return default


def set_deadline(session: Session, register: str, element: str, working_days: int) -> DisputeDeadline:
    """Set (or change) the deadline for disputes on ``register.element`` (``*`` for every element)."""
    definition = registers.REGISTERS.get(register)
    if definition is None:
        raise InvalidError(N_("no register {register!r}"), field="register", register=register)
    if element != "*" and definition.element(element) is None:
        raise InvalidError(
            N_("the {register} register has no element {element!r}"),
            field="element",
            register=register,
            element=element,
        )
    if not 1 <= working_days <= 60:
        raise InvalidError(N_("between 1 and 60 working days"), field="working_days")
    rule = session.get(DisputeDeadline, (register, element))
    if rule is None:
        rule = DisputeDeadline(register=register, element=element, working_days=working_days)
        session.add(rule)
    rule.working_days = working_days
    session.flush()
    return rule


def list_deadlines(session: Session) -> list[DisputeDeadline]:
    """Every deadline rule."""
    return list(session.scalars(select(DisputeDeadline).order_by(DisputeDeadline.register, DisputeDeadline.element)))


def is_overdue(dispute: Dispute, today: date | None = None) -> bool:
    """Open past its deadline."""
    return dispute.status in OPEN and dispute.deadline < (today or city_today())


def _history(session: Session, dispute: Dispute, principal: Principal | None, before: str | None, note: str) -> None:
    session.add(
        DisputeEvent(
            dispute_id=dispute.id,
            actor_id=principal.user_id if principal else None,
            actor_name=principal.username if principal else SYSTEM_ACTOR,
            from_status=before,
            to_status=dispute.status,
            note=note,
        )
    )


def file_dispute(
    session: Session,
    reader: registers.RegisterReader,
    principal: Principal,
    filing: Filing,
    *,
    default_deadline_days: int,
    id_number_of_filer: str | None,
) -> Dispute:
    """Record a dispute and route it to the element's authoritative department."""
    register = registers.REGISTERS.get(filing.register)
    if register is None:
        raise InvalidError(N_("no register {register!r}"), field="register", register=filing.register)
    element = register.element(filing.element)
    if element is None:
        raise InvalidError(
            N_("the {register} register has no element {element!r}"),
            field="element",
            register=filing.register,
            element=filing.element,
        )
    if element.source is None:
        raise InvalidError(
            N_("{element} has no authoritative source to correct it"), field="element", element=filing.element
        )
    key = filing.record_key.strip().upper()
    own = principal.kind in ("citizen", "enterprise")
    if own:
        if key != (id_number_of_filer or "").upper():
            raise ForbiddenError(N_("citizens may dispute their own records only"), field="record_key")
    elif not principal.has_action(FILE):
        raise ForbiddenError(N_("filing a dispute needs the permission disputes.dispute.file"))
    elif not principal.has_action(READ_ACTIONS[register.code]):
        # staff dispute only data they may use: the register's read action, in the record's scope (below)
        raise ForbiddenError(
            N_("filing a dispute about the {register} register needs {permission}"),
            register=register.code,
            permission=READ_ACTIONS[register.code],
        )
    lookup = registers.find_person if register.code == "person" else registers.find_enterprise
    record = lookup(session, reader, key, [filing.element, "district_code"])
    # a record outside the caller's data-use rights is answered as one that does not exist: nothing leaks
    if record is None or not (own or may_read_record(principal, register.code, record)):
        raise NotFoundError(N_("no such record in the register"), field="record_key")
    current = record.get(filing.element)
    if filing.proposed_value is not None and str(current) == filing.proposed_value:
        raise InvalidError(N_("the proposed value is the value the register already holds"), field="proposed_value")
    duplicate = session.scalar(
        select(Dispute.id).where(
            Dispute.register == register.code,
            Dispute.record_key == key,
            Dispute.element == element.name,
            Dispute.filer_id == principal.user_id,
            Dispute.status.in_(OPEN),
        )
    )
    if duplicate is not None:
        raise ConflictError(N_("you already have an open dispute about this value"), field="element")
    resource = element.source[0]
    state = lake.resource_state(session, resource)
    dispute = Dispute(
        id=uuid.uuid4(),
        register=register.code,
        record_key=key,
        element=element.name,
        current_value=None if current is None else str(current),
        proposed_value=filing.proposed_value,
        reason=filing.reason,
        evidence=filing.evidence,
        filer_id=principal.user_id,
        filer_kind=principal.kind,
        filer_department_code=principal.department_code,
        source_resource=resource,
        department_code=state.department_code,
        tenant_code=state.department_code.split(".", 1)[0],
        status="filed",
        deadline=default_calendar().add_working_days(
            city_today(), deadline_days(session, register.code, element.name, default_deadline_days)
        ),
    )
    session.add(dispute)
    session.flush()
    _history(session, dispute, principal, None, filing.reason)
    emit(session, events.DisputeFiled(dispute=dispute.id, department=dispute.department_code))
    return dispute


def _correct_source(
    session: Session, lake_dir: Path, dispute: Dispute, value: str, context: lake.RuleContext, by: str
) -> uuid.UUID:
    """Deliver the corrected value as a one-row incremental load of the authoritative resource."""
    spec = lake.get_resource(session, dispute.source_resource)
    element = registers.REGISTERS[dispute.register].element(dispute.element)
    assert element is not None  # noqa: S101 - checked when filed
    assert element.source is not None  # noqa: S101
    column = element.source[1]
    current = lake.read_current(lake_dir, spec.code)
    key_column = spec.key[0]
    row = current.filter(pl.col(key_column) == dispute.record_key) if current is not None else pl.DataFrame()
    if row.height != 1:
        raise InvalidError(
            N_("{department} holds no {resource} record for this key; deliver one to correct it"),
            field="corrected_value",
            department=spec.department_code,
            resource=spec.code,
        )
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")
    updated = row.with_columns(pl.all().cast(pl.String)).with_columns(pl.lit(value).alias(column))
    if spec.updated_column:
        updated = updated.with_columns(pl.lit(stamp).alias(spec.updated_column))
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / f"correction-{dispute.id}.csv"
        updated.write_csv(file)
        result = lake.load(
            session,
            lake_dir,
            spec.code,
            lake.Source(path=file),
            department_code=spec.department_code,
            mode="incremental",
            context=context,
            loaded_by=by,
        )
    if result.rows_quarantined:
        raise InvalidError(
            N_("the corrected value breaks the rules of {resource}: {counts}"),
            field="corrected_value",
            resource=spec.code,
            counts=result.rule_counts,
        )
    return result.load_id


def decide(
    session: Session,
    lake_dir: Path,
    dispute: Dispute,
    principal: Principal,
    action: str,
    *,
    reason: str,
    corrected_value: str | None = None,
    context: lake.RuleContext | None = None,
) -> Dispute:
    """Move a dispute along the transition table; a correction changes the source and rebuilds the register."""
    if not principal.allows(DECIDE, dispute.tenant_code, dispute.department_code):
        raise ForbiddenError(N_("only the authoritative department decides this dispute"))
    allowed = TRANSITIONS.get(dispute.status, {})
    if action not in allowed:
        raise ConflictError(
            N_("a {status} dispute does not allow {action!r}"), field="action", status=dispute.status, action=action
        )
    if action in ("reject", "correct") and not reason.strip():
        raise InvalidError(N_("a decision needs a written reason"), field="reason")
    before = dispute.status
    if action == "correct":
        value = corrected_value if corrected_value is not None else dispute.proposed_value
        if value is None:
            raise InvalidError(N_("say what the correct value is"), field="corrected_value")
        dispute.correction_load_id = _correct_source(
            session, lake_dir, dispute, value, context or lake.RuleContext(), f"dispute {dispute.id}"
        )
        dispute.corrected_value = value
        registers.build(session, lake_dir, dispute.register, f"dispute {dispute.id}")
    dispute.status = allowed[action]
    if dispute.status in ("corrected", "rejected"):
        dispute.decided_at = utcnow()
        dispute.decision_reason = reason
        emit(session, events.DisputeDecided(dispute=dispute.id, filer=dispute.filer_id, status=dispute.status))
    _history(session, dispute, principal, before, reason)
    session.flush()
    return dispute


MAX_ATTACHMENTS = 5
EVIDENCE_KINDS = ("application/pdf", "image/jpeg", "image/png")


def attach(
    session: Session,
    store: FileStore,
    dispute: Dispute,
    principal: Principal,
    files: Sequence[tuple[str, bytes]],
    max_bytes: int,
) -> list[DisputeAttachment]:
    """Add evidence files (PDF, JPEG, PNG) to an open dispute the caller filed; all or none are added."""
    if dispute.filer_id != principal.user_id:
        raise ForbiddenError(N_("only the filer adds evidence to a dispute"), field="dispute")
    if dispute.status not in OPEN:
        raise ConflictError(
            N_("the dispute is {status}; evidence can no longer be added"), field="status", status=dispute.status
        )
    held = len(attachments(session, dispute.id))
    if held + len(files) > MAX_ATTACHMENTS:
        raise InvalidError(
            N_("a dispute takes at most {most} files ({held} already attached)"),
            field="evidence",
            most=MAX_ATTACHMENTS,
            held=held,
        )
    stored = [
        store.put(data, name, max_bytes=max_bytes, allowed=EVIDENCE_KINDS, field="evidence") for name, data in files
    ]
    added = [
        DisputeAttachment(
            dispute_id=dispute.id,
            digest=f.digest,
            media_type=f.media_type,
            size=f.size,
            name=f.name,
            uploaded_by=principal.user_id,
        )
        for f in stored
    ]
    session.add_all(added)
    if added:
        _history(session, dispute, principal, dispute.status, "evidence: " + ", ".join(f.name for f in stored))
    session.flush()
    return added


READ_ACTIONS = {"person": registers.PERSON_READ, "enterprise": registers.ENTERPRISE_READ}


def may_read_record(principal: Principal, register: str, record: dict[str, Any]) -> bool:
    """Whether ``principal`` may read this register record: the register's read action in the district the
    record is registered in, or city-wide (the rule of the registers' own API)."""
    action = READ_ACTIONS[register]
    return principal.allows(action, record.get("district_code") or None) or principal.allows(action, None)


def readable_values(
    session: Session, reader: registers.RegisterReader, principal: Principal, disputes: Sequence[Dispute]
) -> set[uuid.UUID]:
    """The disputes whose register values (current, proposed, corrected) ``principal`` may read: a citizen's or
    enterprise's own, those of the department that holds the value at its source (it decides them), and
    those whose record the caller may read in the register. Every other answer leaves the values out."""
    readable: set[uuid.UUID] = set()
    pending: dict[str, list[Dispute]] = {}
    for dispute in disputes:
        if (dispute.filer_id == principal.user_id and dispute.filer_kind in ("citizen", "enterprise")) or (
            principal.allows(DECIDE, dispute.tenant_code, dispute.department_code)
        ):
            readable.add(dispute.id)
        elif principal.has_action(READ_ACTIONS.get(dispute.register, "")):
            pending.setdefault(dispute.register, []).append(dispute)
    for register, waiting in pending.items():
        lookup = registers.get_persons if register == "person" else registers.get_enterprises
        key_name = "id_number" if register == "person" else "credit_code"
        try:
            rows = lookup(session, reader, sorted({d.record_key for d in waiting}), ["district_code"])
        except NotFoundError:  # the register is not built (any more): nothing to read in it
            continue
        found = {str(r.get(key_name, "")).upper(): r for r in rows}
        readable |= {
            d.id for d in waiting if d.record_key in found and may_read_record(principal, register, found[d.record_key])
        }
    return readable


def may_see(principal: Principal, dispute: Dispute) -> bool:
    """The filer and the department the dispute is routed to see it."""
    return dispute.filer_id == principal.user_id or principal.allows(READ, dispute.tenant_code, dispute.department_code)


def evidence_file(
    session: Session, principal: Principal, dispute_id: uuid.UUID, attachment_id: uuid.UUID
) -> tuple[Dispute, DisputeAttachment]:
    """An evidence file the caller may read, with its dispute; ``NotFoundError`` otherwise."""
    dispute = find_dispute(session, dispute_id)
    if dispute is None or not may_see(principal, dispute):
        raise NotFoundError(N_("no such dispute"), field="dispute")
    found = next((a for a in attachments(session, dispute.id) if a.id == attachment_id), None)
    if found is None:
        raise NotFoundError(N_("no such evidence file"), field="attachment")
    return dispute, found


def attachments(session: Session, dispute_id: uuid.UUID) -> list[DisputeAttachment]:
    """The evidence files of a dispute, oldest first."""
    return list(
        session.scalars(
            select(DisputeAttachment)
            .where(DisputeAttachment.dispute_id == dispute_id)
            .order_by(DisputeAttachment.created_at, DisputeAttachment.name)
        )
    )


def find_dispute(session: Session, dispute_id: uuid.UUID) -> Dispute | None:
    """The dispute with ``dispute_id``."""
    return session.get(Dispute, dispute_id)


def history(session: Session, dispute_id: uuid.UUID) -> list[DisputeEvent]:
    """A dispute's steps, oldest first."""
    return list(
        session.scalars(select(DisputeEvent).where(DisputeEvent.dispute_id == dispute_id).order_by(DisputeEvent.at))
    )


def visible_disputes(session: Session, principal: Principal, overdue_only: bool = False) -> list[Dispute]:
    """What the caller filed, plus what is routed to departments they may read."""
    query = select(Dispute).order_by(Dispute.created_at.desc())
    scoped = scope_conditions(principal, READ, Dispute.tenant_code, Dispute.department_code)
    if scoped is not None:
        query = query.where(or_(Dispute.filer_id == principal.user_id, *scoped))
    rows = list(session.scalars(query))
    return [d for d in rows if is_overdue(d)] if overdue_only else rows


def seed_demo(session: Session, settings: Settings) -> int:
    """Give the built-in roles the dispute actions (departments decide their own data's disputes)."""
    add_actions_to_role(session, "department_admin", (FILE, DECIDE, READ))
    add_actions_to_role(session, "data_officer", (FILE, READ))
    return 0

"""Cases: one application (一表申请) accepted once (一口受理), run through its BPMN process by the
departments (一网办理), concluded with unified issuance of signed e-licences (统一发证).

Status transitions are a table (``TRANSITIONS``); every step is appended to ``case_history``. The
process state is stored with the case after each step, so a restart loses nothing. Deadlines are in
working days from the core calendar; a return for correction (补正) stops the clock until the applicant
answers, and the paused working days extend the deadlines.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeAlias

import polars as pl
from SpiffWorkflow.util.task import TaskState  # type: ignore[import-untyped]
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shgov.cases import events
from shgov.core.calendar.service import add_working_days, city_today, working_days_between
from shgov.core.db import utcnow
from shgov.core.errors import ConflictError, ForbiddenError, InvalidError
from shgov.core.events import emit
from shgov.core.files import FileStore
from shgov.core.i18n import N_
from shgov.core.identity.demo import DEMO_PASSWORD
from shgov.core.identity.models import User
from shgov.core.identity.permissions import SYSTEM_ACTOR, Principal, Scope, register_action
from shgov.core.identity.service import (
    add_actions_to_role,
    assign_role,
    create_user,
    find_user,
    scope_conditions,
    user_by_id_number,
)
from shgov.core.ids import IdentifierError, validate_id_number
from shgov.core.notify import tell
from shgov.core.orgs.service import department_code, find_department
from shgov.core.settings import Settings
from shgov.lake import service as lake
from shgov.registers import service as registers
from shgov.registers.service import IssuedLicence
from shgov.services import service as services
from shgov.services.service import Applicant, Offering, PrefillContext

from . import presence
from .models import Case as Case  # part of this service's interface
from .models import CaseEvent, CaseMaterial, CaseProcess
from .models import CaseTask as CaseTask  # part of this service's interface

Licence: TypeAlias = IssuedLicence  # a licence a case issued (the licence register's row)

HANDLE = register_action("cases.task.handle", N_("Handle the tasks of cases routed to the department"))
APPLY_FOR = register_action("cases.case.apply_for", N_("Apply on behalf of a citizen at a window"))
READ = register_action("cases.case.read", N_("Read the cases of the department"))

ACCEPT, ISSUE = "accept", "issue"
OPEN_TASK = ("ready", "claimed")
# (status, action) → new status. Actions a person takes on a task or a case; "issue" is the system's.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("submitted", "accept"): "in_progress",
    ("submitted", "return"): "correction",
    ("submitted", "reject"): "rejected",
    ("in_progress", "approve"): "in_progress",
    ("in_progress", "return"): "correction",
    ("in_progress", "reject"): "rejected",
    ("in_progress", "supply"): "in_progress",
    ("correction", "resubmit"): "resubmitted",
    ("in_progress", "issue"): "concluded",
}
STATUS_LABELS = {
    "submitted": N_("submitted"),
    "in_progress": N_("in progress"),
    "correction": N_("awaiting correction"),
    "rejected": N_("rejected"),
    "concluded": N_("concluded"),
}


def flag(due_on: date | None, warn_days: int, on: date | None = None) -> str:
    """``overdue`` after the deadline, ``due_soon`` within ``warn_days`` working days of it, else ``""``."""
    if due_on is None:
        return ""
    now = on or city_today()
    if now > due_on:
        return "overdue"
    return "due_soon" if working_days_between(now, due_on) <= warn_days else ""


# -- preparing an application -----------------------------------------------------------------------


@dataclass
class MaterialPlan:
    """A merged material and how this applicant will provide it."""

    need: services.MaterialNeed
    licence: dict[str, Any] | None


@dataclass
class Preparation:
    """Everything the form page shows before submission."""

    offer: Offering
    sections: list[services.FormSection]
    prefilled: dict[str, Any]
    materials: list[MaterialPlan]
    precheck: services.PrecheckResult


def applicant_for(
    session: Session,
    principal: Principal,
    on_behalf: str | None,
    *,
    settings: Settings | None = None,
    proof: presence.Proof | None = None,
) -> Applicant:
    """The applicant: the caller themself, or (window staff only) the person at the window, whose presence
    the clerk proves with ``proof`` (see ``cases.presence``: checked, reach-limited and audited)."""
    if on_behalf:
        if not principal.has_action(APPLY_FOR):
            raise ForbiddenError(N_("only window staff apply on behalf of someone"), field="applicant")
        try:
            key = validate_id_number(on_behalf)
        except IdentifierError as exc:
            raise InvalidError(N_("The ID number is not valid: {reason}"), field="applicant", reason=exc) from exc
        if settings is None:
            raise ForbiddenError(N_("applying on behalf of someone needs their identity check"), field="applicant")
        presence.check(session, settings, principal, APPLY_FOR, key, proof or presence.Proof())
        return Applicant("person", key)
    user = find_user(session, principal.user_id)
    if user and user.id_number:
        return Applicant("person", user.id_number, user.id)
    if user and user.credit_code:
        return Applicant("enterprise", user.credit_code, user.id)
    raise ForbiddenError(N_("apply with a citizen or enterprise account, or at a window"), field="applicant")


def context(session: Session, settings: Settings) -> PrefillContext:
    """A prefill context over the live registers."""
    return PrefillContext(session, settings, registers.shared_reader(settings.lake_dir))


def prepare(
    session: Session,
    settings: Settings,
    offer: Offering,
    applicant: Applicant,
    values: Mapping[str, Any] | None = None,
    ctx: PrefillContext | None = None,
) -> Preparation:
    """The form prefilled from the registers, the materials (licences attached), and the pre-check.
    Pass ``ctx`` to reuse the register lookups already made for the same applicant."""
    ctx = ctx or context(session, settings)
    sections = services.form_for(session, offer)
    prefilled = services.prefill(ctx, applicant, sections)
    form_values = {**prefilled, **(values or {})}
    items = services.included_items(offer, form_values)
    held = services.licences_of(ctx, applicant)
    now = city_today()
    plans = [MaterialPlan(need, services.licence_for(need, held, now)) for need in services.materials_for(items)]
    facts = services.applicant_facts(ctx, applicant, form_values, now)
    return Preparation(offer, sections, prefilled, plans, services.precheck(offer, items, facts))


# -- submission -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A file the applicant chose for a material."""

    name: str
    data: bytes


def _department(session: Session, key: str, level: str, tenant: str, city: str) -> str:
    if level != "city" and tenant != city:
        code = department_code(tenant, key)
        if find_department(session, code) is not None:
            return code
    return department_code(city, key)


def _case_number(now: datetime) -> str:
    return f"SH{now:%Y%m%d}{secrets.token_hex(4).upper()}"


def _history(
    session: Session,
    case: Case,
    actor: Principal | None,
    action: str,
    before: str | None,
    note: str = "",
    task_key: str | None = None,
) -> None:
    session.add(
        CaseEvent(
            case_id=case.id,
            actor_id=actor.user_id if actor else None,
            actor_name=actor.display_name if actor else SYSTEM_ACTOR,
            action=action,
            task_key=task_key,
            from_status=before,
            to_status=case.status,
            note=note,
        )
    )


def _tell(session: Session, case: Case, subject: str, body: str = "") -> None:
    tell(session, case.applicant_user_id, f"【{case.offering_name}】{subject}", body, f"/cases/{case.id}", "cases.case")


def submit(
    session: Session,
    settings: Settings,
    store: FileStore,
    offer: Offering,
    applicant: Applicant,
    raw_form: Mapping[str, str],
    uploads: Mapping[str, Upload],
    *,
    channel: str,
    actor: Principal,
    client_token: str | None = None,
) -> Case:
    """Check everything, then create the case and start its process; nothing is written if a check fails."""
    if channel not in ("online", "window", "kiosk"):
        raise InvalidError(N_("unknown channel {channel!r}"), field="channel", channel=channel)
    if client_token:
        existing = session.scalar(select(Case).where(Case.client_token == client_token))
        if existing is not None:
            # Only the one who submitted it learns which case a token made: a token is no key to another's case.
            if existing.submitted_by == actor.user_id:
                raise ConflictError(
                    N_(
                        "This application has already been submitted (case number {number}); "
                        "please do not submit it again"
                    ),
                    field="client_token",
                    number=existing.number,
                )
            raise ConflictError(
                N_("This application has already been submitted; please do not submit it again"), field="client_token"
            )
    if applicant.kind != offer.target:
        if offer.target == "person":
            raise InvalidError(N_("The applicant for this service must be a person"), field="applicant")
        raise InvalidError(N_("The applicant for this service must be an enterprise"), field="applicant")
    ctx = context(session, settings)
    prep = prepare(session, settings, offer, applicant, ctx=ctx)
    # Prefilled values stand unless the applicant changed them; the register's own key cannot be changed.
    merged = {**{k: str(v) for k, v in prep.prefilled.items()}, **{k: v for k, v in raw_form.items() if v is not None}}
    result = services.evaluate_form(prep.sections, merged)
    if result.errors:
        raise next(iter(result.errors.values()))  # an InvalidError on form.<field>
    own_key = result.values.get("applicant_id_number") or result.values.get("enterprise_credit_code")
    if own_key and str(own_key).upper() != applicant.key.upper():
        raise InvalidError(
            N_("The ID number in the form does not match the applicant"), field="form.applicant_id_number"
        )
    prep = prepare(session, settings, offer, applicant, result.values, ctx)
    if not prep.precheck.passed:
        raise InvalidError(
            N_("The conditions for applying are not met: {failures}"),
            field="conditions",
            failures="；".join(prep.precheck.failures),
        )
    now = city_today()
    materials: list[CaseMaterial] = []
    for plan in prep.materials:
        need = plan.need
        upload = uploads.get(need.key)
        if plan.licence is not None:
            materials.append(
                CaseMaterial(
                    key=need.key,
                    name=need.name,
                    necessity=need.necessity,
                    source="licence",
                    licence_no=plan.licence["licence_no"],
                    trust_level=plan.licence.get("trust_level"),
                )
            )
        elif upload is not None and upload.data:
            materials.append(
                CaseMaterial(
                    key=need.key, name=need.name, necessity=need.necessity, **_uploaded(settings, store, need, upload)
                )
            )
        elif need.necessity == "必须":
            raise InvalidError(N_("Please upload “{name}”"), field=f"material:{need.key}", name=need.name)
        elif need.necessity == "容缺":
            materials.append(
                CaseMaterial(
                    key=need.key,
                    name=need.name,
                    necessity=need.necessity,
                    source="pending",
                    supply_by=add_working_days(now, need.supply_within_days),
                )
            )
    person = services.person_record(ctx, applicant)
    tenant = (
        str(person.get("district_code") or settings.city_code) if applicant.kind == "person" else settings.city_code
    )
    items = services.included_items(offer, result.values)
    process_digest = services.process_digest(offer.bpmn)
    if session.get(CaseProcess, process_digest) is None:
        session.add(CaseProcess(digest=process_digest, process_id=offer.process_id, bpmn=offer.bpmn))
    workflow = services.start_process(offer.bpmn, offer.process_id, result.values)
    applicant_user = (
        applicant.user_id
        if applicant.user_id
        else (u.id if applicant.kind == "person" and (u := user_by_id_number(session, applicant.key)) else None)
    )
    case = Case(
        number=_case_number(utcnow()),
        offering_kind=offer.kind,
        offering_code=offer.code,
        offering_name=offer.name,
        offering_version=offer.version,
        applicant_kind=applicant.kind,
        applicant_key=applicant.key.upper(),
        applicant_name=str(result.values.get("applicant_name") or result.values.get("enterprise_name") or ""),
        applicant_user_id=applicant_user,
        channel=channel,
        submitted_by=actor.user_id,
        tenant_code=tenant,
        status="submitted",
        form=result.values,
        prefilled=sorted(k for k, v in prep.prefilled.items() if str(result.values.get(k)) == str(v)),
        items=[i.code for i in items],
        process_digest=process_digest,
        process_state="",
        promised_days=offer.promised_days,
        client_token=client_token,
    )
    session.add(case)
    session.flush()
    for m in materials:
        m.case_id = case.id
        session.add(m)
    _history(session, case, actor, "submit", None, f"渠道：{channel}")
    _advance(session, settings, case, offer, workflow)
    _tell(session, case, f"已收到您的申请，办件编号 {case.number}")
    emit(session, events.CaseSubmitted(case_id=case.id, offering=offer.code, channel=channel))
    return case


# -- running the process ----------------------------------------------------------------------------


def offering_of(session: Session, case: Case) -> Offering:
    """The offering a case runs, with the BPMN the case was started with."""
    offer = services.offering(session, case.offering_kind, case.offering_code)
    stored = session.get(CaseProcess, case.process_digest)
    if stored is not None:
        offer.bpmn, offer.process_id = stored.bpmn, stored.process_id
    return offer


def _advance(session: Session, settings: Settings, case: Case, offer: Offering, workflow: Any) -> None:
    """Open tasks for the process's ready user tasks; run issuance when it is reached; store the state."""
    open_keys = {
        t.task_key
        for t in session.scalars(
            select(CaseTask).where(CaseTask.case_id == case.id, CaseTask.status.in_((*OPEN_TASK, "returned")))
        )
    }
    while True:
        ready = [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.manual]
        issuance = [t for t in ready if t.task_spec.bpmn_id == ISSUE]
        for task in ready:
            key = task.task_spec.bpmn_id
            if key == ISSUE or key in open_keys:
                continue
            _open_task(session, settings, case, offer, key, task.task_spec.bpmn_name or key)
            open_keys.add(key)
        if not issuance:
            break
        _issue(session, settings, case, offer)
        issuance[0].run()
        workflow.do_engine_steps()
    case.process_state = services.dump_process(workflow)
    if workflow.is_completed() and case.status != "concluded":
        before = case.status
        case.status = TRANSITIONS[(case.status, "issue")]
        case.concluded_at = utcnow()
        _history(session, case, None, "conclude", before, "统一发证，办结")
        _tell(session, case, "已办结，电子证照已发放到您的卡包")
        emit(session, events.CaseConcluded(case_id=case.id, offering=case.offering_code))


def _open_task(session: Session, settings: Settings, case: Case, offer: Offering, key: str, name: str) -> None:
    if key == ACCEPT:
        dept_key, level, days, item_code = offer.accepting_department_key, "district", 1, None
    else:
        item = offer.item(offer.tasks[key])
        dept_key, level, days, item_code = item.department_key, item.level, item.promised_days, item.code
    dept = _department(session, dept_key, level, case.tenant_code, settings.city_code)
    session.add(
        CaseTask(
            case_id=case.id,
            task_key=key,
            name=name,
            item_code=item_code,
            department_code=dept,
            tenant_code=dept.split(".", 1)[0],
            status="ready",
            due_on=add_working_days(city_today(), max(days, 1)),
        )
    )


def _issue(session: Session, settings: Settings, case: Case, offer: Offering) -> None:
    for code in case.items:
        item = offer.item(code)
        if not item.result_licence_type:
            continue
        dept = _department(session, item.department_key, item.level, case.tenant_code, settings.city_code)
        info = find_department(session, dept)
        validity = item.result_validity_years
        issued_on = city_today()
        registers.issue_licence(
            session,
            settings,
            licence_type=item.result_licence_type,
            holder_id=case.applicant_key,
            holder_name=case.applicant_name,
            issuer_department=dept,
            issuer_name=info.name if info else dept,
            particulars=_particulars(case, item.fields),
            source_ref=f"case:{case.number}:{item.code}",
            issued_on=issued_on,
            expires_on=issued_on.replace(year=issued_on.year + validity) if validity else None,
        )


def _particulars(case: Case, fields: list[dict[str, Any]]) -> dict[str, Any]:
    # What the licence says beyond its header: the item's own (non-applicant) fields, e.g. the child.
    skip = set(services.APPLICANT_FIELDS) | set(services.ENTERPRISE_FIELDS)
    return {
        f["dictionary"]: case.form[f["dictionary"]]
        for f in fields
        if f["dictionary"] not in skip and case.form.get(f["dictionary"]) not in (None, "")
    }


def lock(session: Session, case: Case) -> None:
    """Hold the case until commit and re-read it, so that two departments completing parallel tasks at
    the same moment never overwrite each other's process state (PostgreSQL: a row lock; SQLite refuses a
    write from a stale snapshot by itself)."""
    session.refresh(case, with_for_update=True)


def _load(session: Session, case: Case) -> tuple[Offering, Any]:
    offer = offering_of(session, case)
    return offer, services.load_process(offer.bpmn, offer.process_id, case.process_state)


def find_task(session: Session, task_id: uuid.UUID) -> CaseTask | None:
    """A task by id, or None."""
    return session.get(CaseTask, task_id)


def act(session: Session, settings: Settings, task: CaseTask, actor: Principal, action: str, note: str = "") -> Case:
    """A department's step on a task: claim, approve, return (补正) or reject, with the reason."""
    if not actor.allows(HANDLE, task.tenant_code, task.department_code):
        raise ForbiddenError(N_("this task belongs to another department"), field="task_id")
    case = session.get(Case, task.case_id)
    assert case is not None  # noqa: S101 - a task's case exists (foreign key)
    lock(session, case)
    session.refresh(task)  # as it is now that no one else is changing the case
    if task.status not in OPEN_TASK:
        raise ConflictError(
            N_("the task is {status}; nothing more can be done with it"), field="task_id", status=task.status
        )
    if action == "claim":
        if task.status == "claimed" and task.claimed_by != actor.user_id:
            raise ConflictError(N_("{name} has claimed this task"), field="task_id", name=task.claimed_name)
        task.status, task.claimed_by, task.claimed_name = "claimed", actor.user_id, actor.display_name
        _history(session, case, actor, "claim", case.status, "", task.task_key)
        return case
    if task.status == "claimed" and task.claimed_by != actor.user_id:
        raise ConflictError(N_("{name} has claimed this task"), field="task_id", name=task.claimed_name)
    step = "accept" if action == "approve" and task.task_key == ACCEPT else action
    if (case.status, step) not in TRANSITIONS:
        raise ConflictError(
            N_("a case that is {status} does not allow {action!r}"), field="action", status=case.status, action=action
        )
    if action in ("return", "reject") and len(note.strip()) < 2:
        raise InvalidError(N_("Please give the reason"), field="note")
    before = case.status
    case.status = TRANSITIONS[(case.status, step)]
    task.completed_at = utcnow() if action != "return" else None
    task.note = note.strip()
    if action == "approve":
        task.status = "done"
        offer, workflow = _load(session, case)
        if task.task_key == ACCEPT:
            case.accepted_at = utcnow()
            case.due_on = add_working_days(city_today(), max(case.promised_days, 1))

        spiff = next(t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.bpmn_id == task.task_key)
        spiff.run()
        workflow.do_engine_steps()
        _history(session, case, actor, "accept" if step == "accept" else "approve", before, note, task.task_key)
        _tell(session, case, f"{task.name}：已办理" if step != "accept" else "已受理")
        _advance(session, settings, case, offer, workflow)
    elif action == "return":
        task.status = "returned"
        case.suspended_on = city_today()
        _history(session, case, actor, "return", before, note, task.task_key)
        _tell(session, case, "需要补正材料", note)
    elif action == "reject":
        task.status = "rejected"
        for other in session.scalars(
            select(CaseTask).where(CaseTask.case_id == case.id, CaseTask.status.in_(OPEN_TASK))
        ):
            other.status = "cancelled"
        case.concluded_at = utcnow()
        case.outcome_note = note.strip()
        _history(session, case, actor, "reject", before, note, task.task_key)
        _tell(session, case, "未予通过", note)
    else:
        raise InvalidError(N_("unknown action {action!r}"), field="action", action=action)
    session.flush()
    return case


def resubmit(
    session: Session,
    settings: Settings,
    store: FileStore,
    case: Case,
    actor: Principal,
    changes: Mapping[str, str],
    uploads: Mapping[str, Upload],
) -> Case:
    """The applicant answers a return for correction (补正): the clock resumes, the task is ready again."""
    lock(session, case)
    if case.status != "correction":
        raise ConflictError(N_("this case is not waiting for a correction"), field="case_id")
    offer = offering_of(session, case)
    sections = services.form_for(session, offer)
    result = services.evaluate_form(
        sections, {**{k: "" if v is None else str(v) for k, v in case.form.items()}, **changes}
    )
    if result.errors:
        raise next(iter(result.errors.values()))  # an InvalidError on form.<field>
    _store_uploads(session, settings, store, case, offer, uploads)
    case.form = result.values
    paused = max(working_days_between(case.suspended_on or city_today(), city_today()), 0)
    case.paused_days += paused
    returned = session.scalars(select(CaseTask).where(CaseTask.case_id == case.id, CaseTask.status == "returned")).all()
    for task in returned:
        task.status = "ready"
        task.claimed_by, task.claimed_name = None, ""
        task.due_on = add_working_days(task.due_on, paused)
    if case.due_on is not None:
        case.due_on = add_working_days(case.due_on, paused)
    case.suspended_on = None
    before = case.status
    case.status = "in_progress" if case.accepted_at else "submitted"
    _history(session, case, actor, "resubmit", before, f"补正已提交，暂停 {paused} 个工作日")
    session.flush()
    return case


def supply(
    session: Session, settings: Settings, store: FileStore, case: Case, actor: Principal, uploads: Mapping[str, Upload]
) -> Case:
    """Hand in a material accepted as owed (容缺)."""
    lock(session, case)
    if case.status in ("rejected", "concluded"):
        raise ConflictError(N_("the case is closed"), field="case_id")
    if not uploads:
        raise InvalidError(N_("Please choose the material files to hand in"), field="material")
    offer = offering_of(session, case)
    _store_uploads(session, settings, store, case, offer, uploads)
    _history(session, case, actor, "supply", case.status, "补交容缺材料：" + "、".join(uploads))
    session.flush()
    return case


def _store_uploads(
    session: Session, settings: Settings, store: FileStore, case: Case, offer: Offering, uploads: Mapping[str, Upload]
) -> None:
    needs = {n.key: n for n in services.materials_for([offer.item(c) for c in case.items])}
    for key, upload in uploads.items():
        need = needs.get(key)
        if need is None:
            raise InvalidError(N_("this case needs no material {key!r}"), field=f"material:{key}", key=key)
        values = _uploaded(settings, store, need, upload)
        row = session.scalar(select(CaseMaterial).where(CaseMaterial.case_id == case.id, CaseMaterial.key == key))
        if row is None:
            row = CaseMaterial(case_id=case.id, key=key, name=need.name, necessity=need.necessity)
            session.add(row)
        for name, value in values.items():
            setattr(row, name, value)
        row.supplied_at = utcnow()


def _uploaded(settings: Settings, store: FileStore, need: services.MaterialNeed, upload: Upload) -> dict[str, Any]:
    """材料预审, then storage, of one upload: the file columns of its material row."""
    checked = services.check_material(need, upload.data, upload.name, settings.max_upload_bytes)
    stored = store.put(upload.data, upload.name, max_bytes=settings.max_upload_bytes, field=f"material:{need.key}")
    return {
        "source": "upload",
        "digest": stored.digest,
        "media_type": checked.media_type,
        "file_name": stored.name,
        "size": stored.size,
        "pages": checked.pages,
    }


# -- reading ----------------------------------------------------------------------------------------


def find_case(session: Session, case_id: uuid.UUID) -> Case | None:
    """A case by id, or None."""
    return session.get(Case, case_id)


def is_applicant(session: Session, principal: Principal, case: Case) -> bool:
    """Whether the caller is the case's applicant (by account, or by the ID / credit code of their account)."""
    if case.applicant_user_id is not None and case.applicant_user_id == principal.user_id:
        return True
    if principal.kind not in ("citizen", "enterprise"):
        return False
    user = find_user(session, principal.user_id)
    keys = {k.upper() for k in ((user.id_number, user.credit_code) if user else ()) if k}
    return case.applicant_key.upper() in keys


def concluded_since(session: Session, since: date) -> list[Case]:
    """Cases concluded on or after ``since`` (UTC midnight), oldest first."""
    start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    query = select(Case).where(Case.status == "concluded", Case.concluded_at >= start).order_by(Case.concluded_at)
    return list(session.scalars(query))


def may_see(session: Session, principal: Principal, case: Case) -> bool:
    """The applicant, the clerk who submitted it, and the departments with a task on it."""
    if case.submitted_by == principal.user_id or is_applicant(session, principal, case):
        return True
    if principal.kind in ("citizen", "enterprise"):
        return False
    tasks = session.scalars(select(CaseTask).where(CaseTask.case_id == case.id))
    return any(
        principal.allows(READ, t.tenant_code, t.department_code)
        or principal.allows(HANDLE, t.tenant_code, t.department_code)
        for t in tasks
    )


def may_see_task(session: Session, principal: Principal, task: CaseTask) -> bool:
    """A task is seen by those who see its case (its page lists the tasks); acting on it is checked apart."""
    case = find_case(session, task.case_id)
    return case is not None and may_see(session, principal, case)


def require_applicant(session: Session, principal: Principal, case: Case) -> None:
    """Refuse (403) anyone but the applicant an applicant's step on a case they may see (补正, 容缺 materials)."""
    if not is_applicant(session, principal, case):
        raise ForbiddenError(N_("only the applicant answers for the case"), field="case_id")


def may_see_licence(session: Session, principal: Principal, licence: Licence) -> bool:
    """An issued licence is seen by its holder (the ID number or credit code of their account) and by staff
    who read or revoke the issuing department's licences."""
    department = licence.issuer_department
    tenant = department.split(".")[0]
    if principal.allows(registers.LICENCE_READ, tenant, department) or principal.allows(
        registers.LICENCE_REVOKE, tenant, department
    ):
        return True
    user = find_user(session, principal.user_id)
    return user is not None and licence.holder_id in {k for k in (user.id_number, user.credit_code) if k}


def cases_of(session: Session, principal: Principal) -> list[Case]:
    """The cases a citizen or enterprise applied for (their own account or their ID)."""
    user = find_user(session, principal.user_id)
    keys = [k for k in ((user.id_number, user.credit_code) if user else ()) if k]
    query = select(Case).order_by(Case.created_at.desc())
    query = query.where(
        (Case.applicant_user_id == principal.user_id) | (Case.applicant_key.in_(keys))
        if keys
        else Case.applicant_user_id == principal.user_id
    )
    return list(session.scalars(query))


def tasks_of(session: Session, case_id: uuid.UUID) -> list[CaseTask]:
    """A case's tasks in the order they opened."""
    return list(session.scalars(select(CaseTask).where(CaseTask.case_id == case_id).order_by(CaseTask.ready_at)))


def history(session: Session, case_id: uuid.UUID) -> list[CaseEvent]:
    """A case's history, oldest first."""
    return list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.at)))


def materials(session: Session, case_id: uuid.UUID) -> list[CaseMaterial]:
    """A case's materials."""
    return list(
        session.scalars(select(CaseMaterial).where(CaseMaterial.case_id == case_id).order_by(CaseMaterial.name))
    )


def licences(session: Session, case: Case) -> list[dict[str, Any]]:
    """The licences issued for a case."""
    rows = []
    for code in case.items:
        for row in registers.issued_licences_for(session, f"case:{case.number}:{code}"):
            rows.append(row)
    return rows


def worklist(
    session: Session,
    principal: Principal,
    *,
    status: str = "open",
    item_code: str = "",
    flagged: str = "",
    warn_days: int = 2,
) -> list[tuple[CaseTask, Case, str]]:
    """The tasks of the departments the staff member serves: (task, case, deadline flag), most urgent first."""
    query = select(CaseTask, Case).join(Case, Case.id == CaseTask.case_id)
    scoped = scope_conditions(principal, HANDLE, CaseTask.tenant_code, CaseTask.department_code)
    if scoped is not None:
        if not scoped:
            return []
        query = query.where(or_(*scoped))
    if status == "open":
        query = query.where(CaseTask.status.in_(OPEN_TASK))
    elif status:
        query = query.where(CaseTask.status == status)
    if item_code:
        query = query.where(CaseTask.item_code == item_code)
    rows = [
        (t, c, flag(t.due_on, warn_days) if t.status in OPEN_TASK else "")
        for t, c in session.execute(query.order_by(CaseTask.due_on, CaseTask.ready_at).limit(500))
    ]
    rows = [r for r in rows if principal.allows(HANDLE, r[0].tenant_code, r[0].department_code)]
    if flagged:
        rows = [r for r in rows if r[2] == flagged]
    return rows


def seed_demo(session: Session, settings: Settings) -> dict[str, int]:
    """Give the window and case-worker roles their actions; create department staff for the demo bundles."""
    add_actions_to_role(session, "case_worker", (HANDLE, READ))
    add_actions_to_role(session, "window_clerk", (HANDLE, READ, APPLY_FOR))
    parent = _demo_parent(session, settings)
    created = 0
    for username, name, dept in DEMO_STAFF:
        if user_by_username(session, username) is not None:
            continue
        tenant = dept.split(".", 1)[0]
        user = create_user(
            session,
            kind="staff",
            username=username,
            display_name=name,
            password=DEMO_PASSWORD,
            tenant_code=tenant,
            department_code=dept,
        )
        assign_role(session, user.id, "case_worker", Scope(tenant, dept))
        created += 1
    return {"staff": created, "parent": parent}


def _demo_parent(session: Session, settings: Settings) -> int:
    # A married resident of Pudong in the register signs in as "parent" to try 小孩出生一件事.
    marriages = lake.read_current(settings.lake_dir, "marriages")
    population = lake.read_current(settings.lake_dir, "population")
    if marriages is None or population is None or user_by_username(session, "parent") is not None:
        return 0
    married = marriages.filter(pl.col("marital_status") == "已婚").select("id_number", "spouse_id_number")
    candidates = population.join(married, on="id_number").filter(
        (pl.col("district_code") == "310115")
        & (pl.col("birth_date") > date(1986, 1, 1))
        & (pl.col("birth_date") < date(2000, 1, 1))
    )
    for row in candidates.head(50).iter_rows(named=True):
        if user_by_id_number(session, row["id_number"]) is None:
            create_user(
                session,
                kind="citizen",
                username="parent",
                display_name=row["name"],
                password=DEMO_PASSWORD,
                id_number=row["id_number"],
                phone="13900001111",
            )
            return 1
    return 0


DEMO_STAFF = (
    ("pudong.wj", "浦东新区卫健委经办 何静", "310115.wj"),
    ("pudong.ga", "浦东公安分局户籍民警 马骏", "310115.ga"),
    ("pudong.yb", "浦东新区医保局经办 许梅", "310115.yb"),
)


def user_by_username(session: Session, username: str) -> User | None:
    """The account called ``username``."""
    return session.scalar(select(User).where(User.username == username))


def demo_accounts(settings: Settings) -> list[tuple[str, str, str]]:
    """The demo's department staff, for the console and the sign-in page."""
    return [("parent", DEMO_PASSWORD, "市民（小孩出生一件事）")] + [
        (u, DEMO_PASSWORD, "审批经办人员") for u, _n, _d in DEMO_STAFF
    ]


def submit_application(
    session: Session,
    settings: Settings,
    store: FileStore,
    principal: Principal,
    kind: str,
    code: str,
    values: dict[str, str],
    uploads: dict[str, Upload],
) -> Case:
    """Submit a read application form: window staff name the ``applicant`` and confirm ``identity_checked``."""
    on_behalf = values.pop("applicant", None) or None
    channel = values.pop("channel", "window" if on_behalf else "online")
    if on_behalf and values.pop("identity_checked", "") not in ("1", "true", "on"):
        raise InvalidError(N_("Please check the applicant's identity document first"), field="identity_checked")
    proof = presence.Proof.from_values(values)
    for name in presence.PROOF_FIELDS:  # how the clerk proved the applicant present is no part of the form
        values.pop(name, None)
    token = values.pop("client_token", None) or None
    return submit(
        session,
        settings,
        store,
        services.offering(session, kind, code),
        applicant_for(session, principal, on_behalf, settings=settings, proof=proof),
        values,
        uploads,
        channel=channel,
        actor=principal,
        client_token=token,
    )

"""好差评: every case stage, work-order follow-up and desk visit is rated on five levels with the channel's
indicators; a bad rating (不满意 / 非常不满意) opens a rectification with deadlines in working days.

Ratings are immutable: a flag (suspected manipulation), a rectification, an appeal or a re-rating refers to
a rating and never changes it, so the statistics can always be recomputed from the ratings themselves
(``shgov.ratings.stats``). A re-rating (the rater's answer to the department's feedback) is round 2 of the
same subject and stage and takes the place of round 1 in the statistics; an approved appeal excludes a
rating from them.

The rectification's transitions are a table; the department's steps, the supervisor's decisions and the
system's supervision of overdue steps are appended to ``rectification_history``.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shgov.cases import service as cases
from shgov.core.calendar.service import add_working_days, city_today
from shgov.core.db import Database, utcnow
from shgov.core.errors import ConflictError, DomainError, ForbiddenError, InvalidError, NotFoundError
from shgov.core.events import Event, emit
from shgov.core.i18n import N_
from shgov.core.identity.models import User
from shgov.core.identity.permissions import SYSTEM_ACTOR, Principal, register_action
from shgov.core.identity.service import add_actions_to_role, scope_conditions, tenant_exists
from shgov.core.ids import may_read_personal
from shgov.core.notify import tell
from shgov.core.settings import Settings
from shgov.ratings import events
from shgov.ratings.models import (
    Desk,
    GuideReview,
    Rating,
    RatingAppeal,
    RatingFlag,
    RatingInvitation,
    RatingRule,
    Rectification,
    RectificationEvent,
)
from shgov.ratings.schemas import OnTimeOut, PublicStats, StatRow

if TYPE_CHECKING:
    from shgov.ratings.stats import Row
from shgov.workorders import service as workorders
from shgov.workorders.events import OrderStep

HANDLE = register_action("ratings.rectification.handle", N_("Verify and rectify bad ratings of the department"))
SUPERVISE = register_action("ratings.rectification.supervise", N_("Supervise rectifications and decide appeals"))
STATS = register_action("ratings.stats.read", N_("See rating statistics and export them"))
MANAGE = register_action("ratings.rules.manage", N_("Set rating deadlines, thresholds and desks"))

LEVELS = {
    5: N_("very satisfied"),
    4: N_("satisfied"),
    3: N_("fairly satisfied"),
    2: N_("unsatisfied"),
    1: N_("very unsatisfied"),
}
BAD = 2  # levels at or below are 差评
# where a rating is given → which indicators it has (GB/T 39734: online and offline)
CHANNELS = {
    "web": "online",
    "app": "online",
    "kiosk": "online",
    "window": "offline",
    "hotline": "offline",
    "followup": "offline",
}
INDICATORS = {
    "online": ("overall", "efficiency", "guide_accuracy", "convenience", "usability"),
    "offline": ("overall", "efficiency", "service_level", "attitude"),
}
INDICATOR_NAMES = {
    "overall": N_("overall satisfaction"),
    "efficiency": N_("efficiency"),
    "guide_accuracy": N_("accuracy of the guide"),
    "convenience": N_("convenience"),
    "usability": N_("ease of use of the platform"),
    "service_level": N_("service level"),
    "attitude": N_("attitude"),
}
CHANNEL_NAMES = {
    "web": N_("web"),
    "app": N_("app"),
    "kiosk": N_("kiosk"),
    "window": N_("window"),
    "hotline": N_("12345 hotline"),
    "followup": N_("work-order follow-up"),
}
MAX_COMMENT = 500
CASE_STAGES = ("accept", "conclude")
REPEAT_PER_DAY = 3  # one device rating one desk or item this often in a day is flagged

OPEN = ("opened", "contacted", "verified", "rectified", "answered", "appealed")
STATUS_NAMES = {
    "opened": N_("opened"),
    "contacted": N_("rater contacted"),
    "verified": N_("verified"),
    "rectified": N_("rectified"),
    "answered": N_("answered"),
    "appealed": N_("under appeal"),
    "concluded": N_("concluded"),
    "excluded": N_("excluded"),
}
# status → {action: next status}: the department's steps; the supervisor decides appeals (approve, reject)
TRANSITIONS: dict[str, dict[str, str]] = {
    "opened": {"contact": "contacted", "verify": "verified", "appeal": "appealed"},
    "contacted": {"verify": "verified", "appeal": "appealed"},
    "verified": {"rectify": "rectified"},
    "rectified": {"answer": "answered"},
    "answered": {"conclude": "concluded"},
}
APPEAL_DECISIONS = {"approve": "excluded", "reject": "verified"}
VERDICTS = ("valid", "mistaken", "malicious")


class TooManyRatings(DomainError):  # noqa: N818 - named for what the caller sees
    """More ratings from one identity, device or network than the rules allow in an hour."""

    slug = "too-many-requests"


@dataclass(frozen=True)
class Given:
    """What a rater submits."""

    level: int
    channel: str
    scores: dict[str, int]
    comment: str = ""


@dataclass(frozen=True)
class Origin:
    """Where a rating came from, as keyed digests (throttling never stores a raw address)."""

    device_hash: str | None = None
    ip_hash: str | None = None


def origin(settings: Settings, device: str | None, ip: str | None) -> Origin:
    """Keyed digests of the rater's device id and network address."""
    key = settings.secret_key.get_secret_value().encode()

    def digest(value: str | None) -> str | None:
        return hmac.new(key, value.encode(), hashlib.sha256).hexdigest() if value else None

    return Origin(digest(device), digest(ip))


# -- rules ----------------------------------------------------------------------------------------------


def rules_for(session: Session, tenant_code: str) -> RatingRule:
    """The rules of a tenant: its own, else the city-wide ones ("*"), else the defaults (Shanghai's
    1 / 5 / 15 working days, an invitation after 3 days)."""
    return session.get(RatingRule, tenant_code) or session.get(RatingRule, "*") or _default_rule()


def _default_rule() -> RatingRule:
    return RatingRule(
        scope="*",
        contact_days=1,
        rectify_days=5,
        conclude_days=15,
        invite_after_days=3,
        hourly_limit=10,
        burst_minutes=10,
        burst_count=20,
    )


RULE_LIMITS = {
    "contact_days": (0, 30),
    "rectify_days": (1, 60),
    "conclude_days": (1, 90),
    "invite_after_days": (0, 30),
    "hourly_limit": (1, 1000),
    "burst_minutes": (1, 1440),
    "burst_count": (2, 100_000),
}


def set_rules(session: Session, scope: str, values: dict[str, int]) -> RatingRule:
    """Set a tenant's rules (or the city-wide ones, ``*``); the deadlines must follow one another."""
    if scope != "*" and not tenant_exists(session, scope):
        raise NotFoundError(N_("tenant {tenant} does not exist"), tenant=scope)
    unknown = set(values) - set(RULE_LIMITS)
    if unknown:
        first = sorted(unknown)[0]
        raise InvalidError(N_("unknown rule {rule!r}"), field=first, rule=first)
    rule = session.get(RatingRule, scope)
    if rule is None:
        base = rules_for(session, scope)
        rule = RatingRule(scope=scope, **{k: getattr(base, k) for k in RULE_LIMITS})
        session.add(rule)
    for name, value in values.items():
        low, high = RULE_LIMITS[name]
        if not isinstance(value, int) or not low <= value <= high:
            raise InvalidError(
                N_("{rule} must be a whole number from {low} to {high}"), field=name, rule=name, low=low, high=high
            )
        setattr(rule, name, value)
    if not rule.contact_days <= rule.rectify_days <= rule.conclude_days:
        raise InvalidError(
            N_("the deadlines must follow one another: contact ≤ rectify ≤ conclude"), field="rectify_days"
        )
    session.flush()
    return rule


# -- desks ----------------------------------------------------------------------------------------------


def save_desk(session: Session, principal: Principal, desk: Desk) -> Desk:
    """Add or change a desk (its QR code rates visits to it): the caller manages the desk's department as it
    is and as it will be, so no one moves another department's desk into their own."""
    if not principal.allows(MANAGE, desk.tenant_code, desk.department_code):
        raise ForbiddenError(N_("only the department's administrators manage its desks"))
    if not desk.code or not desk.code.replace("-", "").replace(".", "").isalnum() or len(desk.code) > 40:
        raise InvalidError(N_("a desk code is letters, digits, '-' and '.' (at most 40)"), field="code")
    existing = session.get(Desk, desk.code)
    if existing is not None and not principal.allows(MANAGE, existing.tenant_code, existing.department_code):
        raise ForbiddenError(N_("only the department's administrators manage its desks"))
    if existing is None:
        session.add(desk)
        session.flush()
        return desk
    for name in ("name", "department_code", "tenant_code", "item_code", "item_name", "staff_ids"):
        setattr(existing, name, getattr(desk, name))
    session.flush()
    return existing


def find_desk(session: Session, code: str) -> Desk | None:
    """A desk by its code, or None."""
    return session.get(Desk, code)


def may_see_desk(principal: Principal, desk: Desk) -> bool:
    """A desk's page (its printable QR code) is for those who handle or manage its department's ratings."""
    return principal.allows(HANDLE, desk.tenant_code, desk.department_code) or principal.allows(
        MANAGE, desk.tenant_code, desk.department_code
    )


# -- rating ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """What is rated, and what the statistics group it by."""

    kind: str
    ref: str
    stage: str
    item_code: str
    item_name: str
    department_code: str
    tenant_code: str
    served_by: tuple[str, ...] = ()
    desk_code: str | None = None


def _checked(given: Given) -> dict[str, int]:
    if given.channel not in CHANNELS:
        raise InvalidError(
            N_("unknown channel {channel!r}; one of {channels}"),
            field="channel",
            channel=given.channel,
            channels=", ".join(CHANNELS),
        )
    if not isinstance(given.level, int) or isinstance(given.level, bool) or given.level not in LEVELS:
        raise InvalidError(N_("the level is 1 (very unsatisfied) to 5 (very satisfied)"), field="level")
    if len(given.comment) > MAX_COMMENT:
        raise InvalidError(N_("the comment is at most {most} characters"), field="comment", most=MAX_COMMENT)
    allowed = INDICATORS[CHANNELS[given.channel]]
    scores = dict(given.scores)
    for name, value in scores.items():
        if name not in allowed:
            raise InvalidError(
                N_("{indicator!r} is not rated on the {channel} channel"),
                field=f"scores.{name}",
                indicator=name,
                channel=given.channel,
            )
        if not isinstance(value, int) or isinstance(value, bool) or value not in LEVELS:
            raise InvalidError(N_("an indicator is rated 1 to 5"), field=f"scores.{name}")
    scores.setdefault("overall", given.level)
    return scores


def _throttle(session: Session, rule: RatingRule, rater: uuid.UUID | None, where: Origin) -> None:
    since = utcnow() - timedelta(hours=1)
    for column, value, too_many in (
        (Rating.rater_id, rater, N_("too many ratings from this account in the last hour; try again later")),
        (
            Rating.device_hash,
            where.device_hash,
            N_("too many ratings from this device in the last hour; try again later"),
        ),
        (
            Rating.ip_hash,
            where.ip_hash,
            N_("too many ratings from this network address in the last hour; try again later"),
        ),
    ):
        if value is None:
            continue
        count = session.scalar(select(func.count()).where(column == value, Rating.created_at >= since)) or 0
        if count >= rule.hourly_limit:
            raise TooManyRatings(too_many)


def _flag_suspicious(session: Session, rule: RatingRule, rating: Rating) -> list[RatingFlag]:
    """Flag a burst on one desk or item and one device rating one desk or item again and again."""
    flags = []
    since = rating.created_at - timedelta(minutes=rule.burst_minutes)
    target = Rating.desk_code == rating.desk_code if rating.desk_code else Rating.item_code == rating.item_code
    burst = session.scalar(select(func.count()).where(target, Rating.created_at >= since)) or 0
    if burst >= rule.burst_count:
        what = f"desk {rating.desk_code}" if rating.desk_code else f"item {rating.item_code}"
        flags.append(
            RatingFlag(
                rating_id=rating.id, reason="burst", detail=f"{burst} ratings of {what} in {rule.burst_minutes} min"
            )
        )
    if rating.device_hash:
        day = rating.created_at - timedelta(days=1)
        repeats = (
            session.scalar(
                select(func.count()).where(target, Rating.device_hash == rating.device_hash, Rating.created_at >= day)
            )
            or 0
        )
        if repeats >= REPEAT_PER_DAY:
            flags.append(
                RatingFlag(rating_id=rating.id, reason="repeat", detail=f"{repeats} ratings from one device in a day")
            )
    session.add_all(flags)
    return flags


def _record(
    session: Session,
    subject: Subject,
    given: Given,
    rater: Principal | None,
    where: Origin,
    round_: int = 1,
    replaces: uuid.UUID | None = None,
) -> Rating:
    scores = _checked(given)
    if rater is not None and str(rater.user_id) in subject.served_by:
        raise ForbiddenError(N_("staff may not rate their own work"), field="level")
    rule = rules_for(session, subject.tenant_code)
    _throttle(session, rule, rater.user_id if rater else None, where)
    taken = select(Rating.id).where(
        Rating.subject_kind == subject.kind,
        Rating.subject_ref == subject.ref,
        Rating.stage == subject.stage,
        Rating.round == round_,
    )
    if session.scalar(taken) is not None:
        raise ConflictError(N_("this has been rated already (one rating each time)"), field="level")
    rating = _new_rating(subject, given.channel, given.level, scores, given.comment, rater.user_id if rater else None)
    rating.round, rating.replaces_id = round_, replaces
    rating.device_hash, rating.ip_hash = where.device_hash, where.ip_hash
    try:
        with session.begin_nested():
            session.add(rating)
            session.flush()
    except IntegrityError as exc:  # a concurrent rating of the same stage won
        raise ConflictError(N_("this has been rated already (one rating each time)"), field="level") from exc
    _flag_suspicious(session, rule, rating)
    if rating.level <= BAD:
        _open_rectification(session, rating, rule)
    if scores.get("guide_accuracy", 5) <= BAD:
        _flag_guide(session, rating)
    emit(
        session,
        events.RatingGiven(rating=rating.id, level=rating.level, item=rating.item_code, channel=rating.channel),
    )
    return rating


def _new_rating(
    subject: Subject, channel: str, level: int, scores: dict[str, int], comment: str, rater_id: uuid.UUID | None
) -> Rating:
    return Rating(
        id=uuid.uuid4(),
        subject_kind=subject.kind,
        subject_ref=subject.ref,
        stage=subject.stage,
        round=1,
        channel=channel,
        level=level,
        scores=scores,
        comment=comment.strip(),
        item_code=subject.item_code,
        item_name=subject.item_name,
        department_code=subject.department_code,
        tenant_code=subject.tenant_code,
        desk_code=subject.desk_code,
        served_by=list(subject.served_by),
        rater_id=rater_id,
        created_at=utcnow(),
    )


def may_rate_case(session: Session, principal: Principal, case: cases.Case) -> bool:
    """A case is rated by its applicant alone (real-name: the account, or the ID number / credit code on it);
    to anyone else it is as unknown as a case that does not exist."""
    return cases.is_applicant(session, principal, case)


def case_subject(session: Session, principal: Principal, case: cases.Case, stage: str) -> Subject:
    """A stage of the caller's own case (real-name: the applicant only), once it has been reached."""
    if stage not in CASE_STAGES:
        raise InvalidError(N_("a case is rated at one of: {stages}"), field="stage", stages=", ".join(CASE_STAGES))
    if not may_rate_case(session, principal, case):  # the callers' access helper refused already
        raise NotFoundError(N_("no such case"), field="case")
    if stage == "accept" and case.accepted_at is None:
        raise ConflictError(N_("the case has not been accepted yet"), field="stage")
    if stage == "conclude" and case.status not in ("concluded", "rejected"):
        raise ConflictError(N_("the case has not been concluded yet"), field="stage")
    tasks = cases.tasks_of(session, case.id)
    served = {str(t.claimed_by) for t in tasks if t.claimed_by} | (
        {str(case.submitted_by)} if case.submitted_by else set()
    )
    served.discard(str(case.applicant_user_id))
    first = tasks[0] if tasks else None
    return Subject(
        kind="case",
        ref=str(case.id),
        stage=stage,
        item_code=case.offering_code,
        item_name=case.offering_name,
        department_code=first.department_code if first else case.tenant_code,
        tenant_code=case.tenant_code,
        served_by=tuple(sorted(served)),
    )


def rate_case(
    session: Session, principal: Principal, case: cases.Case, stage: str, given: Given, where: Origin = Origin()
) -> Rating:
    """The applicant rates a stage of their case (一事一评)."""
    return _record(session, case_subject(session, principal, case, stage), given, principal, where)


def rate_desk(session: Session, principal: Principal | None, desk: Desk, given: Given, where: Origin) -> Rating:
    """A visit to a desk rated through its QR code (一次一评): one rating per rater (account, else device)
    per desk per day."""
    who = str(principal.user_id) if principal else where.device_hash
    if who is None:
        raise InvalidError(N_("sign in or allow the device id to rate a desk"), field="device")
    subject = Subject(
        kind="desk",
        ref=desk.code,
        stage=f"{city_today().isoformat()}:{who}"[:60],
        item_code=desk.item_code or desk.code,
        item_name=desk.item_name or desk.name,
        department_code=desk.department_code,
        tenant_code=desk.tenant_code,
        served_by=tuple(desk.staff_ids),
        desk_code=desk.code,
    )
    return _record(session, subject, given, principal, where)


def record_followup(session: Session, order_id: uuid.UUID, level: int) -> Rating | None:
    """The reporter's satisfaction with a work order's answer (回访), as a rating of the follow-up channel;
    recorded once per order (a repeated event is ignored)."""
    order = workorders.get_order(session, order_id)
    exists = select(Rating.id).where(Rating.subject_kind == "workorder", Rating.subject_ref == str(order.id))
    if session.scalar(exists) is not None:
        return None
    code = order.category_code or "unclassified"
    try:
        name = workorders.get_category(session, code).name if order.category_code else "未分类工单"
    except InvalidError:  # a category retired since
        name = code
    subject = Subject(
        kind="workorder",
        ref=str(order.id),
        stage="followup",
        item_code=code,
        item_name=name,
        department_code=order.lead_unit or order.tenant_code,
        tenant_code=order.tenant_code,
    )
    rule = rules_for(session, order.tenant_code)
    rating = _new_rating(subject, "followup", level, {"overall": level}, "", order.reporter_user_id)
    session.add(rating)
    session.flush()
    if level <= BAD:
        _open_rectification(session, rating, rule)
    return rating


def rerate(session: Session, principal: Principal, rect: Rectification, given: Given, where: Origin) -> Rating:
    """The rater answers the department's feedback with a new rating (round 2), which concludes the loop;
    a second bad rating opens a new rectification. Others who may see the rectification are refused (403)."""
    original = rating_of_rectification(session, rect)
    if original.rater_id != principal.user_id:
        raise ForbiddenError(N_("only the rater rates again"), field="rectification")
    if rect.status != "answered":
        raise ConflictError(N_("a rating can be given again once the department has answered"), field="rectification")
    subject = Subject(
        kind=original.subject_kind,
        ref=original.subject_ref,
        stage=original.stage,
        item_code=original.item_code,
        item_name=original.item_name,
        department_code=original.department_code,
        tenant_code=original.tenant_code,
        served_by=tuple(original.served_by),
        desk_code=original.desk_code,
    )
    rating = _record(session, subject, given, principal, where, round_=original.round + 1, replaces=original.id)
    _step(session, rect, None, "rerate", "concluded", f"re-rated {rating.level}")
    rect.rerating_id = rating.id
    rect.concluded_at = utcnow()
    session.flush()
    return rating


def _flag_guide(session: Session, rating: Rating) -> None:
    review = session.get(GuideReview, rating.item_code)
    if review is None:
        review = GuideReview(item_code=rating.item_code, item_name=rating.item_name, status="open", bad_ratings=0)
        session.add(review)
    review.bad_ratings += 1
    review.status = "open"
    if rating.comment:
        review.last_comment = rating.comment
    emit(session, events.GuideFlagged(item=rating.item_code, bad_ratings=review.bad_ratings))


# -- the closed loop ------------------------------------------------------------------------------------


def _open_rectification(
    session: Session, rating: Rating, rule: RatingRule, opened: date | None = None
) -> Rectification:
    opened = opened or city_today()
    rect = Rectification(
        rating_id=rating.id,
        department_code=rating.department_code,
        tenant_code=rating.tenant_code,
        status="opened",
        opened_on=opened,
        contact_due=add_working_days(opened, rule.contact_days),
        rectify_due=add_working_days(opened, rule.rectify_days),
        conclude_due=add_working_days(opened, rule.conclude_days),
    )
    session.add(rect)
    session.flush()
    # opened when the rating was given (a seeded or imported rating of an earlier day keeps its day)
    _history(session, rect, None, "open", None, f"rated {rating.level}", at=rating.created_at)
    emit(session, events.RectificationOpened(rectification=rect.id, department=rect.department_code))
    return rect


def _history(
    session: Session,
    rect: Rectification,
    actor: Principal | None,
    action: str,
    before: str | None,
    note: str,
    at: datetime | None = None,
) -> None:
    session.add(
        RectificationEvent(
            rectification_id=rect.id,
            at=at or utcnow(),
            actor_id=actor.user_id if actor else None,
            actor_name=actor.display_name if actor else SYSTEM_ACTOR,
            action=action,
            from_status=before,
            to_status=rect.status,
            note=note,
        )
    )


def _step(session: Session, rect: Rectification, actor: Principal | None, action: str, to: str, note: str) -> None:
    before = rect.status
    rect.status = to
    _history(session, rect, actor, action, before, note)


def find_rectification(session: Session, rectification_id: uuid.UUID) -> Rectification | None:
    """A rectification by id, or None."""
    return session.get(Rectification, rectification_id)


def rating_of_rectification(session: Session, rect: Rectification) -> Rating:
    """The rating a rectification was opened by."""
    rating = session.get(Rating, rect.rating_id)
    assert rating is not None  # noqa: S101 - a foreign key
    return rating


@dataclass(frozen=True)
class StepInput:
    """A department's step on a rectification; which fields it needs depends on the action."""

    action: str
    note: str = ""
    verdict: str | None = None
    cause: str = ""
    measures: str = ""
    responsible_unit: str = ""
    evidence: str = ""


def _need(value: str, field: str, missing: str) -> str:
    """``value`` stripped; ``missing`` (a message id) is the error when it is empty."""
    value = value.strip()
    if len(value) < 2:
        raise InvalidError(missing, field=field)
    if len(value) > 2000:
        raise InvalidError(N_("at most 2,000 characters"), field=field)
    return value


def act(session: Session, principal: Principal, rect: Rectification, step: StepInput) -> Rectification:
    """The department moves a rectification along the transition table."""
    if not principal.allows(HANDLE, rect.tenant_code, rect.department_code):
        raise ForbiddenError(N_("only the rated department handles this rectification"))
    allowed = TRANSITIONS.get(rect.status, {})
    if step.action not in allowed:
        raise ConflictError(
            N_("a rectification that is {status} cannot take {action!r}"),
            field="action",
            status=rect.status,
            action=step.action,
        )
    now = utcnow()
    note = step.note.strip()
    if step.action == "contact":
        note = _need(step.note, "note", N_("write how and when the rater was contacted"))
        rect.contacted_at = now
    elif step.action == "verify":
        if step.verdict != "valid":
            raise InvalidError(
                N_("verify finds the rating valid; a mistaken or malicious one is appealed"), field="verdict"
            )
        note = _need(step.note, "note", N_("write what the verification found"))
        rect.verdict, rect.verification = "valid", note
        rect.contacted_at = rect.contacted_at or now
    elif step.action == "appeal":
        if step.verdict not in ("mistaken", "malicious"):
            raise InvalidError(N_("an appeal says the rating is mistaken or malicious"), field="verdict")
        evidence = _need(step.evidence, "evidence", N_("write the evidence"))
        rect.verdict, rect.verification = step.verdict, evidence
        session.add(
            RatingAppeal(
                rating_id=rect.rating_id,
                rectification_id=rect.id,
                grounds=step.verdict,
                evidence=evidence,
                filed_by=principal.user_id,
                status="filed",
            )
        )
        note = f"{step.verdict}: {evidence}"
    elif step.action == "rectify":
        rect.cause = _need(step.cause, "cause", N_("write the cause"))
        rect.measures = _need(step.measures, "measures", N_("write the measures taken"))
        rect.responsible_unit = _need(step.responsible_unit, "responsible_unit", N_("write the responsible unit"))
        rect.rectified_at = now
        note = note or rect.measures
    elif step.action == "answer":
        rect.feedback = note = _need(step.note, "note", N_("write the answer to the rater"))
        rect.answered_at = now
        rating = session.get(Rating, rect.rating_id)
        if rating is not None:
            tell(
                session,
                rating.rater_id,
                f"【好差评】{rating.item_name}：部门已回复您的评价",
                rect.feedback,
                "/my/ratings",
                "ratings.rectification",
            )
    elif step.action == "conclude":
        rect.concluded_at = now
    _step(session, rect, principal, step.action, allowed[step.action], note)
    session.flush()
    emit(session, events.RectificationStep(action=step.action, rectification=rect.id, status=rect.status))
    return rect


def decide_appeal(
    session: Session, principal: Principal, rect: Rectification, decision: str, note: str
) -> RatingAppeal:
    """A supervisor approves (the rating is excluded from the statistics) or rejects (the department must
    rectify) the department's appeal; the decider may not be who filed it."""
    if not principal.allows(SUPERVISE, rect.tenant_code, None):
        raise ForbiddenError(N_("only a supervisor of the district decides appeals"))
    if rect.status != "appealed" or decision not in APPEAL_DECISIONS:
        raise ConflictError(N_("there is no appeal to decide"), field="decision")
    appeal = session.scalar(
        select(RatingAppeal).where(RatingAppeal.rectification_id == rect.id, RatingAppeal.status == "filed")
    )
    assert appeal is not None  # noqa: S101 - an appealed rectification has one
    if appeal.filed_by == principal.user_id:
        raise ForbiddenError(N_("the appeal is decided by someone other than who filed it"), field="decision")
    note = _need(note, "note", N_("write the reason for the decision"))
    appeal.status = "approved" if decision == "approve" else "rejected"
    appeal.decided_by, appeal.decided_at, appeal.decision_note = principal.user_id, utcnow(), note
    if decision == "approve":
        rect.concluded_at = utcnow()
    else:
        rect.verdict = "valid"
    _step(session, rect, principal, decision, APPEAL_DECISIONS[decision], note)
    session.flush()
    emit(session, events.AppealDecided(rectification=rect.id, decision=appeal.status))
    return appeal


def overdue_steps(rect: Rectification, today: date | None = None) -> list[str]:
    """The deadlines a rectification has missed: contact, rectify, conclude."""
    day = today or city_today()
    missed = []
    if rect.status == "opened" and day > rect.contact_due:
        missed.append("contact")
    if rect.status in ("opened", "contacted", "verified") and day > rect.rectify_due:
        missed.append("rectify")
    if rect.status in OPEN and day > rect.conclude_due:
        missed.append("conclude")
    return missed


@dataclass(frozen=True)
class Sweep:
    """What a sweep did."""

    invited: int
    supervised: int


def sweep(session: Session, today: date | None = None) -> Sweep:
    """Invite the applicants of cases concluded (at least the rule's delay ago) and still unrated, and put
    overdue rectifications under supervision (督办). Idempotent: run it from cron."""
    day = today or city_today()
    return Sweep(_invite(session, day), _supervise(session, day))


def _invite(session: Session, day: date) -> int:
    invited = 0
    longest = max([r.invite_after_days for r in session.scalars(select(RatingRule))] + [3])
    since = day - timedelta(days=longest + 30)
    # a conclusion rating or an invitation of a case concluded since then was given after it: only those are read
    start = datetime(since.year, since.month, since.day, tzinfo=UTC)
    rated = set(
        session.scalars(
            select(Rating.subject_ref).where(
                Rating.subject_kind == "case", Rating.stage == "conclude", Rating.created_at >= start
            )
        )
    )
    asked = set(
        session.scalars(
            select(RatingInvitation.case_id).where(
                RatingInvitation.stage == "conclude", RatingInvitation.sent_at >= start
            )
        )
    )
    for case in cases.concluded_since(session, since):
        if str(case.id) in rated or str(case.id) in asked or case.concluded_at is None:
            continue
        wait = rules_for(session, case.tenant_code).invite_after_days
        concluded_on = case.concluded_at.date()
        if concluded_on + timedelta(days=wait) > day:
            continue
        session.add(RatingInvitation(case_id=str(case.id), stage="conclude", user_id=case.applicant_user_id))
        tell(
            session,
            case.applicant_user_id,
            f"【好差评】请为“{case.offering_name}”的办理打分",
            f"办件 {case.number} 已办结，欢迎评价。",
            f"/my/cases/{case.id}/rate",
            "ratings.invitation",
        )
        invited += 1
    session.flush()
    return invited


def _supervise(session: Session, day: date) -> int:
    supervised = 0
    waiting = session.scalars(
        select(Rectification).where(Rectification.status.in_(OPEN), Rectification.supervised_at.is_(None))
    )
    for rect in waiting:
        missed = overdue_steps(rect, day)
        if not missed:
            continue
        rect.supervised_at = utcnow()
        _history(session, rect, None, "supervise", rect.status, "overdue: " + ", ".join(missed))
        emit(
            session,
            events.RectificationSupervised(rectification=rect.id, department=rect.department_code, missed=missed),
        )
        supervised += 1
    session.flush()
    return supervised


# -- reading --------------------------------------------------------------------------------------------


def history(session: Session, rectification_id: uuid.UUID) -> list[RectificationEvent]:
    """A rectification's steps, oldest first."""
    return list(
        session.scalars(
            select(RectificationEvent)
            .where(RectificationEvent.rectification_id == rectification_id)
            .order_by(RectificationEvent.at, RectificationEvent.id)
        )
    )


def flags_of(session: Session, rating_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[RatingFlag]]:
    """The flags of some ratings."""
    out: dict[uuid.UUID, list[RatingFlag]] = {}
    if rating_ids:
        for flag in session.scalars(select(RatingFlag).where(RatingFlag.rating_id.in_(rating_ids))):
            out.setdefault(flag.rating_id, []).append(flag)
    return out


def my_ratings(session: Session, principal: Principal) -> list[tuple[Rating, Rectification | None]]:
    """The caller's ratings, newest first, each with the rectification it opened."""
    rows = session.execute(
        select(Rating, Rectification)
        .outerjoin(Rectification, Rectification.rating_id == Rating.id)
        .where(Rating.rater_id == principal.user_id)
        .order_by(Rating.created_at.desc())
    )
    return [(rating, rect) for rating, rect in rows]


def rating_of(session: Session, kind: str, ref: str, stage: str) -> Rating | None:
    """The first-round rating of a subject's stage, if it was given."""
    return session.scalar(
        select(Rating).where(
            Rating.subject_kind == kind, Rating.subject_ref == ref, Rating.stage == stage, Rating.round == 1
        )
    )


def rectification_of(session: Session, rating_id: uuid.UUID) -> Rectification | None:
    """The rectification a bad rating opened."""
    return session.scalar(select(Rectification).where(Rectification.rating_id == rating_id))


def visible_rectifications(
    session: Session, principal: Principal, status: str | None = None, overdue_only: bool = False, limit: int = 500
) -> list[tuple[Rectification, Rating]]:
    """The rectifications the caller handles or supervises, the most urgent first."""
    query = select(Rectification, Rating).join(Rating, Rating.id == Rectification.rating_id)
    handled = scope_conditions(principal, HANDLE, Rectification.tenant_code, Rectification.department_code)
    supervised = scope_conditions(principal, SUPERVISE, Rectification.tenant_code)
    if handled is not None and supervised is not None:  # neither city-wide
        if not handled + supervised:
            return []
        query = query.where(or_(*handled, *supervised))
    if status == "open":
        query = query.where(Rectification.status.in_(OPEN))
    elif status:
        query = query.where(Rectification.status == status)
    rows = session.execute(query.order_by(Rectification.conclude_due, Rectification.created_at).limit(limit))
    out = [(rect, rating) for rect, rating in rows if may_see(principal, rect, rating)]
    return [(r, g) for r, g in out if overdue_steps(r)] if overdue_only else out


def may_see(principal: Principal, rect: Rectification, rating: Rating) -> bool:
    """The rater, the rated department and its supervisors."""
    return (
        rating.rater_id == principal.user_id
        or principal.allows(HANDLE, rect.tenant_code, rect.department_code)
        or principal.allows(SUPERVISE, rect.tenant_code, None)
    )


def may_see_rectification(session: Session, principal: Principal, rect: Rectification) -> bool:
    """``may_see`` with the rectification's rating looked up."""
    return may_see(principal, rect, rating_of_rectification(session, rect))


def guide_reviews(session: Session, status: str | None = "open") -> list[GuideReview]:
    """Items whose guides raters found inaccurate, most complaints first."""
    query = select(GuideReview).order_by(GuideReview.bad_ratings.desc(), GuideReview.item_code)
    if status:
        query = query.where(GuideReview.status == status)
    return list(session.scalars(query))


def close_guide_review(session: Session, principal: Principal, item_code: str, note: str) -> GuideReview:
    """Mark an item's guide as reviewed (corrected or found accurate); a later bad rating of its accuracy
    opens the review again."""
    if not principal.has_action(MANAGE):
        raise ForbiddenError(N_("reviewing guides needs ratings.rules.manage"))
    review = session.get(GuideReview, item_code)
    if review is None or review.status != "open":
        raise NotFoundError(N_("no open guide review of that item"), field="item")
    review.status, review.note = "reviewed", _need(note, "note", N_("write what was found or corrected"))
    session.flush()
    emit(session, events.GuideReviewed(item=item_code))
    return review


@dataclass(frozen=True)
class Unrated:
    """A concluded case of the caller's that waits for their rating."""

    case_id: uuid.UUID
    number: str
    offering_name: str
    status: str
    concluded_at: datetime | None


def awaiting(session: Session, principal: Principal) -> list[Unrated]:
    """The caller's concluded cases whose conclusion they have not rated yet, newest first."""
    done = [c for c in cases.cases_of(session, principal) if c.status in ("concluded", "rejected")]
    if not done:
        return []
    rated = set(
        session.scalars(
            select(Rating.subject_ref).where(
                Rating.subject_kind == "case",
                Rating.stage == "conclude",
                Rating.subject_ref.in_([str(c.id) for c in done]),
            )
        )
    )
    return [Unrated(c.id, c.number, c.offering_name, c.status, c.concluded_at) for c in done if str(c.id) not in rated]


def channel_for(case_channel: str, at_kiosk: bool) -> str:
    """Where a case is rated from: at a kiosk, else the channel it was applied through (window or web)."""
    if at_kiosk:
        return "kiosk"
    return "window" if case_channel == "window" else "web"


def excluded_ids(session: Session) -> list[uuid.UUID]:
    """Ratings excluded by an approved appeal."""
    return list(session.scalars(select(RatingAppeal.rating_id).where(RatingAppeal.status == "approved")))


def subscribers(db: Database, settings: Settings) -> list[tuple[str, str, Callable[[Event], None]]]:
    """A work order's follow-up satisfaction becomes a rating of the follow-up channel."""

    def on_rated(event: Event) -> None:
        step = OrderStep.of(event)
        if step.satisfaction in LEVELS:
            with db.session() as session:
                record_followup(session, step.order_id, step.satisfaction)

    return [
        ("ratings.workorder-followup", "workorders.order.rate", on_rated),
        ("ratings.workorder-visit", "workorders.order.visit", on_rated),
    ]


def seed_demo(session: Session, settings: Settings) -> dict[str, int]:
    """The roles' rating actions, the city-wide rules, a few desks with QR codes and a fortnight of their
    ratings (some bad, with rectifications; the overdue ones put under supervision)."""
    counts = {"desks": seed_basics(session), "desk_ratings": _seed_desk_ratings(session)}
    counts["supervised"] = _supervise(session, city_today())
    return counts


def seed_basics(session: Session) -> int:
    """The roles' rating actions, the city-wide rules and the demo desks; the desks added are counted."""
    for role in ("window_clerk", "case_worker", "department_admin"):
        add_actions_to_role(session, role, (HANDLE,))
    add_actions_to_role(session, "district_admin", (SUPERVISE, STATS, MANAGE))
    add_actions_to_role(session, "department_admin", (STATS, MANAGE))
    add_actions_to_role(session, "data_officer", (STATS,))
    if session.get(RatingRule, "*") is None:
        session.add(_default_rule())
    desks = 0
    for code, name, department, tenant, item, item_name in DEMO_DESKS:
        if session.get(Desk, code) is None:
            session.add(
                Desk(
                    code=code,
                    name=name,
                    department_code=department,
                    tenant_code=tenant,
                    item_code=item,
                    item_name=item_name,
                    staff_ids=[],
                )
            )
            desks += 1
    session.flush()
    return desks


# a week of desk visits: mostly satisfied, some bad ones that open rectifications
DEMO_LEVELS = (5, 5, 4, 5, 3, 5, 4, 2, 5, 4, 5, 1, 4, 5)


def _seed_desk_ratings(session: Session) -> int:
    if session.scalar(select(Rating.id).where(Rating.subject_kind == "desk").limit(1)) is not None:
        return 0
    raters = list(session.scalars(select(User).where(User.kind == "citizen").order_by(User.username)))
    if not raters:
        return 0
    today = city_today()
    made = 0
    for d, (code, name, department, tenant, _item, _item_name) in enumerate(DEMO_DESKS):
        for day in range(len(DEMO_LEVELS)):
            rater = raters[(day + d) % len(raters)]
            level = DEMO_LEVELS[(day + 3 * d) % len(DEMO_LEVELS)]
            on = today - timedelta(days=day * 2)
            subject = Subject("desk", code, f"{on.isoformat()}:{rater.id}", code, name, department, tenant, (), code)
            scores = {"efficiency": level, "service_level": max(1, level - day % 2), "attitude": level}
            comment = {1: "等候时间太长，窗口只开了一个", 2: "材料要求和网上说的不一样"}.get(level, "")
            rating = _new_rating(subject, "window", level, scores | {"overall": level}, comment, rater.id)
            rating.created_at = datetime(on.year, on.month, on.day, 2 + day % 7, tzinfo=UTC)
            session.add(rating)
            session.flush()
            if level <= BAD:
                _open_rectification(session, rating, _default_rule(), on)
            made += 1
    session.flush()
    return made


DEMO_DESKS = (
    ("PD-MZ-01", "浦东新区民政局 1 号窗口", "310115.mz", "310115", "", ""),
    ("PD-RS-03", "浦东新区人社局 3 号窗口", "310115.rs", "310115", "", ""),
    ("HP-ZW-07", "黄浦区政务服务中心 7 号综合窗口", "310101.zw", "310101", "", ""),
)


# -- what is shown: comments and the published figures ---------------------------------------------

PUBLIC_DIMENSIONS = ("district", "channel", "month")


def may_read_comment(principal: Principal, rating: Rating) -> bool:
    """Whether ``principal`` sees a rating's comment as written: its rater, or staff entitled to personal data
    there (a comment may carry a phone number or an ID)."""
    return rating.rater_id == principal.user_id or may_read_personal(
        principal, rating.tenant_code, rating.department_code
    )


def stat_row(row: Row) -> StatRow:
    """A group's figures as the API shows them."""
    return StatRow(
        dimension=row.dimension,
        key=row.key,
        name=row.name,
        ratings=row.ratings,
        satisfied=row.satisfied,
        bad=row.bad,
        satisfaction_rate=round(row.satisfaction_rate, 4),
        bad_rate=round(row.bad_rate, 4),
        average=round(row.average, 3),
        indicators=row.indicators,
    )


def public_figures(session: Session) -> PublicStats:
    """The published figures (public by design): by district, channel and month, and timeliness."""
    from shgov.ratings import stats  # the statistics build on this module

    figures = stats.PUBLISHED.get(session, city_today())
    rows = [r for r in figures.rows if r.dimension in (*PUBLIC_DIMENSIONS, "all")]
    total = next((stat_row(r) for r in rows if r.dimension == "all"), None)
    overall = next((t for t in figures.on_time if t.key == "*"), None)
    return PublicStats(
        total=total,
        rows=[stat_row(r) for r in rows if r.dimension != "all"],
        on_time=OnTimeOut(key="*", due=overall.due, on_time=overall.on_time, rate=round(overall.rate, 4))
        if overall
        else None,
    )

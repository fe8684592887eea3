"""The ratings API: rate cases and desks, follow and work the closed loop on bad ratings, read and export
the statistics; the published figures are public."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header
from starlette.requests import Request
from starlette.responses import Response

from shgov.core.calendar.service import city_today
from shgov.core.deps import SessionDep, SettingsDep
from shgov.core.errors import InvalidError, Problem
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_
from shgov.core.identity.deps import CurrentPrincipal, access, audit, client_ip
from shgov.core.identity.permissions import Principal
from shgov.core.ids import may_read_personal, reveal
from shgov.core.openapi import XLSX, file_answer
from shgov.ratings import service as ratings
from shgov.ratings import stats
from shgov.ratings.access import RatableCase, RatableDesk, VisibleRectification, may_see_desk
from shgov.ratings.models import Desk, Rating, Rectification
from shgov.ratings.schemas import (
    AppealDecisionIn,
    CaseRatingIn,
    DeskIn,
    GuideReviewIn,
    GuideReviewOut,
    HistoryOut,
    OnTimeOut,
    PublicStats,
    RatingIn,
    RatingOut,
    RectificationOut,
    RulesIn,
    RulesOut,
    StatRow,
    StepIn,
    UnratedOut,
)

router = APIRouter(prefix="/api/v1/ratings", tags=["ratings"], route_class=JsonRoute)
DeviceId = Annotated[str | None, Header(alias="X-Device-Id", max_length=100)]


def _given(body: RatingIn) -> ratings.Given:
    return ratings.Given(body.level, body.channel, body.scores, body.comment)


def rating_out(
    session: SessionDep, principal: Principal, rating: Rating, rect: Rectification | None = None
) -> RatingOut:
    """A rating with its flags and the rectification it opened (the comment masked unless the caller may read it)."""
    out = RatingOut.model_validate(rating)
    out.comment = reveal(rating.comment, ratings.may_read_comment(principal, rating))
    out.flags = [f.reason for f in ratings.flags_of(session, [rating.id]).get(rating.id, [])]
    out.rectification_id = rect.id if rect else None
    return out


@router.post("/cases/{case_id}", response_model=RatingOut, status_code=201)
def rate_case(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    case: RatableCase,
    case_id: uuid.UUID,
    body: CaseRatingIn,
    principal: CurrentPrincipal,
    device: DeviceId = None,
) -> RatingOut:
    """Rate a stage of one's own case (一事一评; real-name, matched to the case: 404 for anyone else's)."""
    where = ratings.origin(settings, device, client_ip(request))
    rating = ratings.rate_case(session, principal, case, body.stage, _given(body), where)
    audit(request, principal, "ratings.rating.give", object_type="rating", object_id=str(rating.id))
    return rating_out(session, principal, rating, ratings.rectification_of(session, rating.id))


@router.post("/desks/{code}", response_model=RatingOut, status_code=201)
def rate_desk(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    desk: RatableDesk,
    code: str,
    body: RatingIn,
    principal: CurrentPrincipal,
    device: DeviceId = None,
) -> RatingOut:
    """Rate a visit to a desk through its QR code (一次一评: once per desk and day)."""
    where = ratings.origin(settings, device, client_ip(request))
    rating = ratings.rate_desk(session, principal, desk, _given(body), where)
    audit(request, principal, "ratings.rating.give", object_type="rating", object_id=str(rating.id))
    return rating_out(session, principal, rating, ratings.rectification_of(session, rating.id))


@router.get("/mine", response_model=list[RatingOut])
def mine(session: SessionDep, principal: CurrentPrincipal) -> list[RatingOut]:
    """The caller's ratings, newest first, with the rectification each bad one opened."""
    return [rating_out(session, principal, rating, rect) for rating, rect in ratings.my_ratings(session, principal)]


def rectification_out(
    session: SessionDep, principal: Principal, rect: Rectification, rating: Rating, full: bool = False
) -> RectificationOut:
    """A rectification with what is overdue (and, in full, its rating and history)."""
    out = RectificationOut.model_validate(rect)
    out.overdue = ratings.overdue_steps(rect)
    if full:
        out.rating = rating_out(session, principal, rating, rect)
        entitled = ratings.may_read_comment(principal, rating)
        out.history = [HistoryOut.model_validate(h) for h in ratings.history(session, rect.id)]
        for h in out.history:
            h.note = reveal(h.note, entitled)
    return out


@router.get("/awaiting", response_model=list[UnratedOut])
def awaiting(session: SessionDep, principal: CurrentPrincipal) -> list[UnratedOut]:
    """The caller's concluded cases still waiting for their rating (what an app or a kiosk asks to rate)."""
    return [UnratedOut.model_validate(u) for u in ratings.awaiting(session, principal)]


@router.get("/rectifications", response_model=list[RectificationOut])
def list_rectifications(
    session: SessionDep, principal: CurrentPrincipal, status: str | None = None, overdue: bool = False
) -> list[RectificationOut]:
    """Rectifications the caller's department handles or the caller supervises; ``overdue=true`` for late ones."""
    rows = ratings.visible_rectifications(session, principal, status, overdue)
    return [rectification_out(session, principal, rect, rating) for rect, rating in rows]


@router.get("/rectifications/{rectification_id}", response_model=RectificationOut)
def get_rectification(
    session: SessionDep, principal: CurrentPrincipal, rect: VisibleRectification, rectification_id: uuid.UUID
) -> RectificationOut:
    """One rectification with its rating and history (the rater, the department, its supervisors)."""
    rating = ratings.rating_of_rectification(session, rect)
    return rectification_out(session, principal, rect, rating, full=True)


@router.post("/rectifications/{rectification_id}/steps", response_model=RectificationOut)
def step(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    rect: VisibleRectification,
    rectification_id: uuid.UUID,
    body: StepIn,
) -> RectificationOut:
    """The department's step: contact, verify, appeal, rectify, answer, conclude."""
    rating = ratings.rating_of_rectification(session, rect)
    ratings.act(session, principal, rect, ratings.StepInput(**body.model_dump()))
    audit(
        request, principal, f"ratings.rectification.{body.action}", object_type="rectification", object_id=str(rect.id)
    )
    return rectification_out(session, principal, rect, rating, full=True)


@router.post("/rectifications/{rectification_id}/appeal", response_model=RectificationOut)
def decide_appeal(
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    rect: VisibleRectification,
    rectification_id: uuid.UUID,
    body: AppealDecisionIn,
) -> RectificationOut:
    """A supervisor approves (the rating is excluded) or rejects the department's appeal."""
    rating = ratings.rating_of_rectification(session, rect)
    ratings.decide_appeal(session, principal, rect, body.decision, body.note)
    audit(request, principal, f"ratings.appeal.{body.decision}", object_type="rectification", object_id=str(rect.id))
    return rectification_out(session, principal, rect, rating, full=True)


@router.post("/rectifications/{rectification_id}/rerate", response_model=RatingOut, status_code=201)
def rerate(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    rect: VisibleRectification,
    rectification_id: uuid.UUID,
    body: RatingIn,
    device: DeviceId = None,
) -> RatingOut:
    """The rater rates again after the department's answer."""
    where = ratings.origin(settings, device, client_ip(request))
    rating = ratings.rerate(session, principal, rect, _given(body), where)
    audit(request, principal, "ratings.rating.rerate", object_type="rating", object_id=str(rating.id))
    return rating_out(session, principal, rating, ratings.rectification_of(session, rating.id))


def _require_stats(principal: Principal) -> None:
    if not principal.has_action(ratings.STATS):
        raise Problem("forbidden", detail=N_("Reading rating statistics needs ratings.stats.read."))


def _rows(session: SessionDep, principal: Principal, dimension: str | None) -> list[stats.Row]:
    _require_stats(principal)
    if dimension is not None and dimension not in stats.DIMENSIONS:
        raise InvalidError(
            N_("dimension is one of {dimensions}"), field="dimension", dimensions=", ".join(stats.DIMENSIONS)
        )
    rows = stats.from_session(session)
    return [r for r in rows if dimension is None or r.dimension in (dimension, "all")]


@router.get("/stats", response_model=list[StatRow])
def statistics(session: SessionDep, principal: CurrentPrincipal, dimension: str | None = None) -> list[StatRow]:
    """Satisfaction and bad-rating rates by item, department, district, channel and month (recomputed)."""
    return [ratings.stat_row(r) for r in _rows(session, principal, dimension)]


@router.get("/stats.csv", response_class=Response, responses=file_answer("text/csv"))
def statistics_csv(
    request: Request, session: SessionDep, principal: CurrentPrincipal, dimension: str | None = None
) -> Response:
    """The statistics as CSV."""
    body = stats.to_csv(_rows(session, principal, dimension))
    audit(request, principal, "ratings.stats.export", details={"format": "csv"})
    headers = {"content-disposition": 'attachment; filename="ratings.csv"'}
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


@router.get(
    "/stats.xlsx",
    response_class=Response,
    responses=file_answer(XLSX),
)
def statistics_xlsx(
    request: Request, session: SessionDep, principal: CurrentPrincipal, dimension: str | None = None
) -> Response:
    """The statistics as an XLSX workbook."""
    body = stats.to_xlsx(_rows(session, principal, dimension))
    audit(request, principal, "ratings.stats.export", details={"format": "xlsx"})
    headers = {"content-disposition": 'attachment; filename="ratings.xlsx"'}
    return Response(
        body, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", headers=headers
    )


@router.get("/public", response_model=PublicStats)
def public(session: SessionDep) -> PublicStats:
    """The published figures (no sign-in needed)."""
    return ratings.public_figures(session)


@router.get("/on-time", response_model=list[OnTimeOut])
def timeliness(session: SessionDep, principal: CurrentPrincipal) -> list[OnTimeOut]:
    """Rectified within the deadline, per department and overall."""
    _require_stats(principal)
    return [
        OnTimeOut(key=t.key, due=t.due, on_time=t.on_time, rate=round(t.rate, 4))
        for t in stats.on_time(session, city_today())
    ]


@router.get("/guides", response_model=list[GuideReviewOut])
def guides(session: SessionDep, principal: CurrentPrincipal, status: str | None = "open") -> list[GuideReviewOut]:
    """Items whose guides raters found inaccurate (办事指南精确度 rated bad), most complaints first."""
    _require_stats(principal)
    entitled = may_read_personal(principal, None)
    out = [GuideReviewOut.model_validate(g) for g in ratings.guide_reviews(session, status)]
    for g in out:
        g.last_comment = reveal(g.last_comment, entitled)
    return out


@router.post("/guides/{item_code}/review", response_model=GuideReviewOut)
def review_guide(
    request: Request, session: SessionDep, principal: CurrentPrincipal, item_code: str, body: GuideReviewIn
) -> GuideReviewOut:
    """Mark an item's guide reviewed (corrected, or found accurate), saying what was done."""
    review = ratings.close_guide_review(session, principal, item_code, body.note)
    audit(request, principal, "ratings.guide.review", object_type="item", object_id=item_code)
    return GuideReviewOut.model_validate(review)


@router.get("/rules/{scope}", response_model=RulesOut)
def get_rules(session: SessionDep, principal: CurrentPrincipal, scope: str) -> RulesOut:
    """The rules that apply to a tenant ("*": city-wide)."""
    _require_stats(principal)
    return RulesOut.model_validate(ratings.rules_for(session, scope)).model_copy(update={"scope": scope})


@router.put("/rules/{scope}", response_model=RulesOut)
def put_rules(
    request: Request, session: SessionDep, principal: CurrentPrincipal, scope: str, body: RulesIn
) -> RulesOut:
    """Set a tenant's deadlines (working days), invitation delay and anti-manipulation thresholds."""
    if not principal.allows(ratings.MANAGE, None if scope == "*" else scope, None):
        raise Problem("forbidden", detail=N_("Setting rating rules needs ratings.rules.manage over that tenant."))
    rule = ratings.set_rules(session, scope, body.model_dump(exclude_none=True))
    audit(
        request,
        principal,
        "ratings.rules.set",
        object_type="rating_rules",
        object_id=scope,
        details=body.model_dump(exclude_none=True),
    )
    return RulesOut.model_validate(rule)


@router.put("/desks/{code}", status_code=204)
def put_desk(request: Request, session: SessionDep, principal: CurrentPrincipal, code: str, body: DeskIn) -> Response:
    """Add or change a desk; its QR code points at ``/rate/desk/{code}``. Changing a desk needs the right over
    its department as it is (a desk one may not see is a 404) and as it will be."""
    existing = ratings.find_desk(session, code)
    if existing is not None:
        access(session, principal, existing, may_see_desk)
    desk = Desk(code=code, **{**body.model_dump(), "staff_ids": [str(i) for i in body.staff_ids]})
    ratings.save_desk(session, principal, desk)
    audit(request, principal, "ratings.desk.save", object_type="desk", object_id=code)
    return Response(status_code=204)

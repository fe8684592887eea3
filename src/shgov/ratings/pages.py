"""Pages of 好差评: rating a case (from 我的办件, the invitation or a kiosk) and a desk (its QR code), my
ratings with the department's answer and the re-rating, the department's rectification worklist, the
supervisor's appeals and overdue loops, the item-level report and the public figures."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from shgov.cases import service as cases
from shgov.core.calendar.service import city_today
from shgov.core.deps import SessionDep, SettingsDep
from shgov.core.errors import DomainError, InvalidError, Problem
from shgov.core.i18n import N_, request_locale
from shgov.core.identity.deps import SignedInPage, audit, client_ip, page_principal
from shgov.core.identity.permissions import Principal
from shgov.core.identity.service import find_user
from shgov.core.ids import mask_personal, masked_view, may_read_personal
from shgov.core.qr import qr_svg
from shgov.core.regions.api import IndexDep
from shgov.core.settings import Settings
from shgov.ratings import service as ratings
from shgov.ratings import stats
from shgov.ratings.access import DeskPage, RatableCasePage, RatableDeskPage, RectificationPage
from shgov.ratings.models import Desk, Rating, Rectification
from shgov.services import service as services
from shgov.web.pages import PageMessage, TemplatesDep, WebUser, web_user
from shgov.web.templating import NavItem, Templates, request_mode

router = APIRouter(include_in_schema=False, dependencies=[Depends(web_user)])

NAV = [
    ("citizens", NavItem("my-ratings", N_("My ratings"), "/my/ratings", N_("Rate your concluded cases; see answers."))),
    (
        "citizens",
        NavItem("ratings-public", N_("Service ratings"), "/ratings", N_("How satisfied people are, published.")),
    ),
    (
        "staff",
        NavItem(
            "rectifications",
            N_("Bad-rating rectifications"),
            "/staff/ratings",
            N_("Contact, verify, rectify and answer bad ratings within the deadlines; decide appeals."),
        ),
    ),
    (
        "staff",
        NavItem(
            "ratings-report",
            N_("Rating report"),
            "/staff/ratings/report",
            N_("Satisfaction by item; items whose guides raters found inaccurate; exports."),
        ),
    ),
]

DEVICE_COOKIE = "shgov_device"
STAFF_ONLY = N_("This page is for department staff.")
STATS_ONLY = N_("Reading rating statistics needs ratings.stats.read.")
StatsReader = Annotated[Principal, Depends(page_principal(ratings.STATS, STATS_ONLY))]
# what a refused rating's field means, in words the rater reads (the service's message is for developers)
FIELD_MESSAGES = {
    "level": N_("Choose how satisfied you are, from very unsatisfied to very satisfied."),
    "comment": N_("The comment is at most 500 characters."),
    "channel": N_("This channel cannot be rated here."),
}
SCORE_MESSAGE = N_("Each indicator is rated from very unsatisfied to very satisfied.")
TOO_MANY_MESSAGE = N_("Too many ratings from here in the last hour; please try again later.")
REFUSALS = {
    ("conflict", "level"): N_("This has been rated already: one rating each time."),
    ("conflict", "stage"): N_("This stage of the case has not been reached yet."),
    ("forbidden", "level"): N_("Staff may not rate their own work."),
}
VERDICT_NAMES = {"valid": N_("valid"), "mistaken": N_("mistaken"), "malicious": N_("malicious")}
OVERDUE_NAMES = {"contact": N_("contact overdue"), "rectify": N_("rectification overdue"), "conclude": N_("overdue")}
ACTION_NAMES = {
    "open": N_("opened by the rating"),
    "contact": N_("rater contacted"),
    "verify": N_("verified"),
    "appeal": N_("appealed"),
    "rectify": N_("rectified"),
    "answer": N_("answered"),
    "conclude": N_("concluded"),
    "rerate": N_("re-rated"),
    "approve": N_("appeal approved"),
    "reject": N_("appeal rejected"),
    "supervise": N_("under supervision"),
}
LABELS = {
    "level_names": ratings.LEVELS,
    "indicator_names": ratings.INDICATOR_NAMES,
    "channel_names": ratings.CHANNEL_NAMES,
    "status_names": ratings.STATUS_NAMES,
    "verdict_names": VERDICT_NAMES,
    "overdue_names": OVERDUE_NAMES,
    "action_names": ACTION_NAMES,
}


# -- giving a rating --------------------------------------------------------------------------------


def _device(request: Request) -> str:
    return request.cookies.get(DEVICE_COOKIE) or ""


def _with_device(request: Request, response: Response, settings: Settings) -> Response:
    """Give the browser a long-lived device id (throttling and repeat detection key on it)."""
    if not _device(request):
        response.set_cookie(
            DEVICE_COOKIE,
            secrets.token_urlsafe(18),
            max_age=2 * 365 * 24 * 3600,
            httponly=True,
            samesite="lax",
            secure=settings.secure_cookies,
        )
    return response


def _level(form: FormData, name: str, field: str) -> int | None:
    raw = form.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(str(raw))
    except ValueError as exc:
        raise InvalidError(N_("a level is a whole number from 1 to 5"), field=field) from exc


def given_from(form: FormData, channel: str) -> ratings.Given:
    """A rating from a submitted form: ``level``, ``score:<indicator>`` and ``comment``."""
    level = _level(form, "level", "level")
    if level is None:
        raise InvalidError(N_("choose a level"), field="level")
    scores: dict[str, int] = {}
    for key in form:
        if key.startswith("score:"):
            value = _level(form, key, "scores." + key.removeprefix("score:"))
            if value is not None:
                scores[key.removeprefix("score:")] = value
    return ratings.Given(level, channel, scores, str(form.get("comment") or ""))


def _field_message(exc: DomainError) -> str | None:
    """The rater's words for a refused rating (a message id), where there are some."""
    if isinstance(exc, ratings.TooManyRatings):
        return TOO_MANY_MESSAGE
    if (exc.slug, exc.field) in REFUSALS:
        return REFUSALS[exc.slug, exc.field or ""]
    if not isinstance(exc, InvalidError) or not exc.field:
        return None
    return SCORE_MESSAGE if exc.field.startswith("scores.") else FIELD_MESSAGES.get(exc.field)


def _rating_page(
    request: Request,
    templates: Templates,
    settings: Settings,
    context: dict[str, Any],
    *,
    error: DomainError | None = None,
    posted: FormData | None = None,
) -> Response:
    channel = context["channel"]
    status = 200
    if error is not None:
        status = 429 if isinstance(error, ratings.TooManyRatings) else 409 if error.slug == "conflict" else 422
    page = templates.render(
        request,
        "ratings/rate.html",
        {
            **context,
            "indicators": ratings.INDICATORS[ratings.CHANNELS[channel]],
            "max_comment": ratings.MAX_COMMENT,
            "error": error,
            "error_field": (error.field or "") if error else "",
            "field_message": _field_message(error) if error else None,
            "posted": posted or {},
            **LABELS,
        },
        status_code=status,
    )
    return _with_device(request, page, settings)


def _signed_in(principal: Principal | None) -> Principal:
    """The visitor of a page whose object dependency ran: it sent anyone without a session to sign in."""
    assert principal is not None  # noqa: S101 - the access dependency answered otherwise
    return principal


def _case_context(request: Request, session: Session, who: Principal, case: cases.Case, stage: str) -> dict[str, Any]:
    subject = ratings.case_subject(session, who, case, stage)
    return {
        "subject": subject,
        "title": case.offering_name,
        "reference": case.number,
        "action": f"/my/cases/{case.id}/rate",
        "stage": stage,
        "channel": ratings.channel_for(case.channel, request_mode(request) == "kiosk"),
        "back": f"/cases/{case.id}",
    }


@router.get("/my/cases/{case_id}/rate", response_class=HTMLResponse)
def rate_case_form(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    principal: WebUser,
    case: RatableCasePage,
    case_id: uuid.UUID,
    stage: Annotated[str, Query(pattern="^(accept|conclude)$")] = "conclude",
) -> Response:
    """Rate a stage of one's own case (the invitation links here)."""
    who = _signed_in(principal)
    context = _case_context(request, session, who, case, stage)
    given = ratings.rating_of(session, "case", str(case_id), stage)
    if given is not None:
        return RedirectResponse(f"/my/ratings#rating-{given.id}", status_code=303)
    return _rating_page(request, templates, settings, context)


@router.post("/my/cases/{case_id}/rate", response_class=HTMLResponse)
async def rate_case(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    principal: WebUser,
    case: RatableCasePage,
    case_id: uuid.UUID,
) -> Response:
    """Submit the rating of a case stage; a refused one is shown again with what to change."""
    who = _signed_in(principal)
    form = await request.form()
    stage = str(form.get("stage") or "conclude")
    context = _case_context(request, session, who, case, stage)
    return _submit(
        request,
        templates,
        session,
        settings,
        who,
        context,
        form,
        lambda given, where: ratings.rate_case(session, who, case, stage, given, where),
    )


def _submit(
    request: Request,
    templates: Templates,
    session: Session,
    settings: Settings,
    who: Principal,
    context: dict[str, Any],
    form: FormData,
    give: Callable[[ratings.Given, ratings.Origin], Rating],
) -> Response:
    """Record a rating from the form, or show the form again with what was typed and why it was refused."""
    where = ratings.origin(settings, _device(request) or None, client_ip(request))
    try:
        rating = give(given_from(form, context["channel"]), where)
    except DomainError as exc:
        session.rollback()
        return _rating_page(request, templates, settings, context, error=exc, posted=form)
    audit(request, who, "ratings.rating.give", object_type="rating", object_id=str(rating.id))
    return RedirectResponse(f"/my/ratings?rated={rating.id}#rating-{rating.id}", status_code=303)


def _desk_context(desk: Desk) -> dict[str, Any]:
    return {
        "desk": desk,
        "title": desk.name,
        "reference": desk.code,
        "action": f"/rate/desk/{desk.code}",
        "stage": "",
        "channel": "window",
        "back": "/",
    }


@router.get("/rate/desk/{code}", response_class=HTMLResponse)
def rate_desk_form(
    request: Request, templates: TemplatesDep, settings: SettingsDep, desk: RatableDeskPage, code: str
) -> Response:
    """What a desk's QR code opens: rate this visit (signed in, once per desk and day)."""
    return _rating_page(request, templates, settings, _desk_context(desk))


@router.post("/rate/desk/{code}", response_class=HTMLResponse)
async def rate_desk(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    principal: WebUser,
    desk: RatableDeskPage,
    code: str,
) -> Response:
    """Submit the rating of a desk visit."""
    who = _signed_in(principal)
    form = await request.form()
    context = _desk_context(desk)
    return _submit(
        request,
        templates,
        session,
        settings,
        who,
        context,
        form,
        lambda given, where: ratings.rate_desk(session, who, desk, given, where),
    )


# -- my ratings: the department's answer and the re-rating ------------------------------------------------


def _mine(
    request: Request,
    templates: Templates,
    session: Session,
    settings: Settings,
    who: Principal,
    *,
    error: DomainError | None = None,
    failed: uuid.UUID | None = None,
) -> Response:
    rows = ratings.my_ratings(session, who)
    page = templates.render(
        request,
        "ratings/mine.html",
        {
            "awaiting": ratings.awaiting(session, who),
            # a re-rating is shown on its own too: a bad one opens a loop of its own
            "rows": rows,
            "rerated": {rating.replaces_id: rating for rating, _r in rows if rating.replaces_id},
            "error": error,
            "field_message": _field_message(error) if error else None,
            "failed": failed,
            "max_comment": ratings.MAX_COMMENT,
            **LABELS,
        },
        status_code=422 if error else 200,
    )
    return _with_device(request, page, settings)


@router.get("/my/ratings", response_class=HTMLResponse)
def my_ratings(
    request: Request, templates: TemplatesDep, session: SessionDep, settings: SettingsDep, who: SignedInPage
) -> Response:
    """Cases waiting for a rating; my ratings, the rectifications they opened and the departments' answers."""
    return _mine(request, templates, session, settings, who)


@router.post("/my/ratings/{rectification_id}/rerate", response_class=HTMLResponse)
async def rerate(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    settings: SettingsDep,
    principal: WebUser,
    rect: RectificationPage,
    rectification_id: uuid.UUID,
) -> Response:
    """Rate again once the department has answered (the rater; others who see the loop are refused)."""
    who = _signed_in(principal)
    form = await request.form()
    rect_id, rating_id = rect.id, rect.rating_id
    channel = ratings.rating_of_rectification(session, rect).channel
    where = ratings.origin(settings, _device(request) or None, client_ip(request))
    try:
        rating = ratings.rerate(session, who, rect, given_from(form, channel), where)
    except DomainError as exc:
        session.rollback()
        return _mine(request, templates, session, settings, who, error=exc, failed=rect_id)
    audit(request, who, "ratings.rating.rerate", object_type="rating", object_id=str(rating.id))
    return RedirectResponse(f"/my/ratings#rating-{rating_id}", status_code=303)


# -- the department's rectifications and the supervisor's decisions ---------------------------------------

VIEWS = ("open", "overdue", "appealed", "concluded", "excluded", "all")


def _staff(who: SignedInPage) -> Principal:
    """The visitor, when they handle or supervise rectifications; 403 otherwise."""
    return _staff_only(who)


def _staff_only(who: Principal) -> Principal:
    """Refuse (403) a visitor who neither handles nor supervises rectifications anywhere."""
    if not (who.has_action(ratings.HANDLE) or who.has_action(ratings.SUPERVISE)):
        raise Problem("forbidden", detail=STAFF_ONLY)
    return who


Staff = Annotated[Principal, Depends(_staff)]


@router.get("/staff/ratings", response_class=HTMLResponse)
def worklist(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    who: Staff,
    view: Annotated[str, Query(pattern="^(open|overdue|appealed|concluded|excluded|all)$")] = "open",
) -> Response:
    """The bad ratings the department handles (or the district supervises), the most urgent first."""
    status = {"overdue": "open", "all": None}.get(view, view)
    rows = ratings.visible_rectifications(session, who, status, overdue_only=view == "overdue")
    return templates.render(
        request,
        "ratings/worklist.html",
        {
            "rows": [
                (
                    rect,
                    masked_view(rating, ("comment",), ratings.may_read_comment(who, rating)),
                    ratings.overdue_steps(rect),
                )
                for rect, rating in rows
            ],
            "view": view,
            "views": VIEWS,
            "supervisor": who.has_action(ratings.SUPERVISE),
            **LABELS,
        },
    )


def _rater(session: Session, who: Principal, rect: Rectification, rating: Rating) -> dict[str, str]:
    """Who rated, for the department that must contact them: the phone only for who handles it."""
    user = find_user(session, rating.rater_id) if rating.rater_id else None
    if user is None:
        return {"name": "", "phone": ""}
    handles = who.allows(ratings.HANDLE, rect.tenant_code, rect.department_code)
    return {
        "name": mask_personal(user.display_name, "name"),
        "phone": (user.phone or "") if handles else mask_personal(user.phone or "", "phone"),
    }


def _rectification_page(
    request: Request,
    templates: Templates,
    session: Session,
    who: Principal,
    rect: Rectification,
    *,
    error: DomainError | None = None,
    posted: dict[str, str] | None = None,
) -> Response:
    """A rectification the caller may see (checked by ``RectificationPage`` before)."""
    rating = ratings.rating_of_rectification(session, rect)
    handles = who.allows(ratings.HANDLE, rect.tenant_code, rect.department_code)
    rater = _rater(session, who, rect, rating)
    entitled = ratings.may_read_comment(who, rating)
    if handles and rater["phone"]:
        audit(
            request,
            who,
            "ratings.rater.read",
            object_type="rectification",
            object_id=str(rect.id),
            tenant_code=rect.tenant_code,
        )
    return templates.render(
        request,
        "ratings/rectification.html",
        {
            "rect": rect,
            "rating": masked_view(rating, ("comment",), entitled),
            "rater": rater,
            "flags": ratings.flags_of(session, [rating.id]).get(rating.id, []),
            "history": [masked_view(h, ("note",), entitled) for h in ratings.history(session, rect.id)],
            "overdue": ratings.overdue_steps(rect),
            "steps": ratings.TRANSITIONS.get(rect.status, {}) if handles else {},
            "decides": rect.status == "appealed" and who.allows(ratings.SUPERVISE, rect.tenant_code, None),
            "error": error,
            "posted": posted or {},
            **LABELS,
        },
        status_code=(409 if error.slug == "conflict" else 403 if error.slug == "forbidden" else 422) if error else 200,
    )


@router.get("/staff/ratings/{rectification_id:uuid}", response_class=HTMLResponse)
def rectification(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    principal: WebUser,
    rect: RectificationPage,
    rectification_id: uuid.UUID,
) -> Response:
    """A bad rating, its deadlines and history, and the steps the caller may take on it."""
    who = _staff_only(_signed_in(principal))
    return _rectification_page(request, templates, session, who, rect)


@router.post("/staff/ratings/{rectification_id:uuid}/steps", response_class=HTMLResponse)
def step(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    principal: WebUser,
    rect: RectificationPage,
    rectification_id: uuid.UUID,
    action: Annotated[str, Form(pattern="^(contact|verify|appeal|rectify|answer|conclude)$")],
    note: Annotated[str, Form(max_length=2000)] = "",
    verdict: Annotated[str, Form(max_length=10)] = "",
    cause: Annotated[str, Form(max_length=2000)] = "",
    measures: Annotated[str, Form(max_length=2000)] = "",
    responsible_unit: Annotated[str, Form(max_length=200)] = "",
    evidence: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """The department's step: contact, verify, appeal, rectify, answer, conclude."""
    who = _staff_only(_signed_in(principal))
    taken = ratings.StepInput(action, note, verdict or None, cause, measures, responsible_unit, evidence)
    posted = {"action": action, "note": note, "cause": cause, "measures": measures, "evidence": evidence}
    posted["responsible_unit"] = responsible_unit
    return _rectify(
        request,
        templates,
        session,
        who,
        rect,
        f"ratings.rectification.{action}",
        lambda: ratings.act(session, who, rect, taken),
        posted,
    )


def _rectify(
    request: Request,
    templates: Templates,
    session: Session,
    who: Principal,
    rect: Rectification,
    action: str,
    run: Callable[[], object],
    posted: dict[str, str],
) -> Response:
    """Take a step on a rectification and show it again, or show why the step was refused."""
    try:
        run()
    except DomainError as exc:
        session.rollback()
        return _rectification_page(request, templates, session, who, rect, error=exc, posted=posted)
    audit(request, who, action, object_type="rectification", object_id=str(rect.id), tenant_code=rect.tenant_code)
    return RedirectResponse(f"/staff/ratings/{rect.id}", status_code=303)


@router.post("/staff/ratings/{rectification_id:uuid}/appeal", response_class=HTMLResponse)
def decide_appeal(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    principal: WebUser,
    rect: RectificationPage,
    rectification_id: uuid.UUID,
    decision: Annotated[str, Form(pattern="^(approve|reject)$")],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """A supervisor approves (the rating is excluded) or rejects (the department rectifies) an appeal."""
    who = _staff_only(_signed_in(principal))
    return _rectify(
        request,
        templates,
        session,
        who,
        rect,
        f"ratings.appeal.{decision}",
        lambda: ratings.decide_appeal(session, who, rect, decision, note),
        {"action": decision, "note": note},
    )


# -- the item-level report and the guides raters found inaccurate -------------------------------------------


def _report(
    request: Request,
    templates: Templates,
    session: Session,
    index: IndexDep,
    who: Principal,
    *,
    error: PageMessage = None,
) -> Response:
    rows = stats.from_session(session)
    entitled = may_read_personal(who, None)
    reviews = {g.item_code: masked_view(g, ("last_comment",), entitled) for g in ratings.guide_reviews(session, None)}
    items = [r for r in rows if r.dimension == "item"]
    # the items raters flagged come first (线上线下不一致 surfaces here), then the worst rated
    items.sort(key=lambda r: (reviews.get(r.key) is None or reviews[r.key].status != "open", -r.bad_rate, r.key))
    total = next((r for r in rows if r.dimension == "all"), None)
    rated = {r.key for r in items}
    return templates.render(
        request,
        "ratings/report.html",
        {
            "items": items,
            "total": total,
            "reviews": reviews,
            "unrated_reviews": [g for g in reviews.values() if g.status == "open" and g.item_code not in rated],
            "by": {d: [r for r in rows if r.dimension == d] for d in ("department", "district", "channel", "month")},
            "on_time": stats.on_time(session, city_today()),
            "manages": who.has_action(ratings.MANAGE),
            "error": error,
            "department_name": _department_name,
            "area_name": lambda code: _area_name(index, code),
            **LABELS,
        },
        status_code=422 if error else 200,
    )


def _department_name(code: str) -> str:
    return services.department_name(code.rsplit(".", 1)[-1])


@router.get("/staff/ratings/report", response_class=HTMLResponse)
def report(
    request: Request, templates: TemplatesDep, session: SessionDep, index: IndexDep, who: StatsReader
) -> Response:
    """Satisfaction by item (guides raters found inaccurate first), department, district, channel, month."""
    return _report(request, templates, session, index, who)


@router.post("/staff/ratings/guides/{item_code}", response_class=HTMLResponse)
def review_guide(
    request: Request,
    templates: TemplatesDep,
    session: SessionDep,
    index: IndexDep,
    who: StatsReader,
    item_code: str,
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Mark an item's guide reviewed, saying what was corrected."""
    try:
        ratings.close_guide_review(session, who, item_code, note)
    except DomainError as exc:
        session.rollback()
        if exc.slug == "forbidden":
            raise
        return _report(request, templates, session, index, who, error=exc.text(request_locale(request)))
    audit(request, who, "ratings.guide.review", object_type="item", object_id=item_code)
    return RedirectResponse("/staff/ratings/report#guides", status_code=303)


@router.get("/staff/ratings/desks/{code}", response_class=HTMLResponse)
def desk_code(request: Request, templates: TemplatesDep, principal: WebUser, desk: DeskPage, code: str) -> Response:
    """A desk's printable QR code (the desk's staff and administrators)."""
    _staff_only(_signed_in(principal))
    url = str(request.url_for("rate_desk_form", code=desk.code))
    return templates.render(request, "ratings/desk.html", {"desk": desk, "url": url, "qr": qr_svg(url)})


# -- public -------------------------------------------------------------------------------------------------


@router.get("/ratings", response_class=HTMLResponse)
def public(request: Request, templates: TemplatesDep, session: SessionDep, index: IndexDep) -> Response:
    """The published figures (public): satisfaction by district, channel and month, rectified on time."""
    figures = ratings.public_figures(session)
    names = {r.key: _area_name(index, r.key) for r in figures.rows if r.dimension == "district"}
    chart = {
        "district": [
            {"key": r.key, "name": names[r.key], "rate": r.satisfaction_rate, "ratings": r.ratings}
            for r in figures.rows
            if r.dimension == "district"
        ],
        "month": [
            {"key": r.key, "rate": r.satisfaction_rate, "bad_rate": r.bad_rate, "ratings": r.ratings}
            for r in sorted(figures.rows, key=lambda r: r.key)
            if r.dimension == "month"
        ],
        "channel": [
            {"key": r.key, "rate": r.satisfaction_rate, "ratings": r.ratings}
            for r in figures.rows
            if r.dimension == "channel"
        ],
    }
    return templates.render(
        request,
        "ratings/public.html",
        {"figures": figures, "chart": chart, "district_name": lambda code: names.get(code, code), **LABELS},
    )


def _area_name(index: IndexDep, code: str) -> str:
    region = index.get(code)
    return region.name if region is not None else code

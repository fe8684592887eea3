"""The calendar API: working-day arithmetic (for any signed-in caller) and loading schedules."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from shgov.core.calendar.service import DayRule, ScheduleError, WorkingCalendar, default_calendar, load_year
from shgov.core.deps import SessionDep
from shgov.core.errors import FieldError, Problem
from shgov.core.http import JsonRoute
from shgov.core.i18n import N_, gettext, request_locale
from shgov.core.identity import permissions as perm
from shgov.core.identity.deps import CurrentPrincipal, audit, require_action
from shgov.core.identity.permissions import Principal

router = APIRouter(prefix="/api/v1/calendar", tags=["calendar"], route_class=JsonRoute)


class DayIn(BaseModel):
    """A holiday or a make-up working day."""

    model_config = ConfigDict(extra="forbid")

    date: date
    kind: Literal["holiday", "workday"]
    name: str = Field(default="", max_length=60)


class YearIn(BaseModel):
    """A year's schedule: the days that differ from Monday–Friday."""

    model_config = ConfigDict(extra="forbid")

    days: list[DayIn] = Field(min_length=1)


class YearOut(BaseModel):
    """Where a year's schedule comes from."""

    year: int
    source: Literal["loaded", "official", "weekdays"]
    working_days: int


class AddOut(BaseModel):
    """The result of adding working days."""

    start: date
    n: int
    due: date


class BetweenOut(BaseModel):
    """Working days in (a, b]."""

    a: date
    b: date
    working_days: int


def _year_out(calendar: WorkingCalendar, year: int) -> YearOut:
    count = calendar.working_days_between(date(year - 1, 12, 31), date(year, 12, 31))
    return YearOut(year=year, source=calendar.source(year), working_days=count)


@router.get("/add", response_model=AddOut)
def add(principal: CurrentPrincipal, start: date, n: Annotated[int, Query(ge=0, le=3650)]) -> AddOut:
    """The n-th working day after ``start``."""
    return AddOut(start=start, n=n, due=default_calendar().add_working_days(start, n))


@router.get("/between", response_model=BetweenOut)
def between(request: Request, principal: CurrentPrincipal, a: date, b: date) -> BetweenOut:
    """How many working days lie in (a, b]."""
    if abs((b - a).days) > 3660:
        errors = [FieldError("b", gettext(N_("too far from a"), request_locale(request)))]
        raise Problem("validation-failed", detail=N_("at most ten years apart"), errors=errors)
    return BetweenOut(a=a, b=b, working_days=default_calendar().working_days_between(a, b))


@router.get("/years/{year}", response_model=YearOut)
def year_info(principal: CurrentPrincipal, year: Annotated[int, Path(ge=1990, le=2100)]) -> YearOut:
    """Where the schedule of ``year`` comes from."""
    return _year_out(default_calendar(), year)


@router.put("/years/{year}", response_model=YearOut)
def put_year(
    request: Request,
    session: SessionDep,
    year: int,
    body: YearIn,
    principal: Annotated[Principal, Depends(require_action(perm.CALENDAR_LOAD))],
) -> YearOut:
    """Load (replace) the holiday schedule of ``year``; it overrides the built-in schedule."""
    if not 1990 <= year <= 2100:
        raise Problem("validation-failed", detail=N_("year out of range"), errors=[FieldError("year", "1990–2100")])
    if principal.tenants_for(perm.CALENDAR_LOAD) is not None:
        raise Problem("forbidden", detail=N_("The holiday schedule is city-wide: platform administrators load it."))
    rules = [DayRule(d.date, d.kind == "workday", d.name) for d in body.days]
    try:
        count = load_year(session, year, rules)
    except ScheduleError as exc:  # a 422 naming the days
        exc.field = "days"
        raise
    audit(
        request,
        principal,
        "calendar.schedule.load",
        object_type="calendar_year",
        object_id=str(year),
        details={"days": count},
    )
    session.commit()  # the record commits with the schedule; the process's calendar changes only after both
    calendar = default_calendar()
    calendar.set_overrides(WorkingCalendar.from_session(session).overrides())
    return _year_out(calendar, year)

"""Working days on the official PRC schedule (holidays and make-up working days).

Sources, in order: days an administrator loaded for a year (table ``workday_overrides``), then the
``chinese_calendar`` package for the years it covers, then Monday–Friday with a warning logged once
per year — time limits keep working in a year nobody has loaded yet, and never crash.

Conventions: ``add_working_days(start, n)`` is the n-th working day *after* ``start`` (the day of
acceptance is not counted, as for 承诺时限); ``working_days_between(a, b)`` counts working days in
``(a, b]``, so ``working_days_between(a, add_working_days(a, n)) == n``.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
from sqlalchemy import Boolean, Date, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from shgov.core.db import Base, utcnow
from shgov.core.errors import InvalidError
from shgov.core.i18n import N_
from shgov.core.settings import Settings

log = logging.getLogger("shgov.calendar")


class WorkdayOverride(Base):
    """A day of an administrator-loaded year that differs from Monday–Friday."""

    __tablename__ = "workday_overrides"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_workday: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(60), default="")
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class DayRule:
    """One line of a schedule: a holiday (``is_workday=False``) or a make-up working day."""

    day: date
    is_workday: bool
    name: str = ""


class ScheduleError(InvalidError, ValueError):
    """A schedule to load is inconsistent (wrong year, duplicate day, pointless entry)."""


class WorkingCalendar:
    """Answers "is this a working day?" from loaded years, the package, or Monday–Friday."""

    def __init__(self, overrides: Iterable[DayRule] = ()) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[int, dict[date, bool]] = {}
        self._warned: set[int] = set()
        self.set_overrides(overrides)

    def set_overrides(self, rules: Iterable[DayRule]) -> None:
        """Replace the administrator-loaded years with ``rules`` (grouped by year)."""
        loaded: dict[int, dict[date, bool]] = {}
        for rule in rules:
            loaded.setdefault(rule.day.year, {})[rule.day] = rule.is_workday
        with self._lock:
            self._loaded = loaded

    @classmethod
    def from_session(cls, session: Session) -> WorkingCalendar:
        """A calendar with every year loaded into the database."""
        rows = session.scalars(select(WorkdayOverride)).all()
        return cls(DayRule(r.day, r.is_workday, r.name) for r in rows)

    def overrides(self) -> list[DayRule]:
        """Every loaded day, as rules."""
        return [DayRule(day, work) for year in self._loaded.values() for day, work in sorted(year.items())]

    def loaded_years(self) -> list[int]:
        """Years an administrator has loaded."""
        return sorted(self._loaded)

    def source(self, year: int) -> str:
        """Where the schedule of ``year`` comes from: ``loaded``, ``official`` or ``weekdays``."""
        if year in self._loaded:
            return "loaded"
        if _package_covers(year):
            return "official"
        return "weekdays"

    def schedule_gap(self, today: date) -> int | None:
        """The year whose official schedule is missing and soon needed, or None: this year when it is
        missing, and from 1 November also next year (deadlines set in late autumn already reach into it)."""
        years = [today.year, today.year + 1] if today.month >= SCHEDULE_WARNING_MONTH else [today.year]
        return next((year for year in years if self.source(year) == "weekdays"), None)

    def is_working_day(self, day: date) -> bool:
        """True when ``day`` is a working day."""
        year_rules = self._loaded.get(day.year)
        if year_rules is not None:
            return year_rules.get(day, day.weekday() < 5)
        if _package_covers(day.year):
            return bool(chinese_calendar.is_workday(day))
        if day.year not in self._warned:
            with self._lock:
                if day.year not in self._warned:
                    self._warned.add(day.year)
                    log.warning(
                        "no holiday schedule for %d: counting Monday to Friday as working days "
                        "until an administrator loads one (shgov calendar load)",
                        day.year,
                    )
        return day.weekday() < 5

    def add_working_days(self, start: date, n: int) -> date:
        """The ``n``-th working day after ``start`` (``n`` ≥ 0; 0 gives the next working day or start)."""
        if n < 0:
            raise ValueError("n must not be negative")
        day = start
        if n == 0:
            while not self.is_working_day(day):
                day += timedelta(days=1)
            return day
        remaining = n
        while remaining:
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def working_days_between(self, a: date, b: date) -> int:
        """Working days in ``(a, b]``; negative when ``b`` is before ``a``."""
        if b < a:
            return -self.working_days_between(b, a)
        count = 0
        day = a
        while day < b:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count


# From this month on, next year's holiday schedule is expected (the State Council publishes it in autumn).
SCHEDULE_WARNING_MONTH = 11


def _package_covers(year: int) -> bool:
    first, last = min(chinese_calendar.holidays).year, max(chinese_calendar.holidays).year
    return bool(first <= year <= last)


_default = WorkingCalendar()


_zone = ZoneInfo(Settings.model_fields["timezone"].default)


def use_city_zone(name: str) -> None:
    """Make ``name`` (the settings' ``timezone``) the city's zone in this process: the app and every command set
    it from their settings as they start; until then it is the default (Asia/Shanghai)."""
    global _zone
    _zone = ZoneInfo(name)


def city_zone() -> ZoneInfo:
    """The city's time zone (``SHGOV_TIMEZONE``, as the process's settings said)."""
    return _zone


def city_today() -> date:
    """Today's date in the city (deliveries, deadlines and release dates are local dates)."""
    return datetime.now(city_zone()).date()


def default_calendar() -> WorkingCalendar:
    """The process-wide calendar (the app refreshes its loaded years at start and after a load)."""
    return _default


def add_working_days(start: date, n: int) -> date:
    """The ``n``-th working day after ``start`` on the process-wide calendar."""
    return _default.add_working_days(start, n)


def working_days_between(a: date, b: date) -> int:
    """Working days in ``(a, b]`` on the process-wide calendar."""
    return _default.working_days_between(a, b)


def parse_schedule(text: str) -> list[DayRule]:
    """Parse CSV lines ``date,kind,name`` where kind is ``holiday`` / ``休`` or ``workday`` / ``班``."""
    rules: list[DayRule] = []
    reader = csv.reader(io.StringIO(text))
    for line_no, row in enumerate(reader, start=1):
        if not row or row[0].strip().startswith("#") or row[0].strip().lower() == "date":
            continue
        if len(row) < 2:
            raise ScheduleError(N_("line {line}: expected date,kind[,name]"), line=line_no)
        try:
            day = date.fromisoformat(row[0].strip())
        except ValueError as exc:
            raise ScheduleError(
                N_("line {line}: {value!r} is not a date (YYYY-MM-DD)"), line=line_no, value=row[0]
            ) from exc
        kind = row[1].strip().lower()
        if kind in ("holiday", "休", "off"):
            is_workday = False
        elif kind in ("workday", "班", "work"):
            is_workday = True
        else:
            raise ScheduleError(
                N_("line {line}: kind must be holiday or workday, not {kind!r}"), line=line_no, kind=row[1]
            )
        rules.append(DayRule(day, is_workday, row[2].strip() if len(row) > 2 else ""))
    return rules


def load_year(session: Session, year: int, rules: list[DayRule]) -> int:
    """Replace the schedule of ``year`` with ``rules``; returns how many days were stored."""
    seen: set[date] = set()
    for rule in rules:
        if rule.day.year != year:
            raise ScheduleError(N_("{day} is not in {year}"), day=rule.day, year=year)
        if rule.day in seen:
            raise ScheduleError(N_("{day} appears twice"), day=rule.day)
        seen.add(rule.day)
    session.execute(
        delete(WorkdayOverride).where(
            WorkdayOverride.day >= date(year, 1, 1), WorkdayOverride.day <= date(year, 12, 31)
        )
    )
    session.add_all(WorkdayOverride(day=r.day, is_workday=r.is_workday, name=r.name) for r in rules)
    session.flush()
    return len(rules)

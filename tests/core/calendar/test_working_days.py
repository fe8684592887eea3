"""Working days on the official schedule, loaded schedules for later years, Monday–Friday fallback."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shgov.app import create_app
from shgov.core.calendar.service import (
    DayRule,
    ScheduleError,
    WorkingCalendar,
    add_working_days,
    city_today,
    city_zone,
    load_year,
    parse_schedule,
    use_city_zone,
    working_days_between,
)
from shgov.core.db import Database
from tests.conftest import make_settings


def test_national_day_2026_is_a_holiday_and_make_up_saturdays_are_working_days() -> None:
    calendar = WorkingCalendar()
    assert not calendar.is_working_day(date(2026, 10, 1))
    assert not calendar.is_working_day(date(2026, 10, 7))
    assert calendar.is_working_day(date(2026, 2, 14))  # a Saturday worked for the Spring Festival
    assert calendar.is_working_day(date(2026, 2, 28))
    assert not calendar.is_working_day(date(2026, 2, 17))  # Spring Festival


def test_2026_has_248_working_days() -> None:
    assert working_days_between(date(2025, 12, 31), date(2026, 12, 31)) == 248


def test_adding_working_days_skips_the_national_day_holiday() -> None:
    # Accepted on Wednesday 30 September 2026: the holiday runs to 7 October, so day 1 is 8 October;
    # Saturday 10 October is a make-up working day, so day 5 is Tuesday 13 October.
    assert add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert add_working_days(date(2026, 9, 30), 5) == date(2026, 10, 13)
    assert add_working_days(date(2025, 12, 31), 0) == date(2025, 12, 31)
    assert add_working_days(date(2026, 10, 3), 0) == date(2026, 10, 8)


def test_the_1515_limits_on_real_dates() -> None:
    start = date(2026, 9, 25)  # a Friday
    assert add_working_days(start, 1) == date(2026, 9, 28)
    assert add_working_days(start, 5) == date(2026, 10, 9)  # 28, 29, 30 Sep, then 8, 9 Oct
    assert add_working_days(start, 15) == date(2026, 10, 22)  # 10 Oct (Sat) is worked


@given(
    st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 11, 30)),
    st.integers(min_value=0, max_value=60),
)
def test_counting_inverts_adding(start: date, n: int) -> None:
    due = add_working_days(start, n)
    if n:
        assert working_days_between(start, due) == n
        assert WorkingCalendar().is_working_day(due)
    assert working_days_between(due, start) == -working_days_between(start, due)


def test_a_year_without_a_schedule_falls_back_to_weekdays_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    calendar = WorkingCalendar()
    with caplog.at_level(logging.WARNING, logger="shgov.calendar"):
        assert calendar.source(2027) == "weekdays"
        assert calendar.add_working_days(date(2027, 1, 1), 1) == date(2027, 1, 4)  # a Friday → Monday
        assert calendar.working_days_between(date(2027, 1, 1), date(2027, 1, 31)) == 20
    warnings = [r for r in caplog.records if "2027" in r.getMessage()]
    assert len(warnings) == 1


def test_a_loaded_year_overrides_the_fallback(db: Database) -> None:
    rules = parse_schedule("date,kind,name\n2027-01-01,holiday,元旦\n2027-02-06,班,春节调休\n")
    with db.session() as session:
        assert load_year(session, 2027, rules) == 2
        calendar = WorkingCalendar.from_session(session)
    assert calendar.source(2027) == "loaded"
    assert not calendar.is_working_day(date(2027, 1, 1))
    assert calendar.is_working_day(date(2027, 2, 6))  # a Saturday, made a working day
    assert calendar.add_working_days(date(2026, 12, 31), 1) == date(2027, 1, 4)


def test_loading_a_year_again_replaces_it(db: Database) -> None:
    with db.session() as session:
        load_year(session, 2027, [DayRule(date(2027, 1, 1), False, "元旦")])
        load_year(session, 2027, [DayRule(date(2027, 5, 3), False, "劳动节")])
        calendar = WorkingCalendar.from_session(session)
    assert calendar.is_working_day(date(2027, 1, 1))
    assert not calendar.is_working_day(date(2027, 5, 3))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2027-13-01,holiday", "not a date"),
        ("2027-01-01,vacation", "kind must be"),
        ("2027-01-01", "expected date,kind"),
    ],
)
def test_a_bad_schedule_names_the_line(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(text)


def test_a_schedule_for_another_year_or_with_a_duplicate_is_refused(db: Database) -> None:
    with db.session() as session:
        with pytest.raises(ScheduleError, match="not in 2027"):
            load_year(session, 2027, [DayRule(date(2028, 1, 1), False)])
        with pytest.raises(ScheduleError, match="twice"):
            load_year(session, 2027, [DayRule(date(2027, 1, 1), False), DayRule(date(2027, 1, 1), False)])


def test_the_api_adds_working_days_and_loads_a_year(client: httpx.Client, admin_token: str) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}
    assert client.get("/api/v1/calendar/add", params={"start": "2026-09-30", "n": 1}).status_code == 401
    added = client.get("/api/v1/calendar/add", params={"start": "2026-09-30", "n": 1}, headers=headers)
    assert added.json()["due"] == "2026-10-08"
    loaded = client.put(
        "/api/v1/calendar/years/2027",
        json={"days": [{"date": "2027-01-01", "kind": "holiday", "name": "元旦"}]},
        headers=headers,
    )
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["source"] == "loaded"
    bad = client.put(
        "/api/v1/calendar/years/2027", json={"days": [{"date": "2028-01-01", "kind": "holiday"}]}, headers=headers
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "days"


def test_only_platform_administrators_load_schedules(client: httpx.Client, token_for) -> None:  # type: ignore[no-untyped-def]
    response = client.put(
        "/api/v1/calendar/years/2027",
        json={"days": [{"date": "2027-01-01", "kind": "holiday"}]},
        headers={"Authorization": f"Bearer {token_for('pudong.admin')}"},
    )
    assert response.status_code == 403


def test_weekend_dates_near_a_boundary() -> None:
    friday = date(2026, 11, 27)
    assert add_working_days(friday, 1) == friday + timedelta(days=3)


def test_the_city_zone_follows_the_setting(tmp_path: Path) -> None:
    """Another city's dates are its own: the zone comes from SHGOV_TIMEZONE, Shanghai by default."""
    try:
        create_app(make_settings(tmp_path, timezone="Pacific/Kiritimati"), background=False)  # UTC+14
        assert city_zone().key == "Pacific/Kiritimati"
        assert city_today() == datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    finally:
        use_city_zone("Asia/Shanghai")
    assert city_zone().key == "Asia/Shanghai"

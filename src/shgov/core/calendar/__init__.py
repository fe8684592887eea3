"""Working days on the official PRC holiday schedule."""

from shgov.core.calendar.service import (
    WorkingCalendar,
    add_working_days,
    default_calendar,
    working_days_between,
)

__all__ = ["WorkingCalendar", "add_working_days", "default_calendar", "working_days_between"]

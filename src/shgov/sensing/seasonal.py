"""Area-level seasonal anomalies: a district whose devices of a type, taken together, read far from what they
read at the same time of day on the previous days (a seasonal z-score).

A single device's habit (``Pipeline._habit``) catches a stuck or drifting sensor; this catches what no single
device shows — the traffic of a whole district collapsing at rush hour, the noise of a district at night twice
its usual level — while ignoring the daily rhythm itself (rush hours, night lulls), which a plain threshold
or an EWMA would report every day.

The figures come from the per-minute partial aggregates in the lake: the mean of the last ``window`` in each
district is compared with the means of the same window on each of the last ``days`` days. The daily profile
is re-read every ``refresh`` (it moves slowly); the current window is read at every evaluation.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shgov.core.analytics import Analytics
from shgov.sensing.pipeline import MINUTES

DAY_MS = 86_400_000
SPREAD_FLOOR = 0.01  # of a measure's valid range: a district that always reads the same still has this spread


@dataclass(frozen=True)
class Deviation:
    """How far a district's current mean of a measure lies from the same window's mean on earlier days."""

    type_code: str
    measure: str
    district: str
    value: float  # the mean over the current window
    readings: int  # behind ``value``
    expected: float  # the mean of the earlier days' means
    spread: float  # their standard deviation (at least the floor)
    days: int  # earlier days with readings in the window

    @property
    def z(self) -> float:
        """Deviations from the expected value (signed)."""
        return (self.value - self.expected) / self.spread

    def as_evidence(self) -> dict[str, Any]:
        """What a warning shows of it."""
        return {
            "type": self.type_code,
            "measure": self.measure,
            "value": round(self.value, 3),
            "readings": self.readings,
            "expected": round(self.expected, 3),
            "spread": round(self.spread, 3),
            "days": self.days,
            "z": round(self.z, 2),
        }


_WINDOW_MEANS = (  # the constants are ours; the values are parameters
    f"SELECT type, measure, district, (? - epoch_ms(minute)) // {DAY_MS} AS back, "  # noqa: S608
    f"sum(total) / sum(n) AS mean, sum(n) AS readings FROM {MINUTES} "
    f"WHERE minute >= ? AND minute <= ? AND day BETWEEN ? AND ? AND (? - epoch_ms(minute)) % {DAY_MS} < ? "
    "GROUP BY ALL"
)


def window_means(
    analytics: Analytics, now: datetime, window: timedelta, first: int, last: int
) -> list[tuple[Any, ...]]:
    """(type, measure, district, days back, mean, readings) for the window ending ``now`` on each day from
    ``first`` to ``last`` days back (0: today's)."""
    if MINUTES not in analytics.datasets():
        return []
    now_ms = int(now.timestamp() * 1000)
    width = int(window.total_seconds() * 1000)
    earliest = now - timedelta(days=last) - window
    latest = now - timedelta(days=first)
    params = [
        now_ms,
        earliest,
        latest,
        earliest.astimezone(UTC).date().isoformat(),
        latest.astimezone(UTC).date().isoformat(),
        now_ms,
        width,
    ]
    with analytics.connect() as conn:
        rows: list[tuple[Any, ...]] = conn.execute(_WINDOW_MEANS, params).fetchall()
    return rows


@dataclass
class Profile:
    """The earlier days' means of one window: per (type, measure, district) their mean, spread and count."""

    at: datetime
    expected: dict[tuple[str, str, str], tuple[float, float, int]]


def profile(analytics: Analytics, now: datetime, window: timedelta, days: int) -> Profile:
    """The same window's means on each of the last ``days`` days, summarised per type, measure and district."""
    by_area: dict[tuple[str, str, str], list[float]] = {}
    for type_code, measure, district, _back, mean, _n in window_means(analytics, now, window, 1, days):
        by_area.setdefault((type_code, measure, district), []).append(float(mean))
    expected = {
        key: (statistics.fmean(means), statistics.stdev(means) if len(means) > 1 else 0.0, len(means))
        for key, means in by_area.items()
    }
    return Profile(now, expected)


class SeasonalWatch:
    """Keeps the daily profile (re-read every ``refresh``) and compares the current window with it."""

    def __init__(
        self,
        analytics: Analytics,
        *,
        window: timedelta = timedelta(hours=1),
        days: int = 28,
        min_days: int = 7,
        refresh: timedelta = timedelta(minutes=5),
    ) -> None:
        self.analytics = analytics
        self.window, self.days, self.min_days, self.refresh = window, days, min_days, refresh
        self._profile: Profile | None = None

    def deviations(self, now: datetime, ranges: dict[tuple[str, str], float]) -> list[Deviation]:
        """Every district's current mean of each measure in ``ranges`` against its profile (areas with fewer
        than ``min_days`` earlier days are still learning and left out). ``ranges`` gives each (type,
        measure)'s valid span, from which the spread's floor is taken; measures not in it are not compared."""
        if self._profile is None or now - self._profile.at >= self.refresh or now < self._profile.at:
            self._profile = profile(self.analytics, now, self.window, self.days)
        found = []
        for type_code, measure, district, _back, mean, readings in window_means(self.analytics, now, self.window, 0, 0):
            known = self._profile.expected.get((type_code, measure, district))
            span = ranges.get((type_code, measure))
            if known is None or known[2] < self.min_days or span is None:
                continue
            expected, spread, days = known
            floor = SPREAD_FLOOR * span
            found.append(
                Deviation(type_code, measure, district, float(mean), int(readings), expected, max(spread, floor), days)
            )
        return found

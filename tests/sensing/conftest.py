"""The sensing tests' clock: each test starts at the same minute, so readings stamped ``NOW`` are as fresh
when the pipeline looks at them as when the test wrote them, however slowly the suite runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from tests.conftest import CITY_NOW

# Hours after the run's start (later than anything the session's fixtures stamp), on a whole minute.
START = CITY_NOW + timedelta(hours=6)
NOW = int(START.timestamp() * 1000)


@pytest.fixture(autouse=True)
def sensing_clock() -> Iterator[datetime]:
    """Every sensing test begins at ``START`` and its clock ticks from there."""
    with time_machine.travel(START, tick=True):
        yield START.astimezone(UTC)

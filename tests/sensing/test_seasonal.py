"""Area-level seasonal anomalies: a district's traffic compared with the same time of day on earlier days —
learning until enough days exist, blue then yellow as it departs from its habit, cleared when it returns."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from shgov.core.db import Database
from shgov.core.settings import Settings
from shgov.sensing import watch
from shgov.sensing.models import SensorWarning
from shgov.sensing.readings import from_columns
from shgov.sensing.seasonal import SeasonalWatch
from shgov.sensing.service import open_pipeline
from tests.conftest import make_settings

DAY = 86_400_000
MINUTE = 60_000
DETECTORS = [f"TF-310115-{i:04d}" for i in range(1, 21)]


@pytest.fixture
def own_settings(tmp_path: Path, settings: Settings) -> Settings:
    return make_settings(tmp_path / "seasonal", database=settings.database.model_dump())


def minutes(pipeline: object, start: int, end: int, level: float, rng: np.random.Generator) -> None:
    """Every detector's vehicles per minute from ``start`` to ``end`` (ms), around ``level``."""
    stamps = np.arange(start, end, MINUTE)
    ids = [d for _ in stamps for d in DETECTORS]
    ts = np.repeat(stamps, len(DETECTORS))
    values = level + rng.normal(0, 2, len(ts))
    batch = from_columns(
        pa.array(ids), pa.array(ts, pa.int64()), pa.array(["vehicles"] * len(ts)), pa.array(values.clip(0))
    )
    result = pipeline.ingest(batch, "test", max_age_ms=None)  # type: ignore[attr-defined]
    assert result.refused == 0, result.reasons


def test_a_district_unusual_for_the_time_of_day_is_warned_and_cleared(db: Database, own_settings: Settings) -> None:
    pipeline = open_pipeline(own_settings, db)
    rng = np.random.default_rng(5)
    base = int(time.time() * 1000) // MINUTE * MINUTE - 30 * MINUTE
    at = [base - 40 * MINUTE, base - 20 * MINUTE, base, base + 20 * MINUTE]
    try:
        for back in range(1, 10):  # nine earlier days, each a little different, all near 20 vehicles a minute
            minutes(pipeline, base - back * DAY - 50 * MINUTE, base - back * DAY + 20 * MINUTE, 20 + back % 3 - 1, rng)
        minutes(pipeline, base - 50 * MINUTE, base - 30 * MINUTE, 20, rng)  # as usual
        minutes(pipeline, base - 30 * MINUTE, base - 20 * MINUTE, 33, rng)  # busier than ever at this hour
        minutes(pipeline, base - 10 * MINUTE, base, 60, rng)  # far busier
        minutes(pipeline, base + 10 * MINUTE, base + 20 * MINUTE, 20, rng)  # back to its habit
        pipeline.flush()
        spans = pipeline.registry.spans()
        assert spans[("traffic_flow", "vehicles")] == 300
        assert ("elevator", "trapped") not in spans  # a 0/1 state has no daily level to compare

        def when(ms: int) -> datetime:
            return datetime.fromtimestamp(ms / 1000, UTC)

        learning = SeasonalWatch(pipeline.analytics, window=timedelta(minutes=10), days=28, min_days=10)
        assert learning.deviations(when(at[0]), spans) == []  # nine days are not enough for it

        seasonal = SeasonalWatch(pipeline.analytics, window=timedelta(minutes=10), days=28, min_days=7)
        usual = seasonal.deviations(when(at[0]), spans)
        ours = [d for d in usual if (d.type_code, d.measure, d.district) == ("traffic_flow", "vehicles", "310115")]
        assert len(ours) == 1
        assert (ours[0].days, ours[0].readings) == (9, 200)  # 10 minutes of 20 detectors in the window
        assert abs(ours[0].expected - 20) < 1
        assert abs(ours[0].z) < 1
        assert ours[0].spread == 3.0  # the days agree more closely than 1 % of the range: the floor holds

        with db.session() as session:

            def step(ms: int) -> list[tuple[str, str]]:
                found = watch.note_seasonal(session, seasonal.deviations(when(ms), spans), when(ms))
                return [(c.what, c.warning.grade) for c in found]

            assert step(at[0]) == []
            assert step(at[1]) == [("opened", "blue")]
            warning = session.query(SensorWarning).filter_by(kind="seasonal").one()
            assert (warning.indicator_code, warning.area_code) == ("seasonal:traffic_flow.vehicles", "310115")
            assert 3 <= warning.evidence["z"] < 5
            assert warning.evidence["days"] == 9
            assert step(at[2]) == [("raised", "yellow")]
            assert warning.peak_value > 10
            assert step(at[3]) == [("cleared", "yellow")]
            assert warning.status == "cleared"
            assert [h["what"] for h in warning.history] == ["opened", "raised", "cleared"]
            assert warning.workorder_id is None  # a statistical warning asks someone to look: it never dispatches
    finally:
        pipeline.close()

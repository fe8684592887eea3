"""Vital signs and their warnings on the demo city's devices: indicators computed per district from the live
values, graded warnings opened once, raised, eased with hysteresis and cleared; orange opens the category's
work order (with its playbook) carrying the evidence; device anomalies become anomaly warnings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from shgov.core.db import Database
from shgov.core.regions.service import RegionIndex
from shgov.core.settings import Settings
from shgov.sensing import indicators as vital
from shgov.sensing import watch
from shgov.sensing.models import SensorWarning
from shgov.sensing.readings import decode
from shgov.sensing.service import open_pipeline
from shgov.workorders import service as workorders
from tests.conftest import make_settings
from tests.sensing.conftest import NOW

GAUGES = [f"WL-310115-{i:04d}" for i in range(1, 21)]


@pytest.fixture
def own_settings(tmp_path: Path, settings: Settings) -> Settings:
    return make_settings(tmp_path / "sensing", database=settings.database.model_dump())


def depths(pipeline: object, second: int, values: list[float]) -> None:
    """Readings of the gauges ``second`` seconds into the last two minutes."""
    rows = [[GAUGES[i], NOW - 120_000 + second * 1000, "depth_cm", v] for i, v in enumerate(values)]
    pipeline.ingest(decode(orjson.dumps(rows)), "test")  # type: ignore[attr-defined]


def test_formulas_are_checked_and_computed_per_district() -> None:
    for bad in ("__import__('os')", "mean.real", "open('x')", "'text'", "mean if 1 else 2"):
        with pytest.raises(Exception, match="formula"):
            vital.check_formula(bad)
    assert vital.iaqi_pm25(np.array([35.0, 55.0, 500.0])).tolist() == [50.0, 75.0, 500.0]
    # two nodes each saw some of the devices: merged, the formula sees them all
    east = vital.Aggregates(
        ["310101", "310115"],
        np.array([1.0, 1.0]),
        np.array([10.0, 30.0]),
        np.array([10.0, 30.0]),
        np.array([10.0, 30.0]),
        {15.0: np.array([0.0, 1.0])},
        {"310115": [{"device_id": "a", "value": 30.0}]},
    )
    west = vital.Aggregates(
        ["310115", "310120"],
        np.array([1.0, 0.0]),
        np.array([80.0, 0.0]),
        np.array([80.0, np.inf]),
        np.array([80.0, -np.inf]),
        {15.0: np.array([1.0, 0.0])},
        {"310115": [{"device_id": "b", "value": 80.0}]},
    )
    merged = vital.merge([east, vital.Aggregates.from_json(orjson.loads(orjson.dumps(west.as_json())))])
    tree = vital.check_formula("above(15) + mean / 100")
    values = vital._evaluate(tree, merged)
    assert merged.districts == ["310101", "310115", "310120"]
    assert values[:2].tolist() == [0.1, 2.55]
    assert np.isnan(values[2])  # no device: no value
    assert vital._evaluate(vital.check_formula("max - min"), merged)[1] == 50.0
    assert len(merged.evidence["310115"]) == 2


def test_warnings_open_escalate_dispatch_ease_and_clear(
    db: Database, own_settings: Settings, region_index: RegionIndex
) -> None:
    pipeline = open_pipeline(own_settings, db)
    waterlogging = next(i for i in vital.load() if i.code == "waterlogging_points")
    try:
        with db.session() as session:

            def round_of(second: int, values: list[float]) -> list[watch.Change]:
                depths(pipeline, second, values + [0.0] * (len(GAUGES) - len(values)))
                return watch.evaluate(session, own_settings, region_index, [vital.compute(pipeline, waterlogging)])

            first = round_of(1, [18.0])
            assert [(c.what, c.warning.grade, c.warning.area_code) for c in first] == [("opened", "blue", "310115")]
            assert round_of(2, [18.0]) == []  # the same warning, not a second one
            raised = round_of(3, [18.0, 22.0, 30.0])
            assert [c.what for c in raised] == ["raised", "dispatched"]
            warning = raised[0].warning
            assert (warning.grade, warning.value) == ("orange", 3.0)
            order = workorders.get_order(session, warning.workorder_id)  # type: ignore[arg-type]
            assert (order.channel, order.category_code, order.district_code) == ("sensor", "02.02.001", "310115")
            assert order.attributes["warning_id"] == str(warning.id)
            assert {d["device_id"] for d in order.attributes["evidence"]["devices"]} == set(GAUGES[:3])
            assert "橙色预警" in order.description
            assert "积水点数" in order.description
            assert workorders.incident_tasks(session, order.id), "the waterlogging playbook is opened"
            # two points left: 2 ≥ 3 × 0.9 fails, 2 ≥ 2 × 0.9 holds: eased to yellow, not cleared
            assert [c.what for c in round_of(4, [18.0, 22.0])] == ["eased"]
            assert warning.grade == "yellow"
            assert round_of(5, [18.0, 22.0, 30.0])[0].what == "raised"
            assert warning.workorder_number == order.number  # dispatched once
            cleared = round_of(6, [])
            assert [(c.what, c.warning.id) for c in cleared] == [("cleared", warning.id)]
            assert [h["what"] for h in warning.history] == [
                "opened",
                "raised",
                "dispatched",
                "eased",
                "raised",
                "cleared",
            ]
            assert (warning.peak_grade, warning.peak_value) == ("orange", 3.0)
            # the unit handling the order reads each later change in the order's history
            notes = [e.note for e in workorders.history(session, order.id) if e.action == "note"]
            assert len(notes) == 3
            assert notes[0].startswith("预警降为黄色：积水点数现为 2")
            assert notes[1].startswith("预警升级为橙色：积水点数现为 3")
            assert notes[2].startswith("预警已解除：积水点数现为 0")
            assert order.status != "closed"  # a note changes nothing else

            # a gauge far from its habit is an anomaly warning of its district
            for second in range(40):
                depths(pipeline, 10 + second, [1.0 + 0.1 * (second % 3)])
            depths(pipeline, 60, [60.0])
            noted = watch.note_anomalies(session, pipeline)
            assert [(c.what, c.warning.indicator_code, c.warning.kind) for c in noted] == [
                ("opened", "anomaly:water_level.depth_cm", "anomaly")
            ]
            assert noted[0].warning.evidence["devices"][0]["device_id"] == GAUGES[0]
            stored = session.query(SensorWarning).filter_by(kind="anomaly").count()
            assert stored == 1
    finally:
        pipeline.close()

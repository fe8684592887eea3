"""The ingestion pipeline on its own (real files, no broker): every refusal reason, the reject store, the
write-ahead log and its recovery, late readings, merging of small files, partial aggregates per minute."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import orjson
import polars as pl
import pytest

from shgov.core.settings import Settings
from shgov.sensing import service
from shgov.sensing.pipeline import READINGS, Pipeline, Registry
from shgov.sensing.readings import decode
from tests.conftest import make_settings
from tests.sensing.conftest import NOW


def registry() -> Registry:
    types = [(t["code"], t["measures"]) for t in service.packaged_types()]
    devices = pl.DataFrame(
        {
            "id": ["AQ-1", "AQ-2", "WL-1", "WL-OFF", "MH-1"],
            "type_code": ["air_quality", "air_quality", "water_level", "water_level", "manhole"],
            "tenant_code": ["310115", "310101", "310115", "310115", "310115"],
            "township_code": ["310115001", None, "310115001", None, "310115002"],
            "grid_code": [None, None, "G1", None, None],
            "department_code": ["310115.sthj", "310101.sthj", "310115.zj", "310115.zj", "310115.zj"],
            "status": ["active", "active", "active", "retired", "active"],
        }
    )
    return Registry.build(types, devices)


@pytest.fixture
def sensing_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, sensing={"dedupe_window": 4})


def lake(settings: Settings, name: str) -> str:
    return f"read_parquet('{settings.lake_dir / name}/**/*.parquet', hive_partitioning = true, union_by_name = true)"


def test_every_reading_is_accepted_or_kept_with_its_reason(sensing_settings: Settings) -> None:
    pipeline = Pipeline(sensing_settings, registry)
    try:
        batch = [
            ["AQ-1", NOW, "pm25", 35.0],  # fine
            ["AQ-1", NOW, "pm10", 60.0],  # fine: another measure, same time
            ["AQ-1", NOW, "pm25", 36.0],  # the same device, measure and time again
            ["NOPE", NOW, "pm25", 1.0],
            ["WL-OFF", NOW, "depth_cm", 3.0],
            ["WL-1", NOW, "pm25", 3.0],
            ["WL-1", NOW, "depth_cm", 301.0],
            ["WL-1", NOW + 3_600_000, "depth_cm", 3.0],
            ["WL-1", NOW - 100 * 3_600_000, "depth_cm", 3.0],
            ["MH-1", NOW, "open", True],  # true is 1
            {"device_id": "AQ-2", "ts": "2026-01-01T08:00:00+08:00", "values": {"pm25": "lots"}},
        ]
        result = pipeline.ingest(decode(orjson.dumps(batch)), "test")
        assert result.accepted == 3
        assert result.reasons == {
            "duplicate reading": 1,
            "unknown device": 1,
            "device not active": 1,
            "measure not reported by this device type": 1,
            "value outside the device type's range": 1,
            "timestamp in the future": 1,
            "timestamp too old": 1,
            "unreadable reading": 1,
        }
        assert result.refused == 8
        # a later batch repeating an accepted reading is a duplicate too; NaN and a late reading are told apart
        again = pipeline.ingest(
            decode(orjson.dumps([["AQ-1", NOW, "pm25", 35.0], ["AQ-1", NOW - 60_000, "pm25", 20.0]])), "test"
        )
        assert (again.accepted, again.reasons) == (1, {"duplicate reading": 1})
        assert pipeline.stats.late == 1
        devices, values = pipeline.latest("air_quality", "pm25")
        assert values[list(devices).index(pipeline.registry.index["AQ-1"])] == 35.0  # the late one did not win
        # the topic's district and type, and the sender's scope
        topic = pipeline.ingest(decode(orjson.dumps([["AQ-2", NOW, "pm25", 5.0]])), "t", district="310115")
        assert topic.reasons == {"device not of this topic's district or type": 1}
        scoped = pipeline.ingest(
            decode(orjson.dumps([["AQ-2", NOW, "pm25", 5.0], ["AQ-1", NOW + 60_000, "pm25", 5.0]])),
            "t",
            allowed=lambda district, _department: district == "310115",
        )
        assert (scoped.accepted, scoped.reasons) == (1, {"device outside the sender's districts or departments": 1})
        pipeline.log_unreadable("mqtt:x", b"\xff not json", "not JSON")
        assert pipeline.flush() == 5
    finally:
        pipeline.close()
    columns = "device_id, measure, value, district, township, grid"
    stored = duckdb.sql(f"SELECT {columns} FROM {lake(sensing_settings, READINGS)} ORDER BY ts, device_id").fetchall()
    assert ("WL-1", "depth_cm", 301.0, "310115", "310115001", "G1") not in stored
    assert ("AQ-1", "pm10", 60.0, "310115", "310115001", None) in stored
    assert ("MH-1", "open", 1.0, "310115", "310115002", None) in stored
    assert len(stored) == 5
    rejects = dict(
        duckdb.sql(f"SELECT reason, count(*) FROM {lake(sensing_settings, 'sensor_rejects')} GROUP BY 1").fetchall()
    )
    assert rejects["duplicate reading"] == 2
    assert rejects["unreadable batch: not JSON"] == 1
    assert sum(rejects.values()) == 8 + 1 + 1 + 1 + 1
    unreadable = duckdb.sql(
        f"SELECT raw, reason FROM {lake(sensing_settings, 'sensor_rejects')} WHERE reason LIKE 'unreadable reading%'"
    ).fetchall()[0]
    assert unreadable is not None
    assert '"lots"' in unreadable[0]
    assert "not a number" in unreadable[1]
    minutes = duckdb.sql(
        f"SELECT sum(n), sum(total), min(low), max(high) FROM {lake(sensing_settings, 'sensor_minutes')} "
        "WHERE measure = 'pm25' AND district = '310115'"
    ).fetchall()[0]
    assert minutes == (3, 60.0, 5.0, 35.0)


def test_the_log_survives_a_crash_and_is_stored_once(sensing_settings: Settings, tmp_path: Path) -> None:
    pipeline = Pipeline(sensing_settings, registry)
    rows = [["AQ-1", NOW - i * 60_000, "pm25", float(i)] for i in range(50)]
    pipeline.ingest(decode(orjson.dumps(rows)), "test")
    # a second process cannot take the same node
    with pytest.raises(RuntimeError, match="owns node"):
        Pipeline(sensing_settings, registry)
    # the crash: the process dies with its log unconverted (here: the lock is dropped, nothing is flushed)
    segment = next((sensing_settings.data_dir / "sensing" / "wal" / "main").glob("*.wal"))
    with segment.open("ab") as torn:  # and the last, unacknowledged record was cut short
        torn.write(b"SWAL\x41\x00\x10")
    pipeline._owner.close()
    revived = Pipeline(sensing_settings, registry)
    try:
        assert revived.stats.accepted == 0
        # the revived node knows what it had accepted: a broker's redelivery is a duplicate
        redelivered = revived.ingest(decode(orjson.dumps(rows[:3])), "test")
        assert redelivered.reasons == {"duplicate reading": 3}
        revived.flush()
        revived.flush()  # converting again writes nothing twice
    finally:
        revived.close()
    count = duckdb.sql(f"SELECT count(*), count(DISTINCT ts) FROM {lake(sensing_settings, READINGS)}").fetchall()[0]
    assert count == (50, 50)


def test_small_files_are_merged_without_repeats(sensing_settings: Settings) -> None:
    pipeline = Pipeline(sensing_settings, registry)
    try:
        for i in range(6):
            pipeline.ingest(decode(orjson.dumps([["AQ-1", NOW - i * 60_000, "pm25", float(i)]])), "test")
            pipeline.flush()
        # a repeat that slipped past the duplicate window (another node's redelivery) is removed when merging
        pipeline.ingest(decode(orjson.dumps([["WL-1", NOW, "depth_cm", 1.0]])), "test")
        pipeline.flush()
        day = next((sensing_settings.lake_dir / READINGS).glob("day=*"))
        copy = sorted(day.glob("main-*.parquet"))[-1]  # merged in the same group as its copy below
        (day / "main-99999999999999999999.parquet").write_bytes(copy.read_bytes())
        assert pipeline.compact(group=4) >= 1
        pipeline.compact(group=4)
    finally:
        pipeline.close()
    stored = duckdb.sql(f"SELECT count(*) FROM {lake(sensing_settings, READINGS)}").fetchall()[0]
    assert stored == (7,)
    minutes = duckdb.sql(f"SELECT sum(n) FROM {lake(sensing_settings, 'sensor_minutes')}").fetchall()[0]
    assert minutes == (7,)
    assert any("_" in p.stem for p in (sensing_settings.lake_dir / READINGS).rglob("*.parquet"))


def test_a_registry_reload_keeps_the_live_state(sensing_settings: Settings) -> None:
    current = {"registry": registry()}
    pipeline = Pipeline(sensing_settings, lambda: current["registry"])
    try:
        pipeline.ingest(decode(orjson.dumps([["WL-1", NOW, "depth_cm", 12.0]])), "test")
        types = [(t["code"], t["measures"]) for t in service.packaged_types()]
        bigger = pl.DataFrame(
            {
                "id": ["A-NEW", "WL-1"],
                "type_code": ["noise", "water_level"],
                "tenant_code": ["310104", "310115"],
                "township_code": [None, None],
                "grid_code": [None, None],
                "department_code": ["x", "y"],
                "status": ["active", "active"],
            }
        )
        current["registry"] = Registry.build(types, bigger)
        pipeline.reload()
        devices, values = pipeline.latest("water_level", "depth_cm")
        assert list(values[devices == pipeline.registry.index["WL-1"]]) == [12.0]
        again = pipeline.ingest(
            decode(orjson.dumps([["WL-1", NOW, "depth_cm", 12.0], ["A-NEW", NOW, "laeq_db", 50]])), "t"
        )
        assert (again.accepted, again.reasons) == (1, {"duplicate reading": 1})
    finally:
        pipeline.close()
    assert np.isfinite(0)

"""Of several processes serving one data folder, one runs the sensing background work; the others wait
quietly (one INFO line) and one of them takes over when the leader stops. Runtimes in one process stand
in for the processes: an ``flock`` taken through two open files conflicts just the same."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import duckdb
import orjson
import pytest

from shgov.core.db import Database
from shgov.sensing import runtime as sensing_runtime
from shgov.sensing import service
from shgov.sensing.pipeline import READINGS, Pipeline
from shgov.sensing.readings import decode
from shgov.sensing.runtime import SensingRuntime, node_names
from tests.conftest import make_settings
from tests.sensing.conftest import NOW
from tests.sensing.test_pipeline import registry


def _soon(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_one_runtime_leads_the_others_wait_quietly_and_one_takes_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sensing_runtime, "LEADER_RETRY_SECONDS", 0.05)
    evaluated: list[SensingRuntime] = []
    monkeypatch.setattr(SensingRuntime, "pipeline", lambda self: None)  # the background work, not the node

    def watch_once(self: SensingRuntime) -> int:
        evaluated.append(self)
        return 0

    monkeypatch.setattr(SensingRuntime, "watch_once", watch_once)
    settings = make_settings(tmp_path, sensing={"watch_seconds": 0.02})
    no_database = cast(Database, None)
    first, second, third = (SensingRuntime(settings, no_database) for _ in range(3))
    caplog.set_level(logging.INFO, logger="shgov.sensing")
    try:
        first.start()
        assert _soon(lambda: first.leads)
        second.start()
        third.start()
        assert _soon(lambda: evaluated.count(first) >= 3)
        time.sleep(0.3)  # several retries of the other two
        assert not second.leads
        assert not third.leads
        assert set(evaluated) == {first}
        waiting = [r for r in caplog.records if "runs in another process" in r.getMessage()]
        assert len(waiting) == 2  # once per waiting runtime, not once per retry
        assert all(r.levelno == logging.INFO for r in waiting)

        first.stop()  # the leader goes: exactly one of the others takes over
        assert _soon(lambda: second.leads or third.leads)
        time.sleep(0.3)
        assert second.leads != third.leads
        successor = second if second.leads else third
        assert _soon(lambda: evaluated.count(successor) >= 3)
    finally:
        for runtime in (first, second, third):
            runtime.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_each_process_may_take_a_node_of_its_own_within_the_setting_pattern() -> None:
    names = node_names("a" * 32)
    assert names[0] == "a" * 32
    assert names[1] == "a" * 29 + "-2"
    assert all(len(name) <= 32 for name in names)
    assert len(set(names)) == len(names)


def test_the_leader_stores_what_a_killed_worker_left_in_its_node_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, sensing={"watch_seconds": 60})
    monkeypatch.setattr(service, "open_pipeline", lambda s, _db, node=None: Pipeline(s, registry, node=node))
    # a second worker ingested as main-2 and was killed before its log went to the lake
    worker = Pipeline(settings, registry, node="main-2")
    rows = [["AQ-1", NOW - i * 60_000, "pm25", float(i)] for i in range(20)]
    assert worker.ingest(decode(orjson.dumps(rows)), "test").accepted == 20
    worker._owner.close()  # the kernel drops a dead process's lock; nothing was flushed
    readings = settings.lake_dir / READINGS
    assert not list(readings.glob("*/main-2-*.parquet"))

    leader = SensingRuntime(settings, cast(Database, None))
    try:
        leader.start()  # fewer workers now: main-2 is nobody's
        assert _soon(lambda: bool(list(readings.glob("*/main-2-*.parquet"))), 30)
        assert leader.leads
    finally:
        leader.stop()
    stored = duckdb.execute(
        f"SELECT count(*) FROM read_parquet('{readings}/**/main-2-*.parquet', hive_partitioning = true)"
    ).fetchall()[0][0]
    assert stored == 20

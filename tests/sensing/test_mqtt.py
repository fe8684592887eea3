"""MQTT ingestion over the real Mosquitto broker, by real `shgov sensing ingest` processes: a kill -9 loses
no acknowledged reading and stores none twice; two processes share the topics through a shared subscription."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import Engine

from shgov.core.db import Database
from shgov.sensing.indicators import compute_all
from shgov.sensing.pipeline import Pipeline
from shgov.sensing.service import latest_of, registry_loader
from tests import city_clock
from tests.conftest import make_settings
from tests.sensing.conftest import NOW

# the registry is read the same way from either database (test_devices covers both): SQLite keeps it quick
pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)

BROKER = ("127.0.0.1", 1883)
DEVICES = [f"WL-310115-{i:04d}" for i in range(1, 21)]  # the demo city's water gauges in 浦东新区


@pytest.fixture(scope="module")
def broker() -> None:
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError:
        pytest.skip(f"no MQTT broker at {BROKER[0]}:{BROKER[1]} — the MQTT ingestion tests are skipped")


def ingest(tmp: Path, engine: Engine, root: str, node: str, flush: float) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SHGOV_ENV": "dev",
        "SHGOV_DATA_DIR": str(tmp),
        "SHGOV_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "SHGOV_SENSING__MQTT_ROOT": root,
        "SHGOV_SENSING__FLUSH_SECONDS": str(flush),
        "SHGOV_LOG_JSON": "false",
        **city_clock.environment(),
    }
    process = subprocess.Popen(
        [*city_clock.command(), "sensing", "ingest", "--node", node, "--mqtt", "mqtt://127.0.0.1:1883"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    # "node …: ingesting …" only once the broker confirmed the subscription (SUBACK)
    line = process.stdout.readline() if process.stdout else b""
    assert b"ingesting" in line, line + (process.stdout.read() if process.stdout else b"")
    return process


def publisher() -> paho.Client:
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"gw-{uuid.uuid4().hex[:8]}", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.connect(*BROKER)
    client.loop_start()
    return client


def publish(client: paho.Client, root: str, batches: range) -> None:
    for k in batches:
        body = orjson.dumps([[d, NOW - k * 60_000, "depth_cm", float(k % 7)] for d in DEVICES])
        client.publish(f"{root}/310115/readings/water_level", body, qos=1).wait_for_publish(5)


def stored(tmp: Path) -> tuple[int, int]:
    files = list((tmp / "lake" / "sensor_readings").rglob("*.parquet"))
    if not files:
        return 0, 0
    pattern = tmp / "lake" / "sensor_readings" / "**" / "*.parquet"
    count = duckdb.sql(f"SELECT count(*), count(DISTINCT (device_id, ts)) FROM read_parquet('{pattern}')").fetchall()[0]
    return int(count[0]), int(count[1])


def wait_for(tmp: Path, expected: int, seconds: float = 120) -> tuple[int, int]:
    deadline = time.monotonic() + seconds
    found = stored(tmp)
    while found[0] < expected and time.monotonic() < deadline:
        time.sleep(0.3)
        found = stored(tmp)
    return found


@pytest.fixture
def root() -> Iterator[str]:
    return f"shgovtest{uuid.uuid4().hex[:10]}"


@pytest.mark.slow  # a whole-system run of processes: the gate runs it, the quick lane does not
def test_a_kill_9_loses_no_acknowledged_reading(broker: None, engine: Engine, tmp_path: Path, root: str) -> None:
    first = ingest(tmp_path, engine, root, "k9", flush=600)  # nothing reaches Parquet before the kill
    client = publisher()
    try:
        publish(client, root, range(40))
        time.sleep(0.5)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        wal = list((tmp_path / "sensing" / "wal" / "k9").glob("*.wal"))
        assert wal, "the acknowledged readings wait in the write-ahead log"
        assert stored(tmp_path) == (0, 0)
        publish(client, root, range(40, 60))  # while the ingester is down: the broker keeps them
        second = ingest(tmp_path, engine, root, "k9", flush=0.3)
        try:
            found = wait_for(tmp_path, 60 * len(DEVICES))
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
    finally:
        client.loop_stop()
        client.disconnect()
    assert found == (60 * len(DEVICES), 60 * len(DEVICES))  # every reading, each once
    assert not list((tmp_path / "sensing" / "wal" / "k9").glob("*.wal"))


@pytest.mark.slow  # a whole-system run of processes: the gate runs it, the quick lane does not
def test_two_ingest_processes_share_the_topics(broker: None, engine: Engine, tmp_path: Path, root: str) -> None:
    processes = [ingest(tmp_path, engine, root, node, flush=0.3) for node in ("east", "west")]
    client = publisher()
    try:
        publish(client, root, range(40))
        found = wait_for(tmp_path, 40 * len(DEVICES))
    finally:
        client.loop_stop()
        client.disconnect()
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    found = stored(tmp_path)  # a stop flushes what the timer had not: count after it
    assert found == (40 * len(DEVICES), 40 * len(DEVICES))
    nodes = {p.name.split("-", 1)[0] for p in (tmp_path / "lake" / "sensor_readings").rglob("*.parquet")}
    assert nodes == {"east", "west"}, "each process took a share of the batches"
    # the web process sees the whole city: both nodes' latest values, each gauge counted once
    assert {f.stem for f in (tmp_path / "sensing" / "live").glob("*.arrow")} == {"east", "west"}
    web = Pipeline(make_settings(tmp_path), registry_loader(Database(engine)), node="web")
    try:
        readings = {r.indicator.code: r for r in compute_all(web, tmp_path / "sensing" / "live")}
        # a device's page shows its latest value whichever node took it
        assert latest_of(web, DEVICES[0])[0]["value"] is None  # the web process itself took nothing
        shown = latest_of(web, DEVICES[0], web.overlay(tmp_path / "sensing" / "live"))[0]
        assert (shown["code"], shown["value"], int(shown["at"].timestamp() * 1000)) == ("depth_cm", 0.0, NOW)
    finally:
        web.close()
    water = readings["waterlogging_points"]
    pudong = water.districts.index("310115")
    assert int(water.reporting[pudong]) == len(DEVICES)
    assert float(water.values[pudong]) == 0.0

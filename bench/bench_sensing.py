"""城市运行数字体征 ingestion (goals: ≥ 200k readings/s from MQTT gateway batches through checking, storage and
per-minute aggregation; publish → live value p95 < 2 s), on the Mosquitto broker of this machine.

A publisher process sends gateway batches (one per district and device type per minute, as the simulator
makes them for a synthetic fleet) to ``<root>/{district}/readings/{type}``; this process subscribes with
``shgov.sensing.mqtt.Subscriber`` and ingests with ``shgov.sensing.pipeline.Pipeline`` (every batch checked,
written to the write-ahead log and fsync-ed before its PUBACK; Parquet + minute aggregates every 5 s). The
publisher keeps at most a window of batches unacknowledged by the ingester (Mosquitto queues 1,000 messages
per client by default), so the figure is the ingester's sustained rate.

1. Throughput, binary batches and JSON batches: readings/s from the first message to the last one stored
   in Parquet (the final flush included), peak memory of this process.
2. Latency at the rate of 10 million devices reporting once a minute (167k readings/s): from the reading's
   timestamp (the moment it was published) to the pipeline's live values including it, p50 / p95.
3. The comparison: the same readings written by PostgreSQL ``COPY`` into a table indexed on (device, ts),
   on this machine's PostgreSQL — readings/s and the ratio.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import resource
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from tests.conftest import make_settings

from shgov.sensing import service
from shgov.sensing.mqtt import Subscriber
from shgov.sensing.pipeline import Pipeline, Registry
from shgov.sensing.readings import Batch
from shgov.sensing.simulator import TYPE_MIX, Fleet, Simulator, to_binary, to_json

DEVICES = int(os.environ.get("SHGOV_BENCH_DEVICES", "1000000"))
MINUTES = int(os.environ.get("SHGOV_BENCH_MINUTES", "6"))
BROKER = ("127.0.0.1", 1883)
DISTRICTS = ["3101" + f"{n:02d}" for n in (1, 4, 5, 6, 7, 9, 10, 12, 13, 14, 15, 16, 17, 18, 20, 51)]
WINDOW = 400  # batches in flight between publisher and ingester


def _fleet() -> tuple[Fleet, dict[str, list[dict[str, Any]]]]:
    measures = {t["code"]: t["measures"] for t in service.packaged_types()}
    return Fleet.synthetic(DEVICES, DISTRICTS, TYPE_MIX), measures


def _registry(fleet: Fleet, measures: dict[str, list[dict[str, Any]]]) -> Registry:
    frame = pl.DataFrame(
        {
            "id": fleet.ids.astype(str),
            "type_code": fleet.types.astype(str),
            "tenant_code": fleet.districts.astype(str),
            "township_code": [None] * len(fleet.ids),
            "grid_code": [None] * len(fleet.ids),
            "department_code": np.char.add(fleet.districts.astype(str), ".zj"),
            "status": ["active"] * len(fleet.ids),
        },
        schema_overrides={"township_code": pl.Utf8, "grid_code": pl.Utf8},
    )
    return Registry.build(list(measures.items()), frame)


def _gateway_batches(minutes: int) -> Iterator[tuple[str, str, Batch]]:
    """The fleet's gateway batches, minute by minute, over the last ``minutes``."""
    fleet, measures = _fleet()
    simulator = Simulator(fleet, measures, fault_rate=0.0)
    start = int(time.time() * 1000) // 60_000 * 60_000 - minutes * 60_000
    for m in range(minutes):
        yield from simulator.tick(start + m * 60_000)


def _publish(root: str, form: str, minutes: int, rate: float, done: Any, published: Any, stamp_now: bool) -> None:
    """The gateways (a separate process): pre-encode the batches, then publish them with flow control."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    batches = [(f"{root}/{district}/readings/{kind}", batch) for district, kind, batch in _gateway_batches(minutes)]
    encode = to_binary if form == "binary" else to_json
    # the throughput runs encode beforehand; the latency run stamps each batch as it goes out
    encoded = [b"" if stamp_now else encode(batch) for _topic, batch in batches]
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-gw-{uuid.uuid4().hex[:6]}", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.connect(*BROKER)
    client.loop_start()
    began = time.perf_counter()
    for sent, ((topic, batch), payload) in enumerate(zip(batches, encoded, strict=True)):
        if stamp_now:  # each reading stamped with the moment it is published
            batch.ts_ms[:] = int(time.time() * 1000)
            payload = to_binary(batch)
        while sent - done.value >= WINDOW:
            time.sleep(0.001)
        client.publish(topic, payload, qos=1)
        published.value += len(batch)
        if rate:
            due = published.value / rate - (time.perf_counter() - began)
            if due > 0:
                time.sleep(due)
    client.loop_stop()
    client.disconnect()


class _Counting(Subscriber):
    """The subscriber, counting the batches it has acknowledged (for the publisher's flow control)."""

    done: Any = None

    def _message(self, client: Any, userdata: object, message: Any) -> None:
        super()._message(client, userdata, message)
        self.done.value += 1


def _run(form: str, minutes: int, rate: float = 0.0, stamp_now: bool = False) -> dict[str, float]:
    fleet, measures = _fleet()
    registry = _registry(fleet, measures)
    expected = sum(len(measures[str(t)]) for t in fleet.types) * minutes
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp), sensing={"flush_seconds": 5.0, "max_age_hours": 24})
        pipeline = Pipeline(settings, lambda: registry, node="bench")
        root = f"shgovbench{uuid.uuid4().hex[:8]}"
        subscriber = _Counting(pipeline, "mqtt://127.0.0.1:1883", root=root, client_id=f"bench-{root}")
        ctx = mp.get_context("spawn")
        done, published = ctx.Value("q", 0), ctx.Value("q", 0)
        subscriber.done = done
        subscriber.start()
        subscriber.subscribed.wait(10)
        pipeline.start()
        publisher = ctx.Process(target=_publish, args=(root, form, minutes, rate, done, published, stamp_now))
        publisher.start()
        while pipeline.stats.batches == 0 and publisher.is_alive():
            time.sleep(0.005)
        began = time.perf_counter()
        while pipeline.stats.accepted + sum(pipeline.stats.refused.values()) < expected and publisher.exitcode in (
            None,
            0,
        ):
            time.sleep(0.01)
        subscriber.stop()
        pipeline.close()
        seconds = time.perf_counter() - began
        publisher.join()
        lags = np.sort(np.asarray(pipeline.stats.lag_ms))
        return {
            "readings": float(pipeline.stats.accepted),
            "refused": float(sum(pipeline.stats.refused.values())),
            "stored": float(pipeline.stats.flushed_rows),
            "seconds": seconds,
            "rate": pipeline.stats.flushed_rows / seconds,
            "p50": float(lags[len(lags) // 2]) if len(lags) else float("nan"),
            "p95": float(lags[int(len(lags) * 0.95)]) if len(lags) else float("nan"),
        }


def _postgres_copy(minutes: int) -> float | None:
    """Readings/s of PostgreSQL COPY into an indexed table, for the same readings (None: no PostgreSQL)."""
    import psycopg

    from bench.servers import POSTGRES_URL

    try:
        conn = psycopg.connect(POSTGRES_URL.replace("postgresql+psycopg", "postgresql"), autocommit=True)
    except psycopg.Error as exc:
        print(f"   PostgreSQL not reachable ({exc.__class__.__name__}): COPY comparison skipped")
        return None
    buffers = []
    for _district, _type, batch in _gateway_batches(minutes):
        frame = pl.DataFrame(
            {
                "device_id": batch.device_ids().astype(str),
                "ts": batch.ts_ms,
                "measure": batch.measure_codes().astype(str),
                "value": batch.values,
            }
        ).with_columns(pl.from_epoch("ts", time_unit="ms").dt.replace_time_zone("UTC"))
        out = io.BytesIO()
        frame.write_csv(out, include_header=False)
        buffers.append(out.getvalue())
    table = f"bench_readings_{uuid.uuid4().hex[:8]}"
    rows = 0
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (device_id text, ts timestamptz, measure text, value float8)")
            cur.execute(f"CREATE INDEX ON {table} (device_id, ts)")
            began = time.perf_counter()
            for data in buffers:
                with cur.copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy:
                    copy.write(data)
                rows += data.count(b"\n")
            seconds = time.perf_counter() - began
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.close()
    return rows / seconds


def _device_import(count: int) -> None:
    """Bulk import of ``count`` devices into a fresh SQLite database: checked, placed, written."""
    from shgov import migrations
    from shgov.core.db import Database, make_engine
    from shgov.core.regions.service import RegionIndex, load_builtin_divisions

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        with engine.begin() as conn:
            migrations.upgrade(conn)
        db = Database(engine)
        with db.session() as session:
            load_builtin_divisions(session)
            service.load_types(session, service.packaged_types())
        with db.session() as session:
            index = RegionIndex.from_session(session)
            rng = np.random.default_rng(3)
            parts = []
            for district in sorted(index.boundaries):
                lng, lat = index.random_points(district, count // len(index.boundaries), rng)
                ids = [f"B-{district}-{i:07d}" for i in range(len(lng))]
                parts.append(
                    pl.DataFrame(
                        {"device_id": ids, "type": "noise", "department": f"{district}.sthj", "lng": lng, "lat": lat}
                    )
                )
            frame = pl.concat(parts).sample(fraction=1.0, shuffle=True, seed=1).with_columns(pl.all().cast(pl.Utf8))
            began = time.perf_counter()
            result = service.import_devices(session, index, frame)
        seconds = time.perf_counter() - began  # the commit included
        engine.dispose()
    print(
        f"   device import (SQLite, checked, placed, written): {result.created:,} devices in {seconds:.1f} s = "
        f"{result.created / seconds:,.0f} devices/s"
    )


def main() -> None:
    """Run the measurements and print their figures."""
    _device_import(int(os.environ.get("SHGOV_BENCH_IMPORT", "1000000")))
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError:
        print(f"   no MQTT broker at {BROKER[0]}:{BROKER[1]}: sensing ingestion not measured")
        return
    print(f"   fleet: {DEVICES:,} synthetic devices, {len(DISTRICTS)} districts, {len(TYPE_MIX)} types")
    binary = _run("binary", MINUTES)
    print(
        f"   binary batches: {binary['stored']:,.0f} readings stored in {binary['seconds']:.1f} s = "
        f"{binary['rate']:,.0f} readings/s (goal 200,000)"
    )
    json_run = _run("json", max(2, MINUTES // 3))
    print(
        f"   JSON batches:   {json_run['stored']:,.0f} readings stored in {json_run['seconds']:.1f} s = "
        f"{json_run['rate']:,.0f} readings/s"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"   peak memory of the ingesting process: {peak:,.0f} MiB")
    paced = _run("binary", 2, rate=167_000, stamp_now=True)
    print(
        f"   latency at 167k readings/s (10M devices once a minute): publish → live value "
        f"p50 {paced['p50']:,.0f} ms, p95 {paced['p95']:,.0f} ms (goal p95 < 2,000 ms)"
    )
    copy_rate = _postgres_copy(max(2, MINUTES // 3))
    if copy_rate:
        print(
            f"   PostgreSQL COPY into a table indexed on (device_id, ts): {copy_rate:,.0f} readings/s — "
            f"SH-GOV binary ingestion is {binary['rate'] / copy_rate:.1f}× that"
        )


if __name__ == "__main__":
    main()

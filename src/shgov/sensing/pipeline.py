"""The ingestion pipeline of the sensing network: check gateway batches, make them durable, keep the live
state, and move them to time-partitioned Parquet.

One ``Pipeline`` per ingest process ("node"). For each batch, with array operations over the whole batch:

1. **check** every reading against a snapshot of the device registry (``Registry``): unknown device, device
   not active, device outside the sender's topic or districts, measure not of the device's type, value not a
   number or out of the type's range, timestamp in the future or too old, duplicate (the same device, measure
   and timestamp within the batch or among the last ``dedupe_window`` accepted for that device and measure);
2. **log** the accepted readings (enriched with type, district, township, grid) and the refused ones (with
   their reason) to the node's write-ahead log, and ``fsync`` before the sender is acknowledged — a
   ``kill -9`` after the acknowledgement loses nothing;
3. **remember** each device's latest value (late and out-of-order readings are stored but never replace a
   newer value), from which the live indicators are computed.

Every ``flush_seconds`` the log segment is closed and turned into Parquet in the lake: ``sensor_readings``
(by UTC day of the reading, so a late reading lands in its own day), ``sensor_minutes`` (partial
aggregates per minute × type × measure × district × township × grid: count, sum, min, max, sum of squares —
mergeable, so a late reading simply adds a partial to its minute) and ``sensor_rejects`` (by day received).
A segment's Parquet files are named after it: converting it again after a crash rewrites the same files, so
recovery never doubles a reading. ``compact`` merges a node's small files (and drops exact repeats).
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from shgov.core.analytics import Analytics
from shgov.core.settings import Settings
from shgov.sensing.readings import Batch

log = logging.getLogger("shgov.sensing")

# Why a reading was refused; the position is the code kept in arrays.
REASONS = (
    "",
    "unreadable reading",
    "unknown device",
    "device not active",
    "device not of this topic's district or type",
    "device outside the sender's districts or departments",
    "measure not reported by this device type",
    "value is not a number",
    "value outside the device type's range",
    "timestamp in the future",
    "timestamp too old",
    "duplicate reading",
)
UNREADABLE, UNKNOWN, INACTIVE, TOPIC, SCOPE, MEASURE, NAN, RANGE, FUTURE, OLD, DUPLICATE = range(1, 12)

EW_ALPHA = 0.05  # weight of a new value in a device's habit (about the last 40 readings)
ANOMALY_Z = 6.0  # deviations from the habit that make a value an anomaly
ANOMALY_WARMUP = 30  # readings before a device's habit is trusted

READINGS = "sensor_readings"
MINUTES = "sensor_minutes"
REJECTS = "sensor_rejects"

_TEXT = pa.dictionary(pa.int32(), pa.string())
ACCEPTED_SCHEMA = pa.schema(
    [
        ("device_id", _TEXT),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("measure", _TEXT),
        ("value", pa.float64()),
        ("type", _TEXT),
        ("district", _TEXT),
        ("township", _TEXT),
        ("grid", _TEXT),
    ]
)
REJECTED_SCHEMA = pa.schema(
    [
        ("received", pa.timestamp("ms", tz="UTC")),
        ("source", pa.string()),
        ("device_id", pa.string()),
        ("ts", pa.int64()),
        ("measure", pa.string()),
        ("value", pa.float64()),
        ("raw", pa.string()),
        ("reason", pa.string()),
    ]
)


# -- the registry snapshot ------------------------------------------------------------------------------


@dataclass
class Registry:
    """The device registry as arrays: each device by position, each text as an index into a table."""

    index: dict[str, int]
    ids: list[str]
    type_idx: np.ndarray  # int32 → types
    district_idx: np.ndarray  # int32 → districts
    township_idx: np.ndarray  # int32 → townships (-1: none)
    grid_idx: np.ndarray  # int32 → grids (-1: none)
    department_idx: np.ndarray  # int32 → departments
    active: np.ndarray  # bool
    types: list[str]
    districts: list[str]
    townships: list[str]
    grids: list[str]
    departments: list[str]
    measure_codes: list[str]  # every measure code of every type
    position: np.ndarray  # [type, measure code] → the measure's position in its type, -1: not its measure
    low: np.ndarray  # [type, measure code] valid range
    high: np.ndarray
    slot_start: np.ndarray  # int64: the device's first state slot (one slot per measure of its type)
    slots: int
    type_measures: dict[str, list[dict[str, Any]]]  # each type's measures, in order

    def __post_init__(self) -> None:
        # the text tables as object arrays once: batches pick their codes out of them by index
        self.tables = {
            name: np.asarray(getattr(self, name), dtype=object)
            for name in ("ids", "types", "districts", "townships", "grids", "departments", "measure_codes")
        }
        self.measure_index = {m: i for i, m in enumerate(self.measure_codes)}

    def positions(self, ids: list[str]) -> np.ndarray:
        """The position of each device id (-1: not registered)."""
        return np.fromiter((self.index.get(d, -1) for d in ids), dtype=np.int64, count=len(ids))

    def measure_positions(self, codes: list[str]) -> np.ndarray:
        """The index of each measure code among all types' measures (-1: no type measures it)."""
        return np.fromiter((self.measure_index.get(m, -1) for m in codes), dtype=np.int64, count=len(codes))

    @classmethod
    def build(cls, types: list[tuple[str, list[dict[str, Any]]]], devices: pl.DataFrame) -> Registry:
        """From the device types ``[(code, measures)]`` and a frame of devices (id, type_code, tenant_code,
        township_code, grid_code, department_code, status)."""
        type_codes = [code for code, _m in types]
        measure_codes = sorted({str(m["code"]) for _c, measures in types for m in measures})
        m_index = {m: i for i, m in enumerate(measure_codes)}
        shape = (max(len(types), 1), max(len(measure_codes), 1))
        position = np.full(shape, -1, dtype=np.int32)
        low, high = np.full(shape, np.nan), np.full(shape, np.nan)
        widths = np.zeros(shape[0], dtype=np.int64)
        for t, (_code, measures) in enumerate(types):
            widths[t] = len(measures)
            for p, measure in enumerate(measures):
                m = m_index[str(measure["code"])]
                position[t, m], low[t, m], high[t, m] = p, float(measure["min"]), float(measure["max"])
        frame = devices.filter(pl.col("type_code").is_in(type_codes))

        def coded(column: str) -> tuple[np.ndarray, list[str]]:
            values = frame[column].cast(pl.Utf8)
            table = sorted(v for v in values.unique().to_list() if v is not None)
            lookup = {v: i for i, v in enumerate(table)}
            codes = values.replace_strict(lookup, default=-1, return_dtype=pl.Int32).to_numpy()
            return codes.astype(np.int32), table

        ids = frame["id"].to_list()
        type_lookup = {c: i for i, c in enumerate(type_codes)}
        type_idx = frame["type_code"].replace_strict(type_lookup, return_dtype=pl.Int32).to_numpy().astype(np.int32)
        district_idx, districts = coded("tenant_code")
        township_idx, townships = coded("township_code")
        grid_idx, grids = coded("grid_code")
        department_idx, departments = coded("department_code")
        width = widths[type_idx] if len(ids) else np.zeros(0, dtype=np.int64)
        slot_start = np.concatenate([[0], np.cumsum(width)[:-1]]).astype(np.int64) if len(ids) else width
        return cls(
            index={d: i for i, d in enumerate(ids)},
            ids=ids,
            type_idx=type_idx,
            district_idx=district_idx,
            township_idx=township_idx,
            grid_idx=grid_idx,
            department_idx=department_idx,
            active=(frame["status"] == "active").to_numpy(),
            types=type_codes,
            districts=districts,
            townships=townships,
            grids=grids,
            departments=departments,
            measure_codes=measure_codes,
            position=position,
            low=low,
            high=high,
            slot_start=slot_start,
            slots=int(width.sum()),
            type_measures={code: list(measures) for code, measures in types},
        )

    def slot_of(self, slot: int) -> tuple[int, str]:
        """(device position, measure code) of a state slot."""
        device = int(np.searchsorted(self.slot_start, slot, side="right") - 1)
        position = slot - int(self.slot_start[device])
        measures = self.type_measures[self.types[int(self.type_idx[device])]]
        return device, str(measures[position]["code"])

    def spans(self) -> dict[tuple[str, str], float]:
        """The width of the valid range of each (type, measure) that is a quantity (not a 0/1 state)."""
        return {
            (type_code, str(m["code"])): float(m["max"]) - float(m["min"])
            for type_code, measures in self.type_measures.items()
            for m in measures
            if not m.get("state")
        }

    def slot_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """(device position, measure position) of every state slot."""
        width = np.diff(np.append(self.slot_start, self.slots))
        device = np.repeat(np.arange(len(self.ids)), width)
        return device, np.arange(self.slots) - self.slot_start[device]


# -- the write-ahead log --------------------------------------------------------------------------------

_FRAME = struct.Struct("<4scII")  # magic, kind (A accepted / R refused), payload length, crc32
_WAL_MAGIC = b"SWAL"


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def read_segment(path: Path) -> Iterator[tuple[bytes, pa.Table]]:
    """The records of a log segment, in order; stops at a torn last record (a crash before its ack)."""
    data = path.read_bytes()
    offset = 0
    while offset + _FRAME.size <= len(data):
        magic, kind, length, crc = _FRAME.unpack_from(data, offset)
        payload = data[offset + _FRAME.size : offset + _FRAME.size + length]
        if magic != _WAL_MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
            log.warning("log segment %s: torn record at byte %d ignored (it was never acknowledged)", path, offset)
            return
        yield kind, pa.ipc.open_stream(payload).read_all()
        offset += _FRAME.size + length


# -- results and statistics -----------------------------------------------------------------------------


@dataclass
class IngestResult:
    """What became of a batch: how many readings were accepted and refused, and why."""

    accepted: int
    refused: int
    reasons: dict[str, int]
    examples: list[dict[str, Any]] = field(default_factory=list)  # the first refused readings


@dataclass
class Stats:
    """Counters of a pipeline since it started."""

    batches: int = 0
    accepted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    late: int = 0  # accepted but older than the device's latest value (stored, not the live value)
    repeats_removed: int = 0  # exact repeats found when merging files
    flushed_segments: int = 0
    flushed_rows: int = 0
    lag_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))  # ingest done − newest ts


Allowed = Callable[[str, str], bool]


class NodeBusyError(RuntimeError):
    """Another process owns the ingest node (holds its write-ahead log's lock)."""


@dataclass
class SlotState:
    """What a pipeline remembers of each device measure (a "slot" of the registry): the timestamps last
    accepted (the duplicate window), the latest value, and its habit (EWMA mean and variance): a value far
    from a device's own habit is an anomaly even inside the valid range (a stuck or drifting sensor, a sudden
    real change)."""

    seen: np.ndarray  # [slot, window] int64
    seen_next: np.ndarray
    last_ts: np.ndarray
    last_value: np.ndarray
    ew_mean: np.ndarray
    ew_var: np.ndarray
    ew_n: np.ndarray

    @classmethod
    def empty(cls, slots: int, window: int) -> SlotState:
        """A state of ``slots`` slots that remembers nothing yet."""
        never = np.iinfo(np.int64).min
        return cls(
            seen=np.full((slots, window), never, dtype=np.int64),
            seen_next=np.zeros(slots, dtype=np.int64),
            last_ts=np.full(slots, never, dtype=np.int64),
            last_value=np.full(slots, np.nan),
            ew_mean=np.zeros(slots),
            ew_var=np.zeros(slots),
            ew_n=np.zeros(slots, dtype=np.int64),  # readings seen: 2³¹ is 7 years of one slot at 10 Hz
        )

    def carry(self, into: SlotState, source: np.ndarray, target: np.ndarray) -> None:
        """Copy the ``source`` slots of this state to the ``target`` slots of another (a re-read registry)."""
        for item in fields(self):
            getattr(into, item.name)[target] = getattr(self, item.name)[source]


class Pipeline:
    """Checks, logs and stores readings for one ingest node (see the module's documentation)."""

    def __init__(self, settings: Settings, load_registry: Callable[[], Registry], *, node: str | None = None) -> None:
        self.settings = settings
        self.node = node or settings.sensing.node
        self.load_registry = load_registry
        self.lake = settings.lake_dir
        self.analytics = Analytics(settings.lake_dir, settings.analytics)
        self.wal_dir = settings.data_dir / "sensing" / "wal" / self.node
        self.wal_dir.mkdir(parents=True, exist_ok=True)
        self._owner = (self.wal_dir / "LOCK").open("a")
        try:
            fcntl.flock(self._owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._owner.close()
            raise NodeBusyError(f"another ingest process owns node {self.node!r} ({self.wal_dir})") from exc
        self.stats = Stats()
        self._lock = threading.RLock()
        self._flushing = threading.Lock()  # one conversion of the closed segments at a time
        self._segment: IO[bytes] | None = None
        self._segment_path: Path | None = None
        self.registry = load_registry()
        self._registry_at = time.monotonic()
        self.state = SlotState.empty(self.registry.slots, settings.sensing.dedupe_window)
        self.anomalies: deque[tuple[int, int, float, float]] = deque(maxlen=10_000)  # device, slot-measure, ts, z
        self.version = 0  # bumped whenever the live state changes
        self.recover()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    # -- registry ----------------------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the registry, keeping the live state of the devices that remain (with the same type)."""
        fresh = self.load_registry()
        with self._lock:
            old = self.registry
            state = SlotState.empty(fresh.slots, self.state.seen.shape[1])
            if old.slots and fresh.slots:
                device, pos = old.slot_ids()
                moved = fresh.positions(old.ids)
                same_type = np.zeros(len(old.ids), dtype=bool)
                kept = moved >= 0
                same_type[kept] = (
                    np.asarray(fresh.types)[fresh.type_idx[moved[kept]]] == np.asarray(old.types)[old.type_idx[kept]]
                )
                carry = same_type[device]
                self.state.carry(state, np.flatnonzero(carry), fresh.slot_start[moved[device[carry]]] + pos[carry])
            self.registry, self.state = fresh, state
            self.anomalies.clear()  # their slots belong to the old registry
            self._registry_at = time.monotonic()
            self.version += 1

    def registry_stale(self) -> None:
        """Re-read the registry before the next batch (devices were imported)."""
        self._registry_at = 0.0

    def _fresh_registry(self) -> None:
        if time.monotonic() - self._registry_at > self.settings.sensing.registry_seconds:
            self.reload()

    # -- checking ----------------------------------------------------------------------------------------

    def ingest(
        self,
        batch: Batch,
        source: str,
        *,
        district: str | None = None,
        type_code: str | None = None,
        allowed: Allowed | None = None,
        max_age_ms: int | None = -1,
        now_ms: int | None = None,
    ) -> IngestResult:
        """Check a batch, log it durably (accepted and refused readings alike), update the live state.

        ``district``/``type_code``: the MQTT topic's (a device of another district or type is refused);
        ``allowed(district, department)``: the HTTP sender's scope; ``max_age_ms``: -1 the setting, None any
        age (replays of recorded series). Returns only after the log is on disk."""
        self._fresh_registry()
        now = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            reg = self.registry
            n = len(batch)
            reason = np.zeros(n, dtype=np.int8)
            device = reg.positions(batch.devices)[batch.device_refs] if n else np.zeros(0, dtype=np.int64)
            reason[device < 0] = UNKNOWN
            dev = np.where(device >= 0, device, 0)
            has = len(reg.ids) > 0
            if has:
                _mark(reason, ~reg.active[dev], INACTIVE)
                if district is not None or type_code is not None:
                    outside = np.zeros(n, dtype=bool)
                    if district is not None:
                        d = reg.districts.index(district) if district in reg.districts else -2
                        outside |= reg.district_idx[dev] != d
                    if type_code is not None:
                        t = reg.types.index(type_code) if type_code in reg.types else -2
                        outside |= reg.type_idx[dev] != t
                    _mark(reason, outside, TOPIC)
                if allowed is not None:
                    _mark(reason, ~self._in_scope(dev, reason, allowed), SCOPE)
            measure = reg.measure_positions(batch.measures)[batch.measure_refs] if n else np.zeros(0, dtype=np.int64)
            type_of = reg.type_idx[dev] if has else np.zeros(n, dtype=np.int32)
            m = np.where(measure >= 0, measure, 0)
            pos = reg.position[type_of, m] if n else np.zeros(0, dtype=np.int32)
            _mark(reason, (measure < 0) | (pos < 0), MEASURE)
            values = batch.values
            _mark(reason, ~np.isfinite(values), NAN)
            with np.errstate(invalid="ignore"):
                _mark(reason, (values < reg.low[type_of, m]) | (values > reg.high[type_of, m]), RANGE)
            ts = batch.ts_ms
            _mark(reason, ts > now + self.settings.sensing.max_future_seconds * 1000, FUTURE)
            age = int(self.settings.sensing.max_age_hours * 3_600_000) if max_age_ms == -1 else max_age_ms
            if age is not None:
                _mark(reason, ts < now - age, OLD)
            slot = np.where(reason == 0, reg.slot_start[dev] + pos, -1) if has else np.full(n, -1)
            self._mark_duplicates(reason, slot, ts)
            ok = reason == 0
            accepted = self._accepted_table(dev[ok], m[ok], ts[ok], values[ok])
            refused = self._refused_table(batch, reason, source, now)
            self._log(accepted, refused)
            late = self._remember(slot[ok], ts[ok], values[ok])
            self.stats.batches += 1
            self.stats.accepted += int(ok.sum())
            self.stats.late += late
            codes_seen, how_many = np.unique(reason[~ok], return_counts=True)
            counts = Counter({REASONS[int(r)]: int(c) for r, c in zip(codes_seen, how_many, strict=True)})
            if batch.unreadable:
                counts[REASONS[UNREADABLE]] += len(batch.unreadable)
            self.stats.refused.update(counts)
            if ok.any():
                self.stats.lag_ms.append(time.time() * 1000 - float(ts[ok].max()))
                self.version += 1
        examples = refused.slice(0, 20).select(["device_id", "ts", "measure", "value", "raw", "reason"]).to_pylist()
        return IngestResult(int(ok.sum()), int((~ok).sum()) + len(batch.unreadable), dict(counts), examples)

    def _in_scope(self, dev: np.ndarray, reason: np.ndarray, allowed: Allowed) -> np.ndarray:
        reg = self.registry
        width = len(reg.departments) + 1
        pair = reg.district_idx[dev].astype(np.int64) * width + reg.department_idx[dev]
        verdict = {
            int(p): allowed(reg.districts[int(p) // width], reg.departments[int(p) % width])
            for p in np.unique(pair[reason == 0])
        }
        return np.fromiter((verdict.get(int(p), True) for p in pair), dtype=bool, count=len(pair))

    def _mark_duplicates(self, reason: np.ndarray, slot: np.ndarray, ts: np.ndarray) -> None:
        candidates = np.flatnonzero(slot >= 0)
        if not len(candidates):
            return
        order = candidates[np.lexsort((ts[candidates], slot[candidates]))]
        repeat = (slot[order][1:] == slot[order][:-1]) & (ts[order][1:] == ts[order][:-1])
        reason[order[1:][repeat]] = DUPLICATE
        live = candidates[reason[candidates] == 0]
        seen_before = (self.state.seen[slot[live]] == ts[live][:, None]).any(axis=1)
        reason[live[seen_before]] = DUPLICATE

    def _remember(self, slot: np.ndarray, ts: np.ndarray, values: np.ndarray) -> int:
        """Record accepted readings in the duplicate window and the latest values; returns how many were
        older than the device's latest value (late or out of order)."""
        if not len(slot):
            return 0
        order = np.lexsort((ts, slot))
        slot, ts, values = slot[order], ts[order], values[order]
        first = np.r_[True, slot[1:] != slot[:-1]]
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(slot)), 0))
        rank = np.arange(len(slot)) - group_start
        window = self.state.seen.shape[1]
        self.state.seen[slot, (self.state.seen_next[slot] + rank) % window] = ts
        np.add.at(self.state.seen_next, slot, 1)
        late = int((ts < self.state.last_ts[slot]).sum())
        last = np.r_[slot[1:] != slot[:-1], True]
        newest_slot, newest_ts, newest_value = slot[last], ts[last], values[last]
        newer = newest_ts >= self.state.last_ts[newest_slot]
        self.state.last_ts[newest_slot[newer]] = newest_ts[newer]
        self.state.last_value[newest_slot[newer]] = newest_value[newer]
        self._habit(newest_slot[newer], newest_ts[newer], newest_value[newer])
        return late

    def _habit(self, slot: np.ndarray, ts: np.ndarray, value: np.ndarray) -> None:
        """Update each slot's EWMA mean and variance; note values more than ``ANOMALY_Z`` deviations away."""
        if not len(slot):
            return
        mean, var, n = self.state.ew_mean[slot], self.state.ew_var[slot], self.state.ew_n[slot]
        deviation = value - mean
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(var > 1e-9, deviation / np.sqrt(var), 0.0)
        odd = (n >= ANOMALY_WARMUP) & (np.abs(z) >= ANOMALY_Z)
        for s_, t_, v_, z_ in zip(slot[odd], ts[odd], value[odd], z[odd], strict=True):
            self.anomalies.append((int(s_), int(t_), float(v_), float(z_)))
        first = n == 0
        self.state.ew_mean[slot] = np.where(first, value, mean + EW_ALPHA * deviation)
        self.state.ew_var[slot] = np.where(first, 0.0, (1 - EW_ALPHA) * (var + EW_ALPHA * deviation**2))
        self.state.ew_n[slot] = n + 1

    # -- tables ------------------------------------------------------------------------------------------

    def _accepted_table(self, dev: np.ndarray, measure: np.ndarray, ts: np.ndarray, values: np.ndarray) -> pa.Table:
        if not len(dev):
            return ACCEPTED_SCHEMA.empty_table()
        reg = self.registry
        return pa.table(
            {
                "device_id": _dictionary(reg.tables["ids"], dev),
                "ts": pa.array(ts, pa.timestamp("ms", tz="UTC")),
                "measure": _dictionary(reg.tables["measure_codes"], measure),
                "value": pa.array(values, pa.float64()),
                "type": _dictionary(reg.tables["types"], reg.type_idx[dev]),
                "district": _dictionary(reg.tables["districts"], reg.district_idx[dev]),
                "township": _dictionary(reg.tables["townships"], reg.township_idx[dev]),
                "grid": _dictionary(reg.tables["grids"], reg.grid_idx[dev]),
            },
            schema=ACCEPTED_SCHEMA,
        )

    def _refused_table(self, batch: Batch, reason: np.ndarray, source: str, now: int) -> pa.Table:
        bad = np.flatnonzero(reason != 0)
        unreadable = batch.unreadable
        blank = [None] * len(unreadable)
        return _rejects(
            now,
            source,
            device_id=list(batch.device_ids()[bad]) + blank,
            ts=list(batch.ts_ms[bad]) + blank,
            measure=list(batch.measure_codes()[bad]) + blank,
            value=list(batch.values[bad]) + blank,
            raw=[None] * len(bad) + [raw for _p, raw, _w in unreadable],
            reason=[REASONS[int(r)] for r in reason[bad]]
            + [f"{REASONS[UNREADABLE]}: {why}" for _p, _r, why in unreadable],
        )

    # -- the log -----------------------------------------------------------------------------------------

    def _log(self, accepted: pa.Table, refused: pa.Table) -> None:
        records = [(b"A", accepted), (b"R", refused)]
        frames = []
        for kind, table in records:
            if table.num_rows:
                payload = _ipc(table)
                frames.append(_FRAME.pack(_WAL_MAGIC, kind, len(payload), zlib.crc32(payload)) + payload)
        if not frames:
            return
        if self._segment is None:
            self._segment_path = self.wal_dir / f"{time.time_ns():020d}.wal"
            self._segment = self._segment_path.open("ab")
        data = b"".join(frames)
        self._segment.write(data)
        self._segment.flush()
        if self.settings.sensing.fsync:
            os.fsync(self._segment.fileno())

    def log_unreadable(self, source: str, payload: bytes, why: str) -> None:
        """Keep a whole message that could not be read (not JSON, not the binary form) in the reject store."""
        table = _rejects(
            int(time.time() * 1000),
            source,
            device_id=[None],
            ts=[None],
            measure=[None],
            value=[None],
            raw=[payload[:2000].decode("utf-8", "replace")],
            reason=[f"unreadable batch: {why}"],
        )
        with self._lock:
            self._log(ACCEPTED_SCHEMA.empty_table(), table)
            self.stats.refused["unreadable batch"] += 1

    # -- flushing to Parquet -----------------------------------------------------------------------------

    def rotate(self) -> Path | None:
        """Close the current log segment (the next batch opens a new one); returns the closed segment."""
        with self._lock:
            if self._segment is None:
                return None
            self._segment.close()
            closed, self._segment, self._segment_path = self._segment_path, None, None
            return closed

    def flush(self) -> int:
        """Close the current segment and turn every closed segment into Parquet; returns readings stored."""
        self.rotate()
        with self._flushing:
            with self._lock:
                current = self._segment_path
            stored = 0
            for path in sorted(self.wal_dir.glob("*.wal")):
                if path != current:
                    stored += self._convert(path)
            return stored

    def _convert(self, path: Path, records: list[tuple[bytes, pa.Table]] | None = None) -> int:
        """Turn a closed segment (its records, when already read) into Parquet, then delete it."""
        accepted: list[pa.Table] = []
        refused: list[pa.Table] = []
        for kind, table in read_segment(path) if records is None else records:
            (accepted if kind == b"A" else refused).append(table)
        name = f"{self.node}-{path.stem}"
        rows = 0
        if accepted:
            table = pa.concat_tables(accepted).unify_dictionaries().combine_chunks()
            rows = table.num_rows
            _write_by_day(self.analytics, READINGS, table, "ts", name)
            _write_by_day(self.analytics, MINUTES, minute_partials(table), "minute", name)
        if refused:
            _write_by_day(self.analytics, REJECTS, pa.concat_tables(refused), "received", name)
        path.unlink()
        self.stats.flushed_segments += 1
        self.stats.flushed_rows += rows
        return rows

    def recover(self) -> int:
        """At start: turn the segments a stopped or killed process left into Parquet, and learn from them
        the duplicate window and latest values (so a broker's redelivery is still recognised)."""
        stored = 0
        for path in sorted(self.wal_dir.glob("*.wal")):
            records = list(read_segment(path))
            for kind, table in records:
                if kind == b"A":
                    self._relearn(table)
            stored += self._convert(path, records)
        if stored:
            log.info("sensing node %s recovered %d readings from its write-ahead log", self.node, stored)
        return stored

    def _relearn(self, table: pa.Table) -> None:
        reg = self.registry
        dev = reg.positions(table.column("device_id").to_pylist())
        measure = reg.measure_positions(table.column("measure").to_pylist())
        known = (dev >= 0) & (measure >= 0)
        dev, measure = dev[known], measure[known]
        pos = reg.position[reg.type_idx[dev], measure]
        fine = pos >= 0
        slot = reg.slot_start[dev[fine]] + pos[fine]
        ts = table.column("ts").cast(pa.int64()).to_numpy()[known][fine]
        values = table.column("value").to_numpy()[known][fine]
        with self._lock:
            self._remember(slot, ts, values)

    # -- compaction ---------------------------------------------------------------------------------------

    def compact(self, group: int = 64) -> int:
        """Merge this node's small files, ``group`` at a time, in each day of the lake (a flush every few
        seconds writes many): readings are merged with exact repeats (same device, measure and timestamp)
        removed, and the minute aggregates recomputed from them. A merged file is named after the range of
        segments it covers; a crash before the small files are deleted is mended on the next run. Returns
        the repeats removed."""
        removed = 0
        with self._flushing:
            for day in sorted((self.lake / READINGS).glob("day=*")):
                _drop_covered(day, self.node)
                _drop_covered(self.lake / MINUTES / day.name, self.node)
                small = sorted(p for p in day.glob(f"{self.node}-*.parquet") if "_" not in p.stem)
                while len(small) >= group:
                    chunk, small = small[:group], small[group:]
                    removed += self._merge(day.name, chunk)
        self.stats.repeats_removed += removed
        return removed

    def _merge(self, day: str, files: list[Path]) -> int:
        first, last = files[0].stem.split("-", 1)[1], files[-1].stem.split("-", 1)[1]
        name = f"{self.node}-{first}_{last}"
        table = pa.concat_tables([pq.read_table(f) for f in files]).unify_dictionaries().combine_chunks()
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)  # noqa: S101 - a table converts to a frame
        unique = frame.unique(subset=["device_id", "measure", "ts"], keep="first", maintain_order=True)
        merged = unique.to_arrow().cast(ACCEPTED_SCHEMA)
        self.analytics.write(READINGS, merged, part=f"{day}/{name}")
        self.analytics.write(MINUTES, minute_partials(merged), part=f"{day}/{name}")
        for f in files:
            f.unlink()
            (self.lake / MINUTES / day / f.name).unlink(missing_ok=True)
        return frame.height - unique.height

    # -- background flushing ------------------------------------------------------------------------------

    def start(self) -> None:
        """Flush every ``flush_seconds`` in a background thread until ``close``."""
        if self._flusher is not None:
            return
        self._flusher = threading.Thread(target=self._run, name=f"sensing-flush-{self.node}", daemon=True)
        self._flusher.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.sensing.flush_seconds):
            try:
                self.flush()
                self.compact()
            except Exception:  # the next round retries: the segment stays until it is converted
                log.exception("sensing flush failed")

    def close(self) -> None:
        """Stop the flusher, store what is logged and give up the node."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
            self._flusher = None
        self.flush()
        fcntl.flock(self._owner, fcntl.LOCK_UN)
        self._owner.close()

    # -- live state ---------------------------------------------------------------------------------------

    def latest(
        self, type_code: str, measure: str, max_age_ms: int | None = None, overlay: Overlay | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(device positions, latest values) of the active devices of a type for a measure, the values no
        older than ``max_age_ms`` (NaN where none); with an ``overlay`` (other nodes' latest values), the
        newer of the two for each device."""
        with self._lock:
            reg = self.registry
            if type_code not in reg.types or measure not in reg.measure_index:
                return np.zeros(0, dtype=np.int64), np.zeros(0)
            t, m = reg.types.index(type_code), reg.measure_index[measure]
            pos = reg.position[t, m]
            if pos < 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0)
            devices = np.flatnonzero((reg.type_idx == t) & reg.active)
            stamps, values = self._newest(reg.slot_start[devices] + pos, overlay)
            if max_age_ms is not None:
                values[stamps < int(time.time() * 1000) - max_age_ms] = np.nan
            return devices, values

    def device_latest(
        self, device_id: str, overlay: Overlay | None = None
    ) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray] | None:
        """(measures, timestamps, values) of a device, in its type's order of measures — the newer of this
        node's and the overlay's; a timestamp of 0 where none came yet. None for a device not registered."""
        with self._lock:
            reg = self.registry
            position = reg.index.get(device_id)
            if position is None:
                return None
            measures = reg.type_measures[reg.types[int(reg.type_idx[position])]]
            start = int(reg.slot_start[position])
            return (measures, *self._newest(np.arange(start, start + len(measures)), overlay))

    def _newest(self, slots: np.ndarray, overlay: Overlay | None) -> tuple[np.ndarray, np.ndarray]:
        """(timestamps, values) of the slots: this node's, or the overlay's where it is newer (under the lock)."""
        values, stamps = self.state.last_value[slots].copy(), self.state.last_ts[slots].copy()
        if overlay is not None and overlay.registry is self.registry:
            theirs = overlay.ts[slots] > stamps
            values[theirs], stamps[theirs] = overlay.value[slots][theirs], overlay.ts[slots][theirs]
        return stamps, values

    # -- the live state shared between nodes ------------------------------------------------------------

    def live_table(self, max_age_ms: int) -> pa.Table:
        """This node's latest value of every device measure reported within ``max_age_ms``: what other
        processes merge to see the whole city (each node sees only the batches that reached it)."""
        with self._lock:
            reg = self.registry
            fresh = np.flatnonzero(self.state.last_ts >= int(time.time() * 1000) - max_age_ms)
            device, position = reg.slot_ids()
            return pa.table(
                {
                    "device_id": _dictionary(reg.tables["ids"], device[fresh]),
                    "position": pa.array(position[fresh].astype(np.int8)),
                    "ts": pa.array(self.state.last_ts[fresh]),
                    "value": pa.array(self.state.last_value[fresh]),
                }
            )

    def write_live(self, folder: Path, max_age_ms: int) -> Path:
        """Write ``live_table`` to ``<folder>/<node>.arrow`` (atomically)."""
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{self.node}.arrow"
        tmp = folder / f"{self.node}.arrow.tmp"
        table = self.live_table(max_age_ms)
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        tmp.replace(target)
        return target

    def overlay(self, folder: Path, max_file_age_s: float = 30.0) -> Overlay | None:
        """The newest value of each device measure among the other nodes' live files (fresh ones only)."""
        files = (
            [
                f
                for f in folder.glob("*.arrow")
                if f.stem != self.node and time.time() - f.stat().st_mtime < max_file_age_s
            ]
            if folder.exists()
            else []
        )
        if not files:
            return None
        reg = self.registry
        ts = np.full(reg.slots, np.iinfo(np.int64).min, dtype=np.int64)
        value = np.full(reg.slots, np.nan)
        for f in files:
            try:
                with pa.memory_map(str(f)) as source:
                    table = pa.ipc.open_file(source).read_all()
            except (OSError, pa.ArrowInvalid):  # a node was writing: the next round reads it
                continue
            dev = reg.positions(table.column("device_id").to_pylist())
            known = dev >= 0
            slot = reg.slot_start[dev[known]] + table.column("position").to_numpy()[known]
            theirs_ts = table.column("ts").to_numpy()[known]
            theirs_value = table.column("value").to_numpy()[known]
            newer = theirs_ts > ts[slot]
            ts[slot[newer]], value[slot[newer]] = theirs_ts[newer], theirs_value[newer]
        return Overlay(reg, ts, value)


@dataclass(frozen=True)
class Overlay:
    """Other nodes' latest values, laid on this node's registry slots."""

    registry: Registry
    ts: np.ndarray
    value: np.ndarray


def _rejects(now: int, source: str, **columns: list[Any]) -> pa.Table:
    """Rows of the reject store, received ``now`` from ``source`` (no rows: an empty table)."""
    rows = len(columns["reason"])
    if not rows:
        return REJECTED_SCHEMA.empty_table()
    received = pa.array(np.full(rows, now, dtype=np.int64)).cast(pa.timestamp("ms", tz="UTC"))
    return pa.table(
        {"received": received, "source": pa.array([source] * rows, pa.string()), **columns}, schema=REJECTED_SCHEMA
    )


def _mark(reason: np.ndarray, where: np.ndarray, code: int) -> None:
    """Give ``code`` to the readings ``where`` holds that have no reason yet (the first reason wins)."""
    reason[where & (reason == 0)] = code


def _dictionary(table: np.ndarray, idx: np.ndarray) -> pa.DictionaryArray:
    """Codes as an Arrow dictionary column: only the codes used are kept (a registry of millions of devices
    must not be copied into every batch); a negative index is a null."""
    used, compact = np.unique(idx, return_inverse=True)
    words = table[used[used >= 0]]
    offset = 1 if len(used) and used[0] < 0 else 0
    indices = pa.array((compact - offset).astype(np.int32), pa.int32(), mask=idx < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(words.tolist(), pa.string()))


def _drop_covered(folder: Path, node: str) -> None:
    """Delete a node's files whose segments a merged file already holds (left by a crash mid-merge)."""
    ranges = []
    for merged in folder.glob(f"{node}-*_*.parquet"):
        first, last = merged.stem.split("-", 1)[1].split("_")
        ranges.append((first, last))
    for path in folder.glob(f"{node}-*.parquet"):
        segment = path.stem.split("-", 1)[1]
        if "_" not in segment and any(first <= segment <= last for first, last in ranges):
            path.unlink()


def _write_by_day(analytics: Analytics, dataset: str, table: pa.Table, column: str, name: str) -> None:
    """Write the rows into ``<lake>/<dataset>/day=YYYY-MM-DD/<name>.parquet`` by the UTC day of ``column``
    (atomically, by the lake's writer: writing the same segment again replaces its files)."""
    day = table.column(column).cast(pa.int64()).to_numpy() // 86_400_000
    for key in np.unique(day):
        folder = f"day={datetime.fromtimestamp(int(key) * 86_400, UTC).date().isoformat()}"
        analytics.write(dataset, table.filter(pa.array(day == key)), part=f"{folder}/{name}")


def minute_partials(table: pa.Table) -> pa.Table:
    """Mergeable per-minute aggregates of readings: count, sum, min, max and sum of squares per minute ×
    type × measure × district × township × grid."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)  # noqa: S101 - a table converts to a frame
    text = [pl.col(c).cast(pl.Utf8) for c in ("type", "measure", "district", "township", "grid")]
    partial = (
        frame.with_columns(pl.col("ts").dt.truncate("1m").alias("minute"), *text)
        .group_by(["minute", "type", "measure", "district", "township", "grid"])
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            pl.col("value").sum().alias("total"),
            pl.col("value").min().alias("low"),
            pl.col("value").max().alias("high"),
            (pl.col("value") ** 2).sum().alias("squares"),
        )
        .sort(["minute", "type", "measure", "district"])
    )
    return partial.to_arrow()

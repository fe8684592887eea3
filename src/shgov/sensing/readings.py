"""Gateway batches of sensor readings: the JSON and the compact binary form, decoded to columns.

A reading is one measured value: ``(device_id, ts, measure, value)``, ``ts`` in milliseconds since the Unix
epoch (UTC). A gateway sends many at once; both forms decode to the same columnar ``Batch`` so that the
pipeline checks and stores them with array operations, never one Python object per reading.

JSON (``application/json``): an array whose items are either compact arrays ``[device_id, ts_ms, measure,
value]`` (the fast form) or objects ``{"device_id", "ts", "measure", "value"}`` / ``{"device_id", "ts",
"values": {measure: value, …}}`` where ``ts`` is epoch milliseconds or an ISO-8601 time with its offset.
A value is a number; ``true``/``false`` are read as 1/0 (alarms, open/closed).

Binary (``application/x-shgov-readings``), little-endian, column by column::

    magic     4 bytes  b"SHR1"
    n_dev     u32      entries in the device table
    n_meas    u32      entries in the measure table
    n         u32      readings
    dev_len   n_dev × u8   length in bytes of each device id (1–160)
    meas_len  n_meas × u8  length in bytes of each measure code
    dev_text  the device ids' UTF-8 bytes, one after the other
    meas_text the measure codes' UTF-8 bytes
    dev_ref   n × u32  index into the device table
    meas_ref n × u8   index into the measure table
    ts       n × i64  epoch milliseconds
    value    n × f64

A reading that cannot be read at all (an item of the wrong shape, a value that is not a number) is not
lost: it becomes a reading with the reason, which the pipeline keeps in its reject store.
"""

from __future__ import annotations

import gc
import struct
import threading
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from shgov.core.errors import InvalidError
from shgov.core.i18n import N_

JSON = "application/json"
BINARY = "application/x-shgov-readings"
MAGIC = b"SHR1"
_HEAD = struct.Struct("<4sIII")
MAX_BATCH = 1_000_000  # readings in one batch: a gateway splits larger ones


@dataclass
class Batch:
    """Readings as columns: each device and measure code once in a table, referenced by index."""

    devices: list[str]
    device_refs: np.ndarray  # int32 index into ``devices``
    measures: list[str]
    measure_refs: np.ndarray  # int32 index into ``measures``
    ts_ms: np.ndarray  # int64
    values: np.ndarray  # float64
    # items that could not be read: (position in the message, what was sent, why)
    unreadable: list[tuple[int, str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    def device_ids(self) -> np.ndarray:
        """The device id of every reading (an object array)."""
        return np.asarray(self.devices, dtype=object)[self.device_refs] if self.devices else np.empty(0, object)

    def measure_codes(self) -> np.ndarray:
        """The measure code of every reading (an object array)."""
        return np.asarray(self.measures, dtype=object)[self.measure_refs] if self.measures else np.empty(0, object)


class _Columns:
    """Builds a batch item by item (the JSON forms)."""

    def __init__(self) -> None:
        self.device_index: dict[str, int] = {}
        self.measure_index: dict[str, int] = {}
        self.device_refs: list[int] = []
        self.measure_refs: list[int] = []
        self.ts: list[int] = []
        self.values: list[float] = []

    def add(self, device: str, ts: int, measure: str, value: float) -> None:
        self.device_refs.append(self.device_index.setdefault(device, len(self.device_index)))
        self.measure_refs.append(self.measure_index.setdefault(measure, len(self.measure_index)))
        self.ts.append(ts)
        self.values.append(value)

    def batch(self, unreadable: list[tuple[int, str, str]]) -> Batch:
        return Batch(
            list(self.device_index),
            np.asarray(self.device_refs, dtype=np.int32),
            list(self.measure_index),
            np.asarray(self.measure_refs, dtype=np.int32),
            np.asarray(self.ts, dtype=np.int64),
            np.asarray(self.values, dtype=np.float64),
            unreadable,
        )


def concat(batches: list[Batch]) -> Batch:
    """Several batches as one (their tables joined, the references shifted)."""
    devices: list[str] = []
    measures: list[str] = []
    device_refs, measure_refs = [], []
    for batch in batches:
        device_refs.append(batch.device_refs + len(devices))
        measure_refs.append(batch.measure_refs + len(measures))
        devices += batch.devices
        measures += batch.measures
    return Batch(
        devices,
        np.concatenate(device_refs).astype(np.int32) if batches else np.zeros(0, np.int32),
        measures,
        np.concatenate(measure_refs).astype(np.int32) if batches else np.zeros(0, np.int32),
        np.concatenate([b.ts_ms for b in batches]) if batches else np.zeros(0, np.int64),
        np.concatenate([b.values for b in batches]) if batches else np.zeros(0),
        [item for b in batches for item in b.unreadable],
    )


def _epoch_ms(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("ts is a time, not true/false")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError("ts needs its UTC offset (…Z or …+08:00)")
        return int(moment.timestamp() * 1000)
    raise ValueError("ts is epoch milliseconds or an ISO-8601 time")


def _number(value: object) -> float:
    if not isinstance(value, int | float):  # a bool is an int: true/false read as 1/0
        raise ValueError("value is not a number")
    return float(value)


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 40:
        raise ValueError(f"{name} is a text of 1 to 40 characters")
    return value


class _CollectorPaused:
    """Pauses the cyclic garbage collector while a batch is parsed (re-entrant across threads).

    A JSON batch becomes hundreds of thousands of short-lived lists at once; each few hundred of them would
    start a collection that walks the process's long-lived objects (in an ingest node, millions), which costs
    more than the parsing itself. The lists hold no cycles: reference counting frees them either way."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._inside += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0 and self._was_enabled:
                gc.enable()


_collector_paused = _CollectorPaused()


def decode_json(payload: bytes) -> Batch:
    """A batch from a JSON array; an item of the wrong shape is kept as unreadable with the reason."""
    with _collector_paused:
        return _decode_json(payload)


def _decode_json(payload: bytes) -> Batch:
    try:
        items = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidError(N_("the batch is not JSON: {reason}"), field="body", reason=str(exc)) from exc
    if not isinstance(items, list):
        raise InvalidError(N_("a batch is a JSON array of readings"), field="body")
    if len(items) > MAX_BATCH:
        raise InvalidError(N_("a batch holds at most {limit} readings"), field="body", limit=MAX_BATCH)
    if items and all(type(item) is list and len(item) == 4 for item in items):
        fast = _decode_compact(items)
        if fast is not None:
            return fast
    columns = _Columns()
    unreadable: list[tuple[int, str, str]] = []
    for position, item in enumerate(items):
        try:
            if isinstance(item, list):
                if len(item) != 4:
                    raise ValueError("a compact reading is [device_id, ts_ms, measure, value]")
                device, ts, measure, value = item
                columns.add(_text(device, "device_id"), _epoch_ms(ts), _text(measure, "measure"), _number(value))
            elif isinstance(item, dict):
                device, ts = _text(item.get("device_id"), "device_id"), _epoch_ms(item.get("ts"))
                values = item.get("values")
                if values is None:
                    values = {_text(item.get("measure"), "measure"): item.get("value")}
                if not isinstance(values, dict) or not values:
                    raise ValueError("values is an object of measure: value")
                checked = [(_text(m, "measure"), _number(v)) for m, v in values.items()]
                for measure, value in checked:
                    columns.add(device, ts, measure, value)
            else:
                raise ValueError("a reading is an array or an object")
        except (ValueError, TypeError) as exc:
            unreadable.append((position, orjson.dumps(item).decode()[:500], str(exc)))
    return columns.batch(unreadable)


def _decode_compact(items: list[list[object]]) -> Batch | None:
    """The fast path for an all-compact batch: each column converted by Arrow in one pass; None when an item
    is malformed (the careful path then names it)."""
    devices, stamps, measures, values = zip(*items, strict=True)
    try:
        columns = [
            pa.array(devices, pa.string()),
            pa.array(stamps, pa.int64()),
            pa.array(measures, pa.string()),
            pa.array(values, pa.float64()),
        ]
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None
    if any(c.null_count for c in columns):
        return None
    device_table, device_refs = _table(columns[0])
    measure_table, measure_refs = _table(columns[2])
    if device_table is None or measure_table is None:
        return None
    return Batch(
        device_table,
        device_refs,
        measure_table,
        measure_refs,
        columns[1].to_numpy().astype(np.int64, copy=False),
        columns[3].to_numpy().astype(np.float64, copy=False),
    )


def from_columns(devices: pa.Array, ts_ms: pa.Array, measures: pa.Array, values: pa.Array) -> Batch:
    """A batch from Arrow columns (a replayed file); a row with a missing or unreadable cell is kept as
    unreadable."""
    missing = np.zeros(len(devices), dtype=bool)
    for column in (devices, ts_ms, measures, values):
        if column.null_count:
            missing |= column.is_null().to_numpy(zero_copy_only=False)
    for column in (devices, measures):
        length = pc.fill_null(pc.utf8_length(column), 0).to_numpy(zero_copy_only=False)
        missing |= (length == 0) | (length > 40)
    unreadable = [
        (
            int(i),
            orjson.dumps([devices[i].as_py(), ts_ms[i].as_py(), measures[i].as_py(), values[i].as_py()]).decode(),
            "a cell is empty or unreadable (device_id, ts, measure, value)",
        )
        for i in np.flatnonzero(missing)
    ]
    if unreadable:
        keep = pa.array(~missing)
        devices, ts_ms, measures, values = (c.filter(keep) for c in (devices, ts_ms, measures, values))
    device_table, device_refs = _table(devices)
    measure_table, measure_refs = _table(measures)
    return Batch(
        device_table or [],
        device_refs,
        measure_table or [],
        measure_refs,
        ts_ms.to_numpy(zero_copy_only=False).astype(np.int64),
        values.to_numpy(zero_copy_only=False).astype(np.float64),
        unreadable,
    )


def _table(codes: pa.Array) -> tuple[list[str] | None, np.ndarray]:
    """(each distinct code once, the index of every item's code); None when a code is empty or too long."""
    encoded = codes.dictionary_encode()
    table: list[str] = encoded.dictionary.to_pylist()
    refs = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    if not all(0 < len(c) <= 40 for c in table):
        return None, refs
    return table, refs


def _text_table(payload: bytes, lengths: np.ndarray, offset: int) -> list[str]:
    """Strings laid end to end, cut by their lengths (checked as UTF-8 by Arrow, without a Python loop)."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = payload[offset : offset + int(offsets[-1])]
    array = pa.StringArray.from_buffers(len(lengths), pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))
    array.validate(full=True)
    table: list[str] = array.to_pylist()
    return table


def decode_binary(payload: bytes) -> Batch:
    """A batch from the binary form (see the module's documentation)."""
    try:
        magic, n_dev, n_meas, n = _HEAD.unpack_from(payload, 0)
        if magic != MAGIC:
            raise InvalidError(N_("not a SH-GOV binary batch (magic SHR1)"), field="body")
        if n > MAX_BATCH or n_dev > MAX_BATCH or n_meas > 255:
            raise InvalidError(
                N_("a batch holds at most {limit} readings and 255 measures"), field="body", limit=MAX_BATCH
            )
        offset = _HEAD.size
        dev_len = np.frombuffer(payload, dtype="u1", count=n_dev, offset=offset)
        meas_len = np.frombuffer(payload, dtype="u1", count=n_meas, offset=offset + n_dev)
        offset += n_dev + n_meas
        devices = _text_table(payload, dev_len, offset)
        offset += int(dev_len.sum())
        measures = _text_table(payload, meas_len, offset)
        offset += int(meas_len.sum())
        expected = offset + n * (4 + 1 + 8 + 8)
        if len(payload) != expected:
            raise InvalidError(
                N_("the binary batch should be {expected} bytes, not {actual}"),
                field="body",
                expected=expected,
                actual=len(payload),
            )
        dev_ref = np.frombuffer(payload, dtype="<u4", count=n, offset=offset).astype(np.int32)
        offset += 4 * n
        meas_ref = np.frombuffer(payload, dtype="u1", count=n, offset=offset).astype(np.int32)
        offset += n
        ts = np.frombuffer(payload, dtype="<i8", count=n, offset=offset).astype(np.int64)
        offset += 8 * n
        values = np.frombuffer(payload, dtype="<f8", count=n, offset=offset).astype(np.float64)
    except (struct.error, ValueError, pa.ArrowException) as exc:
        raise InvalidError(N_("unreadable binary batch: {reason}"), field="body", reason=str(exc)) from exc
    if any(not 0 < len(code) <= 40 for code in (*devices, *measures)):
        raise InvalidError(N_("device ids and measure codes are 1 to 40 characters"), field="body")
    # a reference of 2³¹ or more has turned negative in int32, and would index the table from its end
    if n and ((dev_ref < 0).any() or (dev_ref >= n_dev).any() or (meas_ref >= n_meas).any()):
        raise InvalidError(N_("a reading refers past the device or measure table"), field="body")
    return Batch(devices, dev_ref, measures, meas_ref, ts, values)


def encode_binary(
    devices: list[str],
    measures: list[str],
    dev_ref: np.ndarray,
    meas_ref: np.ndarray,
    ts_ms: np.ndarray,
    values: np.ndarray,
) -> bytes:
    """The binary form of readings (what a gateway sends; used by the simulator and the benchmarks)."""
    texts = [[code.encode("utf-8") for code in table] for table in (devices, measures)]
    parts = [_HEAD.pack(MAGIC, len(devices), len(measures), len(ts_ms))]
    parts += [bytes(len(raw) for raw in table) for table in texts]
    parts += [b"".join(table) for table in texts]
    parts.append(np.asarray(dev_ref, dtype="<u4").tobytes())
    parts.append(np.asarray(meas_ref, dtype="u1").tobytes())
    parts.append(np.asarray(ts_ms, dtype="<i8").tobytes())
    parts.append(np.asarray(values, dtype="<f8").tobytes())
    return b"".join(parts)


def decode(payload: bytes, content_type: str = JSON) -> Batch:
    """A batch in either form: the binary one by its content type or its magic bytes."""
    if content_type.startswith(BINARY) or payload[:4] == MAGIC:
        return decode_binary(payload)
    return decode_json(payload)

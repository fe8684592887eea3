"""A simulator of the sensing network: realistic daily patterns for every device type, incidents (water on a
road, an open manhole, a trapped lift, a gas leak, smoke) that last a while, and injected faults (a value out
of range, a repeated reading, a clock ahead) — for the demo city, load tests and the benchmarks.

Everything is computed with arrays, one tick for all devices at once, so it drives millions of devices. A
tick yields one gateway batch per district and device type, the unit a gateway publishes on
``shgov/{district}/readings/{type}``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from shgov.sensing.pipeline import Registry
from shgov.sensing.readings import Batch, encode_binary

HOUR_MS = 3_600_000


@dataclass
class Fleet:
    """The simulated devices: id, type and district of each (the registry's devices, or synthetic ones)."""

    ids: np.ndarray  # object
    types: np.ndarray  # object
    districts: np.ndarray  # object

    @classmethod
    def of(cls, registry: Registry) -> Fleet:
        """The registered devices."""
        tables = registry.tables
        return cls(tables["ids"], tables["types"][registry.type_idx], tables["districts"][registry.district_idx])

    @classmethod
    def synthetic(cls, count: int, districts: list[str], type_mix: dict[str, float], seed: int = 7) -> Fleet:
        """``count`` devices spread over the districts with the given share of each type."""
        rng = np.random.default_rng(seed)
        codes = list(type_mix)
        share = np.asarray([type_mix[c] for c in codes], dtype=float)
        kinds = rng.choice(len(codes), size=count, p=share / share.sum())
        where = rng.integers(0, len(districts), size=count)
        prefix = np.asarray([c[:2].upper() for c in codes], dtype=object)
        ids = np.asarray([f"SIM-{p}-{i:08d}" for p, i in zip(prefix[kinds], range(count), strict=True)], dtype=object)
        return cls(ids, np.asarray(codes, dtype=object)[kinds], np.asarray(districts, dtype=object)[where])


# the usual mix of a city's sensors (shares)
TYPE_MIX = {
    "air_quality": 0.02,
    "water_level": 0.08,
    "river_level": 0.02,
    "traffic_flow": 0.12,
    "manhole": 0.20,
    "smoke": 0.22,
    "elevator": 0.22,
    "noise": 0.04,
    "gas": 0.08,
}


def _peaks(hour: np.ndarray, centres: tuple[float, ...], width: float) -> np.ndarray:
    """A day's shape with bumps at the given local hours (0..1)."""
    total = np.zeros_like(hour)
    for centre in centres:
        distance = np.minimum(np.abs(hour - centre), 24 - np.abs(hour - centre))
        total += np.exp(-((distance / width) ** 2))
    shape: np.ndarray = np.clip(total, 0, 1)
    return shape


class Simulator:
    """One reading per device and measure per tick, shaped by the local hour, with incidents and faults."""

    def __init__(
        self,
        fleet: Fleet,
        measures: dict[str, list[dict[str, Any]]],
        *,
        seed: int = 11,
        utc_offset_hours: float = 8.0,
        incident_rate: float = 0.0005,
        fault_rate: float = 0.001,
    ) -> None:
        self.fleet = fleet
        self.measures = measures
        self.rng = np.random.default_rng(seed)
        self.offset_ms = int(utc_offset_hours * HOUR_MS)
        self.incident_rate = incident_rate
        self.fault_rate = fault_rate
        n = len(fleet.ids)
        self.scale = self.rng.uniform(0.7, 1.3, n)  # each device's own level (a busy road, a dusty corner)
        self.incident_until = np.zeros(n, dtype=np.int64)
        self.groups: dict[tuple[str, str], np.ndarray] = {}
        keys = np.char.add(fleet.districts.astype(str), np.char.add("/", fleet.types.astype(str)))
        unique, inverse = np.unique(keys, return_inverse=True)
        for k, key in enumerate(unique):
            district, type_code = str(key).split("/", 1)
            if type_code in measures:
                self.groups[(district, type_code)] = np.flatnonzero(inverse == k)
        self._last: dict[tuple[str, str], Batch] = {}

    def _values(self, type_code: str, rows: np.ndarray, now_ms: int) -> dict[str, np.ndarray]:
        hour = np.full(len(rows), ((now_ms + self.offset_ms) % (24 * HOUR_MS)) / HOUR_MS)
        scale, noise = self.scale[rows], self.rng.standard_normal(len(rows))
        on = self.incident_until[rows] > now_ms
        rush = _peaks(hour, (8.0, 18.0), 1.5)
        day = _peaks(hour, (14.0,), 4.0)
        if type_code == "air_quality":
            pm25 = np.clip(scale * (28 + 22 * rush) + 6 * noise, 1, None)
            return {
                "pm25": pm25,
                "pm10": pm25 * 1.6,
                "o3": np.clip(40 + 90 * day + 8 * noise, 0, None),
                "no2": 20 + 35 * rush,
            }
        if type_code == "water_level":
            return {"depth_cm": np.where(on, 18 + 12 * np.abs(noise), np.clip(0.3 * noise, 0, None))}
        if type_code == "river_level":
            tide = np.sin(2 * np.pi * (now_ms / HOUR_MS) / 12.42)
            return {"level_m": 3.0 + 0.9 * tide * scale + 0.05 * noise}
        if type_code == "traffic_flow":
            vehicles = np.clip(scale * (15 + 45 * rush + 10 * day) + 4 * noise, 0, 300)
            speed = np.clip(55 - 30 * rush * scale + 4 * noise, 5, 120)
            return {"vehicles": vehicles, "speed_kmh": np.where(on, 8.0, speed)}
        if type_code == "manhole":
            return {"tilt_deg": np.where(on, 35.0, np.abs(noise)), "open": on.astype(float)}
        if type_code == "smoke":
            return {"obscuration": np.where(on, 12.0, np.abs(0.2 * noise)), "alarm": on.astype(float)}
        if type_code == "elevator":
            runs = np.clip(scale * (4 + 14 * rush) + noise, 0, 60)
            return {"trapped": on.astype(float), "fault": on.astype(float), "runs": np.where(on, 0.0, runs)}
        if type_code == "noise":
            return {"laeq_db": np.clip(48 + 14 * (rush + day) / 2 * scale + 2 * noise, 20, 140)}
        if type_code == "gas":
            return {"lel_pct": np.where(on, 28 + 5 * np.abs(noise), np.abs(0.4 * noise))}
        return {m["code"]: np.full(len(rows), float(m["min"])) for m in self.measures[type_code]}

    def tick(self, now_ms: int) -> Iterator[tuple[str, str, Batch]]:
        """The readings of every device at ``now_ms``: (district, type, batch) for each gateway."""
        starting = self.rng.random(len(self.fleet.ids)) < self.incident_rate
        lasting = self.rng.integers(10, 90, int(starting.sum())) * 60_000
        self.incident_until[starting] = now_ms + lasting
        for (district, type_code), rows in self.groups.items():
            values = self._values(type_code, rows, now_ms)
            codes = [m["code"] for m in self.measures[type_code] if m["code"] in values]
            n = len(rows)
            dev_ref = np.tile(np.arange(n, dtype=np.int32), len(codes))
            meas_ref = np.repeat(np.arange(len(codes), dtype=np.int32), n)
            numbers = np.concatenate([values[c] for c in codes]).astype(np.float64)
            ts = np.full(len(numbers), now_ms, dtype=np.int64)
            faulty = self.rng.random(len(numbers)) < self.fault_rate
            kind = self.rng.integers(0, 3, len(numbers))
            numbers[faulty & (kind == 0)] = 1e6  # a broken sensor: out of range
            ts[faulty & (kind == 1)] = now_ms + 24 * HOUR_MS  # a clock a day ahead
            batch = Batch(list(self.fleet.ids[rows]), dev_ref, codes, meas_ref, ts, numbers)
            previous = self._last.get((district, type_code))
            if previous is not None and (faulty & (kind == 2)).any():  # a gateway resends its last batch
                yield district, type_code, previous
            self._last[(district, type_code)] = batch
            yield district, type_code, batch


def to_binary(batch: Batch) -> bytes:
    """A batch in the binary gateway form."""
    return encode_binary(
        batch.devices, batch.measures, batch.device_refs, batch.measure_refs, batch.ts_ms, batch.values
    )


def to_json(batch: Batch) -> bytes:
    """A batch as a JSON array of compact readings."""
    import orjson

    ids, measures = batch.device_ids(), batch.measure_codes()
    items = [[d, int(t), m, float(v)] for d, t, m, v in zip(ids, batch.ts_ms, measures, batch.values, strict=True)]
    return orjson.dumps(items)

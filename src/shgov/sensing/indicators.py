"""城市运行数字体征 defined as data (``indicators.json``): a formula over the latest values of one measure of
one device type, computed for every district from the pipeline's live state, graded 蓝 / 黄 / 橙 / 红.

A formula is parsed once into a small tree (never ``eval``-ed): numbers, + − × ÷, the aggregates ``mean``,
``min``, ``max``, ``count``, ``sum``, and the functions ``above(x)``, ``share_above(x)``, ``clip(v, lo,
hi)`` and ``iaqi_pm25(c)``. Each aggregate is an array over the districts, so one evaluation serves them all.
"""

from __future__ import annotations

import ast
import json
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from shgov.core.errors import InvalidError
from shgov.core.i18n import N_
from shgov.sensing.pipeline import Overlay, Pipeline

GRADES = ("blue", "yellow", "orange", "red")
GRADE_NAMES = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
FRESH_MS = 15 * 60_000  # a value older than this (three of the slowest devices' intervals) is stale: not counted

# HJ 633-2012: PM2.5 24-hour concentration breakpoints (µg/m³) and the index at each
_PM25_C = np.array([0, 35, 75, 115, 150, 250, 350, 500], dtype=float)
_PM25_I = np.array([0, 50, 100, 150, 200, 300, 400, 500], dtype=float)


def iaqi_pm25(concentration: np.ndarray) -> np.ndarray:
    """The individual air quality index of PM2.5 concentrations (linear between the standard's breakpoints)."""
    index: np.ndarray = np.interp(concentration, _PM25_C, _PM25_I)
    return index


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
AGGREGATES = ("mean", "min", "max", "count", "sum")
FUNCTIONS = ("above", "share_above", "clip", "iaqi_pm25")


@dataclass(frozen=True)
class Indicator:
    """A vital sign: what it is computed from, how, and where its warning grades start."""

    code: str
    name: str
    name_en: str
    type_code: str
    measure: str
    formula: str
    unit: str
    thresholds: tuple[float, float, float, float]
    category: str | None
    trigger: float | None  # a device above this value is evidence of the warning

    def grade(self, value: float) -> str | None:
        """The grade a value reaches (None: normal)."""
        return grade_of(self.thresholds, value)


def grade_of(thresholds: Sequence[float], level: float) -> str | None:
    """The grade a level reaches given the thresholds of 蓝 / 黄 / 橙 / 红 (None: normal)."""
    reached = [g for g, t in zip(GRADES, thresholds, strict=True) if level >= t]
    return reached[-1] if reached else None


def check_formula(text: str) -> ast.Expression:
    """Parse a formula, refusing anything but numbers, arithmetic, the aggregates and the functions."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise InvalidError(
            N_("formula {formula!r} is not an expression: {reason}"), field="formula", formula=text, reason=exc.msg
        ) from exc
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in AGGREGATES + FUNCTIONS:
            raise InvalidError(
                N_("formula {formula!r}: unknown name {name!r}"), field="formula", formula=text, name=node.id
            )
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            raise InvalidError(
                N_("formula {formula!r}: only {functions} may be called"),
                field="formula",
                formula=text,
                functions=", ".join(FUNCTIONS),
            )
        allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.USub, ast.Constant, ast.Name, ast.Load, ast.Call)
        if not isinstance(node, allowed + tuple(_BINARY)):
            raise InvalidError(
                N_("formula {formula!r}: {node} is not allowed"),
                field="formula",
                formula=text,
                node=type(node).__name__,
            )
        if isinstance(node, ast.Constant) and not isinstance(node.value, int | float):
            raise InvalidError(N_("formula {formula!r}: only numbers are constants"), field="formula", formula=text)
    return tree


def load(specs: list[dict[str, Any]] | None = None) -> list[Indicator]:
    """The indicators (the packaged ``indicators.json`` unless given), each formula checked."""
    if specs is None:
        text = resources.files("shgov.sensing").joinpath("indicators.json").read_text("utf-8")
        specs = json.loads(text)["indicators"]
    found = []
    for spec in specs:
        check_formula(spec["formula"])
        thresholds = tuple(float(t) for t in spec["thresholds"])
        if len(thresholds) != 4 or list(thresholds) != sorted(thresholds):
            raise InvalidError(
                N_("{code}: four rising thresholds (blue, yellow, orange, red)"), field="thresholds", code=spec["code"]
            )
        found.append(
            Indicator(
                code=spec["code"],
                name=spec["name"],
                name_en=spec.get("name_en", ""),
                type_code=spec["type"],
                measure=spec["measure"],
                formula=spec["formula"],
                unit=spec.get("unit", ""),
                thresholds=thresholds,
                category=spec.get("category"),
                trigger=spec.get("trigger"),
            )
        )
    return found


@dataclass
class Reading:
    """An indicator's value in every district, with the devices that make it up."""

    indicator: Indicator
    districts: list[str]
    values: np.ndarray  # NaN where no device reports
    reporting: np.ndarray  # devices with a fresh value, per district
    evidence: dict[str, list[dict[str, Any]]]  # district → devices above the trigger (id, value)


@dataclass
class Aggregates:
    """Mergeable aggregates of a measure per district: what a formula needs, and what several ingest nodes
    can add up (each node sees only the devices whose batches reached it)."""

    districts: list[str]
    count: np.ndarray
    total: np.ndarray
    low: np.ndarray
    high: np.ndarray
    above: dict[float, np.ndarray]  # devices over each constant the formula compares with
    evidence: dict[str, list[dict[str, Any]]]

    def as_json(self) -> dict[str, Any]:
        """The aggregates as JSON (a node's live file)."""
        return {
            "districts": self.districts,
            "count": self.count.tolist(),
            "total": self.total.tolist(),
            "low": [None if not np.isfinite(v) else v for v in self.low.tolist()],
            "high": [None if not np.isfinite(v) else v for v in self.high.tolist()],
            "above": {repr(k): v.tolist() for k, v in self.above.items()},
            "evidence": self.evidence,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Aggregates:
        """Aggregates written by ``as_json``."""
        return cls(
            list(data["districts"]),
            np.asarray(data["count"], dtype=float),
            np.asarray(data["total"], dtype=float),
            np.asarray([np.inf if v is None else v for v in data["low"]], dtype=float),
            np.asarray([-np.inf if v is None else v for v in data["high"]], dtype=float),
            {float(k): np.asarray(v, dtype=float) for k, v in data["above"].items()},
            {k: list(v) for k, v in data["evidence"].items()},
        )


def merge(parts: list[Aggregates]) -> Aggregates:
    """Several nodes' aggregates as one (districts united, counts and sums added, extremes kept)."""
    districts = sorted({d for part in parts for d in part.districts})
    position = {d: i for i, d in enumerate(districts)}
    n = len(districts)
    count, total = np.zeros(n), np.zeros(n)
    low, high = np.full(n, np.inf), np.full(n, -np.inf)
    above: dict[float, np.ndarray] = {}
    evidence: dict[str, list[dict[str, Any]]] = {}
    for part in parts:
        at = np.asarray([position[d] for d in part.districts], dtype=np.int64)
        np.add.at(count, at, part.count)
        np.add.at(total, at, part.total)
        np.minimum.at(low, at, part.low)
        np.maximum.at(high, at, part.high)
        for constant, hits in part.above.items():
            np.add.at(above.setdefault(constant, np.zeros(n)), at, hits)
        for district, devices in part.evidence.items():
            evidence.setdefault(district, []).extend(devices)
    return Aggregates(districts, count, total, low, high, above, evidence)


def _constants(tree: ast.AST) -> set[float]:
    """The constants a formula compares device values with (``above(x)``, ``share_above(x)``)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("above", "share_above"):
            argument = node.args[0] if node.args else None
            if not isinstance(argument, ast.Constant) or not isinstance(argument.value, int | float):
                raise InvalidError(N_("above() and share_above() take a number"), field="formula")
            found.add(float(argument.value))
    return found


def aggregate(pipeline: Pipeline, indicator: Indicator, overlay: Overlay | None = None) -> Aggregates:
    """The aggregates of an indicator's measure, from the devices' latest fresh values (this node's, and
    other nodes' through ``overlay``)."""
    registry = pipeline.registry
    devices, values = pipeline.latest(indicator.type_code, indicator.measure, max_age_ms=FRESH_MS, overlay=overlay)
    fresh = np.isfinite(values)
    devices, values = devices[fresh], values[fresh]
    districts = list(registry.districts)
    n = len(districts)
    groups = registry.district_idx[devices]
    low, high = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(low, groups, values)
    np.maximum.at(high, groups, values)
    above = {
        c: np.bincount(groups, weights=(values > c).astype(float), minlength=n)
        for c in _constants(check_formula(indicator.formula))
    }
    evidence: dict[str, list[dict[str, Any]]] = {}
    if indicator.trigger is not None:
        over = values > indicator.trigger
        for device, value, group in zip(devices[over], values[over], groups[over], strict=True):
            listed = evidence.setdefault(districts[int(group)], [])
            if len(listed) < 50:
                listed.append({"device_id": registry.ids[int(device)], "value": float(value)})
    return Aggregates(
        districts,
        np.bincount(groups, minlength=n).astype(float),
        np.bincount(groups, weights=values, minlength=n),
        low,
        high,
        above,
        evidence,
    )


def _evaluate(tree: ast.AST, parts: Aggregates) -> np.ndarray:
    """The formula's value per district of the aggregates (NaN where no device reports)."""
    n, count = len(parts.districts), parts.count

    def per_device(values: np.ndarray) -> np.ndarray:
        share: np.ndarray = np.divide(values, count, out=np.full(n, np.nan), where=count > 0)
        return share

    def named(name: str) -> np.ndarray:
        return {
            "count": count,
            "sum": parts.total,
            "mean": per_device(parts.total),
            "min": np.where(count > 0, parts.low, np.nan),
            "max": np.where(count > 0, parts.high, np.nan),
        }[name]

    def walk(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)  # type: ignore[arg-type]  # checked: a number
        if isinstance(node, ast.Name):
            return named(node.id)
        if isinstance(node, ast.UnaryOp):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        assert isinstance(node, ast.Call)  # noqa: S101 - a checked formula has nothing else
        assert isinstance(node.func, ast.Name)  # noqa: S101
        args = [walk(a) for a in node.args]
        if node.func.id in ("above", "share_above"):
            hits = parts.above.get(float(args[0]), np.zeros(n))
            return hits if node.func.id == "above" else per_device(hits)
        if node.func.id == "clip":
            return np.clip(args[0], args[1], args[2])
        return iaqi_pm25(args[0])

    with np.errstate(invalid="ignore", divide="ignore"):
        result = np.asarray(walk(tree), dtype=float) * np.ones(n)
    result[count == 0] = np.nan
    return result


def evaluate(indicator: Indicator, parts: Aggregates) -> Reading:
    """An indicator in every district from (merged) aggregates."""
    values = _evaluate(check_formula(indicator.formula), parts)
    return Reading(indicator, parts.districts, values, parts.count.astype(int), parts.evidence)


def compute(pipeline: Pipeline, indicator: Indicator, overlay: Overlay | None = None) -> Reading:
    """An indicator in every district from the devices' latest values (this node's and the overlay's)."""
    return evaluate(indicator, aggregate(pipeline, indicator, overlay))


def compute_all(pipeline: Pipeline, live_dir: Path | None = None) -> list[Reading]:
    """Every indicator now, with the other ingest nodes' live values when their files are in ``live_dir``."""
    overlay = pipeline.overlay(live_dir) if live_dir is not None else None
    return [compute(pipeline, indicator, overlay) for indicator in load()]

"""Declarative quality rules, evaluated column-wise with Polars (never a Python loop over rows).

A rule is data: ``{"rule": "id_number", "column": "id_number", "hard": true}``. Each evaluates to a
boolean column that is true where a row *violates* it. Violations of hard rules send the row to
quarantine with the rule and a reason; soft rules only lower the quality score.

Kinds: ``not_null``, ``id_number`` (GB 11643 check), ``credit_code`` (GB 32100 check), ``in_set``,
``range``, ``date_range``, ``pattern``, ``region`` (a division code of the given level),
``reference`` (the value exists in another resource's current version) and ``timeliness`` (the row
was updated within N days). Key uniqueness is checked by the loader for every resource.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl

from shgov.core.calendar.service import city_today
from shgov.core.errors import InvalidError
from shgov.core.i18n import N_

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = dict(enumerate("10X98765432"))
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_VALUES = {c: i for i, c in enumerate(USCC_ALPHABET)}
USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))


class RuleError(InvalidError):
    """A rule definition is wrong (unknown kind, missing parameter, unknown column); ``field`` is ``rules``."""


@dataclass
class RuleContext:
    """What rules may look up: code lists and other resources' key values."""

    today: date = field(default_factory=city_today)
    region_codes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    references: Callable[[str, str], pl.Series] | None = None


@dataclass(frozen=True)
class Rule:
    """One declared rule."""

    kind: str
    column: str
    hard: bool
    params: Mapping[str, Any]

    @property
    def name(self) -> str:
        """A stable name for counts and reasons: ``kind:column``."""
        return f"{self.kind}:{self.column}"

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Rule:
        """Build a rule from its declaration, checking the kind and its parameters."""
        kind = str(raw.get("rule", ""))
        if kind not in KINDS:
            raise RuleError(
                N_("unknown rule kind {kind!r}; use one of {kinds}"),
                field="rules",
                kind=kind,
                kinds=", ".join(sorted(KINDS)),
            )
        column = str(raw.get("column", ""))
        if not column:
            raise RuleError(N_("rule {kind} needs a column"), field="rules", kind=kind)
        params = {k: v for k, v in raw.items() if k not in ("rule", "column", "hard")}
        missing = [p for p in KINDS[kind][1] if p not in params]
        if missing:
            raise RuleError(
                N_("rule {kind} on {column} needs {names}"),
                field="rules",
                kind=kind,
                column=column,
                names=", ".join(missing),
            )
        return cls(kind, column, bool(raw.get("hard", KINDS[kind][2])), params)


def id_number_invalid(column: str) -> pl.Expr:
    """True where a 身份证号 is malformed, has an impossible birth date or a wrong check character."""
    value = pl.col(column).str.to_uppercase()
    total = pl.sum_horizontal(
        [value.str.slice(i, 1).cast(pl.Int64, strict=False) * w for i, w in enumerate(ID_WEIGHTS)]
    )
    check = (total % 11).replace_strict(ID_CHECK, default=None, return_dtype=pl.String)
    born = value.str.slice(6, 8).str.to_date("%Y%m%d", strict=False)
    valid = value.str.contains(r"^\d{17}[0-9X]$") & born.is_not_null() & (value.str.slice(17, 1) == check)
    return pl.col(column).is_not_null() & ~valid.fill_null(False)


def credit_code_invalid(column: str) -> pl.Expr:
    """True where a 统一社会信用代码 is malformed or has a wrong check character."""
    value = pl.col(column).str.to_uppercase()
    digits = [
        value.str.slice(i, 1).replace_strict(USCC_VALUES, default=None, return_dtype=pl.Int64) * w
        for i, w in enumerate(USCC_WEIGHTS)
    ]
    check = ((31 - pl.sum_horizontal(digits) % 31) % 31).replace_strict(
        dict(enumerate(USCC_ALPHABET)), default=None, return_dtype=pl.String
    )
    shape_ok = value.str.contains(f"^[{USCC_ALPHABET}]{{18}}$")
    return pl.col(column).is_not_null() & ~(shape_ok & (value.str.slice(17, 1) == check)).fill_null(False)


def _as_date(value: Any, today: date) -> date:
    if value == "today":
        return today
    return date.fromisoformat(str(value))


def violations(rule: Rule, frame: pl.DataFrame, context: RuleContext) -> pl.Series:
    """Where ``frame`` violates ``rule`` (nulls count as violations only for ``not_null``)."""
    if rule.column not in frame.columns:
        raise RuleError(N_("rule {rule} names a column the resource does not have"), field="rules", rule=rule.name)
    col = pl.col(rule.column)
    p = rule.params
    expr: pl.Expr
    if rule.kind == "not_null":
        expr = col.is_null() | (col.cast(pl.String).str.strip_chars() == "")
    elif rule.kind == "id_number":
        expr = id_number_invalid(rule.column)
    elif rule.kind == "credit_code":
        expr = credit_code_invalid(rule.column)
    elif rule.kind == "in_set":
        expr = col.is_not_null() & ~col.cast(pl.String).is_in([str(v) for v in p["values"]])
    elif rule.kind == "range":
        low = col < p["min"] if "min" in p else pl.lit(False)
        high = col > p["max"] if "max" in p else pl.lit(False)
        expr = col.is_not_null() & (low | high)
    elif rule.kind == "date_range":
        low_d, high_d = _as_date(p["min"], context.today), _as_date(p["max"], context.today)
        expr = col.is_not_null() & ((col.cast(pl.Date) < low_d) | (col.cast(pl.Date) > high_d))
    elif rule.kind == "pattern":
        expr = col.is_not_null() & ~col.cast(pl.String).str.contains(str(p["regex"]))
    elif rule.kind == "region":
        codes = context.region_codes.get(str(p["level"]), frozenset())
        expr = col.is_not_null() & ~col.is_in(sorted(codes))
    elif rule.kind == "reference":
        if context.references is None:
            return pl.Series(rule.name, [False] * frame.height)
        known = context.references(str(p["resource"]), str(p["to"]))
        expr = col.is_not_null() & ~col.is_in(known.implode())
    elif rule.kind == "timeliness":
        cutoff = datetime.combine(context.today - timedelta(days=int(p["days"])), datetime.min.time())
        expr = col.is_not_null() & (col.dt.replace_time_zone(None) < cutoff)
    else:  # pragma: no cover - parse() admits only known kinds
        raise RuleError(
            N_("unknown rule kind {kind!r}; use one of {kinds}"),
            field="rules",
            kind=rule.kind,
            kinds=", ".join(sorted(KINDS)),
        )
    return frame.select(expr.fill_null(False).alias(rule.name)).to_series()


REASONS = {
    "not_null": "value is missing",
    "id_number": "not a valid 身份证号 (GB 11643 check)",
    "credit_code": "not a valid 统一社会信用代码 (GB 32100 check)",
    "in_set": "value is not in the code list",
    "range": "value is out of range",
    "date_range": "date is out of range",
    "pattern": "value does not match the pattern",
    "region": "not a known division code",
    "reference": "refers to a record that does not exist",
    "timeliness": "not updated within the update cycle",
    "unique_key": "the key appears more than once in the delivery",
    "type": "value does not fit the column type",
}

# kind → (description, required parameters, hard by default)
KINDS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "not_null": ("completeness", (), True),
    "id_number": ("validity", (), True),
    "credit_code": ("validity", (), True),
    "in_set": ("validity", ("values",), True),
    "range": ("validity", (), True),
    "date_range": ("validity", ("min", "max"), True),
    "pattern": ("validity", ("regex",), True),
    "region": ("validity", ("level",), True),
    "reference": ("consistency", ("resource", "to"), False),
    "timeliness": ("timeliness", ("days",), False),
}

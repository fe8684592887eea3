"""Numbers that fit the city: money, counters, sums, sizes and sequence numbers are 64-bit in every table,
so that a future column cannot be declared narrower (issue #25)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import BigInteger, Column, Engine, Integer, text

from shgov.contexts import import_models
from shgov.core.db import Base

# Names that say "an amount of money, a count, a total, a size or a sequence number".
WIDE_NAME = re.compile(
    r"(^|_)(fen|amount|budget|price|cost|count|counts|total|sum|size|bytes|seq|rows|calls|downloads|hits)($|_)"
)

# Integer columns whose names look wide but whose values are bounded by validation (keep this list short).
BOUNDED = {
    ("rating_rules", "burst_count"): "a threshold the service keeps within 2 … 100,000 (RULE_LIMITS)",
}

# Integer keys that stay 32-bit: tables of one row.
SINGLE_ROW = {"audit_head"}


def _integer_columns() -> list[Column[int]]:
    import_models()
    return [c for t in Base.metadata.tables.values() for c in t.columns if isinstance(c.type, Integer)]


def _is_64_bit(column: Column[int]) -> bool:
    return isinstance(column.type, BigInteger)  # BigInt is BigInteger with an SQLite variant


def test_money_counts_totals_sizes_and_sequences_are_64_bit() -> None:
    narrow = [
        f"{c.table.name}.{c.name}"
        for c in _integer_columns()
        if WIDE_NAME.search(c.name) and not _is_64_bit(c) and (c.table.name, c.name) not in BOUNDED
    ]
    assert narrow == [], "declare these BigInt (shgov.core.numbers) or say in BOUNDED why they are bounded"


def test_every_generated_integer_key_is_64_bit() -> None:
    narrow = [
        f"{c.table.name}.{c.name}"
        for c in _integer_columns()
        if c.primary_key
        and c.autoincrement in (True, "auto")
        and len(c.table.primary_key.columns) == 1
        and not _is_64_bit(c)
        and c.table.name not in SINGLE_ROW
    ]
    assert narrow == []


def test_the_bounded_list_names_real_narrow_columns() -> None:
    columns = {(c.table.name, c.name): c for c in _integer_columns()}
    for key in BOUNDED:
        assert key in columns, key
        assert not _is_64_bit(columns[key]), key


def test_postgresql_keys_draw_from_64_bit_sequences(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite keys are 64-bit rowids")
    keys = [c for c in _integer_columns() if c.primary_key and _is_64_bit(c) and len(c.table.primary_key.columns) == 1]
    with engine.connect() as conn:
        for column in keys:
            sequence = conn.scalar(
                text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": column.table.name, "c": column.name}
            )
            if sequence is None:
                continue  # a key given by the application (the audit chain's seq)
            kind = conn.scalar(
                text("SELECT data_type FROM pg_sequences WHERE schemaname || '.' || sequencename = :s"), {"s": sequence}
            )
            assert kind == "bigint", f"{column.table.name}.{column.name}"

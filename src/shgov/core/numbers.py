"""Numbers that fit the city: stored counters and integer inputs keep to the signed 64-bit range.

``BigInt`` is the column type of money (fen), counters, sums, byte sizes, row counts and sequence numbers:
BIGINT on PostgreSQL; INTEGER on SQLite, which stores 64 bits in it already and wants exactly that name
for an autoincrement key. ``tests/test_bigint.py`` keeps such columns from being declared narrower, and
``shgov.core.bounded`` keeps integer inputs of the API within ``INT64_MIN`` … ``INT64_MAX``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

BigInt = BigInteger().with_variant(Integer(), "sqlite")

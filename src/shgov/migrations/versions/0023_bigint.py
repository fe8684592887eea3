"""Numbers that fit the city: money, counters, sums, sizes and sequence numbers become 64-bit.

A benefit run of 36,000,000 yuan (3.6e9 fen) overflowed ``benefit_runs.total_fen`` on PostgreSQL, where
INTEGER is 32-bit. Every integer column was weighed against the largest value the city can produce:

* 64-bit (BIGINT on PostgreSQL): money in fen (``amount_fen``, ``budget_fen``, ``total_fen``); counts of
  people and rows (benefit runs' ``evaluated`` … ``over_budget``, lake loads' ``rows_*``, register builds'
  ``rows`` / ``changed``, register copies' and exchange imports' ``rows``, ``parts_total`` — read from
  another node's manifest); usage counters that only grow (open-data ``calls`` / ``downloads``, a guide's
  ``bad_ratings``); byte sizes of uploads; and every autoincrement key, a sequence number of rows the
  city adds without end (the outbox ``seq``, work-order and grant history, incident tasks, dispatch rules
  and ``work_orders.rule_id`` that holds one, policy versions, catalog search rows).
* 32-bit, bounded by the world or by validation: days, minutes, seconds and years; versions of one
  policy, resource, register or catalog entry (one per reviewed change or scheduled load); positions in
  short ordered lists; rating levels and rounds (1–5), satisfaction, tiers (1/5/15); retry ``attempts``
  (capped by ``max_attempts``), ``failed_logins`` (lockout at 5), a work order's ``escalation`` /
  ``returns`` / ``reopened``; configured rates and limits capped by their schemas (``rate_per_minute``
  ≤ 100,000, ``hourly_limit`` ≤ 1,000, ``burst_count`` ≤ 100,000); form ``max_length``, document ``pages``.

SQLite stores INTEGER in up to 8 bytes already, and the models declare ``BigInt`` as INTEGER there (an
autoincrement key must be exactly INTEGER), so only PostgreSQL changes. Autoincrement keys also widen
their sequences, which PostgreSQL creates ``AS integer`` (and which would stop at 2,147,483,647).

Revision ID: 0023_bigint
Revises: 0022_sensing_warnings
Create Date: 2026-11-26 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_bigint"
down_revision: str | None = "0022_sensing_warnings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, nullable)
KEYS = (
    ("benefit_grant_events", "id", False),
    ("benefit_policy_versions", "id", False),
    ("catalog_search", "id", False),
    ("event_outbox", "seq", False),
    ("wo_incident_tasks", "id", False),
    ("wo_routing_rules", "id", False),
    ("work_order_events", "id", False),
)
COLUMNS = (
    ("benefit_grants", "amount_fen", False),
    ("benefit_policy_versions", "budget_fen", True),
    ("benefit_register_copies", "rows", False),
    ("benefit_runs", "evaluated", False),
    ("benefit_runs", "qualified", False),
    ("benefit_runs", "granted", False),
    ("benefit_runs", "already", False),
    ("benefit_runs", "over_budget", False),
    ("benefit_runs", "total_fen", False),
    ("case_materials", "size", True),
    ("dispute_attachments", "size", False),
    ("exchange_imports", "parts_total", False),
    ("exchange_imports", "rows", False),
    ("lake_loads", "rows_in", False),
    ("lake_loads", "rows_out", False),
    ("lake_loads", "rows_quarantined", False),
    ("lake_loads", "rows_total", False),
    ("opendata_key_usage", "calls", False),
    ("opendata_usage", "calls", False),
    ("opendata_usage", "downloads", False),
    ("rating_guide_reviews", "bad_ratings", False),
    ("register_builds", "rows", False),
    ("register_builds", "changed", False),
    ("work_orders", "rule_id", True),
)


def _widen(to: sa.types.TypeEngine[int], sequence_type: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    source = sa.Integer() if isinstance(to, sa.BigInteger) else sa.BigInteger()
    for table, column, nullable in (*KEYS, *COLUMNS):
        op.alter_column(table, column, type_=to, existing_type=source, existing_nullable=nullable)
    for table, column, _ in KEYS:
        name = op.get_bind().scalar(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table, "c": column})
        if name:  # the name comes from the catalog, quoted as needed
            op.execute(f"ALTER SEQUENCE {name} AS {sequence_type}")


def upgrade() -> None:
    _widen(sa.BigInteger(), "bigint")


def downgrade() -> None:
    _widen(sa.Integer(), "integer")

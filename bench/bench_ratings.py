"""好差评 statistics over 10M ratings (goal: recomputed in < 10 s on 2 cores).

DuckDB writes 10M synthetic ratings to Parquet (six channels, 2,000 items, 56 departments, 16 districts,
two years; one in a thousand re-rated, one in two thousand excluded by an appeal); then every figure the
ratings module publishes — by item, department, district, channel and month, plus the total — is
recomputed from the files by ``shgov.ratings.stats.compute`` and checked against the counts the data was
made with."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import duckdb

from shgov.ratings import stats

RATINGS = int(os.environ.get("SHGOV_BENCH_RATINGS", "10000000"))
DISTRICTS = ["3101" + f"{n:02d}" for n in (1, 4, 5, 6, 7, 9, 10, 12, 13, 14, 15, 16, 17, 18, 20, 51)]


def _generate(folder: Path) -> None:
    con = duckdb.connect()
    districts = "[" + ", ".join(f"'{d}'" for d in DISTRICTS) + "]"
    online = "channel IN ('web', 'app', 'kiosk')"
    con.execute(
        f"""
        COPY (
            SELECT id, replaces_id, channel, level, item_code, item_name, department_code, tenant_code, created_at,
                   level AS s_overall,
                   CAST(GREATEST(1, level - (h % 2)) AS TINYINT) AS s_efficiency,
                   CASE WHEN {online} THEN CAST(GREATEST(1, level - (h % 3 = 0)::INT) AS TINYINT) END
                       AS s_guide_accuracy,
                   CASE WHEN {online} THEN level END AS s_convenience,
                   CASE WHEN {online} THEN level END AS s_usability,
                   CASE WHEN NOT {online} THEN level END AS s_service_level,
                   CASE WHEN NOT {online} THEN level END AS s_attitude
            FROM (
                SELECT printf('%032x', i) AS id,
                       CASE WHEN i % 1000 = 999 THEN printf('%032x', i - 1) END AS replaces_id,
                       ['web', 'app', 'kiosk', 'window', 'hotline', 'followup'][CAST(1 + hash(i, 1) % 6 AS BIGINT)]
                           AS channel,
                       CAST(CASE WHEN hash(i, 2) % 100 < 70 THEN 5 WHEN hash(i, 2) % 100 < 88 THEN 4
                                 WHEN hash(i, 2) % 100 < 96 THEN 3 WHEN hash(i, 2) % 100 < 98 THEN 2 ELSE 1 END
                            AS TINYINT) AS level,
                       'ITEM-' || lpad(CAST(hash(i, 3) % 2000 AS VARCHAR), 4, '0') AS item_code,
                       '事项 ' || CAST(hash(i, 3) % 2000 AS VARCHAR) AS item_name,
                       '310000.d' || lpad(CAST(hash(i, 3) % 56 AS VARCHAR), 2, '0') AS department_code,
                       {districts}[CAST(1 + hash(i, 4) % 16 AS BIGINT)] AS tenant_code,
                       TIMESTAMPTZ '2024-12-01 00:00:00+00' + to_seconds(CAST(hash(i, 5) % (730 * 86400) AS BIGINT))
                           AS created_at,
                       hash(i, 6) AS h
                FROM range({RATINGS}) AS t(i)
            )
        ) TO '{folder / "ratings.parquet"}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)
        """
    )
    con.execute(
        f"COPY (SELECT printf('%032x', i) AS rating_id FROM range(0, {RATINGS}, 2000) AS t(i)) "
        f"TO '{folder / 'excluded.parquet'}' (FORMAT parquet)"
    )
    con.close()


def main() -> None:
    """Generate the ratings, recompute every figure from the files, check the totals, print the time."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        _generate(folder)
        print(f"   {RATINGS:,} ratings written to Parquet in {time.perf_counter() - started:.1f} s")
        con = duckdb.connect()
        con.execute("SET threads = 2")
        con.execute(f"CREATE VIEW ratings AS SELECT * FROM read_parquet('{folder / 'ratings.parquet'}')")
        con.execute(f"CREATE VIEW excluded AS SELECT * FROM read_parquet('{folder / 'excluded.parquet'}')")
        started = time.perf_counter()
        rows = stats.compute(con)
        seconds = time.perf_counter() - started
        con.close()
        total = next(r for r in rows if r.dimension == "all")
        replaced = RATINGS // 1000
        excluded = (RATINGS + 1999) // 2000
        expected = RATINGS - replaced - excluded
        groups = {d: sum(1 for r in rows if r.dimension == d) for d in stats.DIMENSIONS}
        print(
            f"   statistics recomputed from the files in {seconds:.2f} s (goal < 10 s): "
            f"{sum(groups.values())} groups ({', '.join(f'{n} {d}' for d, n in groups.items())}); "
            f"{total.ratings:,} effective ratings (expected {expected:,}: "
            f"{'ok' if total.ratings == expected else 'WRONG'}); satisfaction {total.satisfaction_rate:.2%}, "
            f"bad {total.bad_rate:.2%}"
        )

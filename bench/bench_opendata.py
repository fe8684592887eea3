"""The open-data portal on 10M rows, against Datasette on the same rows, and package_search on 10,000 datasets.

One run: a small demo city is seeded (embedded SQLite, as ``make demo``); its open dataset of enterprise
registrations is given a 10M-row live version in the lake (synthetic rows, same schema), and the same
rows go into a SQLite file that Datasette serves (indexes on the filter and facet columns, an FTS5 index
on the name — what a Datasette publisher would add). Both are asked the same questions over HTTP, one
at a time, REPEATS times each; the figures are medians and p95s. Then a CSV download of all rows
(written once per version: the first request streams the lake to a file) and its peak memory; then
10,000 more open datasets and package_search's p95.

Goals (issue #6): ≥ 5× Datasette on filter/facet/sort queries; download ≥ 1M rows/s with peak memory
< 1 GB; package_search p95 < 100 ms on 10,000 datasets. Datasette lives in ``.venv-bench`` (``make
bench``); without it that comparison is skipped, saying so.
"""

from __future__ import annotations

import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import httpx
import numpy as np
import polars as pl
from sqlalchemy import select

from bench.servers import free_port, wait
from shgov import migrations
from shgov.core.audit import service as audit
from shgov.core.db import Database, make_engine, utcnow
from shgov.core.settings import Settings
from shgov.lake import service as lake
from shgov.opendata import service as opendata
from shgov.seed import seed_demo

ROWS = int(os.environ.get("SHGOV_BENCH_OPEN_ROWS", "10000000"))
DATASETS = int(os.environ.get("SHGOV_BENCH_OPEN_DATASETS", "10000"))
REPEATS = 15
ROOT = Path(__file__).resolve().parent.parent
DATASETTE = ROOT / ".venv-bench" / "bin" / "datasette"
WORDS = (
    "上海", "浦东", "科技", "贸易", "咨询", "实业", "发展", "信息", "技术", "服务",
    "管理", "投资", "建设", "工程", "文化", "传媒", "物流", "餐饮", "医疗", "教育",
)  # fmt: skip


def _rows(n: int) -> pl.DataFrame:
    """``n`` enterprise registrations with the lake schema (vectorised: seconds for 10M)."""
    rng = np.random.default_rng(2026)
    districts = np.array([f"3101{d:02d}" for d in (1, 4, 5, 6, 7, 9, 10, 12, 13, 14, 15, 16, 17, 18, 20, 51)])
    district = districts[rng.integers(0, len(districts), n)]
    words = np.array(WORDS)
    first, second = words[rng.integers(0, len(words), n)], words[rng.integers(0, len(words), n)]
    serial = np.arange(n)
    start = date(1990, 1, 1)
    return pl.DataFrame(
        {
            "credit_code": pl.Series([f"91{d}{s:010d}" for d, s in zip(district, serial, strict=True)]),
            "name": pl.Series(first) + pl.Series(second) + pl.Series(serial.astype(str)) + "有限公司",
            "industry_section": pl.Series(np.array(list("ABCDEFGHIJKLMNOPQRST"))[rng.integers(0, 20, n)]),
            "registered_capital_fen": pl.Series(rng.integers(1, 10_000, n) * 1_000_000),
            "legal_representative_id": pl.Series([None] * n, dtype=pl.String),
            "legal_representative_name": pl.Series([None] * n, dtype=pl.String),
            "district_code": pl.Series(district),
            "address": pl.Series(district) + "某路" + pl.Series((serial % 999).astype(str)) + "号",
            "established_on": pl.Series([start + timedelta(days=int(x)) for x in rng.integers(0, 12_000, n)]),
            "status": pl.Series(np.array(["存续", "在业", "注销", "吊销"])[rng.integers(0, 4, n)]),
            "updated_at": pl.Series([utcnow()] * n),
        }
    )


def _timed(label: str, call: Callable[[], httpx.Response]) -> list[float]:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        answer = call()
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"{label}: {answer.status_code} {answer.text[:300]}")
    return times


def _figures(times: list[float]) -> str:
    ordered = sorted(times)
    return f"median {statistics.median(ordered):.1f} ms, p95 {ordered[int(len(ordered) * 0.95) - 1]:.1f} ms"


def main() -> None:
    """Seed, build both servers, ask both the same questions, print the figures and ratios."""
    servers: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _run(Path(tmp), servers)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)


def _run(folder: Path, servers: list[subprocess.Popen[bytes]]) -> None:
    url = f"sqlite:///{folder / 'shgov.db'}"
    settings = Settings(_env_file=None, env="dev", data_dir=folder, database_url=url, demo_persons=2_000)
    engine = make_engine(url)
    with engine.begin() as conn:
        migrations.upgrade(conn)
    db = Database(engine)
    audit.configure(settings)  # this city's key: a configuration left by an earlier bench would not do
    seed_demo(db, settings)
    started = time.perf_counter()
    frame = _rows(ROWS)
    with db.session() as session:
        version = lake.current_version(session, "enterprises")
    lake.write_version(settings.lake_dir, "enterprises", version + 1000, frame)
    lake.point_current(settings.lake_dir, "enterprises", version + 1000)
    print(f"   {ROWS:,} enterprise rows generated and written to the lake in {time.perf_counter() - started:.0f} s")
    with db.session() as session:
        dataset = opendata.get_dataset(session, "enterprises")
        resource = opendata.resources_of(session, [dataset.id])[dataset.id][0]
        columns = [i["name"] for i in dataset.items]
    sqlite_file = folder / "open.db"
    if DATASETTE.exists():
        started = time.perf_counter()
        _sqlite(sqlite_file, frame.select(columns))
        print(f"   the same rows into SQLite for Datasette (indexes, FTS5) in {time.perf_counter() - started:.0f} s")
    del frame

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHGOV_")},
        "SHGOV_ENV": "dev",
        "SHGOV_DATA_DIR": str(folder),
        "SHGOV_DATABASE_URL": url,
        "SHGOV_LOG_LEVEL": "WARNING",
    }
    port = free_port()
    servers.append(subprocess.Popen([sys.executable, "-m", "shgov.cli", "serve", "--port", str(port)], env=env))  # noqa: S603
    base = f"http://127.0.0.1:{port}"
    wait(f"{base}/healthz")
    http = httpx.Client(base_url=base, timeout=600)
    rid = str(resource.id)
    questions: dict[str, tuple[Callable[[], httpx.Response], Callable[[httpx.Client], httpx.Response]]] = {
        "filtered + sorted page": (
            lambda: http.post("/api/3/action/datastore_search", json={
                "resource_id": rid, "filters": {"district_code": "310115", "status": "存续"},
                "sort": "established_on desc", "limit": 20}),
            lambda d: d.get("/open/enterprises.json", params={
                "district_code": "310115", "status": "存续", "_sort_desc": "established_on", "_size": 20}),
        ),
        "facet counts": (
            lambda: http.post("/api/3/action/datastore_search_sql", json={
                "sql": f'SELECT industry_section, count(*) AS n FROM "{rid}" GROUP BY industry_section'}),
            lambda d: d.get("/open/enterprises.json", params={"_facet": "industry_section", "_size": 0}),
        ),
        "full-text search": (
            lambda: http.post("/api/3/action/datastore_search", json={
                "resource_id": rid, "q": "科技贸易", "limit": 20}),
            lambda d: d.get("/open/enterprises.json", params={"_search": "科技贸易*", "_size": 20}),
        ),
    }  # fmt: skip
    ours = {label: _timed(label, q[0]) for label, q in questions.items()}
    theirs: dict[str, list[float]] = {}
    if DATASETTE.exists():
        dport = free_port()
        servers.append(
            subprocess.Popen(  # noqa: S603
                [str(DATASETTE), "serve", str(sqlite_file), "--port", str(dport), "--setting", "sql_time_limit_ms",
                 "600000", "--setting", "facet_time_limit_ms", "600000", "--setting", "max_returned_rows", "1000"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        wait(f"http://127.0.0.1:{dport}/-/versions.json")
        with httpx.Client(base_url=f"http://127.0.0.1:{dport}", timeout=600) as datasette:
            theirs = {label: _timed(label, lambda q=q: q[1](datasette)) for label, q in questions.items()}  # type: ignore[misc]
    else:
        print("   Datasette is not installed in .venv-bench (make bench installs it) — that comparison is skipped")
    for label, times in ours.items():
        line = f"   {label}: SH-GOV {_figures(times)}"
        if label in theirs:
            ratio = statistics.median(theirs[label]) / statistics.median(times)
            goal = " (goal ≥ 5)" if label != "full-text search" else ""  # the goal is for filter, facet, sort
            line += f"; Datasette {_figures(theirs[label])}; {ratio:.1f}×{goal}"
        print(line)

    # The download: the first request writes the file (streamed from the lake), the next ones serve it.
    started = time.perf_counter()
    first = _download(base)
    seconds = time.perf_counter() - started
    again = time.perf_counter()
    _download(base)
    served = time.perf_counter() - again
    peak = _peak_rss_mb(servers[0].pid)
    print(
        f"   CSV download of {ROWS:,} rows ({first / 1e6:,.0f} MB): first {seconds:.1f} s"
        f" = {ROWS / seconds:,.0f} rows/s (written, then sent); again {served:.1f} s"
        f" = {ROWS / served:,.0f} rows/s (goal ≥ 1,000,000 rows/s); server peak memory {peak:,.0f} MB (goal < 1,024 MB)"
    )

    # package_search on 10,000 datasets.
    _many_datasets(db, DATASETS)
    rng = random.Random(7)
    searches = [
        {"q": " ".join(rng.sample(WORDS, 2)), "rows": 20, "facet.field": '["organization","res_format","groups"]'}
        for _ in range(REPEATS * 4)
    ]
    http.post("/api/3/action/package_search", json={"q": "企业"})  # the index reads the new datasets once
    times = []
    for params in searches:
        started = time.perf_counter()
        answer = http.post("/api/3/action/package_search", json=params)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text
    count = http.post("/api/3/action/package_search", json={"rows": 0}).json()["result"]["count"]
    print(f"   package_search on {count:,} datasets: {_figures(times)} (goal p95 < 100 ms)")
    http.close()


def _sqlite(path: Path, frame: pl.DataFrame) -> None:
    with sqlite3.connect(path) as lite:
        columns = frame.columns
        lite.execute(f"CREATE TABLE enterprises ({', '.join(columns)})")
        insert = f"INSERT INTO enterprises VALUES ({', '.join('?' for _ in columns)})"
        for chunk in frame.iter_slices(200_000):
            lite.executemany(insert, chunk.with_columns(pl.col(pl.Date, pl.Datetime).cast(pl.String)).iter_rows())
        for column in ("district_code", "status", "industry_section", "established_on"):
            lite.execute(f"CREATE INDEX ix_{column} ON enterprises ({column})")
        lite.execute("CREATE VIRTUAL TABLE enterprises_fts USING fts5(name, content='enterprises')")
        lite.execute("INSERT INTO enterprises_fts (enterprises_fts) VALUES ('rebuild')")


def _download(base: str) -> int:
    size = 0
    with httpx.stream("GET", f"{base}/opendata/enterprises/download.csv", timeout=600) as answer:
        assert answer.status_code == 200, answer.status_code
        for chunk in answer.iter_bytes(1 << 20):
            size += len(chunk)
    return size


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _many_datasets(db: Database, n: int) -> None:
    """``n`` more open datasets (metadata only), as many publishers' catalogs would give."""
    rng = random.Random(11)
    now = utcnow()
    with db.session() as session:
        departments = sorted({d.department_code for d in opendata.active_datasets(session)})
        template = session.scalar(select(opendata.OpenDataset).where(opendata.OpenDataset.name == "enterprises"))
        assert template is not None
        for i in range(n):
            title = "".join(rng.sample(WORDS, 3)) + f"统计{i}"
            dataset = opendata.OpenDataset(
                id=uuid.uuid4(),
                name=f"bench-{i:05d}",
                catalog_code=f"bench/{i:05d}",
                catalog_version=1,
                title=title,
                notes=f"{title}，按月更新的开放数据。",
                department_code=rng.choice(departments),
                theme=rng.choice(list(opendata.THEMES)),
                tags=rng.sample(WORDS, 2),
                open_type="unconditional",
                open_conditions="",
                update_cycle="monthly",
                lake_resource="enterprises",
                items=template.items,
                state="active",
                published_at=now,
            )
            session.add(dataset)
            for position, fmt in enumerate(opendata.FORMATS):
                session.add(opendata.OpenResource(dataset_id=dataset.id, position=position, format=fmt, created_at=now))

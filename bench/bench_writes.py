"""Measured, not hoped (issue #25, point 2): a mixed write load over real HTTP, on SQLite and on PostgreSQL.

One run, both backends: each gets a freshly migrated, demo-seeded city (``shgov db upgrade`` and ``shgov demo
seed``, 500 persons) served by a real ``shgov serve`` (SQLite: one worker; PostgreSQL: ``--workers 2``). The
load (``bench/writeload.py``: 80 % reads — API lists, own objects, HTML pages — and sign-ins, work orders from
the hotline and Open311, case submissions with an upload, desk ratings and sharing requests) runs with 1, 4, 8
and 32 closed-loop clients for 30 s each, after a short warm-up. Per backend and level it prints requests/s,
acknowledged writes/s, p50/p99 latency of the writes and of every request, the 5xx and every other unexpected
answer by status and request, and the load average before and after; the server log's errors when there
were 5xx; and, once the server has stopped, whether every acknowledged write is in the database.

Goals: no 5xx (nor a request left unanswered) at any level on either backend; SQLite ≥ 300 writes/s at 8
clients with a write p99 < 250 ms; PostgreSQL with 2 workers ≥ SQLite (acknowledged writes/s at 8 clients; the
ratio at every level is printed).

Quick trials: ``SHGOV_BENCH_WRITES_SECONDS`` (per level, default 30), ``SHGOV_BENCH_WRITES_LEVELS`` (default
``1,4,8,32``), ``SHGOV_BENCH_WRITES_WARMUP`` (seconds, default 5, and at least one deck per client; 0: none).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import make_url

from bench import writeload
from bench.servers import POSTGRES_URL, free_port, scratch_postgres, wait
from shgov.core.db import Database

SECONDS = float(os.environ.get("SHGOV_BENCH_WRITES_SECONDS", "30"))
LEVELS = tuple(int(n) for n in os.environ.get("SHGOV_BENCH_WRITES_LEVELS", "1,4,8,32").split(",") if n.strip())
WARMUP = float(os.environ.get("SHGOV_BENCH_WRITES_WARMUP", "5"))
PERSONS = 500  # enough for a demo city's registers; seeding stays short
GOAL_LEVEL, GOAL_WRITES, GOAL_P99_MS = 8, 300.0, 250.0
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Backend:
    """One database behind one server: where it lives, how it is served, what the load measured."""

    label: str
    url: str
    folder: Path
    workers: int
    results: dict[int, writeload.LoadResult] = field(default_factory=dict)
    warmup: writeload.LoadResult | None = None
    verified: dict[str, tuple[int, int]] = field(default_factory=dict)
    failed: str = ""  # why the measurement stopped, when it did

    @property
    def env(self) -> dict[str, str]:
        """The server's and the CLI's environment: a dev city in ``folder`` on ``url``."""
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("SHGOV_")},
            "SHGOV_ENV": "dev",
            "SHGOV_DATA_DIR": str(self.folder),
            "SHGOV_DATABASE_URL": self.url,
            "SHGOV_DEMO_PERSONS": str(PERSONS),
            "SHGOV_LOG_LEVEL": "WARNING",
        }

    @property
    def log(self) -> Path:
        """The server's output."""
        return self.folder / "server.log"


def _shgov(backend: Backend, *args: str) -> None:
    """Run an ``shgov`` command for ``backend``; its output goes to ``seed.log``, shown if it fails."""
    log = backend.folder / "seed.log"
    with log.open("a") as out:
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "shgov.cli", *args], env=backend.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise RuntimeError(f"shgov {' '.join(args)} failed on {backend.label}:\n{tail}")


def _seed(backend: Backend) -> None:
    backend.folder.mkdir(parents=True, exist_ok=True)
    _shgov(backend, "db", "upgrade")
    _shgov(backend, "demo", "seed")


def _line(label: str, result: writeload.LoadResult) -> str:
    p50, p99 = result.latency()
    w50, w99 = result.latency(writes_only=True)
    others = sum(n for (status, _), n in result.unexpected.items() if status < 500)
    return (
        f"   {label}, {result.clients:>2} client{'s' if result.clients > 1 else ' '} × {result.seconds:.0f} s: "
        f"{result.rate:,.1f} req/s, {result.write_rate:,.1f} writes/s ({result.requests:,} requests, "
        f"{result.writes:,} writes acknowledged); p50/p99 writes {w50:,.0f}/{w99:,.0f} ms, "
        f"all {p50:,.0f}/{p99:,.0f} ms; 5xx {result.server_errors}, other unexpected {others}; "
        f"load {result.load_before[0]:.2f}→{result.load_after[0]:.2f}"
    )


async def _drive(backend: Backend, base_url: str) -> None:
    city = await writeload.prepare_city(base_url)
    if WARMUP > 0:  # every worker loads its templates, indexes and classifier before the clock starts
        backend.warmup = await writeload.run_load(city, 4, WARMUP, seed=99, min_rounds=1)
        print(_line(f"{backend.label} (warm-up)", backend.warmup))
        _print_failures(backend.warmup)
    for clients in LEVELS:
        result = await writeload.run_load(city, clients, SECONDS, seed=clients)
        backend.results[clients] = result
        print(_line(backend.label, result))
        _print_failures(result)


def _print_failures(result: writeload.LoadResult) -> None:
    for line in result.failures().splitlines():
        print(f"      {line}")


def _server_errors(log: Path, limit: int = 12) -> list[str]:
    """The ERROR lines of the server's log (JSON lines), each with the last line of its traceback."""
    found: list[str] = []
    for raw in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("level") not in ("ERROR", "CRITICAL"):
            continue
        trace = str(entry.get("exc_info") or entry.get("exc") or "").strip().splitlines()
        # The exception's own line, not SQLAlchemy's "Background on this error" footer.
        raised = [line for line in trace if line and not line.startswith((" ", "[", "(", "Traceback"))]
        message = " ".join(str(entry.get("msg", "")).split())
        found.append(f"{entry.get('ts', '')} {entry.get('logger', '')}: {message}")
        if raised:
            found[-1] += f" — {raised[-1]}"
        if len(found) >= limit:
            break
    return found


def _measure(backend: Backend) -> None:
    """Serve the seeded city, drive every level, stop the server, then look for every acknowledged write."""
    port = free_port()
    command = [sys.executable, "-m", "shgov.cli", "serve", "--port", str(port), "--workers", str(backend.workers)]
    with backend.log.open("a") as out:
        server = subprocess.Popen(command, env=backend.env, cwd=backend.folder, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        try:
            wait(f"http://127.0.0.1:{port}/healthz")
        except RuntimeError:
            tail = "".join(backend.log.read_text(errors="replace").splitlines(keepends=True)[-30:])
            raise RuntimeError(f"{backend.label}: the server did not come up; its log ends with:\n{tail}") from None
        asyncio.run(_drive(backend, f"http://127.0.0.1:{port}"))
    finally:
        server.terminate()  # a graceful stop: what the server acknowledged must survive it
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    runs = [r for r in (backend.warmup, *backend.results.values()) if r is not None]
    acked: dict[str, set[str]] = {}
    for result in runs:
        for kind, values in result.acked.items():
            acked.setdefault(kind, set()).update(values)
    db = Database.from_url(backend.url)
    try:
        backend.verified = writeload.verify(db, acked)
    finally:
        db.dispose()
    figures = ", ".join(f"{kind} {found:,}/{made:,}" for kind, (made, found) in backend.verified.items())
    missing = sum(made - found for made, found in backend.verified.values())
    print(
        f"   {backend.label}: acknowledged writes found afterwards: {figures} ({'all' if not missing else 'MISSING'})"
    )
    if any(r.server_errors or any(status == 0 for status, _ in r.unexpected) for r in runs):
        print(f"   {backend.label}: the server log's errors ({backend.log}):")
        for line in _server_errors(backend.log):
            print(f"      {line[:400]}")


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _goals(backends: list[Backend]) -> None:
    print("   goals:")
    # A request the server never answered (status 0: dropped or timed out) fails this goal as a 5xx does.
    errors = {b.label: sum(r.server_errors for r in b.results.values()) for b in backends}
    unanswered = {
        b.label: sum(n for r in b.results.values() for (s, _), n in r.unexpected.items() if s == 0) for b in backends
    }
    figures = ", ".join(
        f"{b.label} {errors[b.label]} 5xx + {unanswered[b.label]} unanswered{' (stopped early)' if b.failed else ''}"
        for b in backends
    )
    ok = not any(errors.values()) and not any(unanswered.values()) and not any(b.failed for b in backends)
    print(f"   · no 5xx (nor unanswered request) at any level on either backend: {figures} — {_verdict(ok)}")
    sqlite = next(b for b in backends if b.label.startswith("SQLite"))
    at = sqlite.results.get(GOAL_LEVEL)
    if at is None:
        print(
            f"   · SQLite ≥ {GOAL_WRITES:.0f} writes/s at {GOAL_LEVEL} clients, write p99 < {GOAL_P99_MS:.0f} ms: n/a"
        )
    else:
        p99 = at.latency(writes_only=True)[1]
        ok = at.write_rate >= GOAL_WRITES and p99 < GOAL_P99_MS
        print(
            f"   · SQLite ≥ {GOAL_WRITES:.0f} writes/s at {GOAL_LEVEL} clients with write p99 < {GOAL_P99_MS:.0f} ms: "
            f"{at.write_rate:,.1f} writes/s (ratio {at.write_rate / GOAL_WRITES:.2f}), p99 {p99:,.0f} ms "
            f"(ratio {p99 / GOAL_P99_MS:.2f}) — {_verdict(ok)}"
        )
    postgres = next((b for b in backends if b.label.startswith("PostgreSQL")), None)
    if postgres is None:
        print("   · PostgreSQL ≥ SQLite: n/a (PostgreSQL not reachable)")
    else:
        ratios = {
            n: postgres.results[n].write_rate / sqlite.results[n].write_rate
            for n in LEVELS
            if n in postgres.results and sqlite.results[n].write_rate > 0
        }
        listed = ", ".join(f"{n} clients {ratio:.2f}" for n, ratio in ratios.items())
        verdict = _verdict(ratios[GOAL_LEVEL] >= 1) if GOAL_LEVEL in ratios else "n/a"
        print(
            f"   · PostgreSQL (2 workers) ≥ SQLite, writes/s PostgreSQL ÷ SQLite: {listed} — at {GOAL_LEVEL} clients "
            f"{verdict}"
        )
    missing = sum(made - found for b in backends for made, found in b.verified.values())
    checked = all(b.verified for b in backends)
    print(f"   · every acknowledged write is in the database afterwards: {_verdict(not missing and checked)}")


def main() -> None:
    """Seed both cities at once, then serve and load each in turn; print the figures and the goals."""
    start = writeload.load_average()
    print(
        f"   {SECONDS:.0f} s per level at {', '.join(map(str, LEVELS))} clients; load average at start "
        f"{start[0]:.2f} / {start[1]:.2f} / {start[2]:.2f} on {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory() as tmp, scratch_postgres("shgov_bench_writes") as pg_url:
        folder = Path(tmp)
        backends = [Backend("SQLite, 1 worker", f"sqlite:///{folder / 'sqlite' / 'shgov.db'}", folder / "sqlite", 1)]
        if pg_url is None:
            print(f"   PostgreSQL is not reachable at {make_url(POSTGRES_URL).host} — only SQLite is measured")
        else:
            backends.append(Backend("PostgreSQL, 2 workers", pg_url, folder / "postgresql", 2))
        with ThreadPoolExecutor(len(backends)) as pool:  # both seeds at once: seeding is not what is measured
            list(pool.map(_seed, backends))
        for backend in backends:
            try:
                _measure(backend)
            except Exception as exc:  # the other backend is still measured, the goals still printed
                backend.failed = str(exc)
                print(f"   {backend.label}: the measurement stopped: {exc}")
        _goals(backends)
    end = writeload.load_average()
    print(f"   load average at end {end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f}")


if __name__ == "__main__":
    main()

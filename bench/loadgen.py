"""A light closed-loop load generator, run in its own process so it does not share the measured server's GIL.

HTTP/1.1 keep-alive over raw asyncio connections (uvloop), or prepared point selects over async psycopg:
each of ``concurrency`` connections sends its next request as soon as the previous answer is in, for
``duration`` seconds. The client costs a few tens of microseconds per call, so on a small machine the
figures are the server's, not the client's. Prints one JSON line: calls, seconds, per-second rate,
p50/p99 latency in ms and the calls that were not answered 200 (or found no row).

    python -m bench.loadgen http  HOST PORT PATHS_FILE [--header 'Name: value'] ...
    python -m bench.loadgen pg    CONNINFO SQL KEYS_FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import psycopg

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
    uvloop = None  # type: ignore[assignment]


def _chunked_length(buffer: bytearray, at: int) -> int | None:
    """Where a chunked body starting at ``at`` ends, or None while it is incomplete."""
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
        at = line_end + 2 + size + 2
        if len(buffer) < at:
            return None
        if size == 0:
            return at


class _Http(asyncio.Protocol):
    """One keep-alive connection: send a request, complete a future with the status when the body is in."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        fields = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in head[1:])}
        if fields.get("transfer-encoding", "").lower() == "chunked":
            size = _chunked_length(self.buffer, end + 4)
            if size is None:
                return
        else:
            size = end + 4 + int(fields.get("content-length", "0"))
            if len(self.buffer) < size:
                return
        del self.buffer[:size]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(int(head[0].split(" ", 2)[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    async def call(self, request: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


async def _closed_loop(
    concurrency: int, duration: float, open_worker: Callable[[int], Awaitable[Callable[[], Awaitable[bool]]]]
) -> dict[str, float]:
    latencies: list[float] = []
    failures = 0
    workers = [await open_worker(n) for n in range(concurrency)]
    stop = time.perf_counter() + duration

    async def run(call: Callable[[], Awaitable[bool]]) -> None:
        nonlocal failures
        while (t0 := time.perf_counter()) < stop:
            ok = await call()
            latencies.append((time.perf_counter() - t0) * 1000)
            failures += not ok

    started = time.perf_counter()
    await asyncio.gather(*(run(w) for w in workers))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "calls": len(latencies),
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)],
        "failures": failures,
    }


async def http_load(
    host: str, port: int, paths: list[str], headers: list[str], concurrency: int, duration: float
) -> dict[str, float]:
    """GET random ``paths`` from ``host:port``."""
    extra = "".join(f"{h}\r\n" for h in headers)
    requests = [f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode() for p in paths]
    loop = asyncio.get_running_loop()

    async def open_worker(n: int) -> Callable[[], Awaitable[bool]]:
        _, conn = await loop.create_connection(_Http, host, port)
        rng = random.Random(n)

        async def call() -> bool:
            return await conn.call(requests[rng.randrange(len(requests))]) == 200

        return call

    return await _closed_loop(concurrency, duration, open_worker)


async def pg_load(conninfo: str, sql: str, keys: list[str], concurrency: int, duration: float) -> dict[str, float]:
    """Run the prepared one-parameter ``sql`` with random ``keys``."""

    async def open_worker(n: int) -> Callable[[], Awaitable[bool]]:
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True, prepare_threshold=0)
        rng = random.Random(n)

        async def call() -> bool:
            cursor = await conn.execute(sql, (keys[rng.randrange(len(keys))],))
            return await cursor.fetchone() is not None

        return call

    return await _closed_loop(concurrency, duration, open_worker)


def main() -> None:
    """Parse the command line, run the load, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=15.0)
    sub = parser.add_subparsers(dest="target", required=True)
    http = sub.add_parser("http")
    http.add_argument("host")
    http.add_argument("port", type=int)
    http.add_argument("paths", type=Path)
    http.add_argument("--header", action="append", default=[])
    pg = sub.add_parser("pg")
    pg.add_argument("conninfo")
    pg.add_argument("sql")
    pg.add_argument("keys", type=Path)
    args = parser.parse_args()
    if uvloop is not None:
        uvloop.install()
    if args.target == "http":
        paths = args.paths.read_text().split()
        work = http_load(args.host, args.port, paths, args.header, args.concurrency, args.duration)
    else:
        keys = args.keys.read_text().split()
        work = pg_load(args.conninfo, args.sql, keys, args.concurrency, args.duration)
    print(json.dumps(asyncio.run(work)))


if __name__ == "__main__":
    main()

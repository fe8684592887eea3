"""Token buckets: so many calls a minute per key (a grant, an API key, an address), refilled continuously.

These buckets live in each process's memory (each process allows its share), which suits rates of calls.
Sign-in failures are counted in the database instead (``core/identity/throttle.py``): a guesser spreading
attempts over worker processes must meet one counter, and the delays grow with each failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable


class RateLimited(Exception):  # noqa: N818 - a signal, not a failure of the code
    """The calls per minute are used up; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limit reached; retry after {retry_after} s")
        self.retry_after = retry_after


class RateLimiter:
    """A token bucket per key: ``rate`` calls a minute, refilled continuously. Each of ``processes``
    serving processes keeps its own buckets and allows its share, so together they never allow more."""

    def __init__(self, processes: int = 1, max_keys: int = 100_000) -> None:
        self.processes = processes
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def take(self, key: Hashable, rate: int, cost: int = 1) -> None:
        """Spend ``cost`` calls of ``key``'s bucket, or raise ``RateLimited``."""
        now = time.monotonic()
        rate = max(1, rate // self.processes)
        per_second = rate / 60.0
        with self._lock:
            if len(self._buckets) >= self.max_keys and key not in self._buckets:
                # Full buckets are no different from new ones: forget those that refilled.
                full = [k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * per_second >= rate]
                for k in full:
                    del self._buckets[k]
            tokens, at = self._buckets.get(key, (float(rate), now))
            tokens = min(float(rate), tokens + (now - at) * per_second)
            if tokens < cost:
                self._buckets[key] = (tokens, now)
                raise RateLimited(max(1, int((cost - tokens) / per_second) + 1))
            self._buckets[key] = (tokens - cost, now)

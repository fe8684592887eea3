"""SM2 signatures through ``shgov.core.sm2`` (goal: verify < 2 ms).

Times 2,000 signatures and 2,000 verifications of a licence-sized payload with one key (the platform's case:
the key's OpenSSL handle is made once), then 200 verifications each by a key not seen before (a verifier
holding many peers' keys), and prints the mean and 95th percentile of each with the machine's load average,
which says how far the figures can be trusted on a shared machine."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

from shgov.core import sm2

OPERATIONS = int(os.environ.get("SHGOV_BENCH_SM2_OPS", "2000"))
COLD = 200
GOAL_MS = 2.0
PAYLOAD = (
    '{"expires":null,"holder":"91310000MA1F****0Q","issued":"2026-03-02","issuer":"上海市市场监督管理局",'
    '"kid":"3f0c2a9d8e7b6a51","level":"A","name":"申城示例有限公司","no":"DZZZ20260302A1B2C3D4E5",'
    '"pd":"6f1d0c9b8a7e6d5c4b3a29180f1e2d3c","type":"营业执照","v":1}'
).encode()


def _times(operation: Callable[[int], object], count: int) -> list[float]:
    seconds = []
    for i in range(count):
        started = time.perf_counter()
        operation(i)
        seconds.append(time.perf_counter() - started)
    return seconds


def _line(label: str, seconds: list[float]) -> float:
    ms = [s * 1000 for s in seconds]
    p95 = statistics.quantiles(ms, n=20)[-1]
    print(f"   {label:<34} mean {statistics.fmean(ms):6.3f} ms   p95 {p95:6.3f} ms   ({len(ms):,} ops)")
    return p95


def main() -> None:
    """Time SM2 sign and verify, print mean and p95 with the load average, and whether verify meets its goal."""
    private = sm2.generate_private_key()
    public = sm2.public_key(private)
    sm2.self_check(private)  # also makes the key's handles, so the first timed call is not a cold one
    load_before = os.getloadavg()
    signatures = [sm2.sign(private, PAYLOAD) for _ in range(8)]
    _line("sign (one key)", _times(lambda _i: sm2.sign(private, PAYLOAD), OPERATIONS))

    def verify(i: int) -> None:
        assert sm2.verify(public, PAYLOAD, signatures[i % len(signatures)])

    verify_p95 = _line("verify (one key)", _times(verify, OPERATIONS))
    others = [sm2.generate_private_key() for _ in range(COLD)]
    cold = [(sm2.public_key(k), sm2.sign(k, PAYLOAD)) for k in others]

    def verify_cold(i: int) -> None:
        assert sm2.verify(cold[i][0], PAYLOAD, cold[i][1])

    _line("verify (a key not seen before)", _times(verify_cold, COLD))
    load_after = os.getloadavg()
    print(
        f"   load average {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f} before, "
        f"{load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} after, on {os.cpu_count()} cores"
    )
    verdict = "met" if verify_p95 < GOAL_MS else "MISSED"
    print(f"   goal verify < {GOAL_MS:g} ms: {verdict} (p95 {verify_p95:.3f} ms)")

"""Run every ``bench/bench_*.py`` module's ``main()`` and print its figures."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import tempfile
import time
from pathlib import Path

from shgov.core.audit import service as audit
from shgov.core.settings import Settings


def main() -> int:
    """Run the benchmarks named on the command line, or all of them."""
    # A process-wide audit key for benchmarks that write in this process without a city of their own (any
    # order, any subset); those that seed a city or spawn processes configure theirs.
    keys = tempfile.TemporaryDirectory(prefix="shgov-bench-")
    audit.configure(Settings(_env_file=None, env="dev", data_dir=Path(keys.name)))  # type: ignore[call-arg]
    wanted = set(sys.argv[1:])
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))
    if not names:
        print("no benchmarks yet: capabilities with a speed target add bench/bench_<name>.py")
        return 0
    for name in names:
        if wanted and name not in wanted:
            continue
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        print(f"== {name}")
        module.main()
        print(f"   ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run a module (``python -m tests.city_clock shgov.cli …``) on the test run's city clock, so that a command
the tests start in a process of its own agrees with them about what time it is."""

from __future__ import annotations

import os
import runpy
import sys
from datetime import UTC, datetime
from pathlib import Path

import time_machine

ROOT = Path(__file__).resolve().parents[1]
CLOCK_VARIABLE = "SHGOV_TEST_CLOCK"


def command(module: str = "shgov.cli") -> list[str]:
    """The argv prefix that runs ``module`` on the city clock."""
    return [sys.executable, "-m", "tests.city_clock", module]


def environment() -> dict[str, str]:
    """What a child process needs to start its clock where this process's clock is now."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {CLOCK_VARIABLE: datetime.now(UTC).isoformat(), "PYTHONPATH": path}


def cli_environment(data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of an ``shgov`` child process: this one's without its ``SHGOV_`` settings, a dev city
    in ``data_dir`` with plain-text logs, on the city clock, then ``settings`` (``SHGOV_…`` names)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SHGOV_")}
    environ.update(
        {"SHGOV_ENV": "dev", "SHGOV_DATA_DIR": str(data_dir), "SHGOV_LOG_JSON": "false", **environment(), **settings}
    )
    return environ


def main() -> None:
    """Start the clock from ``SHGOV_TEST_CLOCK`` and run the module named by the first argument."""
    module, *rest = sys.argv[1:]
    time_machine.travel(datetime.fromisoformat(os.environ[CLOCK_VARIABLE]), tick=True).start()
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()

"""``shgov serve --workers 2`` on SQLite: the deployment's background work runs in one process, quietly, and
still works; every worker ingests readings; SIGTERM stops them all within seconds."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from bench.servers import free_port, wait

from shgov.core.identity.demo import DEMO_PASSWORD
from tests import city_clock

SHGOV = city_clock.command()
TROUBLE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback|database is (locked|busy)|Child process .* died")


def run(args: list[str], data_dir: Path) -> subprocess.CompletedProcess[str]:
    environ = city_clock.cli_environment(data_dir, SHGOV_DEMO_PERSONS="500")
    return subprocess.run(
        [*SHGOV, *args], capture_output=True, text=True, env=environ, timeout=300, check=False, cwd=data_dir
    )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("workers-seeded")
    assert run(["db", "upgrade"], folder).returncode == 0
    seeded = run(["demo", "seed"], folder)
    assert seeded.returncode == 0, seeded.stderr
    return folder


def _readings(lake: Path) -> int:
    """Parquet files of sensor readings the server's ingest nodes (main, main-2) flushed to the lake."""
    return sum(1 for _ in lake.glob("sensor_readings/*/main-*.parquet"))


# Seeds a city of its own and runs two server processes: the gate runs it, the quick lane does not.
@pytest.mark.slow
def test_two_workers_run_the_background_work_once_without_errors_and_stop_on_sigterm(
    seeded: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "city"
    shutil.copytree(seeded, data_dir)
    port = free_port()
    environ = city_clock.cli_environment(
        data_dir,
        SHGOV_SENSING__SIMULATE="true",
        SHGOV_SENSING__WATCH_SECONDS="1",
        SHGOV_SENSING__FLUSH_SECONDS="1",
        SHGOV_WEB__SHUTDOWN_SECONDS="3",
    )
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [*SHGOV, "serve", "--port", str(port), "--workers", "2"],
            env=environ,
            cwd=data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait(f"{base}/healthz", 180)
        lake = data_dir / "lake"
        deadline = time.monotonic() + 60
        # The leader's simulator ingests the demo devices, its flusher stores them, its watcher evaluates.
        while _readings(lake) == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _readings(lake) > 0, log_path.read_text()
        token = httpx.post(
            f"{base}/api/v1/auth/token",
            data={"grant_type": "password", "username": "ops.operator", "password": DEMO_PASSWORD},
            timeout=30,
        ).json()["access_token"]
        nodes: set[str] = set()
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            # Connections are spread over the workers by the kernel: new ones reach both before long (the
            # second worker may still be starting).
            deadline = time.monotonic() + 60
            while len(nodes) < 2 and time.monotonic() < deadline:
                with httpx.Client(base_url=base, headers=client.headers, timeout=30) as fresh:
                    answer = fresh.get("/api/v1/sensing/stats")
                assert answer.status_code == 200, answer.text
                nodes.add(answer.json()["node"])
                time.sleep(0.1)
            indicators = client.get("/api/v1/sensing/indicators")
            assert indicators.status_code == 200, indicators.text
        assert nodes == {"main", "main-2"}  # each worker ingests as a node of its own
        time.sleep(3)  # a few rounds of every background loop
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail("the server was still running 10 s after SIGTERM")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    output = log_path.read_text(errors="replace")
    assert server.returncode in (0, -signal.SIGTERM), output
    trouble = [line for line in output.splitlines() if TROUBLE.search(line)]
    assert not trouble, output
    assert len(re.findall(r"\(pid \d+\) runs the sensing background work$", output, re.M)) == 1, output
    assert output.count("the sensing background work runs in another process") == 1, output

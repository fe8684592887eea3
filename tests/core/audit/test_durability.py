"""No acknowledged write without its audit record: a real server is killed (SIGKILL) the moment it answered."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from shgov.core.audit.keys import ChainKey
from shgov.core.audit.models import AuditRecord
from shgov.core.audit.verify import verify_chain
from shgov.core.db import Database, make_engine
from tests import city_clock
from tests.conftest import TEST_AUDIT_KEY

PASSWORD = "Root-pass-1234"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _up(url: str, server: subprocess.Popen[bytes], patience: float = 180) -> None:
    # A deadline only against a server that never comes up: nothing measured depends on how fast it does.
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server exited while starting"
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not start")


# A server process started, written to and killed: the gate runs it, the quick lane does not.
@pytest.mark.slow
def test_a_write_answered_before_a_kill_9_has_its_audit_record(tmp_path: Path) -> None:
    env = city_clock.cli_environment(tmp_path, SHGOV_SECURITY__AUDIT_KEY=TEST_AUDIT_KEY)
    shgov = city_clock.command()
    for args in (["db", "upgrade"], ["regions", "load"], ["users", "create-admin", "--username", "root"]):
        done = subprocess.run(
            [*shgov, *args], env=env, input=f"{PASSWORD}\n{PASSWORD}\n", capture_output=True, text=True, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "server.log").open("wb")  # a file, not a pipe nobody reads (a full pipe stalls the server)
    server = subprocess.Popen([*shgov, "serve", "--port", str(port)], env=env, cwd=tmp_path, stdout=log, stderr=log)
    try:
        _up(url, server)
        token = httpx.post(
            f"{url}/api/v1/auth/token", data={"grant_type": "password", "username": "root", "password": PASSWORD}
        ).json()["access_token"]
        body = {"days": [{"date": "2031-01-01", "kind": "holiday", "name": "元旦"}]}
        answer = httpx.put(f"{url}/api/v1/calendar/years/2031", json=body, headers={"Authorization": f"Bearer {token}"})
        os.kill(server.pid, signal.SIGKILL)  # the moment the 200 arrived: no shutdown, no flush
        assert answer.status_code == 200, answer.text
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
        log.close()
    assert server.returncode == -signal.SIGKILL
    engine = make_engine(f"sqlite:///{tmp_path / 'shgov.db'}")
    try:
        with Database(engine).session() as session:
            rows = session.execute(
                select(AuditRecord.action, AuditRecord.actor_name, AuditRecord.object_id).where(
                    AuditRecord.action.in_(
                        ["calendar.schedule.load", "data.workday_overrides.insert", "auth.token.issue"]
                    )
                )
            ).all()
            result = verify_chain(session, ChainKey(TEST_AUDIT_KEY.encode()), tmp_path / "audit" / "checkpoints", None)
    finally:
        engine.dispose()
    assert ("calendar.schedule.load", "root", "2031") in rows
    assert ("data.workday_overrides.insert", "root", "2031-01-01") in rows
    assert any(action == "auth.token.issue" for action, _, _ in rows)
    assert result.ok, [f.en for f in result.findings]

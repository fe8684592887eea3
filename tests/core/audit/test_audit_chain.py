"""The audit log: chained with a key, append-only, masked, written with the request that it describes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from bench.servers import scratch_postgres
from fastapi import FastAPI
from sqlalchemy import func, select, text

from shgov import migrations
from shgov.core.audit.chain import GENESIS, canonical, keyed_hash, plain_hash
from shgov.core.audit.keys import ChainKey
from shgov.core.audit.models import AuditHead, AuditRecord
from shgov.core.audit.service import AuditEntry, GroupCommit, append, count_records, current, sm3
from shgov.core.audit.verify import verify_chain
from shgov.core.db import Database, make_engine
from tests import city_clock
from tests.conftest import TEST_AUDIT_KEY

TokenFor = Callable[[str], str]


def entries(n: int, action: str = "test.thing.read") -> list[AuditEntry]:
    return [AuditEntry(action=action, actor_name=f"user{i}", object_id=str(i), details={"i": i}) for i in range(n)]


def test_sm3_is_the_standard_digest() -> None:
    # GB/T 32905-2016, example 1
    assert sm3(b"abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3(b"abc") == hashlib.new("sm3", b"abc").hexdigest()


def test_records_are_chained_with_the_key_and_verify(db: Database) -> None:
    key = current().key
    assert key == ChainKey(TEST_AUDIT_KEY.encode())
    with db.session() as session:
        before = count_records(session)
        append(session, entries(5))
        result = verify_chain(session)
        records = session.scalars(select(AuditRecord).order_by(AuditRecord.seq)).all()
        head = session.get(AuditHead, 1, populate_existing=True)
    assert result.ok, result.findings
    assert result.checked == before + 5
    assert records[0].prev_hash == GENESIS
    for earlier, later in itertools.pairwise(records):
        assert later.prev_hash == earlier.hash
    last = records[-1]
    assert last.hash == keyed_hash(key, last.prev_hash, canonical(last))
    assert last.hash != plain_hash(last.prev_hash, canonical(last))  # not computable without the key
    assert head is not None
    assert head.key_id == key.key_id


def test_personal_data_is_masked_before_it_is_stored(db: Database) -> None:
    with db.session() as session:
        append(
            session,
            [
                AuditEntry(
                    action="test.person.read", details={"id_number": "31010419900307123X", "query": "phone 13812345678"}
                )
            ],
        )
        record = session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc())).first()
    assert record is not None
    assert record.details == {"id_number": "3101**********123X", "query": "phone 138****5678"}


def test_a_group_commit_writes_concurrent_callers_in_shared_transactions(db: Database) -> None:
    writer = GroupCommit(db, max_batch=50)
    with db.session() as session:
        before = count_records(session)

    async def burst() -> None:
        await asyncio.gather(*(writer.write(entry) for entry in entries(200, "test.group.write")))

    asyncio.run(burst())  # every write returned: every record is committed
    with db.session() as session:
        assert count_records(session) == before + 200
        assert verify_chain(session).ok


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_group_commit_on_its_own_engine_loses_nothing(tmp_path: Path, backend: str) -> None:
    # The server's case: a Database owning its engine (on PostgreSQL the writer thread keeps a connection).
    with contextlib.ExitStack() as stack:
        if backend == "postgresql":
            url = stack.enter_context(scratch_postgres("shgov_group_commit"))
            if url is None:
                pytest.skip("PostgreSQL is not reachable")
        else:
            url = f"sqlite:///{tmp_path / 'shgov.db'}"
        engine = make_engine(url)
        stack.callback(engine.dispose)
        with engine.begin() as conn:
            migrations.upgrade(conn)
        db = Database(engine)
        writer = GroupCommit(db, max_batch=7)

        async def burst() -> None:
            for _ in range(3):  # the writer thread may end between bursts and start again
                await asyncio.gather(*(writer.write(entry) for entry in entries(40, "test.group.write")))

        asyncio.run(burst())
        with db.session() as session:
            assert count_records(session) == 120
            assert verify_chain(session).ok


def test_n_audited_requests_produce_exactly_n_records(client: httpx.Client, token_for: TokenFor, db: Database) -> None:
    headers = {"Authorization": f"Bearer {token_for('admin')}"}
    me = client.get("/api/v1/identity/me", headers=headers).json()
    reads = select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "identity.user.read")
    with db.session() as session:
        before = int(session.scalar(reads) or 0)
    n = 17
    for _ in range(n):
        assert client.get(f"/api/v1/identity/users/{me['id']}", headers=headers).status_code == 200
    # No flushing: each answer was sent after its record committed.
    with db.session() as session:
        assert int(session.scalar(reads) or 0) - before == n
        assert verify_chain(session).ok


def test_the_audit_api_needs_the_auditor_role(client: httpx.Client, app: FastAPI, token_for: TokenFor) -> None:
    client.post("/api/v1/auth/token", data={"grant_type": "password", "username": "admin", "password": "wrong-one"})
    auditor = {"Authorization": f"Bearer {token_for('auditor')}"}
    records = client.get("/api/v1/audit/records", headers=auditor)
    assert records.status_code == 200
    denied = [r for r in records.json() if r["action"] == "auth.token.issue" and r["outcome"] == "denied"]
    assert denied
    verified = client.post("/api/v1/audit/verify", headers=auditor).json()
    assert verified["ok"] is True, verified["findings"]
    assert verified["findings"] == []
    window = {"Authorization": f"Bearer {token_for('pudong.window')}"}
    assert client.get("/api/v1/audit/records", headers=window).status_code == 403


@pytest.mark.slow  # a whole-system run of processes: the gate runs it, the quick lane does not
def test_the_cli_names_the_first_broken_record(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shgov.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        migrations.upgrade(conn)
    with Database(engine).session() as session:
        append(session, entries(6), ChainKey(TEST_AUDIT_KEY.encode()))
    env = city_clock.cli_environment(tmp_path, SHGOV_SECURITY__AUDIT_KEY=TEST_AUDIT_KEY)
    command = [*city_clock.command(), "audit", "verify"]
    ok = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "6 records verified" in ok.stdout
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET outcome = 'ok', details = '{\"i\": 99}' WHERE seq = 4"))
    engine.dispose()
    broken = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert broken.returncode == 1
    assert "record 4" in broken.stderr
    assert "第 4 条记录被篡改" in broken.stderr
    other_key = subprocess.run(
        command, env={**env, "SHGOV_SECURITY__AUDIT_KEY": "another-key-" + "0" * 32}, capture_output=True, text=True
    )
    assert other_key.returncode == 1
    assert "records 1–6 were rewritten" in other_key.stderr  # every hash fails under a wrong key


@pytest.mark.parametrize("count", [0, 1])
def test_an_empty_or_single_record_chain_verifies(db: Database, count: int) -> None:
    with db.session() as session:
        append(session, entries(count))
        assert verify_chain(session).ok

"""The audit log: SM3-chained, append-only, tamper-evident, batched, and masked."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select, text, update

from shgov import migrations
from shgov.core.audit.models import AuditRecord
from shgov.core.audit.service import GENESIS, AuditEntry, AuditWriter, append, count_records, sm3, verify_chain
from shgov.core.db import Database, make_engine

TokenFor = Callable[[str], str]


def entries(n: int, action: str = "test.thing.read") -> list[AuditEntry]:
    return [AuditEntry(action=action, actor_name=f"user{i}", object_id=str(i), details={"i": i}) for i in range(n)]


def test_sm3_is_the_standard_digest() -> None:
    # GB/T 32905-2016, example 1
    assert sm3(b"abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3(b"abc") == hashlib.new("sm3", b"abc").hexdigest()


def test_records_are_chained_and_verify(db: Database) -> None:
    with db.session() as session:
        before = count_records(session)
        append(session, entries(5))
        result = verify_chain(session)
        records = session.scalars(select(AuditRecord).order_by(AuditRecord.seq)).all()
    assert result.ok
    assert result.checked == before + 5
    assert records[0].prev_hash == GENESIS or before > 0
    for earlier, later in itertools.pairwise(records):
        assert later.prev_hash == earlier.hash


def test_altering_a_record_in_the_database_is_detected(db: Database) -> None:
    with db.session() as session:
        append(session, entries(5))
        target = session.scalar(select(func.min(AuditRecord.seq))) + 2
        session.execute(update(AuditRecord).where(AuditRecord.seq == target).values(actor_name="someone else"))
        result = verify_chain(session)
    assert not result.ok
    assert result.first_broken_seq == target
    assert "content" in result.reason


def test_deleting_a_record_is_detected(db: Database) -> None:
    with db.session() as session:
        append(session, entries(5))
        target = session.scalar(select(func.min(AuditRecord.seq))) + 1
        session.execute(delete(AuditRecord).where(AuditRecord.seq == target))
        result = verify_chain(session)
    assert not result.ok
    assert result.first_broken_seq == target
    assert "missing" in result.reason


def test_cutting_the_tail_is_detected(db: Database) -> None:
    with db.session() as session:
        append(session, entries(3))
        last = session.scalar(select(func.max(AuditRecord.seq)))
        session.execute(delete(AuditRecord).where(AuditRecord.seq == last))
        result = verify_chain(session)
    assert not result.ok
    assert result.first_broken_seq == last


def test_rewriting_a_record_with_a_fresh_hash_breaks_the_next_link(db: Database) -> None:
    with db.session() as session:
        append(session, entries(4))
        first = session.scalar(select(func.min(AuditRecord.seq)))
        record = session.get(AuditRecord, first)
        assert record is not None
        record.actor_name = "forger"
        from shgov.core.audit.service import chain_hash

        record.hash = chain_hash(record.prev_hash, record)
        session.flush()
        result = verify_chain(session)
    assert not result.ok
    assert result.first_broken_seq == first + 1


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


def test_the_writer_batches_concurrent_records_into_one_chain(db: Database) -> None:
    writer = AuditWriter(db, max_batch=50)
    with db.session() as session:
        before = count_records(session)

    def burst() -> None:
        for entry in entries(40):
            writer.record(entry)

    threads = [threading.Thread(target=burst) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert writer.pending == 200
    assert writer.flush() == 200
    assert writer.pending == 0
    with db.session() as session:
        assert count_records(session) == before + 200
        assert verify_chain(session).ok


def test_the_writer_flushes_on_a_timer_and_on_stop(db: Database) -> None:
    writer = AuditWriter(db, interval=0.05)
    with db.session() as session:
        before = count_records(session)

    async def scenario() -> None:
        await writer.start()
        writer.record(AuditEntry(action="test.timer.tick"))
        await asyncio.sleep(0.3)
        assert writer.pending == 0
        writer.record(AuditEntry(action="test.timer.last"))
        await writer.stop()

    asyncio.run(scenario())
    with db.session() as session:
        assert count_records(session) == before + 2


def test_n_audited_requests_produce_exactly_n_records(
    client: httpx.Client, app: FastAPI, token_for: TokenFor, db: Database
) -> None:
    headers = {"Authorization": f"Bearer {token_for('admin')}"}
    me = client.get("/api/v1/identity/me", headers=headers).json()
    app.state.audit.flush()
    with db.session() as session:
        before = session.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "identity.user.read")
        )
    n = 17
    for _ in range(n):
        assert client.get(f"/api/v1/identity/users/{me['id']}", headers=headers).status_code == 200
    assert app.state.audit.flush() >= n
    with db.session() as session:
        after = session.scalar(
            select(func.count()).select_from(AuditRecord).where(AuditRecord.action == "identity.user.read")
        )
        assert after - before == n
        assert verify_chain(session).ok


def test_the_audit_api_needs_the_auditor_role(client: httpx.Client, app: FastAPI, token_for: TokenFor) -> None:
    client.post("/api/v1/auth/token", data={"grant_type": "password", "username": "admin", "password": "wrong-one"})
    app.state.audit.flush()
    auditor = {"Authorization": f"Bearer {token_for('auditor')}"}
    records = client.get("/api/v1/audit/records", headers=auditor)
    assert records.status_code == 200
    denied = [r for r in records.json() if r["action"] == "auth.token.issue" and r["outcome"] == "denied"]
    assert denied
    verified = client.post("/api/v1/audit/verify", headers=auditor)
    assert verified.json()["ok"] is True
    window = {"Authorization": f"Bearer {token_for('pudong.window')}"}
    assert client.get("/api/v1/audit/records", headers=window).status_code == 403


def test_the_cli_names_the_first_broken_record(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shgov.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        migrations.upgrade(conn)
    with Database(engine).session() as session:
        append(session, entries(6))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHGOV_")}
    env.update({"SHGOV_ENV": "dev", "SHGOV_DATA_DIR": str(tmp_path)})
    command = [sys.executable, "-m", "shgov.cli", "audit", "verify"]
    ok = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "6 records verified" in ok.stdout
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET outcome = 'ok', details = '{\"i\": 99}' WHERE seq = 4"))
    engine.dispose()
    broken = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert broken.returncode == 1
    assert "record 4" in broken.stderr


@pytest.mark.parametrize("count", [0, 1])
def test_an_empty_or_single_record_chain_verifies(db: Database, count: int) -> None:
    with db.session() as session:
        append(session, entries(count))
        assert verify_chain(session).ok

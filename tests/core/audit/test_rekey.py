"""A chain written before the key (plain SM3) is keyed once, after checking it; a broken one, one that lost its
key id while checkpoints exist, and a process holding another key are refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from shgov import migrations
from shgov.core.audit import checkpoints
from shgov.core.audit.chain import GENESIS, canonical_values, plain_hash
from shgov.core.audit.keys import ChainKey
from shgov.core.audit.models import AuditHead, AuditRecord
from shgov.core.audit.service import (
    AuditEntry,
    AuditLog,
    ChainKeyMismatchError,
    ChainNotKeyedError,
    LegacyChainBrokenError,
    append,
    ensure_keyed,
)
from shgov.core.audit.verify import verify_chain
from shgov.core.db import Database, make_engine
from tests.conftest import make_settings

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def legacy(tmp_path: Path) -> Iterator[tuple[Database, AuditLog]]:
    """A migrated SQLite database holding five records chained the old way (plain SM3, no key id)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'shgov.db'}")
    with engine.begin() as conn:
        migrations.upgrade(conn)
    db = Database(engine)
    prev = GENESIS
    with db.session() as session:
        for seq in range(1, 6):
            row = {
                "seq": seq,
                "id": uuid.uuid4(),
                "ts": T0 + timedelta(minutes=seq),
                "actor_id": None,
                "actor_name": f"clerk{seq}",
                "tenant_code": "310000",
                "department_code": None,
                "action": "legacy.thing.read",
                "object_type": None,
                "object_id": str(seq),
                "outcome": "ok",
                "ip": None,
                "details": {"seq": seq},
            }
            row["prev_hash"], row["hash"] = prev, plain_hash(prev, canonical_values(row))
            prev = row["hash"]
            session.execute(insert(AuditRecord), [row])
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_seq=5, last_hash=prev))
    yield db, AuditLog(make_settings(tmp_path))
    engine.dispose()


def test_an_unkeyed_chain_is_verified_then_rehashed_under_the_key(legacy: tuple[Database, AuditLog]) -> None:
    db, audit_log = legacy
    with db.session() as session:
        old_head = session.scalar(select(AuditHead.last_hash))
        before = verify_chain(session, audit_log.key, audit_log.checkpoint_dir, None)
    # Before keying, verify says what it sees: hashes made with plain SM3, and a head that names no key.
    assert [(f.kind, f.seq, f.last_seq) for f in before.findings] == [("rewritten", 1, 5), ("not_keyed", None, None)]
    assert "audit rekey" in before.findings[1].en
    result = ensure_keyed(db, audit_log)
    assert result is not None
    assert (result.records, result.legacy_head, result.broken_at) == (5, old_head, None)
    assert ensure_keyed(db, audit_log) is None  # once
    with db.session() as session:
        verified = verify_chain(session, audit_log.key, audit_log.checkpoint_dir, None)
        rekey = session.scalars(select(AuditRecord).where(AuditRecord.action == "audit.log.rekey")).one()
        head = session.get(AuditHead, 1)
    assert verified.ok, [f.en for f in verified.findings]
    assert verified.checked == 6
    assert rekey.details == {"records": 5, "legacy_head": old_head}
    assert head is not None
    assert head.key_id == audit_log.key.key_id


def test_a_broken_unkeyed_chain_is_not_keyed(legacy: tuple[Database, AuditLog]) -> None:
    db, audit_log = legacy
    with db.session() as session:
        session.execute(update(AuditRecord).where(AuditRecord.seq == 3).values(actor_name="someone else"))
    with pytest.raises(LegacyChainBrokenError) as refused:
        ensure_keyed(db, audit_log)
    assert refused.value.seq == 3
    with db.session() as session:
        assert session.scalar(select(AuditHead.key_id)) is None  # nothing was rewritten


def test_an_unkeyed_head_beside_signed_checkpoints_is_taken_for_tampering(legacy: tuple[Database, AuditLog]) -> None:
    db, audit_log = legacy
    audit_log.checkpoint_dir.mkdir(parents=True)
    (audit_log.checkpoint_dir / "2026-11-20.jsonl").write_text("{}\n")
    assert checkpoints.files(audit_log.checkpoint_dir)
    with pytest.raises(ChainNotKeyedError):
        ensure_keyed(db, audit_log)


def test_writes_refuse_an_unkeyed_chain_and_another_key(legacy: tuple[Database, AuditLog]) -> None:
    db, audit_log = legacy
    entry = AuditEntry(action="test.thing.read", ts=T0)
    with pytest.raises(ChainNotKeyedError), db.session() as session:
        append(session, [entry], audit_log.key)
    ensure_keyed(db, audit_log)
    with pytest.raises(ChainKeyMismatchError), db.session() as session:
        append(session, [entry], ChainKey(b"another installation's chain key!!"))
    with db.session() as session:
        assert append(session, [entry], audit_log.key) == 1

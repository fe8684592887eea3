"""Every way of tampering with the audit log that someone with write access to the database has — edit,
delete, cut the tail (and move the head back), reorder, rewrite with plain SM3 or another key, move the
head, forge a checkpoint — is found by ``verify_chain``, which names the first bad record or the range."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.orm import Session

from shgov.core import sm2
from shgov.core.audit import checkpoints
from shgov.core.audit.chain import canonical, keyed_hash, plain_hash
from shgov.core.audit.keys import ChainKey, CheckpointKey
from shgov.core.audit.models import AuditHead, AuditRecord
from shgov.core.audit.service import AuditEntry, append, current
from shgov.core.audit.verify import Verification, verify_chain
from shgov.core.db import Database

RECORDS: Table = AuditRecord.__table__  # type: ignore[assignment]
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@dataclass
class Chain:
    """Ten records appended after whatever the seeded log holds, and a place for signed checkpoints."""

    db: Database
    key: ChainKey
    first: int
    last: int
    folder: Path
    signer: CheckpointKey

    def verify(self) -> Verification:
        with self.db.session() as session:
            return verify_chain(session, self.key, self.folder, self.signer.public_hex)

    def checkpoint(self, at: datetime = T0) -> checkpoints.Checkpoint | None:
        return checkpoints.Checkpointer(
            self.db, self.folder, self.key, lambda: self.signer, clock=lambda: at
        ).checkpoint()

    def row(self, session: Session, seq: int) -> dict[str, Any]:
        return dict(session.execute(select(RECORDS).where(RECORDS.c.seq == seq)).mappings().one())


@pytest.fixture
def chain(db: Database, tmp_path: Path) -> Chain:
    key = current().key
    records = [
        AuditEntry(
            action="test.tamper.act",
            actor_name=f"clerk{i}",
            object_id=str(i),
            details={"i": i},
            ts=T0 + timedelta(seconds=i),
        )
        for i in range(10)
    ]
    with db.session() as session:
        append(session, records)
        last = int(session.scalar(select(func.max(AuditRecord.seq))) or 0)
    private = sm2.generate_private_key()
    return Chain(db, key, last - 9, last, tmp_path / "checkpoints", CheckpointKey(private, sm2.public_key(private)))


def only(result: Verification) -> tuple[str, int | None, int | None]:
    assert not result.ok
    assert len(result.findings) == 1, [f.en for f in result.findings]
    finding = result.findings[0]
    assert finding.zh
    assert finding.en
    return finding.kind, finding.seq, finding.last_seq


def test_an_untouched_chain_verifies_against_its_checkpoint(chain: Chain) -> None:
    written = chain.checkpoint()
    assert written is not None
    assert (written.seq, written.key) == (chain.last, chain.signer.key_id)
    assert chain.checkpoint() is None  # nothing new to sign
    result = chain.verify()
    assert result.ok, [f.en for f in result.findings]
    assert (result.checkpoints, result.last_checkpoint_seq) == (1, chain.last)


def test_an_edited_record_is_named(chain: Chain) -> None:
    target = chain.first + 3
    with chain.db.session() as session:
        session.execute(update(RECORDS).where(RECORDS.c.seq == target).values(actor_name="someone else"))
    assert only(chain.verify()) == ("edited", target, target)
    assert chain.verify().first_broken_seq == target


def test_an_edited_record_rehashed_without_the_key_is_named(chain: Chain) -> None:
    target = chain.first + 3
    wrong = ChainKey(b"a forger's guess at the key, 32+ bytes")
    with chain.db.session() as session:
        row = {**chain.row(session, target), "outcome": "denied"}
        forged = keyed_hash(wrong, row["prev_hash"], _content(row))
        session.execute(update(RECORDS).where(RECORDS.c.seq == target).values(outcome="denied", hash=forged))
    kind, seq, _ = only(chain.verify())
    assert (kind, seq) == ("edited", target)
    assert "re-hashed" in chain.verify().findings[0].en


@pytest.mark.parametrize("width", [1, 3])
def test_deleted_records_are_named_with_their_range(chain: Chain, width: int) -> None:
    first = chain.first + 4
    with chain.db.session() as session:
        session.execute(delete(AuditRecord).where(AuditRecord.seq.between(first, first + width - 1)))
    assert only(chain.verify()) == ("deleted", first, first + width - 1)


def test_a_cut_tail_is_named_from_the_head_row(chain: Chain) -> None:
    with chain.db.session() as session:
        session.execute(delete(AuditRecord).where(AuditRecord.seq > chain.last - 2))
    assert only(chain.verify()) == ("truncated", chain.last - 1, chain.last)


def test_a_cut_tail_with_the_head_moved_back_is_named_from_the_signed_checkpoint(chain: Chain) -> None:
    chain.checkpoint()
    with chain.db.session() as session:
        session.execute(delete(AuditRecord).where(AuditRecord.seq > chain.last - 2))
        end = chain.row(session, chain.last - 2)
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_seq=end["seq"], last_hash=end["hash"]))
    result = chain.verify()
    assert only(result) == ("truncated", chain.last - 1, chain.last)
    assert "checkpoint" in result.findings[0].en
    assert "签名检查点" in result.findings[0].zh


def test_a_checkpointer_does_not_sign_a_chain_shorter_than_it_signed(chain: Chain) -> None:
    chain.checkpoint()
    with chain.db.session() as session:
        session.execute(delete(AuditRecord).where(AuditRecord.seq == chain.last))
        end = chain.row(session, chain.last - 1)
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_seq=end["seq"], last_hash=end["hash"]))
    assert chain.checkpoint(T0 + timedelta(hours=1)) is None
    assert [c.seq for c in checkpoints.read(chain.folder, chain.signer.public_hex)[0]] == [chain.last]


def test_a_reordered_pair_is_named(chain: Chain) -> None:
    a, b = chain.first + 2, chain.first + 3
    with chain.db.session() as session:
        _swap(session, chain, a, b)
    assert only(chain.verify()) == ("reordered", a, b)
    assert "swapped" in chain.verify().findings[0].en


def test_a_deletion_hidden_by_renumbering_is_named(chain: Chain) -> None:
    gone = chain.first + 3
    with chain.db.session() as session:
        session.execute(delete(AuditRecord).where(AuditRecord.seq == gone))
        for moved in range(gone + 1, chain.last + 1):
            session.execute(update(RECORDS).where(RECORDS.c.seq == moved).values(seq=moved - 1))
        end = chain.row(session, chain.last - 1)
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_seq=end["seq"], last_hash=end["hash"]))
    assert only(chain.verify()) == ("deleted", gone, gone)
    assert "renumbered" in chain.verify().findings[0].en


@pytest.mark.parametrize("forger", ["plain SM3", "another key"])
def test_a_rewritten_chain_is_named(chain: Chain, forger: str) -> None:
    wrong = ChainKey(b"not the installation's chain key, 32+ bytes")
    start = chain.first + 5
    with chain.db.session() as session:
        prev = chain.row(session, start - 1)["hash"]
        for seq in range(start, chain.last + 1):
            row = {**chain.row(session, seq), "details": {"rewritten": True}}
            content = _content(row)
            new = plain_hash(prev, content) if forger == "plain SM3" else keyed_hash(wrong, prev, content)
            session.execute(
                update(RECORDS).where(RECORDS.c.seq == seq).values(details=row["details"], prev_hash=prev, hash=new)
            )
            prev = new
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=prev))
    result = chain.verify()
    assert only(result) == ("rewritten", start, chain.last)
    assert ("plain SM3" in result.findings[0].en) == (forger == "plain SM3")


def test_a_rewrite_made_with_the_key_itself_is_caught_by_the_checkpoint(chain: Chain) -> None:
    chain.checkpoint()
    target = chain.last  # an insider holding the key rewrites the newest record and the head
    with chain.db.session() as session:
        row = {**chain.row(session, target), "outcome": "denied"}
        new = keyed_hash(chain.key, row["prev_hash"], _content(row))
        session.execute(update(RECORDS).where(RECORDS.c.seq == target).values(outcome="denied", hash=new))
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=new))
    result = chain.verify()
    assert only(result) == ("rewritten", target, target)
    assert "checkpoint" in result.findings[0].en


def test_a_moved_head_is_named(chain: Chain) -> None:
    with chain.db.session() as session:
        back = chain.row(session, chain.last - 2)
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_seq=back["seq"], last_hash=back["hash"]))
    assert only(chain.verify()) == ("head_moved", chain.last - 1, chain.last)
    with chain.db.session() as session:
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(last_seq=chain.last, last_hash="f" * 64))
    assert only(chain.verify())[0] == "head_moved"


def test_a_forged_checkpoint_line_is_named(chain: Chain) -> None:
    chain.checkpoint()
    other = sm2.generate_private_key()
    forged = checkpoints.sign(
        CheckpointKey(other, sm2.public_key(other)), chain.key.key_id, chain.last + 50, "0" * 64, T0
    )
    checkpoints.write(chain.folder, forged)  # a checkpoint claiming more records, signed by another key
    result = chain.verify()
    kind, seq, _ = only(result)
    assert (kind, seq) == ("checkpoint", None)
    assert "line 2" in result.findings[0].en


def _content(row: dict[str, Any]) -> bytes:
    return canonical(type("Row", (), row)())


def _swap(session: Session, chain: Chain, a: int, b: int) -> None:
    """Exchange every column but ``seq`` of two records (their ids and hashes are unique: via placeholders)."""
    first, second = chain.row(session, a), chain.row(session, b)
    values = [c for c in first if c != "seq"]
    session.execute(update(RECORDS).where(RECORDS.c.seq == a).values(id=uuid.uuid4(), hash="x" * 64))
    session.execute(update(RECORDS).where(RECORDS.c.seq == b).values(**{c: first[c] for c in values}))
    session.execute(update(RECORDS).where(RECORDS.c.seq == a).values(**{c: second[c] for c in values}))

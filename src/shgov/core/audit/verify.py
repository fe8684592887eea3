"""Verifying the chain, and naming what was done to it.

The walk reads the records in sequence order once (a look-ahead of one), and checks for each record its
keyed hash (with the installation's chain key) and its link to the record before. What fails is named:

* **edited** — a record whose content no longer matches its hash, its neighbours intact;
* **deleted** — a gap in the sequence numbers (or records removed and the later ones renumbered);
* **reordered** — genuine records found at other positions (a swapped pair, say);
* **rewritten** — a run of records whose links hold but whose hashes were not made with the chain key:
  recomputed with plain SM3 (said so) or another key — or a record differing from a signed checkpoint;
* **truncated** — the chain ends before the head row or a signed checkpoint says it does (also when the
  head was moved back to match: the checkpoint, outside the database, still says where it ended);
* **head_moved** — the head row names another end than the chain's own;
* **checkpoint** — a line of the checkpoint files that is not a checkpoint signed by the installation;
* **not_keyed** — the head says the chain is keyed with another key (or not at all).

Each finding names the first bad sequence number (and the last of a range) in English and Chinese.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shgov.core.audit import checkpoints
from shgov.core.audit.chain import GENESIS, HASHED, canonical, canonical_values, keyed_hash, plain_hash
from shgov.core.audit.keys import ChainKey
from shgov.core.audit.models import AuditHead, AuditRecord

MAX_FINDINGS = 100
REORDER_WINDOW = 8  # how far from its place a moved record is looked for


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the log."""

    kind: str
    seq: int | None
    last_seq: int | None
    en: str
    zh: str

    def message(self) -> str:
        """The finding in both languages, Chinese first."""
        return f"{self.zh} / {self.en}"


@dataclass(frozen=True)
class Verification:
    """The result of walking the chain (``first_broken_seq`` and ``reason`` are the first finding's)."""

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str = ""
    findings: list[Finding] = field(default_factory=list)
    checkpoints: int = 0
    last_checkpoint_seq: int | None = None


def _span(first: int, last: int) -> str:
    return f"{first}" if first == last else f"{first}–{last}"


def _edited(seq: int, rehashed: bool) -> Finding:
    if rehashed:
        return Finding(
            "edited",
            seq,
            seq,
            f"record {seq} was altered and re-hashed without the chain key (the next record no longer links to it)",
            f"第 {seq} 条记录被篡改并以非本机密钥重算哈希（下一条记录已无法衔接）",
        )
    return Finding(
        "edited",
        seq,
        seq,
        f"record {seq} was edited: its content does not match its keyed hash",
        f"第 {seq} 条记录被篡改：内容与带密钥哈希不符",
    )


def _rewritten(first: int, last: int, plain: bool) -> Finding:
    how_en = "recomputed with plain SM3 (no key)" if plain else "not made with this installation's chain key"
    how_zh = "以无密钥的 SM3 重算" if plain else "并非以本机的链密钥生成"
    return Finding(
        "rewritten",
        first,
        last,
        f"records {_span(first, last)} were rewritten: their hashes link up but were {how_en}",
        f"第 {_span(first, last)} 条记录被整体重写：哈希虽首尾相接，但{how_zh}",
    )


def _deleted(first: int, last: int) -> Finding:
    return Finding(
        "deleted",
        first,
        last,
        f"records {first}–{last} are missing (deleted)" if first != last else f"record {first} is missing (deleted)",
        f"第 {_span(first, last)} 条记录缺失（被删除）",
    )


def _renumbered(first: int, gap: int) -> Finding:
    last = first + gap - 1
    return Finding(
        "deleted",
        first,
        last,
        f"record{'s' if gap > 1 else ''} {_span(first, last)} deleted, the later ones renumbered to close the gap",
        f"第 {_span(first, last)} 条记录被删除，其后记录被重新编号以掩盖缺口",
    )


def _reordered(positions: list[int]) -> Finding:
    first, last = min(positions), max(positions)
    if len(positions) == 2:
        en = f"records {positions[0]} and {positions[1]} are in swapped order"
        zh = f"第 {positions[0]} 条与第 {positions[1]} 条记录顺序被调换"
    else:
        en = f"records {_span(first, last)} are out of order"
        zh = f"第 {_span(first, last)} 条记录顺序被打乱"
    return Finding("reordered", first, last, en, zh)


def _broken_link(seq: int) -> Finding:
    return Finding(
        "edited",
        seq,
        seq,
        f"record {seq} does not link to the record before it (its previous-hash was changed)",
        f"第 {seq} 条记录与前一条记录无法衔接（前序哈希被改动）",
    )


class _Walk:
    """The state of one walk over the chain."""

    def __init__(self, key: ChainKey, signed: dict[int, checkpoints.Checkpoint]) -> None:
        self.key = key
        self.signed = signed
        self.findings: list[Finding] = []
        self.flagged: set[int] = set()  # seqs some finding covers (checkpoint mismatches there say nothing new)
        self.recent: dict[str, int] = {}  # hash → seq of the last few records (links into a reordering)
        self.run: tuple[int, int, bool] | None = None  # a run of re-hashed records: first, last, all plain SM3
        self.moved: list[tuple[int, int]] = []  # (position, original seq) of moved records in a row

    def add(self, finding: Finding) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(finding)
        if finding.seq is not None:
            self.flagged.update(range(finding.seq, (finding.last_seq or finding.seq) + 1))

    def close_run(self, next_links: bool | None) -> None:
        """End a run of records that fail the keyed hash while their links hold. One record whose successor
        still links to it was edited in place; anything longer (or plain SM3) was rewritten."""
        if self.run is None:
            return
        first, last, plain = self.run
        self.run = None
        if first == last and not plain:
            self.add(_edited(first, rehashed=next_links is False))
        else:
            self.add(_rewritten(first, last, plain))

    def close_moved(self) -> None:
        if not self.moved:
            return
        moved, self.moved = self.moved, []
        offsets = {original - position for position, original in moved}
        if len(offsets) == 1 and next(iter(offsets)) > 0 and len(moved) > 1:
            gap = next(iter(offsets))
            self.add(_renumbered(moved[0][0], gap))
        else:
            self.add(_reordered([position for position, _ in moved]))

    def keyed(self, record: AuditRecord, seq: int | None = None) -> bool:
        values: dict[str, Any] = {name: getattr(record, name) for name in HASHED}
        if seq is not None:
            values["seq"] = seq
        return keyed_hash(self.key, record.prev_hash, canonical_values(values)) == record.hash

    def original_seq(self, record: AuditRecord) -> int | None:
        """The sequence number a misplaced genuine record was written with (looked for near its position)."""
        for distance in range(1, REORDER_WINDOW + 1):
            for candidate in (record.seq + distance, record.seq - distance):
                if candidate >= 1 and self.keyed(record, candidate):
                    return candidate
        return None


def _peek(rows: Iterator[AuditRecord]) -> Iterator[tuple[AuditRecord, AuditRecord | None]]:
    current = next(rows, None)
    while current is not None:
        following = next(rows, None)
        yield current, following
        current = following


def verify_chain(
    session: Session,
    key: ChainKey | None = None,
    checkpoint_dir: Path | None = None,
    public_key: str | None = None,
) -> Verification:
    """Walk the whole chain under ``key`` (the configured key by default) and compare its end with the
    signed checkpoints of ``checkpoint_dir`` (with ``public_key``; both from the configuration by default)."""
    if key is None or (checkpoint_dir is None and public_key is None):
        from shgov.core.audit.service import current

        audit_log = current()
        key = key or audit_log.key
        if checkpoint_dir is None and public_key is None:
            checkpoint_dir = audit_log.checkpoint_dir
            public_key = audit_log.signer().public_hex if checkpoints.files(checkpoint_dir) else None
    signed_list: list[checkpoints.Checkpoint] = []
    bad_lines: list[checkpoints.BadLine] = []
    if checkpoint_dir is not None and public_key is not None:
        signed_list, bad_lines = checkpoints.read(checkpoint_dir, public_key)
    signed = {c.seq: c for c in signed_list if c.chain_key == key.key_id}
    walk = _Walk(key, signed)
    for line in bad_lines:
        walk.add(
            Finding(
                "checkpoint",
                None,
                None,
                f"checkpoint file {line.file} line {line.line}: {line.reason} (forged or damaged)",
                f"检查点文件 {line.file} 第 {line.line} 行：签名无效或格式错误（被伪造或损坏）",
            )
        )
    prev, expected, checked, last_hash = GENESIS, 1, 0, GENESIS
    rows = session.execute(select(AuditRecord).order_by(AuditRecord.seq).execution_options(yield_per=2000))
    for record, following in _peek(iter(rows.scalars())):
        checked += 1
        linked = True
        if record.seq > expected:
            walk.close_run(None)
            walk.close_moved()
            walk.add(_deleted(expected, record.seq - 1))
            linked = False  # the predecessor it links to is gone
        content_ok = keyed_hash(key, record.prev_hash, canonical(record)) == record.hash
        link_ok = not linked or record.prev_hash == prev
        original = None
        if not content_ok and (walk.moved or not link_ok):
            original = walk.original_seq(record)  # a genuine record out of its place?
        if content_ok and link_ok:
            walk.close_run(True)
            walk.close_moved()
        elif original is not None:
            walk.close_run(False)
            walk.moved.append((record.seq, original))
        elif not content_ok and link_ok:
            walk.close_moved()
            plain = plain_hash(record.prev_hash, canonical(record)) == record.hash
            if walk.run is None:
                walk.run = (record.seq, record.seq, plain)
            else:
                walk.run = (walk.run[0], record.seq, walk.run[2] and plain)
            if following is None or following.prev_hash != record.hash:
                walk.close_run(following.prev_hash == record.hash if following is not None else None)
        elif content_ok:  # genuine, but not after the record before it
            walk.close_run(False)
            consequence = record.prev_hash in walk.recent or walk.moved or record.seq - 1 in walk.flagged
            if not consequence:
                walk.add(_broken_link(record.seq))
            walk.close_moved()
        else:
            walk.close_run(False)
            walk.close_moved()
            walk.add(_edited(record.seq, rehashed=False))
        checkpoint = signed.get(record.seq)
        if checkpoint is not None and checkpoint.hash != record.hash and record.seq not in walk.flagged:
            walk.add(
                Finding(
                    "rewritten",
                    record.seq,
                    record.seq,
                    f"record {record.seq} differs from the signed checkpoint of {checkpoint.ts:%Y-%m-%d %H:%M:%S} UTC",
                    f"第 {record.seq} 条记录与 {checkpoint.ts:%Y-%m-%d %H:%M:%S} UTC 的签名检查点不符（被重写）",
                )
            )
        walk.recent[record.hash] = record.seq
        if len(walk.recent) > 4 * REORDER_WINDOW:
            walk.recent.pop(next(iter(walk.recent)))
        prev, last_hash, expected = record.hash, record.hash, record.seq + 1
    walk.close_run(None)
    walk.close_moved()
    end = expected - 1
    _check_end(session, walk, key, end, last_hash, signed_list)
    findings = walk.findings
    first = min((f.seq for f in findings if f.seq is not None), default=None)
    head_finding = findings[0] if findings else None
    first_finding = next((f for f in findings if f.seq == first), head_finding)
    return Verification(
        ok=not findings,
        checked=checked,
        first_broken_seq=first,
        reason=first_finding.en if first_finding else "",
        findings=findings,
        checkpoints=len(signed_list),
        last_checkpoint_seq=max((c.seq for c in signed_list), default=None),
    )


def _check_end(
    session: Session,
    walk: _Walk,
    key: ChainKey,
    end: int,
    last_hash: str,
    signed: list[checkpoints.Checkpoint],
) -> None:
    """The head row and the newest checkpoint against where the chain really ends."""
    head = session.execute(
        select(AuditHead.last_seq, AuditHead.last_hash, AuditHead.key_id).where(AuditHead.id == 1)
    ).first()
    head_seq = int(head.last_seq) if head is not None else 0
    furthest = max((c.seq for c in signed if c.chain_key == key.key_id), default=0)
    claimed = max(head_seq, furthest)
    if claimed > end:
        source_en = "a signed checkpoint" if furthest > head_seq else "the head row"
        source_zh = "签名检查点" if furthest > head_seq else "链头记录"
        walk.add(
            Finding(
                "truncated",
                end + 1,
                claimed,
                f"records {_span(end + 1, claimed)} are missing: the chain ends at {end} but {source_en} "
                f"says it reached {claimed} (tail deleted)",
                f"第 {_span(end + 1, claimed)} 条记录缺失：链止于第 {end} 条，"
                f"而{source_zh}表明已到第 {claimed} 条（尾部被删除）",
            )
        )
    elif head is None and end:
        walk.add(
            Finding(
                "head_moved",
                end,
                end,
                "the head row is missing",
                "链头记录缺失",
            )
        )
    elif head is not None and (head_seq < end or (head_seq == end and head.last_hash != last_hash)):
        walk.add(
            Finding(
                "head_moved",
                head_seq + 1 if head_seq < end else end,
                end,
                f"the head row was moved: it names record {head_seq} ({head.last_hash[:12]}…) but the chain "
                f"ends at {end} ({last_hash[:12]}…)",
                f"链头记录被移动：其指向第 {head_seq} 条，而链实际止于第 {end} 条",
            )
        )
    if head is not None and end and head.key_id is None:
        walk.add(
            Finding(
                "not_keyed",
                None,
                None,
                "the head says the chain is not keyed yet (written before migration 0024, or its key id was "
                "removed): `shgov audit rekey` keys a chain that holds under plain SM3",
                "链头表明此链尚未加密钥（0024 迁移前写入，或密钥标识被删除）：`shgov audit rekey` 可为完好的旧链加密钥",
            )
        )
    elif head is not None and end and head.key_id != key.key_id:
        walk.add(
            Finding(
                "not_keyed",
                None,
                None,
                f"the head says the chain is keyed with {head.key_id}, this installation's key is {key.key_id}",
                f"链头表明链密钥为 {head.key_id}，与本机密钥 {key.key_id} 不符",
            )
        )

"""Writing and verifying the audit chain.

Every record stores ``hash = SM3(prev_hash ‖ canonical JSON)`` of its content, so changing or
deleting any record — or cutting the tail, which the head row remembers — breaks the chain, and
``verify_chain`` names the first broken record. Personal data in ``details`` is masked before it is
hashed and stored.

Requests record through the ``AuditWriter``: entries queue in memory and are written in one
transaction per batch — every ``interval`` seconds, when ``max_batch`` are waiting, and on shutdown.
Writers in several processes serialise on the head row (``UPDATE … WHERE id = 1`` takes its lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import threading
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from shgov.core.audit.models import AuditHead, AuditRecord
from shgov.core.db import Database, utcnow
from shgov.core.ids import mask_personal

log = logging.getLogger("shgov.audit")

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    """What happened, by whom, to what; ``details`` is masked before storage."""

    action: str
    outcome: str = "ok"
    actor_id: str | None = None
    actor_name: str = ""
    tenant_code: str | None = None
    department_code: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    ip: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    ts: datetime = field(default_factory=utcnow)
    id: uuid.UUID = field(default_factory=uuid.uuid4)


def sm3(data: bytes) -> str:
    """The SM3 digest (GB/T 32905) of ``data`` in hex."""
    return hashlib.new("sm3", data).hexdigest()


_HASHED = (
    "seq",
    "id",
    "ts",
    "actor_id",
    "actor_name",
    "tenant_code",
    "department_code",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "ip",
    "details",
)


def _canonical(values: dict[str, Any]) -> bytes:
    content = {name: values[name] for name in _HASHED}
    content["id"] = str(content["id"])
    content["ts"] = content["ts"].isoformat(timespec="microseconds")
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def canonical(record: AuditRecord) -> bytes:
    """The hashed content of a record: every field but ``hash``, as sorted compact JSON."""
    return _canonical({name: getattr(record, name) for name in _HASHED})


def chain_hash(prev_hash: str, record: AuditRecord) -> str:
    """The hash a record must carry."""
    return sm3(prev_hash.encode() + canonical(record))


def _lock_head(session: Session) -> AuditHead:
    locked = session.execute(update(AuditHead).where(AuditHead.id == 1).values(updated_at=utcnow()))
    if locked.rowcount == 0:  # type: ignore[attr-defined]
        session.add(AuditHead(id=1, last_seq=0, last_hash=GENESIS))
        session.flush()
    head = session.get(AuditHead, 1, populate_existing=True)
    assert head is not None  # noqa: S101 - created above
    return head


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    """Write plain rows (ORM objects would cost more than hashing them): COPY on PostgreSQL, where the
    gateway writes thousands a second, else one executemany."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(insert(AuditRecord.__table__), rows)  # type: ignore[arg-type]
        return
    driver: Any = connection.connection.driver_connection  # psycopg's connection
    columns = list(rows[0])
    with driver.cursor() as cursor, cursor.copy(f"COPY audit_records ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([json.dumps(row[c], ensure_ascii=False) if c == "details" else row[c] for c in columns])


def append(session: Session, entries: Iterable[AuditEntry]) -> int:
    """Chain ``entries`` onto the log inside ``session``'s transaction; returns how many."""
    head = _lock_head(session)
    seq, prev = head.last_seq, head.last_hash
    rows: list[dict[str, Any]] = []
    for entry in entries:
        seq += 1
        row = {
            "seq": seq,
            "id": entry.id,
            "ts": entry.ts,
            "actor_id": entry.actor_id,
            "actor_name": entry.actor_name,
            "tenant_code": entry.tenant_code,
            "department_code": entry.department_code,
            "action": entry.action,
            "object_type": entry.object_type,
            "object_id": entry.object_id,
            "outcome": entry.outcome,
            "ip": entry.ip,
            "details": mask_personal(entry.details),
            "prev_hash": prev,
        }
        prev = row["hash"] = sm3(prev.encode() + _canonical(row))
        rows.append(row)
    if rows:
        _insert(session, rows)
    head.last_seq, head.last_hash = seq, prev
    session.flush()
    return len(rows)


@dataclass(frozen=True)
class Verification:
    """The result of walking the chain."""

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str = ""


def verify_chain(session: Session) -> Verification:
    """Walk the chain from the first record; report the first record that does not hold."""
    prev, expected_seq, checked = GENESIS, 1, 0
    rows = session.execute(select(AuditRecord).order_by(AuditRecord.seq).execution_options(yield_per=2000))
    for record in rows.scalars():
        if record.seq != expected_seq:
            return Verification(False, checked, expected_seq, f"record {expected_seq} is missing")
        if record.prev_hash != prev:
            return Verification(False, checked, record.seq, "its previous-hash does not match the record before it")
        if chain_hash(prev, record) != record.hash:
            return Verification(False, checked, record.seq, "its content does not match its hash")
        prev, expected_seq, checked = record.hash, expected_seq + 1, checked + 1
    head = session.get(AuditHead, 1)
    last_seq = head.last_seq if head else 0
    if last_seq != checked or (head is not None and head.last_hash != prev):
        return Verification(False, checked, checked + 1, f"the chain ends at {checked} but the head says {last_seq}")
    return Verification(True, checked)


def count_records(session: Session) -> int:
    """How many records the log holds."""
    return int(session.scalar(select(func.count()).select_from(AuditRecord)) or 0)


def daily_counts(
    session: Session, action: str, since: datetime, object_ids: Iterable[str] | None = None
) -> list[tuple[str, str | None, str | None, str, int]]:
    """(UTC day, caller's department, object, outcome, records) for ``action`` since ``since``."""
    day = (
        func.date(AuditRecord.ts)
        if session.get_bind().dialect.name == "sqlite"
        else func.to_char(AuditRecord.ts, "YYYY-MM-DD")
    )
    query = (
        select(day, AuditRecord.department_code, AuditRecord.object_id, AuditRecord.outcome, func.count())
        .where(AuditRecord.action == action, AuditRecord.ts >= since)
        .group_by(day, AuditRecord.department_code, AuditRecord.object_id, AuditRecord.outcome)
        .order_by(day)
    )
    if object_ids is not None:
        query = query.where(AuditRecord.object_id.in_(list(object_ids)))
    return [(str(d), dept, obj, outcome, int(n)) for d, dept, obj, outcome, n in session.execute(query)]


def records_of(
    session: Session, action: str, object_ids: Iterable[str] | None, before_seq: int | None, limit: int
) -> list[AuditRecord]:
    """The newest records of ``action`` (on some objects only, when given), paged by sequence number."""
    query = select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.seq.desc()).limit(limit)
    if object_ids is not None:
        query = query.where(AuditRecord.object_id.in_(list(object_ids)))
    if before_seq is not None:
        query = query.where(AuditRecord.seq < before_seq)
    return list(session.scalars(query))


class AuditWriter:
    """Queues entries and writes them in batches, one transaction per batch."""

    def __init__(self, db: Database, *, interval: float = 0.5, max_batch: int = 500) -> None:
        self.db = db
        self.interval = interval
        self.max_batch = max_batch
        self._queue: deque[AuditEntry] = deque()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def record(self, entry: AuditEntry) -> None:
        """Queue ``entry`` (thread-safe, never blocks on the database)."""
        with self._lock:
            self._queue.append(entry)
            full = len(self._queue) >= self.max_batch
        if full and self._loop is not None and self._wakeup is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wakeup.set)

    @property
    def pending(self) -> int:
        """Entries waiting to be written."""
        return len(self._queue)

    def flush(self) -> int:
        """Write everything queued now; on failure the entries go back to the queue and the error is raised."""
        written = 0
        with self._flush_lock:
            while True:
                with self._lock:
                    batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                if not batch:
                    return written
                try:
                    with self.db.session() as session:
                        written += append(session, batch)
                except Exception:
                    with self._lock:
                        self._queue.extendleft(reversed(batch))
                    raise

    async def run(self) -> None:
        """Flush every ``interval`` seconds or when a batch fills, until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.interval)
            self._wakeup.clear()
            try:
                await asyncio.to_thread(self.flush)
            except Exception:
                log.exception("audit flush failed; the entries stay queued and are retried")

    async def start(self) -> None:
        """Start the periodic flush."""
        self._task = asyncio.create_task(self.run(), name="audit-writer")

    async def stop(self) -> None:
        """Stop the periodic flush and write what is left."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await asyncio.to_thread(self.flush)

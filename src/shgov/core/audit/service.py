"""Writing the audit log: records chained onto the log in the transaction of the change they describe.

Every record stores ``hash = HMAC-SM3(chain key, prev_hash ‖ canonical JSON)`` (see ``chain``); the key is
kept outside the database (``keys``), and signed checkpoints of the chain's end are written to files outside
it (``checkpoints``), so someone who can write the database can neither edit, delete, reorder nor recompute
records, nor cut the newest ones, without ``verify`` naming it.

How records get written:

* ``append(session, entries)`` chains entries inside the caller's transaction: it locks the head row (the
  serialisation point of every writer, in every process), inserts the records and moves the head. The
  session hooks of ``capture`` call it at ``before_commit`` — as late as possible, so the head is held
  only for the commit itself — with the entries a request added (``identity.deps.audit``) and the changes
  the ORM flushed. A change and its record commit together or not at all.
* ``GroupCommit`` serves async callers that have no transaction of their own (the sharing gateway): each
  caller waits until its record is committed, and callers arriving while one transaction is being written
  share the next one — durable before the answer, at the gateway's rate.

Personal identifiers never reach the log in the clear: details are masked, and an object id (or a typed
user name) that is a 身份证号, credit code or mobile number is stored as its keyed digest (``h:…``) with its
masked form in the details, so an auditor can still find one person's records (``chain.search_form``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from shgov.core.audit import checkpoints
from shgov.core.audit.chain import (
    GENESIS,
    canonical,
    canonical_values,
    keyed_hash,
    plain_hash,
    protect,
    search_form,
    sm3,
)
from shgov.core.audit.keys import ChainKey, CheckpointKey, chain_key, checkpoint_key
from shgov.core.audit.models import AuditHead, AuditRecord
from shgov.core.db import Database, utcnow
from shgov.core.ids import mask_personal
from shgov.core.settings import Settings

__all__ = ["GENESIS", "AuditEntry", "AuditLog", "GroupCommit", "append", "sm3"]

log = logging.getLogger("shgov.audit")

# session.info: how many records this transaction appended (the checkpointer is told after commit)
APPENDED = "shgov.audit.appended"

_HEAD: Table = AuditHead.__table__  # type: ignore[assignment]
_RECORDS: Table = AuditRecord.__table__  # type: ignore[assignment]


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


class AuditNotConfiguredError(RuntimeError):
    """Records were to be written in a process that never said where the audit key is."""


class ChainKeyMismatchError(RuntimeError):
    """The chain was keyed with another key than this installation's (wrong key file or secret)."""


class ChainNotKeyedError(RuntimeError):
    """The chain holds records not yet keyed (written before 0024): ``shgov audit rekey`` keys them."""


class LegacyChainBrokenError(RuntimeError):
    """An unkeyed chain that does not verify is not keyed silently (that would bless the tampering)."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"the unkeyed chain is broken at record {seq}: {reason}")
        self.seq = seq
        self.reason = reason


# -- the process's configuration ---------------------------------------------------------------------------


class AuditLog:
    """This process's audit configuration: the chain key, where checkpoints go and who writes them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.key: ChainKey = chain_key(settings)
        security = settings.security
        self.checkpoint_dir: Path = security.audit_checkpoint_dir or settings.data_dir / "audit" / "checkpoints"
        self._signer: CheckpointKey | None = None
        self.checkpointer: checkpoints.Checkpointer | None = None

    def signer(self) -> CheckpointKey:
        """The checkpoint signing key (loaded, or created, on first use)."""
        if self._signer is None:
            self._signer = checkpoint_key(self.settings)
        return self._signer

    def start_checkpoints(self, database: Database | None = None, *, timer: bool) -> checkpoints.Checkpointer:
        """Write checkpoints from now on: with ``timer`` a thread also writes one every few seconds (a
        server); without, one is written when enough records were appended and at ``close`` (a command).
        Without ``database`` the checkpointer opens the configured database when it first needs it."""
        self.close()
        security = self.settings.security
        url = self.settings.database.url
        self.checkpointer = checkpoints.Checkpointer(
            database if database is not None else (lambda: Database.from_url(url, pool_size=1)),
            self.checkpoint_dir,
            self.key,
            self.signer,
            every_records=security.audit_checkpoint_records,
            every_seconds=security.audit_checkpoint_seconds,
        )
        if timer:
            self.checkpointer.start()
        return self.checkpointer

    def appended(self, count: int) -> None:
        """``count`` records were committed by this process."""
        if self.checkpointer is not None:
            self.checkpointer.poke(count)

    def close(self) -> None:
        """Stop checkpointing, writing the last checkpoint."""
        if self.checkpointer is not None:
            self.checkpointer.close()
            self.checkpointer = None


_current: AuditLog | None = None
_loader: Callable[[], AuditLog] | None = None
_config_lock = threading.Lock()


def configure(settings: Settings) -> AuditLog:
    """Make ``settings``' audit key (and checkpoint place) this process's; returns the configuration."""
    global _current
    audit_log = AuditLog(settings)
    with _config_lock:
        previous, _current = _current, audit_log
    if previous is not None:
        previous.close()
    return audit_log


def configure_lazily(loader: Callable[[], AuditLog]) -> None:
    """Configure with ``loader()`` when first needed (a command whose settings are read only if it runs)."""
    global _loader
    _loader = loader


def ensure_configured(settings: Settings) -> AuditLog:
    """The configuration in force, else ``settings``' (the seed: under a command or on its own)."""
    return _current if _current is not None else configure(settings)


def current() -> AuditLog:
    """This process's audit configuration; ``AuditNotConfiguredError`` when there is none."""
    global _current
    if _current is None:
        with _config_lock:
            if _current is None and _loader is not None:
                _current = _loader()
    if _current is None:
        raise AuditNotConfiguredError(
            "the audit log is not configured in this process (create_app, the shgov command and seed_demo "
            "configure it from the settings; scripts call shgov.core.audit.service.configure(settings))"
        )
    return _current


def active() -> AuditLog | None:
    """The configuration, or None (nothing is loaded to find out)."""
    return _current


def shutdown() -> None:
    """Write the last checkpoint of this process (the end of a command)."""
    if _current is not None:
        _current.close()


# -- appending ---------------------------------------------------------------------------------------------


def _lock_head(session: Session) -> tuple[int, str, str | None]:
    """Lock the head row (``UPDATE`` takes the row lock on PostgreSQL, the write lock on SQLite) and read it."""
    table = _HEAD
    now = utcnow()
    locking = update(table).where(table.c.id == 1).values(updated_at=now)
    row = session.execute(locking.returning(table.c.last_seq, table.c.last_hash, table.c.key_id)).first()
    if row is None:  # no head row (migration 0024 creates it): start one
        session.execute(insert(table).values(id=1, last_seq=0, last_hash=GENESIS, key_id=None, updated_at=now))
        return 0, GENESIS, None
    return int(row.last_seq), str(row.last_hash), row.key_id


def _move_head(session: Session, seq: int, hash_: str, key_id: str) -> None:
    table = _HEAD
    session.execute(update(table).where(table.c.id == 1).values(last_seq=seq, last_hash=hash_, key_id=key_id))


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    """Write plain rows (ORM objects would cost more than hashing them): COPY on PostgreSQL, where the
    gateway writes thousands a second, else one executemany."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(insert(_RECORDS), rows)
        return
    driver: Any = connection.connection.driver_connection  # psycopg's connection
    columns = list(rows[0])
    with driver.cursor() as cursor, cursor.copy(f"COPY audit_records ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([json.dumps(row[c], ensure_ascii=False) if c == "details" else row[c] for c in columns])


def _checked_key(key: ChainKey, key_id: str | None, last_seq: int) -> None:
    if key_id is None and last_seq:
        raise ChainNotKeyedError(
            f"the audit chain's {last_seq} records are not keyed yet: run `shgov audit rekey` "
            "(or `shgov db upgrade`, which does it)"
        )
    if key_id is not None and key_id != key.key_id:
        raise ChainKeyMismatchError(
            f"the audit chain is keyed with key {key_id}, this installation's key is {key.key_id}: "
            "check SHGOV_SECURITY__AUDIT_KEY / AUDIT_KEY_FILE"
        )


def _row(key: ChainKey, entry: AuditEntry, seq: int) -> dict[str, Any]:
    details = mask_personal(entry.details)
    object_id, object_masked = protect(key, entry.object_id)
    actor_name, actor_masked = protect(key, entry.actor_name)
    if object_masked is not None:
        details = {**details, "object_masked": object_masked}
    if actor_masked is not None:
        details = {**details, "actor_masked": actor_masked}
    return {
        "seq": seq,
        "id": entry.id,
        "ts": entry.ts,
        "actor_id": entry.actor_id,
        "actor_name": actor_name or "",
        "tenant_code": entry.tenant_code,
        "department_code": entry.department_code,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": object_id,
        "outcome": entry.outcome,
        "ip": entry.ip,
        "details": details,
    }


def append(session: Session, entries: Iterable[AuditEntry], key: ChainKey | None = None) -> int:
    """Chain ``entries`` onto the log inside ``session``'s transaction; returns how many."""
    batch = list(entries)
    if not batch:
        return 0
    key = key or current().key
    seq, prev, key_id = _lock_head(session)
    _checked_key(key, key_id, seq)
    rows: list[dict[str, Any]] = []
    for entry in batch:
        seq += 1
        row = _row(key, entry, seq)
        row["prev_hash"] = prev
        prev = row["hash"] = keyed_hash(key, prev, canonical_values(row))
        rows.append(row)
    _insert(session, rows)
    _move_head(session, seq, prev, key.key_id)
    session.info[APPENDED] = session.info.get(APPENDED, 0) + len(rows)
    return len(rows)


# -- keying a chain written before the key ------------------------------------------------------------------


@dataclass(frozen=True)
class Rekeyed:
    """What ``rekey`` did: how many records it rehashed, the unkeyed chain's last hash (written into the
    rekey's own record, so the old head stays on the record), and where a forced rekey found it broken."""

    records: int
    legacy_head: str
    broken_at: int | None = None


def rekey(session: Session, key: ChainKey, *, force: bool = False, page: int = 5000) -> Rekeyed | None:
    """Rehash an unkeyed (plain SM3) chain under ``key`` in this transaction; None when it is keyed already.

    The unkeyed chain is verified first: a broken one raises ``LegacyChainBrokenError`` unless ``force`` (the
    operator has looked, and the break is then recorded in the rekey's record)."""
    last_seq, last_hash, key_id = _lock_head(session)
    if key_id == key.key_id:
        return None
    if key_id is not None:
        raise ChainKeyMismatchError(f"the audit chain is keyed with key {key_id}; rotating keys is not supported")
    table = _RECORDS
    rewrite = update(table).where(table.c.seq == bindparam("s")).values(prev_hash=bindparam("p"), hash=bindparam("h"))
    old_prev, new_prev, expected, count, after = GENESIS, GENESIS, 1, 0, 0
    broken: tuple[int, str] | None = None
    while True:
        # Pages by key: no cursor stays open while the same rows are rewritten.
        rows = session.execute(select(table).where(table.c.seq > after).order_by(table.c.seq).limit(page)).all()
        if not rows:
            break
        changes: list[dict[str, Any]] = []
        for record in rows:
            content = canonical(record)
            if broken is None:
                if record.seq != expected:
                    broken = (expected, "missing")
                elif record.prev_hash != old_prev or plain_hash(old_prev, content) != record.hash:
                    broken = (record.seq, "its content or link does not match its hash")
            old_prev = record.hash
            new_hash = keyed_hash(key, new_prev, content)
            changes.append({"s": record.seq, "p": new_prev, "h": new_hash})
            new_prev, expected, count, after = new_hash, record.seq + 1, count + 1, record.seq
        session.connection().execute(rewrite, changes)
    if broken is None and (count != last_seq or old_prev != last_hash):
        broken = (count + 1, f"the chain ends at {count} but the head says {last_seq}")
    if broken is not None and not force:
        raise LegacyChainBrokenError(*broken)
    _move_head(session, after, new_prev, key.key_id)
    return Rekeyed(count, old_prev, broken[0] if broken else None)


def ensure_keyed(db: Database, audit_log: AuditLog) -> Rekeyed | None:
    """Key the chain at first start after migration 0024 (``shgov db upgrade`` and the server call this).

    Refused — ``ChainNotKeyedError`` — when checkpoints exist: a keyed installation never goes back to an unkeyed
    chain, so one that looks unkeyed had its key id removed, and keying it now would bless a rewrite.
    ``shgov audit verify`` first; ``shgov audit rekey --force`` only after that."""
    with db.session() as session:
        head = session.execute(select(AuditHead.last_seq, AuditHead.key_id).where(AuditHead.id == 1)).first()
        if head is None or head.key_id == audit_log.key.key_id:
            return None
        if head.key_id is None and head.last_seq and checkpoints.files(audit_log.checkpoint_dir):
            raise ChainNotKeyedError(
                "the audit head has lost its key id although signed checkpoints exist: the chain may have been "
                "rewritten. Run `shgov audit verify`; `shgov audit rekey --force` only after investigating"
            )
        result = rekey(session, audit_log.key)
        if result is not None and result.records:
            record_rekey(session, audit_log.key, result)
    if result is not None and result.records:
        log.warning("audit chain keyed: %s records rehashed under key %s", result.records, audit_log.key.key_id)
    return result


def record_rekey(session: Session, key: ChainKey, result: Rekeyed) -> None:
    """The rekey's own record, chained right after the rehashed records: it keeps the unkeyed head."""
    details: dict[str, Any] = {"records": result.records, "legacy_head": result.legacy_head}
    if result.broken_at is not None:
        details["legacy_broken_at"] = result.broken_at
    append(session, [AuditEntry(action="audit.log.rekey", object_type="audit_log", details=details)], key)


# -- reading -----------------------------------------------------------------------------------------------


def count_records(session: Session) -> int:
    """How many records the log holds."""
    return int(session.scalar(select(func.count()).select_from(AuditRecord)) or 0)


def _stored_ids(object_ids: Iterable[str]) -> list[str]:
    key = current().key
    return [search_form(key, value) for value in object_ids]


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
        query = query.where(AuditRecord.object_id.in_(_stored_ids(object_ids)))
    return [(str(d), dept, obj, outcome, int(n)) for d, dept, obj, outcome, n in session.execute(query)]


def records_of(
    session: Session, action: str, object_ids: Iterable[str] | None, before_seq: int | None, limit: int
) -> list[AuditRecord]:
    """The newest records of ``action`` (on some objects only, when given), paged by sequence number."""
    query = select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.seq.desc()).limit(limit)
    if object_ids is not None:
        query = query.where(AuditRecord.object_id.in_(_stored_ids(object_ids)))
    if before_seq is not None:
        query = query.where(AuditRecord.seq < before_seq)
    return list(session.scalars(query))


# -- group commit for async callers ---------------------------------------------------------------------------


_Waiting = tuple[AuditEntry, asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class GroupCommit:
    """Durable audit records for async callers without a transaction (the sharing gateway).

    ``await write(entry)`` returns once the record is committed: nothing is answered before its record is
    on disk, so a crash loses no record of an answered call. A writer thread takes whatever is waiting (up
    to ``max_batch``) into one transaction; callers arriving meanwhile share the next — batching as deep as
    the load. Under concurrency it lingers up to ``linger`` seconds for the callers of the last batch (like
    PostgreSQL's ``commit_delay``); a lone caller never waits. The thread ends when idle and starts again
    on demand."""

    def __init__(self, db: Database, *, max_batch: int = 500, linger: float = 0.001) -> None:
        self.db = db
        self.max_batch = max_batch
        self.linger = linger
        self._expected = 1
        self._connection: Connection | None = None
        self._queue: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    async def write(self, entry: AuditEntry) -> None:
        """Chain ``entry`` onto the log; returns when it is committed (raises what the commit raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._queue.put((entry, loop, future))
            if self._thread is None:
                # A thread of its own, not the caller's context: a request's unit of work (and its actor) must
                # not be joined by other requests' records.
                self._thread = threading.Thread(target=self._run, name="audit-group-commit", daemon=True)
                self._thread.start()
        await future

    def _gather(self, first: _Waiting) -> list[_Waiting]:
        """The next batch: what is waiting, and — when the last batch was shared — up to ``linger`` seconds more
        for as many callers as it had (the callers it answered come back about together; without the wait
        each commit would take only the first of them, and batches would shrink to one)."""
        batch = [first]
        deadline: float | None = None
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            if len(batch) >= self._expected:
                break
            now = time.monotonic()
            deadline = deadline if deadline is not None else now + self.linger
            if now >= deadline:
                break
            try:
                batch.append(self._queue.get(timeout=deadline - now))
            except queue.Empty:
                break
        self._expected = len(batch)
        return batch

    def _commit(self, entries: list[AuditEntry]) -> None:
        if self.db.dialect != "postgresql" or not isinstance(self.db.bind, Engine):
            with self.db.session() as session:
                append(session, entries)
            return
        # PostgreSQL: one connection kept by the thread. A pooled one would be pinged at every checkout — a
        # round trip per batch, which cost more than the batch's own statements.
        if self._connection is None:
            self._connection = self.db.engine.connect()
        try:
            with Session(bind=self._connection, expire_on_commit=False) as session:
                append(session, entries)
                session.commit()
        except Exception:
            self._disconnect()  # a broken connection is not reused
            raise

    def _disconnect(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        self._disconnect()
                        return
                continue
            batch = self._gather(first)
            error: BaseException | None = None
            try:
                self._commit([entry for entry, _, _ in batch])
            except Exception as exc:
                log.exception("audit group commit of %s records failed", len(batch))
                error = exc
            for _, loop, future in batch:
                with contextlib.suppress(RuntimeError):  # the caller's loop has closed
                    loop.call_soon_threadsafe(_settle, future, error)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)

"""Signed checkpoints: the chain's end, signed with the installation's SM2 key, in files outside the database.

A checkpoint says "record ``seq`` of this installation's chain carries ``hash``". The chain key stops a
database administrator from recomputing hashes; a checkpoint stops them from quietly *removing* the newest
records and moving the head row back to match (which leaves a chain that verifies): verification finds the
chain shorter than a checkpoint, or a record differing from one, and says so. It is the linear-chain form of
Certificate Transparency's signed tree heads.

Files are JSON lines, one file per UTC day (``<dir>/YYYY-MM-DD.jsonl``), only ever appended to (``O_APPEND``,
one ``write`` per line, ``fsync``), so closed days can be shipped to write-once storage. A line:
``{"seq", "hash", "ts", "chain_key", "key", "sig"}`` — ``sig`` is the SM2 signature (SM3, default ID) of the
line's other fields as canonical JSON; ``key`` names the signing key, ``chain_key`` the chain key.

A process writes one when ``every_records`` records were appended since its last, every ``every_seconds``
when it appended any (a background thread), and when it stops. It reads the end of the chain from the
database in a transaction of its own (so only committed records are signed), and signs it only when that
record carries its keyed hash and the chain has not become shorter than what it signed before.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shgov.core import sm2
from shgov.core.audit.chain import canonical, keyed_hash
from shgov.core.audit.keys import ChainKey, CheckpointKey
from shgov.core.audit.models import AuditHead, AuditRecord
from shgov.core.db import Database, utcnow

log = logging.getLogger("shgov.audit")


@dataclass(frozen=True)
class Checkpoint:
    """One signed statement about the chain's end."""

    seq: int
    hash: str
    ts: datetime
    chain_key: str
    key: str
    sig: str = ""

    def payload(self) -> bytes:
        """The signed bytes: every field but ``sig`` as sorted compact JSON."""
        body = {
            "seq": self.seq,
            "hash": self.hash,
            "ts": self.ts.isoformat(timespec="microseconds"),
            "chain_key": self.chain_key,
            "key": self.key,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def line(self) -> str:
        """The JSON line written to the file."""
        body = json.loads(self.payload())
        body["sig"] = self.sig
        return json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n"


def sign(signer: CheckpointKey, chain_key_id: str, seq: int, hash_: str, ts: datetime) -> Checkpoint:
    """A checkpoint of (``seq``, ``hash_``) signed by ``signer``."""
    unsigned = Checkpoint(seq, hash_, ts, chain_key_id, signer.key_id)
    return Checkpoint(seq, hash_, ts, chain_key_id, signer.key_id, signer.sign(unsigned.payload()))


def write(folder: Path, checkpoint: Checkpoint) -> Path:
    """Append ``checkpoint`` to its day's file (created when missing) and force it to the disk."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{checkpoint.ts.date().isoformat()}.jsonl"
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(handle, checkpoint.line().encode())  # one write: lines of several processes never interleave
        os.fsync(handle)
    finally:
        os.close(handle)
    return path


@dataclass(frozen=True)
class BadLine:
    """A line of a checkpoint file that is not a checkpoint signed by the expected key."""

    file: str
    line: int
    reason: str


def files(folder: Path) -> list[Path]:
    """The checkpoint files of ``folder``, oldest day first."""
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def _parse(raw: str) -> Checkpoint:
    data: dict[str, Any] = json.loads(raw)
    ts = datetime.fromisoformat(str(data["ts"]))
    if ts.tzinfo is None:
        raise ValueError("a checkpoint's time carries its zone")
    seq = data["seq"]
    if not isinstance(seq, int) or seq < 0:
        raise ValueError("seq is not a sequence number")
    return Checkpoint(seq, str(data["hash"]), ts, str(data["chain_key"]), str(data["key"]), str(data["sig"]))


def read(folder: Path, public_hex: str) -> tuple[list[Checkpoint], list[BadLine]]:
    """Every checkpoint of ``folder`` whose signature holds under ``public_hex``, and the lines that do not."""
    good: list[Checkpoint] = []
    bad: list[BadLine] = []
    for path in files(folder):
        for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                checkpoint = _parse(raw)
            except (ValueError, KeyError, TypeError) as exc:
                bad.append(BadLine(path.name, number, f"not a checkpoint ({exc})"))
                continue
            if not sm2.verify(public_hex, checkpoint.payload(), checkpoint.sig):
                bad.append(BadLine(path.name, number, "its signature does not verify"))
                continue
            good.append(checkpoint)
    return good, bad


def last_seq(folder: Path) -> int:
    """The highest sequence number the newest file's lines claim (0 without any), unverified: used only so a
    restarted process does not sign a chain shorter than before."""
    for path in reversed(files(folder)):
        for raw in reversed(path.read_text(encoding="utf-8", errors="replace").splitlines()):
            try:
                return _parse(raw).seq
            except (ValueError, KeyError, TypeError):
                continue
    return 0


class Checkpointer:
    """Writes this process's checkpoints (see the module's note): ``poke`` after appending, ``start`` for the
    timer thread of a server, ``close`` at the end."""

    def __init__(
        self,
        database: Database | Callable[[], Database],
        folder: Path,
        key: ChainKey,
        signer: Callable[[], CheckpointKey],
        *,
        every_records: int = 1000,
        every_seconds: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._database = database
        self._owned: Database | None = None
        self.folder = folder
        self.key = key
        self._signer = signer
        self.every_records = every_records
        self.every_seconds = every_seconds
        self.clock = clock
        self._pending = 0
        self._signed: int | None = None
        self._lock = threading.Lock()  # one checkpoint at a time in this process
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        """Records appended by this process since its last checkpoint."""
        return self._pending

    def poke(self, appended: int) -> None:
        """This process committed ``appended`` records: checkpoint now when enough are waiting (in the
        background when the timer thread runs, else here)."""
        self._pending += appended
        if self._pending < self.every_records:
            return
        if self._thread is not None:
            self._wake.set()
        else:
            self._safely()

    def start(self) -> None:
        """Start the thread that checkpoints every ``every_seconds`` (when records were appended)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="audit-checkpoints", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the thread and write the last checkpoint (when anything was appended since the previous)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join(timeout=30)
        if self._pending:
            self._safely()
        if self._owned is not None:
            self._owned.dispose()
            self._owned = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.every_seconds)
            self._wake.clear()
            if self._pending and not self._stop.is_set():
                self._safely()

    def _safely(self) -> None:
        try:
            self.checkpoint()
        except Exception:
            # A checkpoint missed is written with the next one; the records themselves are committed.
            log.exception("audit checkpoint failed")

    def _db(self) -> Database:
        if isinstance(self._database, Database):
            return self._database
        if self._owned is None:
            self._owned = self._database()
        return self._owned

    def checkpoint(self) -> Checkpoint | None:
        """Sign and write the committed end of the chain now; None when there is nothing new to sign."""
        with self._lock:
            taken = self._pending  # what arrives meanwhile waits for the next checkpoint
            if self._signed is None:
                self._signed = last_seq(self.folder)
            with self._db().session(write=False) as session:
                head = session.get(AuditHead, 1)
                if head is None or head.last_seq == 0:
                    return None
                seq, hash_, key_id = head.last_seq, head.last_hash, head.key_id
                record = session.get(AuditRecord, seq)
                holds = (
                    record is not None
                    and record.hash == hash_
                    and keyed_hash(self.key, record.prev_hash, canonical(record)) == hash_
                )
            if key_id != self.key.key_id or not holds:
                log.error("audit checkpoint refused: the chain's end (record %s) does not carry its keyed hash", seq)
                return None
            if seq < self._signed:
                log.error("audit checkpoint refused: the chain ends at %s but %s was signed before", seq, self._signed)
                return None
            if seq == self._signed:
                self._pending -= taken
                return None
            checkpoint = sign(self._signer(), self.key.key_id, seq, hash_, self.clock())
            write(self.folder, checkpoint)
            self._signed = seq
            self._pending -= taken
            return checkpoint

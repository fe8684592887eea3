"""The 灾备 drill's write load, shared by the backup bench and the backup tests: each unit is what the platform
writes in the course of a day — a signed licence, its audit record and an uploaded file — so a backup taken
while it runs must be consistent across the database, the keys and the file store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from shgov.core.audit import service as audit
from shgov.core.db import Database
from shgov.core.files import FileStore
from shgov.core.settings import Settings
from shgov.registers import service as registers

if TYPE_CHECKING:
    from typing import Self

SAFETY_SECONDS = 300  # only a broken drill waits this long for its writes


def write_batch(db: Database, settings: Settings, tag: str) -> str:
    """One unit of the platform's writing, tagged ``tag``; returns the licence number."""
    with db.session() as session:
        licence = registers.issue_licence(
            session,
            settings,
            licence_type="灾备演练证明",
            holder_id="310101199001011234",
            holder_name="演练人",
            issuer_department="310000.dsj",
            issuer_name="市大数据中心",
            particulars={"tag": tag},
            source_ref=f"drill:{tag}",
        )
        audit.append(session, [audit.AuditEntry(action="backup.drill", object_type="licence", object_id=tag)])
        number = licence.licence_no
    FileStore(settings.data_dir / "files").put(b"%PDF-1.4\n" + tag.encode(), f"{tag}.pdf", max_bytes=1 << 20)
    return number


class WriteLoad:
    """``write_batch`` over and over in a thread while inside ``with``; ``wait_for`` blocks until more have
    landed; an error in the thread is raised again at ``wait_for`` or at the end of the block."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db, self.settings = db, settings
        self.done = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def write(self, tag: str | None = None) -> str:
        """One unit now, from the calling thread (counted like the thread's)."""
        number = write_batch(self.db, self.settings, tag or f"load-{self.done}")
        with self._changed:
            self.done += 1
            self._changed.notify_all()
        return number

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.write()
        except BaseException as exc:
            with self._changed:
                self.error = exc
                self._changed.notify_all()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.error is not None:
            raise self.error

    def wait_for(self, more: int = 1) -> None:
        """Return once ``more`` units have been committed since the call."""
        with self._changed:
            target = self.done + more
            landed = self._changed.wait_for(
                lambda: self.done >= target or self.error is not None, timeout=SAFETY_SECONDS
            )
        if self.error is not None:
            raise self.error
        if not landed:
            raise TimeoutError(f"the drill's writes stopped landing ({self.done} of {target})")

    def during(self) -> Callable[[str], None]:
        """A progress hook for ``backup``: before each of its steps, more writes land — before the snapshot,
        and after it while the set is still being made."""
        return lambda _step: self.wait_for(1)

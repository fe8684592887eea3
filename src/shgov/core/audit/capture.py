"""Who is acting, and every change a transaction makes, recorded in that same transaction.

* **The actor** is a context variable: the request's authentication sets it to the caller
  (``identity.deps.optional_principal``; a request without one is ``anonymous``), the ``shgov`` command
  to ``cli:<OS user>`` for every command, the demo seed to ``seed``; everything else — event handlers,
  the sensing runtime, timers — is ``system``, the default.
* **Entries** a request adds (``record``) wait in the session and are chained onto the log by the
  ``before_commit`` hook, in the same transaction as the change they describe.
* **Changes** are captured below the contexts, so the API, the pages and the CLI record alike: after each
  flush the inserted, updated and deleted rows of the domain tables are tallied per (table, operation) —
  the primary keys (the first ``MAX_KEYS``), how many, and for updates the names of the changed columns,
  never a value. ORM-enabled ``session.execute(insert/update/delete)`` statements are tallied too;
  bulk paths below the ORM (COPY, ``exec_driver_sql``) call ``note_bulk``. At commit each tally becomes
  one record ``data.<table>.<operation>``. The log's own tables and bookkeeping (``NOT_AUDITED``) are left
  out by name.

A savepoint rolled back takes its entries and tallies with it; a transaction rolled back leaves nothing.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Mapper, ORMExecuteState, Session, SessionTransaction
from sqlalchemy.orm.base import NO_VALUE, instance_state

from shgov.core.audit.service import APPENDED, AuditEntry, active, append

# Tables whose writes are not recorded: the log itself, and bookkeeping that is not a decision of anyone's.
NOT_AUDITED = frozenset(
    {
        "audit_records",
        "audit_head",
        "event_outbox",  # the events of a change (the change itself is recorded)
        "event_deliveries",
        "access_tokens",  # issued and revoked are recorded by name (auth.token.*); last-used times are not
        "web_sessions",  # sign-in and sign-out are recorded by name (auth.login, auth.logout)
        "signin_throttle",  # failure counters; every refused sign-in is recorded by name (auth.*, denied)
        "catalog_search",  # the catalog's search index, rebuilt from the entries
        "opendata_usage",  # counters of calls and downloads
        "opendata_key_usage",
        "benefit_register_copies",  # copies of register versions made for evaluation
        "seed_records",  # which demo parts were seeded
    }
)
MAX_KEYS = 20

PENDING = "shgov.audit.pending"
CHANGES = "shgov.audit.changes"
MARKS = "shgov.audit.savepoints"


# -- the actor ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who the records of changes name."""

    name: str
    id: str | None = None
    tenant_code: str | None = None
    department_code: str | None = None
    ip: str | None = None


SYSTEM = Actor("system")
ANONYMOUS = Actor("anonymous")
SEED = Actor("seed")

_actor: ContextVar[Actor] = ContextVar("shgov_audit_actor", default=SYSTEM)


def current_actor() -> Actor:
    """The actor of the code running now (``system`` unless someone said otherwise)."""
    return _actor.get()


def set_actor(actor: Actor) -> Token[Actor]:
    """Make ``actor`` the actor of this context (a request's task, a command) until reset."""
    return _actor.set(actor)


def reset_actor(token: Token[Actor]) -> None:
    """Undo ``set_actor``."""
    _actor.reset(token)


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    """Run the block as ``actor``."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def cli_actor() -> Actor:
    """The actor of a ``shgov`` command: ``cli:<the operating-system user>``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container)
        user = str(os.getuid())
    return Actor(f"cli:{user}")


class ActorMiddleware:
    """Every HTTP request starts as ``anonymous`` (from its address) — not as whoever started the server —
    until its authentication names the caller."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        token = _actor.set(Actor(ANONYMOUS.name, ip=client[0] if client else None))
        try:
            await self.app(scope, receive, send)
        finally:
            _actor.reset(token)


# -- entries and tallies waiting in a session ----------------------------------------------------------------


@dataclass
class Tally:
    """The rows of one table one transaction inserted, updated or deleted."""

    count: int = 0
    keys: list[str] = field(default_factory=list)
    columns: set[str] = field(default_factory=set)
    statements: int = 0  # bulk statements among them
    uncounted: bool = False  # a statement whose rows were not counted (an UPDATE … WHERE)

    def copy(self) -> Tally:
        """A snapshot (for a savepoint)."""
        return Tally(self.count, list(self.keys), set(self.columns), self.statements, self.uncounted)


def record(session: Session, entry: AuditEntry) -> None:
    """Chain ``entry`` onto the log when ``session`` commits (and never if it rolls back)."""
    session.info.setdefault(PENDING, []).append(entry)


def _tally(session: Session, table: str, operation: str) -> Tally:
    tallies: dict[tuple[str, str], Tally] = session.info.setdefault(CHANGES, {})
    found = tallies.get((table, operation))
    if found is None:
        found = tallies[(table, operation)] = Tally()
    return found


def note_bulk(
    session: Session,
    table: str,
    operation: str,
    count: int | None,
    keys: Iterable[Any] = (),
    columns: Iterable[str] = (),
) -> None:
    """Count a bulk write the ORM does not see (COPY, ``exec_driver_sql``): ``count`` rows (None: not
    counted), some of their keys. Recorded with the transaction's other changes of ``table``."""
    if table in NOT_AUDITED:
        return
    tally = _tally(session, table, operation)
    tally.statements += 1
    if count is None:
        tally.uncounted = True
    else:
        tally.count += count
    for key in keys:
        if len(tally.keys) >= MAX_KEYS:
            break
        tally.keys.append(str(key))
    tally.columns.update(columns)


def summaries(session: Session) -> list[AuditEntry]:
    """The tallies of ``session``'s transaction as records (taken out of the session), actor of now."""
    tallies: dict[tuple[str, str], Tally] | None = session.info.pop(CHANGES, None)
    if not tallies:
        return []
    actor = current_actor()
    entries = []
    for (table, operation), tally in tallies.items():
        details: dict[str, Any] = {"count": tally.count, "keys": tally.keys}
        if tally.columns:
            details["columns"] = sorted(tally.columns)
        if tally.statements:
            details["statements"] = tally.statements
        if tally.uncounted:
            details["uncounted"] = True
        single = tally.keys[0] if tally.count == 1 and len(tally.keys) == 1 and not tally.uncounted else None
        entries.append(
            AuditEntry(
                action=f"data.{table}.{operation}",
                actor_id=actor.id,
                actor_name=actor.name,
                tenant_code=actor.tenant_code,
                department_code=actor.department_code,
                object_type=table,
                object_id=single,
                ip=actor.ip,
                details=details,
            )
        )
    return entries


# -- the hooks ---------------------------------------------------------------------------------------------


_tables: dict[Mapper[Any], tuple[str | None, frozenset[str]]] = {}


def _table_of(mapper: Mapper[Any]) -> tuple[str | None, frozenset[str]]:
    """The audited table of a mapper (None when not audited) and its column attributes (cached)."""
    found = _tables.get(mapper)
    if found is None:
        name = getattr(mapper.local_table, "name", None)
        found = (
            None if name is None or name in NOT_AUDITED else str(name),
            frozenset(a.key for a in mapper.column_attrs),
        )
        _tables[mapper] = found
    return found


def _key(mapper: Mapper[Any], obj: Any) -> str:
    values = mapper.primary_key_from_instance(obj)
    return str(values[0]) if len(values) == 1 else "/".join(str(v) for v in values)


def _changed(state: Any, columns: frozenset[str]) -> list[str]:
    # committed_state holds the value before the change of every attribute set since the last flush
    # (set to an equal value included): compare, so that only real changes are named.
    changed = []
    for name, before in state.committed_state.items():
        if name in columns and (before is NO_VALUE or before != state.dict.get(name, NO_VALUE)):
            changed.append(name)
    return changed


def _after_flush(session: Session, _context: Any) -> None:
    # After the statements ran (new rows have their keys) and before the session forgets what it flushed.
    for operation, objects in (("insert", session.new), ("update", session.dirty), ("delete", session.deleted)):
        for obj in objects:
            state = instance_state(obj)
            table, columns = _table_of(state.mapper)
            if table is None:
                continue
            changed: Sequence[str] = ()
            if operation == "update":
                changed = _changed(state, columns)
                if not changed:
                    continue
            tally = _tally(session, table, operation)
            tally.count += 1
            if len(tally.keys) < MAX_KEYS:
                tally.keys.append(_key(state.mapper, obj))
            tally.columns.update(changed)


def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    name = getattr(table, "name", None)
    if name is None or name in NOT_AUDITED:
        return
    operation = "insert" if state.is_insert else "update" if state.is_update else "delete"
    params = state.parameters
    rows: list[Any] = params if isinstance(params, list) else []
    keys: list[Any] = []
    primary = [c.key for c in getattr(table, "primary_key", ())]
    if rows and primary:
        for row in rows[:MAX_KEYS]:
            if isinstance(row, dict) and all(k in row for k in primary):
                keys.append("/".join(str(row[k]) for k in primary))
    if rows:
        count: int | None = len(rows)
    else:
        count = 1 if operation == "insert" else None  # an UPDATE/DELETE … WHERE: its rows are not counted
    note_bulk(state.session, str(name), operation, count, keys)


def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: its entries wait for the transaction's own commit
    # Flush first, so that the last changes are tallied; then lock the head, as late as the transaction allows.
    session.flush()
    entries: list[AuditEntry] = session.info.pop(PENDING, [])
    entries.extend(summaries(session))
    if entries:
        append(session, entries)


def _after_commit(session: Session) -> None:
    appended = session.info.pop(APPENDED, 0)
    audit_log = active()
    if appended and audit_log is not None:
        audit_log.appended(appended)


def _transaction_started(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        tallies: dict[tuple[str, str], Tally] = session.info.get(CHANGES, {})
        snapshot = (len(session.info.get(PENDING, ())), {k: t.copy() for k, t in tallies.items()})
        session.info.setdefault(MARKS, {})[transaction] = snapshot


def _rolled_back(session: Session, previous: SessionTransaction) -> None:
    if not previous.nested:
        return
    snapshot = session.info.get(MARKS, {}).pop(previous, None)
    if snapshot is not None:
        kept, tallies = snapshot
        del session.info.setdefault(PENDING, [])[kept:]
        session.info[CHANGES] = tallies


def _transaction_ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        for name in (PENDING, CHANGES, MARKS, APPENDED):
            session.info.pop(name, None)


def _install() -> None:
    if event.contains(Session, "before_commit", _before_commit):
        return
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _on_execute)
    event.listen(Session, "before_commit", _before_commit)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_transaction_create", _transaction_started)
    event.listen(Session, "after_soft_rollback", _rolled_back)
    event.listen(Session, "after_transaction_end", _transaction_ended)


_install()

"""At the window, the applicant is present: what window staff must prove before the form is prefilled with what
the government holds about a person, how far their reach goes, and the record of every look.

A clerk names the applicant by 身份证号 **and** one second factor that only the person in front of them has:

* the applicant's **name as registered** (read from the ID card the applicant hands over; compared with the
  person register's name, spaces and the middle dot ignored), or
* a **window code**: six digits the applicant's own account shows (``GET /api/v1/window-code``), valid for
  the five-minute step it was made in and the one before (an HMAC of the account and the step under the
  platform's secret key: nothing is stored).

A check that passes gives a **presence ticket** (HMAC of clerk, applicant and expiry; 30 minutes) that the
form carries on (refreshes, the submission), so the applicant is not asked again for the same form. The
ticket is bound to the clerk: it is worth nothing to another account.

The clerk then reaches only applicants registered where they serve (their window's tenant — a city
department's window serves the whole city, a district's the district), and every look — by name, by code
or by ticket — is recorded in the audit log in the transaction of the request that made it.

A check that fails (a wrong name or code, a forged ticket, an applicant out of reach) is recorded too
(``cases.applicant.lookup.refused``, outcome denied, with the reason), and wrong names and codes are
throttled like sign-ins (``core/identity/throttle``): per clerk, and per applicant with a short ceiling (so
that nobody can keep a person from being served for long), each key free for a few failures and then waiting
a doubling delay — 429 with ``Retry-After``. A refusal rolls the request back, so its record and its count
are written in a transaction of their own once the request's has ended.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, SessionTransaction

from shgov.core.audit import capture
from shgov.core.audit.service import AuditEntry
from shgov.core.db import Database, utcnow
from shgov.core.errors import ForbiddenError, InvalidError, NotFoundError
from shgov.core.i18n import N_
from shgov.core.identity import throttle
from shgov.core.identity.permissions import Principal, Scope
from shgov.core.identity.proofing import plain_name
from shgov.core.identity.service import accounts_by_key
from shgov.core.settings import Settings
from shgov.registers import service as registers

CODE_STEP_SECONDS = 300
TICKET_SECONDS = 30 * 60
LOOKUP_ACTION = "cases.applicant.lookup"
REFUSED_ACTION = "cases.applicant.lookup.refused"  # a failed check: nothing was looked at
REFUSED = N_(
    "The identity check failed: the ID number does not match the applicant's name (or the service code "
    "the applicant showed)"
)
# A clerk may mistype a few times; then each try waits longer (up to a quarter of an hour). One applicant's
# key waits at most a minute: it stops a code being guessed from many accounts without letting anyone keep
# the person from being served.
CLERK_RULE = throttle.Rule("presence-clerk", 5, timedelta(minutes=15))
APPLICANT_RULE = throttle.Rule("presence-applicant", 10, timedelta(seconds=60))
_PENDING = "shgov.presence.failures"


@dataclass(frozen=True)
class Proof:
    """What the clerk gives besides the ID number: the registered name, the applicant's window code, or the
    ticket of a check that passed for this form."""

    name: str = ""
    code: str = ""
    ticket: str = ""

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> Proof:
        """The proof fields of a form or query (``identity_name``, ``identity_code``, ``presence``)."""
        return cls(
            str(values.get("identity_name") or "").strip()[:60],
            str(values.get("identity_code") or "").strip()[:12],
            str(values.get("presence") or "").strip()[:120],
        )


PROOF_FIELDS = ("identity_name", "identity_code", "presence")


def _key(settings: Settings) -> bytes:
    return settings.secret_key.get_secret_value().encode()


def _mac(settings: Settings, *parts: str) -> str:
    return hmac.new(_key(settings), "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


def _now() -> int:
    return int(utcnow().timestamp())


def window_code(settings: Settings, user_id: uuid.UUID, at: int | None = None) -> tuple[str, datetime]:
    """The six-digit code an applicant's account shows now, and when it stops being accepted."""
    step = (at if at is not None else _now()) // CODE_STEP_SECONDS
    digest = _mac(settings, "window-code", str(user_id), str(step))
    return f"{int(digest[:12], 16) % 1_000_000:06d}", datetime.fromtimestamp((step + 2) * CODE_STEP_SECONDS, UTC)


def _code_matches(session: Session, settings: Settings, id_number: str, code: str) -> bool:
    now = _now()
    accounts = accounts_by_key(session, "citizen", [id_number]).get(id_number, [])
    return any(
        hmac.compare_digest(window_code(settings, account.id, now - back)[0], code)
        for account in accounts
        for back in (0, CODE_STEP_SECONDS)
    )


def issue_ticket(settings: Settings, principal: Principal, id_number: str) -> str:
    """A presence ticket for ``principal`` serving the applicant ``id_number`` (30 minutes)."""
    expires = _now() + TICKET_SECONDS
    return f"{expires}.{_mac(settings, 'presence', str(principal.user_id), id_number, str(expires))[:40]}"


def _ticket_valid(settings: Settings, principal: Principal, id_number: str, ticket: str) -> bool:
    expires, _, mac = ticket.partition(".")
    if not expires.isdigit() or int(expires) < _now() or int(expires) > _now() + TICKET_SECONDS:
        return False
    wanted = _mac(settings, "presence", str(principal.user_id), id_number, expires)[:40]
    return hmac.compare_digest(wanted, mac)


def serves(principal: Principal, action: str, district_code: str | None) -> bool:
    """Whether ``principal`` holds ``action`` where an applicant registered in ``district_code`` lives: a
    window's reach is its tenant (a department scope reaches its department's tenant and, for a city
    department, the districts under it)."""
    for scope in principal.scopes.get(action, []):
        reach = Scope(scope.tenant_code, None, True) if scope.department_code is not None else scope
        if reach.covers(district_code, None, principal.tenant_parents):
            return True
    return False


def _throttle_keys(principal: Principal, id_number: str) -> list[tuple[str, throttle.Rule]]:
    return [
        (throttle.key_of("presence-clerk", str(principal.user_id)), CLERK_RULE),
        (throttle.key_of("presence-applicant", id_number), APPLICANT_RULE),
    ]


def _entry(principal: Principal, id_number: str, details: dict[str, Any], outcome: str = "ok") -> AuditEntry:
    return AuditEntry(
        action=LOOKUP_ACTION if outcome == "ok" else REFUSED_ACTION,
        outcome=outcome,
        actor_id=str(principal.user_id),
        actor_name=principal.username,
        tenant_code=principal.tenant_code,
        department_code=principal.department_code,
        object_type="person",
        object_id=id_number,
        details=details,
    )


def _refused_later(session: Session, entry: AuditEntry, keys: list[tuple[str, throttle.Rule]] | None = None) -> None:
    """Record a refused check (and count it against ``keys``) in a transaction of its own, as soon as the
    request's transaction ends — rolled back by the refusal or, when the caller shows the form again,
    committed."""
    pending: list[tuple[AuditEntry, list[tuple[str, throttle.Rule]]]] = session.info.setdefault(_PENDING, [])
    if not pending and not event.contains(session, "after_commit", _write_refusals):
        event.listen(session, "after_commit", _write_refusals)
        event.listen(session, "after_soft_rollback", _write_refusals_after_rollback)
    pending.append((entry, keys or []))


def _write_refusals_after_rollback(session: Session, _previous: SessionTransaction) -> None:
    if not session.in_transaction():  # the request's own transaction ended, not a savepoint within it
        _write_refusals(session)


_databases: dict[int, Database] = {}


def _database_of(bind: Engine | Connection) -> Database:
    # A writer's session is bound to its engine with options; the write gate belongs to the engine itself.
    base = getattr(bind, "_proxied", bind)
    found = _databases.get(id(base))
    if found is None or found.bind is not base:
        found = _databases[id(base)] = Database(base)
    return found


def _write_refusals(session: Session) -> None:
    pending = session.info.pop(_PENDING, [])
    if not pending:
        return
    bind = session.get_bind()
    assert isinstance(bind, Engine | Connection)  # noqa: S101 - a session of the platform's database
    with _database_of(bind).session() as own:
        for entry, keys in pending:
            if keys:
                entry.details["retry_after"] = throttle.count_failure(own, keys)
            capture.record(own, entry)


def check(
    session: Session,
    settings: Settings,
    principal: Principal,
    action: str,
    id_number: str,
    proof: Proof,
) -> str:
    """Prove the applicant ``id_number`` is at ``principal``'s window and within its reach, record the look,
    and return a ticket for the rest of the form; ``ForbiddenError`` naming the field otherwise (recorded
    too), ``throttle.TooManyChecks`` (429) while the clerk or the applicant must wait after failed checks."""
    if not (proof.name or proof.code or proof.ticket):
        raise InvalidError(
            N_(
                "Please enter the name on the applicant's identity card, or the service code the applicant shows "
                "in their own account"
            ),
            field="identity_name",
        )
    field = "identity_code" if proof.code else "identity_name"
    keys = _throttle_keys(principal, id_number)
    wait = throttle.waiting(session, keys)
    if wait:
        _refused_later(session, _entry(principal, id_number, {"reason": "throttled", "retry_after": wait}, "denied"))
        raise throttle.TooManyChecks(wait, field)
    method = ""
    if proof.ticket and _ticket_valid(settings, principal, id_number, proof.ticket):
        method = "ticket"
    try:
        record = registers.find_person(
            session, registers.shared_reader(settings.lake_dir), id_number, ["name", "district_code"]
        )
    except NotFoundError:  # the person register is not built: nothing to prefill, nothing to reach
        record = None
    if not method and proof.code:
        method = "code" if _code_matches(session, settings, id_number, proof.code) else ""
    if not method and proof.name and record is not None:
        method = "name" if plain_name(str(record.get("name") or "")) == plain_name(proof.name) else ""
    if not method:
        # the same answer whether the person is unknown, the name wrong or the code stale: no oracle
        tried = "code" if proof.code else "name" if proof.name else "ticket"
        _refused_later(session, _entry(principal, id_number, {"reason": "mismatch", "method": tried}, "denied"), keys)
        raise ForbiddenError(REFUSED, field=field)
    if record is not None and not serves(principal, action, str(record.get("district_code") or "") or None):
        _refused_later(session, _entry(principal, id_number, {"reason": "out_of_reach", "method": method}, "denied"))
        raise ForbiddenError(
            N_(
                "This applicant is outside the area this window serves; please apply in the district of their "
                "household registration"
            ),
            field="applicant",
        )
    capture.record(session, _entry(principal, id_number, {"method": method}))
    return proof.ticket if method == "ticket" else issue_ticket(settings, principal, id_number)

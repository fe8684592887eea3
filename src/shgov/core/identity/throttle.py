"""Sign-in throttling shared by every server process: failures slow a key down, they never lock an account.

Three keys are counted for each attempt (see docs/identity.md):

* the **address** — one machine guessing many accounts;
* the **account at that address** — one machine guessing one account (the strict key);
* the **account anywhere** — many machines guessing one account (people only, with a short ceiling, so that
  nobody elsewhere can keep a person out for long; system clients have 256-bit secrets and skip it).

Each key allows some failures free, then waits a delay that doubles with every further failure up to a
ceiling; a key forgets its failures after a quiet hour. A waiting key answers 429 with ``Retry-After``
before any password is checked, and the answer does not depend on whether the account exists (keys are
made from the name typed, not the account found).

The counters live in the database (``signin_throttle``), so several worker processes agree. An attempt is
counted *before* its slow hash is checked (``begin``, a short writer transaction) and settled afterwards
(``settle``, another), so parallel guesses are all counted and no writer waits on argon2.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shgov.core.db import Database, utcnow
from shgov.core.errors import DomainError, Problem
from shgov.core.i18n import N_
from shgov.core.identity.models import SigninThrottle
from shgov.core.settings import SecuritySettings

ADDRESS_FREE_FAILURES = 10
ACCOUNT_WIDE_FACTOR = 4  # the account-anywhere key allows this many times the per-address failures
ACCOUNT_WIDE_MAX_DELAY = timedelta(seconds=60)
FORGET_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class Rule:
    """How one key is throttled: failures allowed free, then a delay doubling from one second to ``ceiling``."""

    name: str
    free: int
    ceiling: timedelta

    def delay(self, failures: int) -> timedelta:
        """The wait after ``failures`` counted failures (zero while within the free ones)."""
        excess = failures - self.free
        if excess <= 0:
            return timedelta(0)
        return min(self.ceiling, timedelta(seconds=2 ** min(excess - 1, 30)))


@dataclass(frozen=True)
class Keys:
    """The throttle keys of one attempt, each with its rule."""

    address: tuple[str, Rule]
    account: tuple[str, Rule]
    account_wide: tuple[str, Rule] | None

    def all(self) -> list[tuple[str, Rule]]:
        """Every key of the attempt."""
        keys = [self.address, self.account]
        if self.account_wide is not None:
            keys.append(self.account_wide)
        return keys


class Throttled(Exception):  # noqa: N818 - a signal, not a failure of the code
    """A key of the attempt is waiting; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; retry after {retry_after} s")
        self.retry_after = retry_after


class TooManyChecks(DomainError):  # noqa: N818 - named for what the caller sees
    """Too many failed identity checks (a clerk's proofing or presence checks, an applicant looked for): wait
    ``retry_after`` seconds. Answered 429 with ``Retry-After``."""

    slug = "too-many-requests"

    def __init__(self, retry_after: int, field: str) -> None:
        super().__init__(
            N_("Too many failed identity checks; try again in {retry_after} seconds."),
            field=field,
            retry_after=retry_after,
        )
        self.retry_after = retry_after

    def to_problem(self, locale: str = "en") -> Problem:
        """429 with ``Retry-After``."""
        problem = super().to_problem(locale)
        problem.headers["Retry-After"] = str(self.retry_after)
        return problem


def _digest(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}\x00{value}".encode()).hexdigest()


def keys_for(security: SecuritySettings, login: str, address: str | None, *, client: bool) -> Keys:
    """The keys of an attempt to sign in as ``login`` from ``address`` (``client``: a system client)."""
    name = login.strip().casefold()
    where = address or "-"
    ceiling = timedelta(minutes=security.lockout_minutes)
    return Keys(
        address=(_digest("address", where), Rule("address", ADDRESS_FREE_FAILURES, ceiling)),
        account=(_digest("account-at", f"{name}\x00{where}"), Rule("account", security.max_failed_logins, ceiling)),
        account_wide=None
        if client
        else (
            _digest("account", name),
            Rule("account-wide", security.max_failed_logins * ACCOUNT_WIDE_FACTOR, ACCOUNT_WIDE_MAX_DELAY),
        ),
    )


def _row(session: Session, key: str) -> SigninThrottle:
    row = session.get(SigninThrottle, key, with_for_update=True)
    if row is not None:
        return row
    try:
        with session.begin_nested():  # another process may insert the same key at the same moment
            row = SigninThrottle(key=key, failures=0)
            session.add(row)
    except IntegrityError:
        row = session.get(SigninThrottle, key, with_for_update=True, populate_existing=True)
        assert row is not None  # noqa: S101 - the insert failed because it exists
    return row


def _seconds(wait: timedelta) -> int:
    return max(1, math.ceil(wait.total_seconds()))


def _fresh(row: SigninThrottle, now: datetime) -> None:
    if row.last_failure_at is not None and now - row.last_failure_at >= FORGET_AFTER:
        row.failures = 0
        row.blocked_until = None


def begin(db: Database, keys: Keys) -> None:
    """Count the attempt as a failure until ``settle`` says otherwise; raise ``Throttled`` (counting
    nothing) when a key is still waiting."""
    with db.session() as session:
        now = utcnow()
        rows = [_row(session, key) for key, _rule in keys.all()]
        for row in rows:
            _fresh(row, now)
        waits = [row.blocked_until - now for row in rows if row.blocked_until is not None and row.blocked_until > now]
        if waits:
            raise Throttled(_seconds(max(waits)))
        for row in rows:
            row.failures += 1
            row.last_failure_at = now


def settle(db: Database, keys: Keys, outcome: str) -> int:
    """Settle a counted attempt: ``ok`` clears the account's keys (the address keeps its count less this
    attempt, so that one good account cannot launder a machine's guesses); ``neutral`` (a right password
    still missing its second factor) takes the attempt back; ``failed`` makes each key past its free
    failures wait. Returns the longest wait now in force, in seconds (0: none)."""
    with db.session() as session:
        now = utcnow()
        longest = timedelta(0)
        for key, rule in keys.all():
            row = _row(session, key)
            if outcome == "ok" and rule.name != "address":
                row.failures = 0
                row.blocked_until = None
            elif outcome in ("ok", "neutral"):
                row.failures = max(0, row.failures - 1)
            else:
                wait = rule.delay(row.failures)
                if wait:
                    row.blocked_until = max(row.blocked_until or now, now + wait)
                    longest = max(longest, row.blocked_until - now)
        return _seconds(longest) if longest else 0


def clear_account(session: Session, security: SecuritySettings, login: str) -> None:
    """Forget the account-anywhere failures of ``login`` (an administrator's unlock); per-address keys
    stay, so an attacker's machine remains slowed."""
    wide = keys_for(security, login, None, client=False).account_wide
    if wide is not None:
        row = session.get(SigninThrottle, wide[0])
        if row is not None:
            row.failures = 0
            row.blocked_until = None


# -- other guessing than sign-in (the window's presence check) ------------------------------------------
#
# The same counters, rules and growing delays, for checks made inside a request's unit of work: reading the
# wait costs no write; a failure is counted in a transaction of its own once the request's has ended (a
# refusal usually rolls the request back, and a count rolled back with it would count nothing).


def key_of(kind: str, value: str) -> str:
    """The stored key of ``value`` counted under ``kind`` (a digest: no name or number is kept)."""
    return _digest(kind, value)


def waiting(session: Session, keys: list[tuple[str, Rule]]) -> int:
    """Seconds until every key may try again (0: now), counting nothing."""
    now = utcnow()
    waits = []
    for key, _rule in keys:
        row = session.get(SigninThrottle, key)
        if row is None or (row.last_failure_at is not None and now - row.last_failure_at >= FORGET_AFTER):
            continue
        if row.blocked_until is not None and row.blocked_until > now:
            waits.append(row.blocked_until - now)
    return _seconds(max(waits)) if waits else 0


def count_failure(session: Session, keys: list[tuple[str, Rule]]) -> int:
    """Count one failure on each key; a key past its free failures waits (doubling). Returns the longest
    wait now in force, in seconds (0: none)."""
    now = utcnow()
    longest = timedelta(0)
    for key, rule in keys:
        row = _row(session, key)
        _fresh(row, now)
        row.failures += 1
        row.last_failure_at = now
        wait = rule.delay(row.failures)
        if wait:
            row.blocked_until = max(row.blocked_until or now, now + wait)
            longest = max(longest, row.blocked_until - now)
    return _seconds(longest) if longest else 0

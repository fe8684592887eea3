"""Failed presence checks at the window are recorded and throttled like sign-ins: a clerk guessing names or
window codes waits (429 with Retry-After) after a few failures, each refusal is in the audit log (committed
although the request is refused), and a right answer is refused too while the wait lasts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from shgov.cases import presence
from shgov.core.audit.models import AuditRecord
from shgov.core.db import Database
from shgov.lake.synthetic import SyntheticCity
from tests.cases.conftest import city, lake_dir, parent  # noqa: F401 - the cases context's fixtures
from tests.cases.test_window_presence import PREPARE, _clerk, _name

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)


def _refusals(db: Database) -> list[AuditRecord]:
    with db.session(write=False) as session:
        query = select(AuditRecord).where(AuditRecord.action == presence.REFUSED_ACTION).order_by(AuditRecord.seq)
        return list(session.scalars(query))


def test_a_clerk_guessing_codes_is_recorded_and_slowed_down(
    client: httpx.Client,
    parent: tuple[str, str, str],  # noqa: F811 - the fixture imported above
    city: SyntheticCity,  # noqa: F811
    lake_dir: Path,  # noqa: F811
    db: Database,
    later: Callable[[float], None],
) -> None:
    id_number, _token, district = parent
    clerk = {"Authorization": f"Bearer {_clerk(db, district)}"}
    answers = []
    for guess in range(presence.CLERK_RULE.free + 1):
        wrong = client.get(PREPARE, params={"applicant": id_number, "identity_code": f"{guess:06d}"}, headers=clerk)
        answers.append(wrong.status_code)
    assert answers == [403] * (presence.CLERK_RULE.free + 1)
    # Now the clerk waits, even with the right name: no answer is checked while the wait lasts.
    right = {"applicant": id_number, "identity_name": _name(city, id_number)}
    waiting = client.get(PREPARE, params=right, headers=clerk)
    assert waiting.status_code == 429, waiting.text
    assert int(waiting.headers["retry-after"]) >= 1
    assert waiting.json()["errors"][0]["field"] == "identity_name"
    assert "prefilled" not in waiting.text
    refusals = _refusals(db)
    assert len(refusals) == presence.CLERK_RULE.free + 2
    assert all(r.outcome == "denied" for r in refusals)
    assert [r.details["reason"] for r in refusals] == ["mismatch"] * (presence.CLERK_RULE.free + 1) + ["throttled"]
    assert all(id_number not in (r.object_id or "") for r in refusals)  # a keyed digest, as for every look
    assert refusals[-2].details["retry_after"] >= 1  # the failure that began the wait says so
    later(int(waiting.headers["retry-after"]) + 1)
    passed = client.get(PREPARE, params=right, headers=clerk)
    assert passed.status_code == 200, passed.text
    # The next wrong guess waits longer than the first (the delay doubles).
    client.get(PREPARE, params={"applicant": id_number, "identity_code": "999999"}, headers=clerk)
    again = client.get(PREPARE, params=right, headers=clerk)
    assert again.status_code == 429
    assert int(again.headers["retry-after"]) > int(waiting.headers["retry-after"])


def test_an_applicant_cannot_be_guessed_at_from_many_accounts(
    client: httpx.Client,
    parent: tuple[str, str, str],  # noqa: F811
    city: SyntheticCity,  # noqa: F811
    lake_dir: Path,  # noqa: F811
    db: Database,
) -> None:
    id_number, _token, district = parent
    tries = 0
    answer = 403
    for n in range(presence.APPLICANT_RULE.free + 1):
        with db.session() as session:
            from shgov.core.identity.permissions import Scope
            from shgov.core.identity.service import assign_role, create_user, issue_token

            user = create_user(
                session,
                kind="staff",
                username=f"window.many.{n}",
                display_name="窗口",
                password="Window#2026pass",
                tenant_code=district,
                department_code=f"{district}.mz",
            )
            assign_role(session, user.id, "window_clerk", Scope(district, f"{district}.mz"))
            token, _ = issue_token(session, user.id, "password", 3600)
        headers = {"Authorization": f"Bearer {token}"}
        for guess in range(2):  # within each clerk's free failures
            answer = client.get(
                PREPARE, params={"applicant": id_number, "identity_code": f"{n:04d}{guess:02d}"}, headers=headers
            ).status_code
            tries += 1
            if answer == 429:
                break
        if answer == 429:
            break
    assert answer == 429
    assert tries <= presence.APPLICANT_RULE.free + 2

"""Changes are recorded where they happen — by the API, the pages and the CLI alike — in the transaction that
makes them: committed together, rolled back together; keys and column names, never values; personal ids as
digests an auditor can still search by."""

from __future__ import annotations

import getpass
import json
import subprocess
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, insert, select

from shgov.core.audit import capture
from shgov.core.audit.chain import personal_id, protect
from shgov.core.audit.models import AuditRecord
from shgov.core.audit.service import AuditEntry, append, current
from shgov.core.audit.verify import verify_chain
from shgov.core.calendar.service import WorkdayOverride
from shgov.core.db import Database, make_engine
from shgov.core.events import OutboxEvent
from tests import city_clock
from tests.conftest import TEST_AUDIT_KEY

TokenFor = Callable[[str], str]
T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
NEW_YEAR = date(2031, 1, 1)


def records(db: Database, action: str) -> list[AuditRecord]:
    with db.session() as session:
        return list(session.scalars(select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.seq)))


def last_seq(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.max(AuditRecord.seq))) or 0)


def test_a_committed_change_has_its_record_in_the_same_transaction(db: Database) -> None:
    with db.session() as session:
        session.add(WorkdayOverride(day=NEW_YEAR, is_workday=False, name="元旦", loaded_at=T0))
    [record] = records(db, "data.workday_overrides.insert")
    assert (record.object_type, record.object_id) == ("workday_overrides", "2031-01-01")
    assert record.details == {"count": 1, "keys": ["2031-01-01"]}
    assert record.actor_name == "system"  # no one said otherwise


def test_a_rolled_back_change_leaves_no_record(db: Database) -> None:
    before = last_seq(db)
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(WorkdayOverride(day=NEW_YEAR, is_workday=False, name="元旦", loaded_at=T0))
        session.flush()  # written, tallied …
        raise RuntimeError("… and rolled back")
    assert last_seq(db) == before
    with db.session() as session:  # the same session object's next transaction starts clean
        session.add(WorkdayOverride(day=date(2031, 1, 2), is_workday=False, loaded_at=T0))
    [record] = records(db, "data.workday_overrides.insert")
    assert record.details["keys"] == ["2031-01-02"]


def test_a_rolled_back_savepoint_takes_its_changes_out_of_the_record(db: Database) -> None:
    with db.session() as session:
        savepoint = session.begin_nested()
        session.add(WorkdayOverride(day=NEW_YEAR, is_workday=False, loaded_at=T0))
        session.flush()
        savepoint.rollback()
        session.add(WorkdayOverride(day=date(2031, 1, 2), is_workday=False, loaded_at=T0))
    [record] = records(db, "data.workday_overrides.insert")
    assert record.details == {"count": 1, "keys": ["2031-01-02"]}


def test_updates_name_their_changed_columns_never_values(db: Database) -> None:
    with db.session() as session:
        session.add(WorkdayOverride(day=NEW_YEAR, is_workday=False, name="元旦", loaded_at=T0))
    with db.session() as session:
        day = session.get(WorkdayOverride, NEW_YEAR)
        assert day is not None
        day.name = "新年"
        day.is_workday = False  # set to what it was: not a change
    [record] = records(db, "data.workday_overrides.update")
    assert record.details == {"count": 1, "keys": ["2031-01-01"], "columns": ["name"]}
    assert "新年" not in json.dumps(record.details, ensure_ascii=False)


def test_bulk_statements_are_summarised_once_per_table_and_operation(db: Database) -> None:
    rows = [{"day": date(2031, 5, d), "is_workday": False, "name": "劳动节", "loaded_at": T0} for d in range(1, 4)]
    with db.session() as session:
        session.execute(insert(WorkdayOverride), rows[:2])
        session.execute(insert(WorkdayOverride), rows[2:])
        session.execute(
            WorkdayOverride.__table__.delete().where(WorkdayOverride.day == date(2031, 5, 3))  # type: ignore[attr-defined]
        )
    [inserted] = records(db, "data.workday_overrides.insert")
    assert inserted.details == {
        "count": 3,
        "keys": ["2031-05-01", "2031-05-02", "2031-05-03"],
        "statements": 2,
    }
    [deleted] = records(db, "data.workday_overrides.delete")
    assert deleted.details == {"count": 0, "keys": [], "statements": 1, "uncounted": True}
    assert inserted.seq + 1 == deleted.seq  # one transaction, one run of records


def test_bookkeeping_tables_are_not_recorded(db: Database) -> None:
    before = last_seq(db)
    with db.session() as session:
        session.add(OutboxEvent(type="test.happened", payload={}))
    assert last_seq(db) == before


def test_changes_are_recorded_as_the_actor_in_force(db: Database) -> None:
    with capture.acting_as(capture.Actor("cli:operator")), db.session() as session:
        session.add(WorkdayOverride(day=NEW_YEAR, is_workday=False, loaded_at=T0))
    [record] = records(db, "data.workday_overrides.insert")
    assert record.actor_name == "cli:operator"


def test_an_api_change_and_its_record_are_one_transaction_named_after_the_caller(
    client: httpx.Client, token_for: TokenFor, db: Database
) -> None:
    admin = {"Authorization": f"Bearer {token_for('admin')}"}
    body = {"days": [{"date": "2031-01-01", "kind": "holiday", "name": "元旦"}]}
    assert client.put("/api/v1/calendar/years/2031", json=body, headers=admin).status_code == 200
    [change] = records(db, "data.workday_overrides.insert")
    [named] = records(db, "calendar.schedule.load")
    assert change.actor_name == named.actor_name == "admin"
    assert change.actor_id == named.actor_id is not None
    assert change.ip == named.ip is not None
    with db.session() as session:  # chained at the one commit: one run of records
        run = session.scalars(
            select(AuditRecord.action).where(AuditRecord.seq.between(named.seq, change.seq)).order_by(AuditRecord.seq)
        ).all()
    assert run == ["calendar.schedule.load", "data.workday_overrides.delete", "data.workday_overrides.insert"]


def test_personal_identifiers_are_stored_as_digests_and_found_by_the_clear_value(
    client: httpx.Client, token_for: TokenFor, db: Database
) -> None:
    person, phone, company = "31010419900307123X", "13812345678", "91310115MA1K4ABC2X"
    with db.session() as session:
        append(
            session,
            [
                AuditEntry(action="test.person.read", object_type="person", object_id=person, actor_name=phone),
                AuditEntry(action="test.enterprise.read", object_type="enterprise", object_id=company),
            ],
        )
        stored = list(session.scalars(select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(2)))
    firm, who = stored
    assert who.object_id == current().key.digest(person)
    assert who.object_id.startswith("h:")
    assert who.actor_name.startswith("h:")
    assert who.details == {"object_masked": "3101**********123X", "actor_masked": "138****5678"}
    assert firm.details == {"object_masked": "91310115********2X"}
    for record in stored:
        text = json.dumps([getattr(record, c.key) for c in AuditRecord.__table__.c], default=str)
        assert person not in text
        assert phone not in text
        assert company not in text
    auditor = {"Authorization": f"Bearer {token_for('auditor')}"}
    # The auditor types the number as they have it (lower-case x, spaces): it is digested the same way.
    found = client.get("/api/v1/audit/records", params={"object_id": " 31010419900307123x "}, headers=auditor).json()
    assert [r["action"] for r in found] == ["test.person.read"]
    assert found[0]["details"]["object_masked"] == "3101**********123X"
    by_phone = client.get("/api/v1/audit/records", params={"object_id": phone}, headers=auditor).json()
    assert by_phone == []  # a phone typed as a user name is not an object id
    with db.session() as session:
        assert verify_chain(session).ok


def test_what_counts_as_a_personal_identifier() -> None:
    assert personal_id("31010419900307123x") == ("31010419900307123X", "3101**********123X")
    assert personal_id("+86 138-1234-5678") == ("13812345678", "138****5678")
    assert personal_id("91310115MA1K4ABC2X") == ("91310115MA1K4ABC2X", "91310115********2X")
    for other in ("310115", "0b6c2a5e-4a40-4d43-9b1c-8f3a0d6c9a11", "310000.ga", "population", "12345678901"):
        assert personal_id(other) is None
    key = current().key
    assert protect(key, "address 31010419900307123X") == ("address 3101**********123X", None)  # masked inside text


@pytest.mark.slow  # a whole-system run of processes: the gate runs it, the quick lane does not
def test_cli_write_commands_are_recorded_as_the_operating_system_user(tmp_path: Path) -> None:
    env = city_clock.cli_environment(tmp_path, SHGOV_SECURITY__AUDIT_KEY=TEST_AUDIT_KEY)

    def shgov(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*city_clock.command(), *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done

    shgov("db", "upgrade")
    schedule = tmp_path / "2031.csv"
    schedule.write_text("date,kind,name\n2031-01-01,holiday,元旦\n2031-01-04,workday,调休\n", encoding="utf-8")
    shgov("calendar", "load", "2031", str(schedule))
    engine = make_engine(f"sqlite:///{tmp_path / 'shgov.db'}")
    try:
        with Database(engine).session() as session:
            rows = session.execute(select(AuditRecord.action, AuditRecord.actor_name, AuditRecord.details)).all()
    finally:
        engine.dispose()
    by_action = {action: (actor, details) for action, actor, details in rows}
    assert by_action["data.workday_overrides.insert"] == (
        f"cli:{getpass.getuser()}",
        {"count": 2, "keys": ["2031-01-01", "2031-01-04"]},
    )
    assert by_action["data.workday_overrides.delete"][0] == f"cli:{getpass.getuser()}"
    # The command checkpointed the chain's end as it finished, and the chain verifies against it.
    assert list((tmp_path / "audit" / "checkpoints").glob("*.jsonl"))
    verified = shgov("audit", "verify")
    assert "the newest of 1 signed checkpoints" in verified.stdout

"""``shgov users proof``: in-person proofing from the command line binds an identity only as a clerk holding
``identity.user.proof``, only to a person account, only with the document confirmed — and it is audited."""

from __future__ import annotations

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from shgov.core.audit.models import AuditRecord
from shgov.core.db import Database
from shgov.core.identity import cli as identity_cli
from shgov.core.identity.models import User
from shgov.core.identity.service import create_user
from shgov.core.settings import Settings
from tests.core.identity.test_identity_proofing import OTHER_RESIDENT


@pytest.fixture
def users(monkeypatch: pytest.MonkeyPatch, settings: Settings, db: Database) -> typer.Typer:
    """``shgov users`` with the proofing command, on the test's settings and database."""
    monkeypatch.setattr(identity_cli, "load_settings", lambda: settings)
    monkeypatch.setattr(identity_cli, "open_database", lambda _settings: db)
    app = typer.Typer()
    identity_cli.add_commands(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps ``proof`` a named sub-command
        """Nothing."""

    return app


def _walk_in(db: Database) -> None:
    with db.session() as session:
        create_user(session, kind="citizen", username="walk.in", display_name="王五", password="Strong#Pass2026")


def _proof(app: typer.Typer, *extra: str, clerk: str = "pudong.window", username: str = "walk.in") -> int:
    args = ["proof", username, "--clerk", clerk, "--document-type", "resident_id_card", "--reason", "本人持证到窗口"]
    args += ["--name", "王五"]
    return CliRunner().invoke(app, [*args, *extra]).exit_code


def test_a_clerk_proves_an_identity_from_the_command_line(users: typer.Typer, db: Database) -> None:
    _walk_in(db)
    assert _proof(users, "--id-number", OTHER_RESIDENT) == 2  # the document was not confirmed
    assert _proof(users, "--id-number", OTHER_RESIDENT, "--document-checked") == 0
    with db.session() as session:
        user = session.scalar(select(User).where(User.username == "walk.in"))
        clerk = session.scalar(select(User.id).where(User.username == "pudong.window"))
        record = session.scalar(select(AuditRecord).where(AuditRecord.action == "identity.user.proof"))
    assert user is not None
    assert user.id_number == OTHER_RESIDENT
    assert user.identity_source == "proofing"
    assert user.identity_bound_by == clerk
    assert record is not None
    assert record.actor_name == "pudong.window"
    assert record.details["channel"] == "cli"
    assert record.details["document_type"] == "resident_id_card"
    assert OTHER_RESIDENT not in str(record.details)
    # Never replaced once bound.
    assert _proof(users, "--id-number", "31010419900307123X", "--document-checked") == 2


def test_only_a_proofing_clerk_binds_and_only_person_accounts(users: typer.Typer, db: Database) -> None:
    _walk_in(db)
    checked = ("--id-number", OTHER_RESIDENT, "--document-checked")
    assert _proof(users, *checked, clerk="pudong.admin") == 2  # administrators do not hold identity.user.proof
    assert _proof(users, *checked, clerk="nobody") == 2
    assert _proof(users, *checked, username="pudong.caseworker") == 2  # a staff account: out of reach
    assert _proof(users, *checked, username="no.such.person") == 2
    assert _proof(users, "--document-checked") == 2  # neither number
    with db.session() as session:
        assert session.scalar(select(User.id_number).where(User.username == "walk.in")) is None
        assert session.scalar(select(AuditRecord).where(AuditRecord.action == "identity.user.proof")) is None

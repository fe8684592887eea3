"""``shgov users proof``: the documented in-person proofing step from the command line (a window without the
web front end, or a batch of documents checked at the counter).

The same service as ``POST /api/v1/identity/users/{id}/identity`` (``core/identity/proofing``): a staff account
holding ``identity.user.proof`` (the clerk who held the original document) binds a 身份证号 to a citizen account
or a 统一社会信用代码 to an enterprise account when the name on the document is the register's, never their own,
never replacing an identity already bound; audited (refusals too) in the same transaction. The command's
operator is on the record too (the actor ``cli:<OS user>``).
"""

from __future__ import annotations

import typer
from sqlalchemy import select

from shgov.core.cli import console, fail, load_settings, open_database
from shgov.core.errors import DomainError, ForbiddenError, Problem
from shgov.core.i18n import DEFAULT_LOCALE, N_, gettext
from shgov.core.identity import proofing
from shgov.core.identity.access import may_proof_account
from shgov.core.identity.deps import access
from shgov.core.identity.models import User
from shgov.core.identity.service import principal_by_username


def proof_command(
    username: str = typer.Argument(..., help="the citizen or enterprise account to bind"),
    clerk: str = typer.Option(..., help="the staff account (holding identity.user.proof) that checked the document"),
    document_type: str = typer.Option(..., help="resident_id_card, temporary_id_card or business_licence"),
    name: str = typer.Option(..., help="the name as printed on the document (checked against the register)"),
    reason: str = typer.Option(..., help="why, kept in the audit log"),
    id_number: str | None = typer.Option(None, help="the 身份证号 on the document (citizen accounts)"),
    credit_code: str | None = typer.Option(None, help="the 统一社会信用代码 (enterprise accounts)"),
    document_checked: bool = typer.Option(
        False, "--document-checked", help="confirm the original was held and its photo compared with the person"
    ),
) -> None:
    """In-person proofing: bind the identity on a document checked at the window to an account (audited)."""
    if not document_checked:
        fail("not bound: confirm with --document-checked that the original document was checked in person", 2)
    settings = load_settings()
    db = open_database(settings)
    refused: str | None = None
    try:
        with db.session() as session:
            principal = principal_by_username(session, clerk, auth_method="cli")
            if principal is None or principal.kind != "staff":
                raise ForbiddenError(N_("{clerk} is not a staff account"), field="clerk", clerk=clerk)
            user = access(
                session, principal, session.scalar(select(User).where(User.username == username)), may_proof_account
            )
            document = proofing.Document(document_type, name, id_number, credit_code)
            refused = proofing.proof_in_person(
                session, settings, principal, user, document, reason=reason, channel="cli"
            )
    except DomainError as exc:
        fail(f"not bound: {exc.message}", 2)
    except Problem as exc:  # the access helper's 404: no such person account
        fail(f"not bound: no citizen or enterprise account {username!r} ({exc.detail_in('en')})", 2)
    finally:
        db.dispose()
    if refused is not None:
        fail(f"not bound: {gettext(refused, DEFAULT_LOCALE)}", 2)  # the clerk's language, as at the window
    console.print(f"{username}: identity bound by in-person proofing ({document_type}, checked by {clerk})")


def add_commands(users: typer.Typer) -> None:
    """Add ``proof`` to the ``shgov users`` commands."""
    users.command("proof")(proof_command)

"""In-person identity proofing: a clerk holding ``identity.user.proof`` binds the identity on a document checked
at the window (身份证 for a citizen account, 营业执照 for an enterprise account) — the one way besides an
identity provider that an account comes to carry a 身份证号 or a 统一社会信用代码.

A clerk's word is not enough on its own: the name on the document must be the name the base register holds for
that number (the person register for a 身份证号, the enterprise register for a credit code — read through the
lookups the registers context plugs in here, ``register_name_lookup``), so a clerk cannot hand a resident's
identity to an account of their choosing without also knowing what the register holds. A number the register
does not hold (a visitor from another province, a company registered elsewhere) is bound on the document alone
and the audit record says so. The account's display name becomes the name on the document (实名).

Every proofing is audited in the transaction that binds (``identity.user.proof``). A refused one (a name that
does not match) is audited too (``identity.user.proof.refused``, outcome denied) and counted against the clerk:
after five the clerk waits a doubling delay (429) — the refusal is returned, not raised, so the caller commits
its record and its count. The answer never says what the register holds.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import get_args

from sqlalchemy.orm import Session

from shgov.core.audit import capture
from shgov.core.audit.service import AuditEntry
from shgov.core.errors import ConflictError, ForbiddenError, InvalidError
from shgov.core.i18n import N_
from shgov.core.identity import permissions as perm
from shgov.core.identity import throttle
from shgov.core.identity.models import User
from shgov.core.identity.permissions import Principal
from shgov.core.identity.schemas import DocumentType
from shgov.core.identity.service import bind_identity
from shgov.core.ids import IdentifierError, mask_id_number, mask_uscc, validate_id_number, validate_uscc
from shgov.core.settings import Settings

PROOF_ACTION = "identity.user.proof"
REFUSED_ACTION = "identity.user.proof.refused"
DOCUMENT_TYPES: tuple[str, ...] = get_args(DocumentType)
REFUSED = N_("The document does not match the base register; the identity was not bound.")
# A clerk may mistype a name a few times; then every try waits longer, up to a quarter of an hour.
CLERK_RULE = throttle.Rule("proofing-clerk", 5, timedelta(minutes=15))

# (session, settings, register, key) → the name the register holds for ``key``, or None when it holds none.
NameLookup = Callable[[Session, Settings, str, str], str | None]
_lookups: list[NameLookup] = []


def register_name_lookup(lookup: NameLookup) -> None:
    """Let ``lookup`` say what name a base register holds for a 身份证号 (``person``) or a credit code
    (``enterprise``); the registers context plugs itself in here (core knows no context)."""
    if lookup not in _lookups:
        _lookups.append(lookup)


def registered_name(session: Session, settings: Settings, register: str, key: str) -> str | None:
    """The name the ``register`` holds for ``key`` (None: no register holds it). With no register plugged in
    at all, proofing is refused rather than done on a clerk's word alone."""
    if not _lookups:
        raise ConflictError(N_("no base register is installed to check the name against"), field="name")
    for lookup in _lookups:
        found = lookup(session, settings, register, key)
        if found is not None:
            return found
    return None


def plain_name(name: str) -> str:
    """A name as compared with the register: 张 伟 and 张伟, 阿卜杜拉·买买提 and 阿卜杜拉•买买提 are one name."""
    text = unicodedata.normalize("NFKC", name)
    return "".join(c for c in text if not c.isspace() and c not in "·•・.-").casefold()


@dataclass(frozen=True)
class Document:
    """What the clerk read from the original document the person handed over."""

    document_type: str
    name: str
    id_number: str | None = None
    credit_code: str | None = None


def proof_in_person(
    session: Session,
    settings: Settings,
    principal: Principal,
    user: User,
    document: Document,
    *,
    reason: str,
    channel: str,
) -> str | None:
    """Bind the identity on ``document`` to ``user`` and audit it; None when bound, else why it was refused
    (the refusal audited and counted in ``session``: commit it). Raises for what is simply wrong (no right,
    one's own account, a malformed number, a clerk who must wait)."""
    if principal.kind != "staff" or not principal.has_action(perm.USER_PROOF):  # a person at a window
        raise ForbiddenError(N_("this needs a staff account holding {action}"), field="clerk", action=perm.USER_PROOF)
    if user.id == principal.user_id:
        raise ForbiddenError(N_("nobody proves their own identity"), field="user_id")
    if document.document_type not in DOCUMENT_TYPES:
        raise InvalidError(
            N_("document type must be one of {types}"), field="document_type", types=", ".join(DOCUMENT_TYPES)
        )
    if (document.id_number is None) == (document.credit_code is None):
        raise InvalidError(N_("give exactly one of id_number and credit_code"), field="id_number")
    if (document.document_type == "business_licence") != (document.credit_code is not None):
        raise InvalidError(
            N_("a business licence carries a credit code, an identity card an ID number"), field="document_type"
        )
    name = " ".join(document.name.split())
    if not plain_name(name):
        raise InvalidError(N_("give the name as printed on the document"), field="name")
    if len(reason.strip()) < 2:
        raise InvalidError(N_("give the reason (it is kept in the audit log)"), field="reason")
    register, field, key = (
        ("person", "id_number", _checked(validate_id_number, document.id_number, "id_number"))
        if document.id_number is not None
        else ("enterprise", "credit_code", _checked(validate_uscc, document.credit_code, "credit_code"))
    )
    keys = [(throttle.key_of("proofing-clerk", str(principal.user_id)), CLERK_RULE)]
    wait = throttle.waiting(session, keys)
    if wait:
        raise throttle.TooManyChecks(wait, "name")
    masked = mask_id_number(key) if register == "person" else mask_uscc(key)
    details: dict[str, object] = {
        "document_type": document.document_type,
        "reason": reason.strip(),
        field: masked,
        "channel": channel,
        "operator": capture.current_actor().name,
    }
    held = registered_name(session, settings, register, key)
    if held is not None and plain_name(held) != plain_name(name):
        throttle.count_failure(session, keys)
        _record(session, principal, user, REFUSED_ACTION, {**details, "refused": "name-mismatch"}, "denied")
        return REFUSED
    bind_identity(
        session,
        user,
        id_number=key if register == "person" else None,
        credit_code=key if register == "enterprise" else None,
        source="proofing",
        bound_by=principal.user_id,
    )
    user.display_name = held or name  # 实名: the register's spelling when it holds one
    _record(session, principal, user, PROOF_ACTION, {**details, "in_register": held is not None}, "ok")
    return None


def _checked(validator: Callable[[str], str], value: str | None, field: str) -> str:
    try:
        return validator(value or "")
    except IdentifierError as exc:
        raise InvalidError(N_("{reason}"), field=field, reason=exc) from exc


def _record(
    session: Session, principal: Principal, user: User, action: str, details: dict[str, object], outcome: str
) -> None:
    capture.record(
        session,
        AuditEntry(
            action=action,
            outcome=outcome,
            actor_id=str(principal.user_id),
            actor_name=principal.username,
            tenant_code=principal.tenant_code,
            department_code=principal.department_code,
            object_type="user",
            object_id=str(user.id),
            ip=capture.current_actor().ip,
            details=details,
        ),
    )

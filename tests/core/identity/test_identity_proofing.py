"""Identity is proven, never typed in: accounts are created without a 身份证号; a window clerk binds one after
checking the document in person (audited, with a reason); the seeded citizens keep theirs."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select

from shgov.core.audit.models import AuditRecord
from shgov.core.db import Database
from shgov.core.errors import InvalidError
from shgov.core.identity.models import User
from shgov.core.identity.service import create_user

TokenFor = Callable[[str], str]
OTHER_RESIDENT = "310101199003077771"  # a valid 身份证号 of someone in another district


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _new_citizen(client: httpx.Client, token: str, username: str) -> httpx.Response:
    return client.post(
        "/api/v1/identity/users",
        json={
            "kind": "citizen",
            "username": username,
            "display_name": "王五",
            "password": "Strong#Pass2026",
            "tenant_code": "310115",
        },
        headers=bearer(token),
    )


def test_the_reported_attack_fails_an_administrator_cannot_type_in_an_identity(
    client: httpx.Client, token_for: TokenFor
) -> None:
    admin = token_for("pudong.admin")
    typed = client.post(
        "/api/v1/identity/users",
        json={
            "kind": "citizen",
            "username": "fake.resident",
            "display_name": "冒名",
            "password": "Strong#Pass2026",
            "tenant_code": "310115",
            "id_number": OTHER_RESIDENT,
        },
        headers=bearer(admin),
    )
    assert typed.status_code == 422
    assert typed.json()["errors"][0]["field"] == "id_number"
    created = _new_citizen(client, admin, "fake.resident")
    assert created.status_code == 201, created.text
    proof = client.post(
        f"/api/v1/identity/users/{created.json()['id']}/identity",
        json={
            "id_number": OTHER_RESIDENT,
            "document_type": "resident_id_card",
            "name": "冒名",
            "document_checked": True,
            "reason": "窗口核验",
        },
        headers=bearer(admin),
    )
    assert proof.status_code == 403  # administrators do not hold identity.user.proof


def test_a_window_clerk_proves_an_identity_in_person_and_it_is_audited(
    client: httpx.Client, token_for: TokenFor, db: Database
) -> None:
    with db.session() as session:
        user = create_user(session, kind="citizen", username="walk.in", display_name="王五", password="Strong#Pass2026")
        user_id = user.id
    clerk = bearer(token_for("pudong.window"))
    body = {
        "id_number": OTHER_RESIDENT,
        "document_type": "resident_id_card",
        "name": "王 五",
        "document_checked": True,
        "reason": "本人持居民身份证原件到窗口办理",
    }
    unchecked = client.post(
        f"/api/v1/identity/users/{user_id}/identity", json=body | {"document_checked": False}, headers=clerk
    )
    assert unchecked.status_code == 422
    assert unchecked.json()["errors"][0]["field"] == "document_checked"
    proven = client.post(f"/api/v1/identity/users/{user_id}/identity", json=body, headers=clerk)
    assert proven.status_code == 200, proven.text
    assert proven.json()["identity_source"] == "proofing"
    again = client.post(
        f"/api/v1/identity/users/{user_id}/identity", json=body | {"id_number": "31010419900307123X"}, headers=clerk
    )
    assert again.status_code == 409  # a bound identity is never replaced
    with db.session() as session:
        stored = session.get(User, user_id)
        assert stored is not None
        assert stored.id_number == OTHER_RESIDENT
        assert stored.identity_bound_by is not None
        assert stored.display_name == "王 五"  # 实名: the name on the document
        record = session.scalar(select(AuditRecord).where(AuditRecord.action == "identity.user.proof"))
    assert record is not None
    assert record.details["reason"] == body["reason"]
    assert record.details["document_type"] == "resident_id_card"
    assert OTHER_RESIDENT not in str(record.details)  # masked
    assert record.details["in_register"] is False  # no register holds this number: bound on the document


def test_the_same_person_cannot_be_bound_to_two_accounts(
    client: httpx.Client, token_for: TokenFor, db: Database
) -> None:
    with db.session() as session:
        taken = session.scalar(select(User.id_number).where(User.username == "citizen"))
        other = create_user(session, kind="citizen", username="second", display_name="张伟", password="Strong#Pass2026")
        other_id = other.id
    response = client.post(
        f"/api/v1/identity/users/{other_id}/identity",
        json={
            "id_number": taken,
            "name": "张伟",
            "document_type": "resident_id_card",
            "document_checked": True,
            "reason": "核验",
        },
        headers=bearer(token_for("pudong.window")),
    )
    assert response.status_code == 409


def test_seeded_citizens_keep_their_identity(client: httpx.Client, token_for: TokenFor) -> None:
    me = client.get("/api/v1/identity/me", headers=bearer(token_for("citizen"))).json()
    assert me["id_number"] == "31010419900307123X"
    assert me["identity_source"] == "seed"


def test_code_acting_for_a_caller_cannot_bind_directly(db: Database) -> None:
    from shgov.core.audit import capture

    actor = capture.Actor("pudong.admin", "x")
    with capture.acting_as(actor), db.session() as session, pytest.raises(InvalidError) as refused:
        create_user(session, kind="citizen", username="sneaky", display_name="x", id_number=OTHER_RESIDENT)
    assert refused.value.field == "id_number"

"""Subscriptions: signed webhooks for changes of granted records, retries, the dead-letter list."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from bench.servers import reachable
from fastapi import FastAPI
from sqlalchemy import select

from shgov.core.db import Database, utcnow
from shgov.core.events import Event
from shgov.lake.synthetic import SyntheticCity
from shgov.sharing import service as sharing
from tests.conftest import NATS_URL
from tests.sharing.conftest import auth, file

pytestmark = pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
TokenFor = Callable[[str], str]


class Receiver:
    """A real HTTP endpoint that records what it is sent and fails the first ``failures`` calls."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.failures = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if owner.failures > 0:
                    owner.failures -= 1
                    self.send_response(503)
                else:
                    owner.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()


def grant_for(client: httpx.Client, token_for: TokenFor, code: str, plain: list[str]) -> dict[str, Any]:
    filed = file(
        client,
        token_for("minzheng.admin"),
        resource_code=code,
        items=["id_number", "sex", "marital_status", "district_code"],
        purpose="救助对象动态管理",
        scenario="低保动态核对",
        row_scope={"district_code": "310115"},
    ).json()
    decided = client.post(
        f"/api/v1/sharing/requests/{filed['id']}/decisions",
        json={"action": "approve", "plain_items": plain},
        headers=auth(token_for("data.officer")),
    )
    assert decided.status_code == 200, decided.text
    body: dict[str, Any] = decided.json()
    return body


def test_changes_reach_a_signed_webhook_once_and_only_within_the_grant(
    client: httpx.Client,
    token_for: TokenFor,
    client_token: Callable[[str], str],
    codes: dict[str, str],
    lake_dir: Path,
    city: SyntheticCity,
    db: Database,
    app: FastAPI,
    receiver: Receiver,
) -> None:
    system = client_token("310000.mz")
    masked = grant_for(client, token_for, codes["person"], plain=[])
    refused = client.post(
        "/api/v1/sharing/subscriptions",
        json={"grant_id": masked["grant_id"], "kind": "webhook", "target": receiver.url},
        headers=auth(system),
    )
    assert refused.status_code == 422  # the key is personal data: it must be granted plain to be sent
    plain = grant_for(client, token_for, codes["person"], plain=["id_number"])
    body = {"grant_id": plain["grant_id"], "kind": "webhook", "target": receiver.url}
    assert (
        client.post("/api/v1/sharing/subscriptions", json=body, headers=auth(client_token("310000.ga"))).status_code
        == 404  # a department that neither holds nor gave the grant may not know it exists (#26)
    )
    assert (
        client.post(
            "/api/v1/sharing/subscriptions", json=body | {"target": "ftp://x"}, headers=auth(system)
        ).status_code
        == 422
    )
    made = client.post("/api/v1/sharing/subscriptions", json=body, headers=auth(system))
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    population = city.get("population")
    inside = population.filter(pl.col("district_code") == "310115").row(0, named=True)["id_number"]
    outside = population.filter(pl.col("district_code") != "310115").row(0, named=True)["id_number"]
    handler = {name: h for name, _, h in sharing.subscribers(db, app.state.settings)}["sharing.notify-changes"]
    change = Event(
        uuid.uuid4(),
        "registers.person.changed",
        {"key": inside, "elements": ["marital_status", "address"], "version": 2},
        utcnow(),
    )
    handler(change)
    handler(change)  # at-least-once upstream: the same event twice makes one notification
    handler(
        Event(uuid.uuid4(), "registers.person.changed", {"key": outside, "elements": ["sex"], "version": 2}, utcnow())
    )
    handler(
        Event(
            uuid.uuid4(), "registers.person.changed", {"key": inside, "elements": ["address"], "version": 2}, utcnow()
        )
    )
    with db.session() as session:
        result = sharing.deliver_due(session)
    assert (result.delivered, result.retried, result.dead) == (1, 0, 0)
    assert len(receiver.received) == 1
    headers, raw = receiver.received[0]
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-shgov-signature"], expected)
    payload = json.loads(raw)
    assert payload["key"] == inside
    assert payload["items"] == ["marital_status"]  # the address is not granted, so it is not mentioned
    assert payload["resource"] == codes["person"]
    with db.session() as session:
        assert sharing.deliver_due(session).delivered == 0  # delivered means done


def test_failing_webhooks_are_retried_with_back_off_then_dead_lettered_and_redelivered(
    client: httpx.Client,
    token_for: TokenFor,
    client_token: Callable[[str], str],
    codes: dict[str, str],
    lake_dir: Path,
    city: SyntheticCity,
    db: Database,
    app: FastAPI,
    receiver: Receiver,
) -> None:
    system = client_token("310000.mz")
    plain = grant_for(client, token_for, codes["person"], plain=["id_number"])
    client.post(
        "/api/v1/sharing/subscriptions",
        json={"grant_id": plain["grant_id"], "kind": "webhook", "target": receiver.url},
        headers=auth(system),
    )
    someone = city.get("population").filter(pl.col("district_code") == "310115").row(0, named=True)["id_number"]
    with db.session() as session:
        sharing.fan_out(
            session,
            Event(
                uuid.uuid4(), "registers.person.changed", {"key": someone, "elements": ["sex"], "version": 2}, utcnow()
            ),
            lake_dir,
        )
    receiver.failures = 100
    now = utcnow()
    with db.session() as session:
        first = sharing.deliver_due(session, now=now)
        too_soon = sharing.deliver_due(session, now=now + timedelta(seconds=5))
        note = session.scalars(select(sharing.Notification)).one()
        assert (first.retried, too_soon.retried) == (1, 0)  # the next try waits 30 s
        assert "503" in note.last_error
        for step in range(1, sharing.MAX_ATTEMPTS):
            sharing.deliver_due(session, now=now + timedelta(seconds=30 * 2**step + 1))
        assert note.status == "dead"
        assert note.attempts == sharing.MAX_ATTEMPTS
    centre = auth(token_for("data.officer"))
    dead = client.get("/api/v1/sharing/dead-letters", headers=auth(system)).json()
    assert [d["id"] for d in dead] == [str(note.id)]
    assert client.get("/api/v1/sharing/dead-letters", headers=auth(client_token("310000.ga"))).json() == []
    receiver.failures = 0
    again = client.post(f"/api/v1/sharing/dead-letters/{note.id}/redeliver", headers=auth(system))
    assert again.status_code == 200
    sent = client.post("/api/v1/sharing/deliveries", headers=centre).json()
    assert sent["delivered"] == 1
    assert len(receiver.received) == 1
    assert client.get("/api/v1/sharing/dead-letters", headers=auth(system)).json() == []


@pytest.mark.nats
def test_changes_reach_a_nats_subject_with_the_same_signature(
    client: httpx.Client,
    token_for: TokenFor,
    client_token: Callable[[str], str],
    codes: dict[str, str],
    lake_dir: Path,
    city: SyntheticCity,
    db: Database,
) -> None:
    if not reachable(NATS_URL, 4222):
        pytest.skip(f"NATS is not reachable at {NATS_URL} — the NATS subscription test is skipped")
    import asyncio

    import nats

    system = client_token("310000.mz")
    plain = grant_for(client, token_for, codes["person"], plain=["id_number"])
    subject = f"shgovtest{uuid.uuid4().hex[:8]}.minzheng.changes"
    made = client.post(
        "/api/v1/sharing/subscriptions",
        json={"grant_id": plain["grant_id"], "kind": "nats", "target": subject},
        headers=auth(system),
    )
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    someone = city.get("population").filter(pl.col("district_code") == "310115").row(0, named=True)["id_number"]
    with db.session() as session:
        event = Event(
            uuid.uuid4(), "registers.person.changed", {"key": someone, "elements": ["sex"], "version": 2}, utcnow()
        )
        sharing.fan_out(session, event, lake_dir)

    def deliver(url: str) -> sharing.DeliveryResult:
        with db.session() as session:
            return sharing.deliver_due(session, url)

    async def run() -> Any:
        connection = await nats.connect(NATS_URL)
        try:
            subscription = await connection.subscribe(subject)
            failed = await asyncio.to_thread(deliver, "nats://127.0.0.1:1")  # nobody listens there
            assert failed.retried == 1
            with db.session() as session:
                for note in session.scalars(select(sharing.Notification)):
                    note.next_attempt_at = utcnow()
            sent = await asyncio.to_thread(deliver, NATS_URL)
            assert sent.delivered == 1
            return await subscription.next_msg(timeout=5)
        finally:
            await connection.close()

    message = asyncio.run(run())
    assert json.loads(message.data)["key"] == someone
    expected = "sha256=" + hmac.new(secret.encode(), message.data, hashlib.sha256).hexdigest()
    assert message.headers["X-SHGOV-Signature"] == expected

"""The outbox: events leave only with their transaction, at least once, and survive a restart."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest
from bench.servers import reachable
from pydantic import ConfigDict, Field
from sqlalchemy import func, select

from shgov.core.db import Database
from shgov.core.events import (
    DomainEvent,
    Event,
    EventDelivery,
    InProcessBus,
    NatsBus,
    OutboxEvent,
    OutboxRelay,
    emit,
    matches,
)
from shgov.core.settings import EventSettings
from tests.conftest import NATS_URL


class Probe(DomainEvent):
    """Any payload under any of these types, for the outbox's own tests (the type is not in the payload)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    EVENT_TYPE = "probe.>"
    TYPES = tuple(
        f"probe.{t}"
        for t in (
            "sharing.request.submitted",
            "catalog.resource.published",
            "workorders.order.created",
            "a.b",
            "cases.case.accepted",
            "regions.grid.changed",
            "sensing.warning.raised",
            "sensing.warning.cleared",
        )
    )
    probe_type: str = Field(exclude=True)

    def event_type(self) -> str:
        return self.probe_type


def probe(event_type: str, **payload: object) -> Probe:
    return Probe(probe_type=f"probe.{event_type}", **payload)


def relay_for(db: Database, bus: InProcessBus | NatsBus, settings: EventSettings | None = None) -> OutboxRelay:
    return OutboxRelay(db, bus, settings or EventSettings(poll_seconds=0.1))


def make_due(db: Database) -> None:
    """Skip the back-off so that a retry is due now."""
    with db.session() as session:
        for row in session.scalars(select(OutboxEvent)):
            row.next_attempt_at = row.occurred_at


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("catalog.resource.published", "catalog.resource.published", True),
        ("catalog.*.published", "catalog.resource.published", True),
        ("catalog.>", "catalog.resource.published", True),
        ("catalog.>", "catalog", False),
        ("catalog.*", "catalog.resource.published", False),
        ("*", "catalog", True),
        ("sharing.>", "catalog.resource.published", False),
    ],
)
def test_patterns_match_like_nats_subjects(pattern: str, event_type: str, expected: bool) -> None:
    assert matches(pattern, event_type) is expected


def test_a_committed_event_reaches_every_matching_subscriber(db: Database) -> None:
    bus = InProcessBus(db)
    seen: list[tuple[str, Event]] = []
    bus.subscribe("audit", ">", lambda e: seen.append(("audit", e)))
    bus.subscribe("catalog-only", "probe.catalog.>", lambda e: seen.append(("catalog-only", e)))
    relay = relay_for(db, bus)
    with db.session() as session:
        event_id = emit(session, probe("sharing.request.submitted", request="R-1", items=["姓名"]))

    assert asyncio.run(relay.drain()) == 1
    assert [(name, e.id, e.payload) for name, e in seen] == [("audit", event_id, {"request": "R-1", "items": ["姓名"]})]
    with db.session() as session:
        assert session.scalars(select(OutboxEvent)).one().published_at is not None


def test_an_event_of_a_rolled_back_transaction_is_never_published(db: Database) -> None:
    bus = InProcessBus(db)
    seen: list[Event] = []
    bus.subscribe("any", ">", seen.append)
    with pytest.raises(RuntimeError), db.session() as session:
        emit(session, probe("catalog.resource.published", id=1))
        raise RuntimeError("the change failed")
    assert asyncio.run(relay_for(db, bus).drain()) == 0
    assert seen == []


def test_a_failing_subscriber_gets_the_event_again_and_the_others_do_not(db: Database) -> None:
    bus = InProcessBus(db)
    calls: Counter[str] = Counter()
    failures = {"flaky": 2}

    def flaky(event: Event) -> None:
        calls["flaky"] += 1
        if failures["flaky"] > 0:
            failures["flaky"] -= 1
            raise ConnectionError("downstream is down")

    bus.subscribe("steady", ">", lambda e: calls.update(["steady"]))
    bus.subscribe("flaky", ">", flaky)
    relay = relay_for(db, bus)
    with db.session() as session:
        emit(session, probe("workorders.order.created", id="W-1"))

    assert asyncio.run(relay.drain()) == 0
    make_due(db)
    assert asyncio.run(relay.drain()) == 0
    make_due(db)
    assert asyncio.run(relay.drain()) == 1
    assert calls == Counter({"steady": 1, "flaky": 3})
    with db.session() as session:
        row = session.scalars(select(OutboxEvent)).one()
        assert row.attempts == 2
        assert row.published_at is not None
        assert session.scalar(select(func.count()).select_from(EventDelivery)) == 2


def test_a_failed_event_waits_for_its_back_off(db: Database) -> None:
    bus = InProcessBus(db)
    bus.subscribe("down", ">", lambda e: (_ for _ in ()).throw(OSError("down")))
    relay = relay_for(db, bus)
    with db.session() as session:
        emit(session, probe("a.b"))
    asyncio.run(relay.drain())
    with db.session() as session:
        row = session.scalars(select(OutboxEvent)).one()
        assert row.attempts == 1
        assert row.next_attempt_at > row.occurred_at
        assert "down" in (row.last_error or "")
    assert asyncio.run(relay.drain()) == 0  # not due yet


def test_nothing_is_lost_across_a_restart(db: Database) -> None:
    with db.session() as session:
        first = emit(session, probe("cases.case.accepted", case=1))
        second = emit(session, probe("cases.case.accepted", case=2))
    # The process stops before relaying; a new process with new objects picks the events up.
    restarted_bus = InProcessBus(db)
    received: list[uuid.UUID] = []
    restarted_bus.subscribe("cases", "probe.cases.>", lambda e: received.append(e.id))
    assert asyncio.run(relay_for(db, restarted_bus).drain()) == 2
    assert received == [first, second]


def test_the_relay_wakes_up_after_a_commit(db: Database) -> None:
    bus = InProcessBus(db)
    received = asyncio.Queue[Event]()

    async def handler(event: Event) -> None:
        await received.put(event)

    bus.subscribe("waiter", ">", handler)
    relay = relay_for(db, bus, EventSettings(poll_seconds=30))

    async def scenario() -> Event:
        await relay.start()
        try:
            await asyncio.sleep(0.05)
            await asyncio.to_thread(lambda: _emit_one(db))
            return await asyncio.wait_for(received.get(), timeout=5)
        finally:
            await relay.stop()

    assert asyncio.run(scenario()).type == "probe.regions.grid.changed"


def _emit_one(db: Database) -> None:
    with db.session() as session:
        emit(session, probe("regions.grid.changed", grid="x"))


def test_an_event_type_must_be_dotted_words_and_declared_once() -> None:
    with pytest.raises(ValueError, match="dot-separated"):

        class Bad(DomainEvent):
            EVENT_TYPE = "bad..type"

    with pytest.raises(ValueError, match="declared twice"):

        class Again(DomainEvent):
            EVENT_TYPE = "probe.a.b"


def test_only_a_declared_type_is_emitted(db: Database) -> None:
    with db.session() as session, pytest.raises(ValueError, match="does not declare"):
        emit(session, Probe(probe_type="probe.never.declared"))


@pytest.fixture
def nats_settings() -> EventSettings:
    if not reachable(NATS_URL, 4222):
        pytest.skip(f"NATS is not reachable at {NATS_URL} — JetStream tests skipped")
    tag = uuid.uuid4().hex[:8]
    return EventSettings(url=NATS_URL, stream=f"SHGOV_TEST_{tag}", subject_prefix=f"shgovtest{tag}", poll_seconds=0.2)


async def _delete_stream(settings: EventSettings) -> None:
    import nats

    nc = await nats.connect(settings.url)
    try:
        await nc.jetstream().delete_stream(settings.stream)
    finally:
        await nc.close()


@pytest.mark.nats
def test_events_round_trip_through_nats_jetstream_at_least_once_and_across_a_restart(
    db: Database, nats_settings: EventSettings
) -> None:
    async def scenario() -> None:
        got: asyncio.Queue[tuple[str, Event]] = asyncio.Queue()
        attempts: Counter[str] = Counter()

        async def flaky(event: Event) -> None:
            attempts[str(event.id)] += 1
            if attempts[str(event.id)] == 1:
                raise ConnectionError("first delivery fails")
            await got.put(("flaky", event))

        # First process: the publisher and a subscriber that fails once per event.
        bus = NatsBus(nats_settings)
        bus.subscribe("flaky", ">", flaky)
        relay = OutboxRelay(db, bus, nats_settings)
        await bus.start()
        try:
            first = await asyncio.to_thread(_emit_typed, db, "sensing.warning.raised", "红")
            assert await relay.drain() == 1
            name, event = await asyncio.wait_for(got.get(), timeout=10)
            assert (name, event.id, event.payload) == ("flaky", first, {"level": "红"})
            assert attempts[str(first)] == 2
        finally:
            await bus.stop()

        # While no subscriber runs, another event is published; after a restart the durable
        # consumer resumes and receives it — and only it.
        publisher = NatsBus(nats_settings)
        await publisher.start()
        try:
            second = await asyncio.to_thread(_emit_typed, db, "sensing.warning.cleared", "绿")
            assert await OutboxRelay(db, publisher, nats_settings).drain() == 1
        finally:
            await publisher.stop()
        restarted = NatsBus(nats_settings)
        restarted.subscribe("flaky", ">", flaky)
        await restarted.start()
        try:
            name, event = await asyncio.wait_for(got.get(), timeout=10)
            assert event.id == second
            await asyncio.sleep(0.5)
            assert got.empty()
        finally:
            await restarted.stop()
            await _delete_stream(nats_settings)

    asyncio.run(scenario())


def _emit_typed(db: Database, event_type: str, level: str) -> uuid.UUID:
    with db.session() as session:
        return emit(session, probe(event_type, level=level))


def test_two_worker_processes_relays_never_deliver_the_same_event_twice(db: Database) -> None:
    """Each worker of ``serve --workers N`` runs a relay over the same outbox: a claim leases its batch."""
    seen: Counter[uuid.UUID] = Counter()
    buses = [InProcessBus(db), InProcessBus(db)]
    for bus in buses:
        bus.subscribe("count", ">", lambda e: seen.update([e.id]))
    first, second = (relay_for(db, bus) for bus in buses)
    with db.session() as session:
        ids = [emit(session, probe("catalog.resource.published", n=n)) for n in range(3)]

    claimed = first._claim()  # the first worker has taken the batch and is still delivering it
    assert [e.id for e in claimed] == ids
    assert asyncio.run(second.drain()) == 0  # the other worker leaves the leased events alone
    for event in claimed:
        asyncio.run(buses[0].publish(event))
        first._settle(event.id, None)
    assert asyncio.run(second.drain()) == 0
    assert seen == Counter(ids)

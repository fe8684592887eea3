"""Domain events: a transactional outbox relayed after commit, at least once, to subscribers.

Each context declares the events it announces in its ``events.py`` as ``DomainEvent`` classes (frozen
Pydantic models: the fields are the payload, ``EVENT_TYPE`` the dotted name, e.g. ``cases.case.submitted``;
a family such as ``workorders.order.<action>`` declares its pattern and its concrete ``TYPES``). A service
calls ``emit(session, event)`` inside its unit of work; the event row commits or rolls back with the
change. A subscriber reads a delivered ``Event`` back as its class with ``SomeEvent.of(event)``.

The ``OutboxRelay`` publishes committed rows to the bus — in-process by
default, NATS JetStream in production — and marks them published only when the bus has them
(in-process: every subscriber handled it; NATS: the stream acknowledged it). A row that fails is
retried with back-off, so a crash or restart never loses an event; handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ForeignKey, Index, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from shgov.core.db import Base, Database, utcnow
from shgov.core.numbers import BigInt
from shgov.core.settings import EventSettings

log = logging.getLogger("shgov.events")

OUTBOX_FLAG = "shgov_outbox_pending"


class OutboxEvent(Base):
    """An event written in the same transaction as the change it describes."""

    __tablename__ = "event_outbox"
    __table_args__ = (Index("ix_event_outbox_pending", "published_at", "next_attempt_at"),)

    seq: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(160), index=True)
    payload: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)


class EventDelivery(Base):
    """In-process bus: which subscriber has handled which event (so a retry skips it)."""

    __tablename__ = "event_deliveries"

    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("event_outbox.event_id", ondelete="CASCADE"), primary_key=True
    )
    subscriber: Mapped[str] = mapped_column(String(120), primary_key=True)
    delivered_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True)
class Event:
    """What subscribers receive."""

    id: uuid.UUID
    type: str
    payload: dict[str, Any]
    occurred_at: datetime

    def to_json(self) -> bytes:
        """The wire form used on NATS."""
        return json.dumps(
            {
                "id": str(self.id),
                "type": self.type,
                "payload": self.payload,
                "occurred_at": self.occurred_at.isoformat(),
            },
            ensure_ascii=False,
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Event:
        """Parse the wire form."""
        raw = json.loads(data)
        return cls(uuid.UUID(raw["id"]), raw["type"], raw["payload"], datetime.fromisoformat(raw["occurred_at"]))


E = TypeVar("E", bound="DomainEvent")
_DECLARED: dict[str, type[DomainEvent]] = {}


class DomainEvent(BaseModel):
    """A fact a context announces; declared in ``<context>/events.py``, its fields are the payload.

    ``EVENT_TYPE`` is ``context.object.verb``; a family of events of one shape (one per workflow action) sets
    it to a pattern with one ``*`` (``workorders.order.*``), lists its concrete ``TYPES`` and names in
    ``FROM_TYPE`` the field that says which it is (``action``). Reading ignores keys it does not know, and
    takes a family's field from the type when the row has none, so an older row in the outbox still reads."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    EVENT_TYPE: ClassVar[str]
    TYPES: ClassVar[tuple[str, ...]] = ()
    FROM_TYPE: ClassVar[str] = ""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        declared = cls.__dict__.get("EVENT_TYPE")
        if declared is None:
            return  # an abstract base of several events
        if not cls.TYPES:
            cls.TYPES = (declared,)
        for name in cls.TYPES:
            _check_name(name)
            if not matches(declared, name):
                raise ValueError(f"{cls.__name__}: {name!r} is not of the family {declared!r}")
            existing = _DECLARED.get(name)
            if existing is not None and _where(existing) != _where(cls):  # a module imported again replaces
                raise ValueError(f"event type {name!r} is declared twice ({_where(existing)}, {_where(cls)})")
            _DECLARED[name] = cls

    def event_type(self) -> str:
        """The dotted name this event is published under."""
        if self.FROM_TYPE:
            return self.EVENT_TYPE.replace("*", str(getattr(self, self.FROM_TYPE)))
        return self.EVENT_TYPE

    @classmethod
    def of(cls: type[E], event: Event) -> E:
        """The delivered ``event`` read as its declared class, which must be ``cls`` or one of its kind."""
        declared = _DECLARED.get(event.type)
        if declared is None or not issubclass(declared, cls):
            raise TypeError(f"{event.type!r} is not a {cls.__name__}")
        payload = event.payload
        if declared.FROM_TYPE and declared.FROM_TYPE not in payload:
            wild = declared.EVENT_TYPE.split(".").index("*")
            payload = {**payload, declared.FROM_TYPE: event.type.split(".")[wild]}
        return declared.model_validate(payload)


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_name(event_type: str) -> None:
    if not event_type or any(not part for part in event_type.split(".")):
        raise ValueError(f"event type {event_type!r} must be dot-separated words")


def declared_events() -> dict[str, type[DomainEvent]]:
    """Every concrete event type declared so far (import the contexts' ``events`` modules first), by name."""
    return dict(sorted(_DECLARED.items()))


def emit(session: Session, event: DomainEvent) -> uuid.UUID:
    """Record ``event`` in ``session``'s transaction; it is relayed only if the transaction commits."""
    event_type = event.event_type()
    if _DECLARED.get(event_type) is not type(event):
        raise ValueError(f"{type(event).__name__} does not declare the event type {event_type!r}")
    payload = event.model_dump(mode="json")
    row = OutboxEvent(event_id=uuid.uuid4(), type=event_type, payload=payload)
    session.add(row)
    session.info[OUTBOX_FLAG] = True
    return row.event_id


Handler = Callable[[Event], None] | Callable[[Event], Awaitable[None]]


def matches(pattern: str, event_type: str) -> bool:
    """NATS-style subject matching: ``*`` is one word, a final ``>`` is one or more words."""
    want, have = pattern.split("."), event_type.split(".")
    for i, word in enumerate(want):
        if word == ">":
            return len(have) > i
        if i >= len(have) or (word != "*" and word != have[i]):
            return False
    return len(want) == len(have)


@dataclass
class Subscription:
    """A named, durable subscriber to the events whose type matches ``pattern``."""

    name: str
    pattern: str
    handler: Handler
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def call(self, event: Event) -> None:
        """Run the handler (a synchronous one runs in a worker thread)."""
        if inspect.iscoroutinefunction(self.handler):
            await self.handler(event)
        else:
            await asyncio.to_thread(self.handler, event)


class EventBus(Protocol):
    """Where the relay publishes; subscribers attach by name."""

    def subscribe(self, name: str, pattern: str, handler: Handler) -> None:
        """Attach a durable subscriber; a failing handler gets the event again later."""

    async def start(self) -> None:
        """Connect and start delivering."""

    async def stop(self) -> None:
        """Stop delivering and disconnect."""

    async def publish(self, event: Event) -> None:
        """Hand ``event`` over; raise if it is not safely handed over."""


class InProcessBus:
    """Delivers to subscribers in this process, remembering per subscriber what it handled."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.subscriptions: dict[str, Subscription] = {}

    def subscribe(self, name: str, pattern: str, handler: Handler) -> None:
        """Attach a subscriber; names are unique because deliveries are recorded by name."""
        if name in self.subscriptions:
            raise ValueError(f"subscriber {name!r} is already registered")
        self.subscriptions[name] = Subscription(name, pattern, handler)

    async def start(self) -> None:
        """Nothing to connect."""

    async def stop(self) -> None:
        """Nothing to disconnect."""

    def _delivered(self, event_id: uuid.UUID) -> set[str]:
        with self.db.session() as session:
            rows = session.scalars(select(EventDelivery.subscriber).where(EventDelivery.event_id == event_id))
            return set(rows)

    def _record(self, event_id: uuid.UUID, subscriber: str) -> None:
        try:
            with self.db.session() as session:
                session.add(EventDelivery(event_id=event_id, subscriber=subscriber))
        except IntegrityError:
            # Another process's relay delivered it too (its lease ran out mid-batch): recorded once is enough.
            log.info("event %s was already recorded for %s", event_id, subscriber)

    async def publish(self, event: Event) -> None:
        """Call every matching subscriber that has not handled ``event`` yet; raise if any failed."""
        done = await asyncio.to_thread(self._delivered, event.id)
        failures: list[str] = []
        for sub in self.subscriptions.values():
            if sub.name in done or not matches(sub.pattern, event.type):
                continue
            try:
                await sub.call(event)
            except Exception as exc:
                log.warning("subscriber %s failed on %s: %s", sub.name, event.type, exc)
                failures.append(f"{sub.name}: {exc}")
                continue
            await asyncio.to_thread(self._record, event.id, sub.name)
        if failures:
            raise RuntimeError("; ".join(failures))


class NatsBus:
    """JetStream: the relay publishes to a stream (deduplicated by event id); each subscriber is a
    durable pull consumer, so it resumes where it stopped and gets a failed event again (nak)."""

    def __init__(self, settings: EventSettings) -> None:
        self.settings = settings
        self.subscriptions: dict[str, Subscription] = {}
        self._nc: Any = None
        self._js: Any = None
        self._running = False

    def subject(self, event_type: str) -> str:
        """The NATS subject of an event type."""
        return f"{self.settings.subject_prefix}.{event_type}"

    def subscribe(self, name: str, pattern: str, handler: Handler) -> None:
        """Attach a durable subscriber (consumer name = ``name``)."""
        if name in self.subscriptions:
            raise ValueError(f"subscriber {name!r} is already registered")
        self.subscriptions[name] = Subscription(name, pattern, handler)

    async def start(self) -> None:
        """Connect, make sure the stream exists and start one pull loop per subscriber."""
        import nats
        from nats.js.errors import NotFoundError

        self._nc = await nats.connect(self.settings.url, connect_timeout=5, max_reconnect_attempts=-1)
        self._js = self._nc.jetstream()
        subjects = [f"{self.settings.subject_prefix}.>"]
        try:
            await self._js.stream_info(self.settings.stream)
        except NotFoundError:
            await self._js.add_stream(name=self.settings.stream, subjects=subjects)
        self._running = True
        for sub in self.subscriptions.values():
            psub = await self._js.pull_subscribe(self.subject(sub.pattern), durable=sub.name)
            sub.tasks.append(asyncio.create_task(self._pull_loop(sub, psub), name=f"nats:{sub.name}"))

    async def _pull_loop(self, sub: Subscription, psub: Any) -> None:
        from nats.errors import TimeoutError as NatsTimeout

        while self._running:
            try:
                messages = await psub.fetch(batch=self.settings.batch_size, timeout=self.settings.poll_seconds)
            except NatsTimeout:
                continue
            except Exception:
                if not self._running:
                    return
                log.exception("pull from NATS failed for %s", sub.name)
                await asyncio.sleep(self.settings.poll_seconds)
                continue
            for msg in messages:
                try:
                    await sub.call(Event.from_json(msg.data))
                except Exception as exc:
                    log.warning("subscriber %s failed, event will be redelivered: %s", sub.name, exc)
                    await msg.nak(delay=self.settings.poll_seconds)
                else:
                    await msg.ack()

    async def stop(self) -> None:
        """Stop the pull loops and drain the connection."""
        self._running = False
        for sub in self.subscriptions.values():
            for task in sub.tasks:
                task.cancel()
            await asyncio.gather(*sub.tasks, return_exceptions=True)
            sub.tasks.clear()
        if self._nc is not None:
            await self._nc.close()
            self._nc = None

    async def publish(self, event: Event) -> None:
        """Publish and wait for the stream's acknowledgement."""
        if self._js is None:
            raise RuntimeError("NATS bus is not started")
        await self._js.publish(self.subject(event.type), event.to_json(), headers={"Nats-Msg-Id": str(event.id)})


def make_bus(settings: EventSettings, db: Database) -> EventBus:
    """The bus the settings ask for: NATS when ``events.url`` is set, in-process otherwise."""
    if settings.url:
        return NatsBus(settings)
    return InProcessBus(db)


# How long a claimed event stays with the relay that claimed it before another process may take it.
CLAIM_LEASE = timedelta(seconds=60)


class OutboxRelay:
    """Moves committed outbox rows to the bus, after commit and on a timer."""

    def __init__(self, db: Database, bus: EventBus, settings: EventSettings) -> None:
        self.db = db
        self.bus = bus
        self.settings = settings
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        db.on_commit(self._after_commit)

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(OUTBOX_FLAG, False):
            self.wake()

    def wake(self) -> None:
        """Ask the running relay to drain now (safe from any thread)."""
        if self._loop is not None and self._wakeup is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def _claim(self) -> list[Event]:
        """Take a batch of due events and lease them, so the relays of other worker processes skip them
        until they are settled (or the lease runs out because this process died)."""
        with self.db.session() as session:
            now = utcnow()
            rows = session.scalars(
                select(OutboxEvent)
                .where(
                    OutboxEvent.published_at.is_(None),
                    OutboxEvent.next_attempt_at <= now,
                    OutboxEvent.attempts < self.settings.max_attempts,
                )
                .order_by(OutboxEvent.seq)
                .limit(self.settings.batch_size)
                .with_for_update(skip_locked=True)  # PostgreSQL; a SQLite writer already excludes the others
            ).all()
            for row in rows:
                row.next_attempt_at = now + CLAIM_LEASE
            return [Event(r.event_id, r.type, r.payload, r.occurred_at) for r in rows]

    def _settle(self, event_id: uuid.UUID, error: str | None) -> None:
        with self.db.session() as session:
            row = session.scalars(select(OutboxEvent).where(OutboxEvent.event_id == event_id)).one()
            if error is None:
                row.published_at = utcnow()
                row.last_error = None
                return
            row.attempts += 1
            row.last_error = error[:2000]
            row.next_attempt_at = utcnow() + timedelta(seconds=min(2**row.attempts, 300))
            if row.attempts >= self.settings.max_attempts:
                log.error("event %s (%s) gave up after %d attempts: %s", event_id, row.type, row.attempts, error)

    async def drain(self) -> int:
        """Publish every due event once; returns how many were published."""
        published = 0
        while True:
            batch = await asyncio.to_thread(self._claim)
            if not batch:
                return published
            progressed = False
            for event in batch:
                try:
                    await self.bus.publish(event)
                except Exception as exc:
                    await asyncio.to_thread(self._settle, event.id, str(exc) or type(exc).__name__)
                    continue
                await asyncio.to_thread(self._settle, event.id, None)
                published += 1
                progressed = True
            if not progressed:
                return published

    async def run(self) -> None:
        """Drain on every wake-up and every ``poll_seconds`` until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        while True:
            try:
                await self.drain()
            except Exception:
                log.exception("outbox relay failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.settings.poll_seconds)
            self._wakeup.clear()

    async def start(self) -> None:
        """Start the bus and the relay loop."""
        await self.bus.start()
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        """Stop the relay loop, then the bus."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.bus.stop()

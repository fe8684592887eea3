"""Telling people what happened: a typed registry of notifiers and the in-app inbox.

Every notice goes to the in-app inbox (kept, shown on the person's pages). Other channels are
``Notifier`` implementations registered under a name; the built-in SMS and e-mail notifiers write what
they would send to the log (with the number or address masked), which is what a dev or test machine
wants; a production deployment registers gateways under the same names.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import ForeignKey, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from shgov.core.db import Base, UUIDKeyMixin, utcnow
from shgov.core.identity.service import find_user
from shgov.core.ids import mask_phone

log = logging.getLogger("shgov.notify")


class Notification(UUIDKeyMixin, Base):
    """One notice in a person's in-app inbox."""

    __tablename__ = "notifications"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    link: Mapped[str] = mapped_column(String(300), default="")
    topic: Mapped[str] = mapped_column(String(60), default="")  # e.g. cases.case.accepted
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    read_at: Mapped[datetime | None]


@dataclass(frozen=True)
class Notice:
    """What to tell someone, and how to reach them beyond the inbox."""

    user_id: uuid.UUID
    subject: str
    body: str = ""
    link: str = ""
    topic: str = ""
    phone: str | None = None
    email: str | None = None


class Notifier(Protocol):
    """A channel that delivers notices."""

    name: str

    def send(self, session: Session, notice: Notice) -> bool:
        """Deliver ``notice``; False when this channel cannot reach the person."""
        ...


class InAppNotifier:
    """The inbox on the person's pages (always used)."""

    name = "in_app"

    def send(self, session: Session, notice: Notice) -> bool:
        """Write the notice into the inbox."""
        session.add(
            Notification(
                user_id=notice.user_id,
                subject=notice.subject[:200],
                body=notice.body,
                link=notice.link[:300],
                topic=notice.topic[:60],
            )
        )
        return True


class LogSmsNotifier:
    """SMS for dev and test machines: the message goes to the log, the number masked."""

    name = "sms"

    def send(self, session: Session, notice: Notice) -> bool:
        """Log the SMS that would be sent."""
        if not notice.phone:
            return False
        log.info("sms to %s: %s", mask_phone(notice.phone), notice.subject)
        return True


class LogEmailNotifier:
    """E-mail for dev and test machines: the message goes to the log."""

    name = "email"

    def send(self, session: Session, notice: Notice) -> bool:
        """Log the e-mail that would be sent."""
        if not notice.email:
            return False
        log.info("email: %s", notice.subject)
        return True


NOTIFIERS: dict[str, Notifier] = {}


def register_notifier(notifier: Notifier) -> None:
    """Add or replace a channel (a production SMS gateway replaces ``sms``)."""
    NOTIFIERS[notifier.name] = notifier


for _builtin in (InAppNotifier(), LogSmsNotifier(), LogEmailNotifier()):
    register_notifier(_builtin)


def notify(session: Session, notice: Notice, channels: tuple[str, ...] = ("in_app", "sms")) -> list[str]:
    """Send ``notice`` on each channel that can reach the person; returns the channels used."""
    return [name for name in channels if name in NOTIFIERS and NOTIFIERS[name].send(session, notice)]


def tell(
    session: Session, user_id: uuid.UUID | None, subject: str, body: str = "", link: str = "", topic: str = ""
) -> None:
    """Notify an account (no-op without one) in the inbox and by SMS to the phone on the account."""
    if user_id is None:
        return
    user = find_user(session, user_id)
    notify(session, Notice(user_id, subject, body, link, topic, phone=user.phone if user else None))


def inbox(session: Session, user_id: uuid.UUID, limit: int = 50) -> list[Notification]:
    """A person's notices, newest first."""
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.user_id == user_id)
            .order_by(Notification.created_at.desc())
            .limit(limit)
        )
    )


def mark_read(session: Session, user_id: uuid.UUID) -> None:
    """Mark every notice of a person as read."""
    session.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )

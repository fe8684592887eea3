"""Fixtures of the core tests."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from shgov.core.events import EventDelivery, OutboxEvent


@pytest.fixture(autouse=True)
def _empty_outbox(request: pytest.FixtureRequest) -> None:
    """Start from an empty outbox (the seeded demo city left events in it); rolled back after the test."""
    if "db" not in request.fixturenames:
        return
    db = request.getfixturevalue("db")
    with db.session() as session:
        session.execute(delete(EventDelivery))
        session.execute(delete(OutboxEvent))

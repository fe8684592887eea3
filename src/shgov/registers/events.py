"""The events of the base registers: a record changed (one per record, with the elements that changed), or
a register rebuilt with too many changes to announce one by one. ``register_name`` is one of ``REGISTERS``."""

from __future__ import annotations

from shgov.core.events import DomainEvent

REGISTERS = ("person", "enterprise", "licence", "address")


class RecordChanged(DomainEvent):
    """A record of a register changed in a build: its key and which elements."""

    EVENT_TYPE = "registers.*.changed"
    TYPES = tuple(f"registers.{r}.changed" for r in REGISTERS)
    FROM_TYPE = "register_name"
    register_name: str
    key: str
    elements: list[str]
    version: int


class RegisterRebuilt(DomainEvent):
    """A register was built again with more changes than are announced record by record."""

    EVENT_TYPE = "registers.*.rebuilt"
    TYPES = tuple(f"registers.{r}.rebuilt" for r in REGISTERS)
    FROM_TYPE = "register_name"
    register_name: str
    version: int
    rows: int
    changed: int

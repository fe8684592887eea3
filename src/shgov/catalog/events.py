"""The events the catalog announces: an entry published or retired, an item put on or taken off the negative
list. Each names the resource by its code (``resource``); rows written before the keys were aligned named it
``code`` and still read."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from shgov.core.events import DomainEvent


class CatalogChange(DomainEvent):
    """What a change of a catalog entry or of its negative list is about: the resource (by code)."""

    resource: str = Field(validation_alias=AliasChoices("resource", "code"))


class ResourcePublished(CatalogChange):
    """A version of a catalog entry was published."""

    EVENT_TYPE = "catalog.resource.published"
    version: int


class ResourceRetired(CatalogChange):
    """A catalog entry was retired."""

    EVENT_TYPE = "catalog.resource.retired"
    version: int


class NegativeAdded(CatalogChange):
    """An item of a resource was put on the negative list (负面清单: not shared)."""

    EVENT_TYPE = "catalog.negative.added"
    item: str


class NegativeRemoved(CatalogChange):
    """An item of a resource was taken off the negative list."""

    EVENT_TYPE = "catalog.negative.removed"
    item: str

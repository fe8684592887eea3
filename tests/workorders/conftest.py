"""Fixtures of the work-order tests: the demo classifier trained into the test's data folder."""

from __future__ import annotations

import pytest

from shgov.core.db import Database
from shgov.core.settings import Settings
from shgov.workorders import classifier
from shgov.workorders import service as workorders


@pytest.fixture
def trained(db: Database, settings: Settings) -> Settings:
    """Settings whose data folder holds the classifier trained on the demo's generated examples."""
    with db.session() as session:
        texts, labels = workorders.demo_examples(session)
    classifier.save(classifier.train(texts, labels), workorders.model_path(settings))
    return settings

"""Fixtures of the work-order tests: the demo classifier trained into the test's data folder."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from shgov.core.db import Database
from shgov.core.settings import Settings
from shgov.workorders import classifier
from shgov.workorders import service as workorders

# Trained models of this process by their examples: training takes seconds and the demo's examples are the
# same in nearly every test, so each set is trained once and every test gets its own copy of the file.
_MODELS: dict[str, Path] = {}


def _examples_key(texts: list[str], labels: list[str]) -> str:
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(f"{label}\x1f{text}\x1e".encode())
    return digest.hexdigest()


@pytest.fixture
def trained(db: Database, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose data folder holds the classifier trained on the demo's generated examples (a copy of
    the model trained once per set of examples: a test that retrains or removes it touches only its own)."""
    with db.session() as session:
        texts, labels = workorders.demo_examples(session)
    key = _examples_key(texts, labels)
    if key not in _MODELS:
        stored = tmp_path_factory.mktemp("classifier") / "workorders-classifier.joblib"
        classifier.save(classifier.train(texts, labels), stored)
        _MODELS[key] = stored
    target = workorders.model_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_MODELS[key], target)
    return settings

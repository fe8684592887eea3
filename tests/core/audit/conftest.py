"""Fixtures of the audit tests."""

from __future__ import annotations

import pytest

from shgov.core.audit import service
from tests.conftest import make_settings


@pytest.fixture(scope="session", autouse=True)
def _audit_configured(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The test key in force even when no test of the run seeded a city or built an app before."""
    if service.active() is None:
        service.configure(make_settings(tmp_path_factory.mktemp("audit")))

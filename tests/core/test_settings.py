"""One typed Settings object, read from SHGOV_* variables, refusing default secrets outside dev."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from shgov.core.settings import DEV_SECRET, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_default_secrets_are_refused_outside_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHGOV_ENV", "prod")
    with pytest.raises(ValidationError, match="SHGOV_SECRET_KEY"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_a_short_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHGOV_ENV", "test")
    monkeypatch.setenv("SHGOV_SECRET_KEY", "short")
    monkeypatch.setenv("SHGOV_WEB__SESSION_SECRET", "x" * 32)
    with pytest.raises(ValidationError, match="at least 16"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_dev_may_use_the_default_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHGOV_ENV", "dev")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.secret_key.get_secret_value() == DEV_SECRET
    assert DEV_SECRET not in repr(settings)


def test_nested_sections_and_aliases_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHGOV_ENV", "dev")
    monkeypatch.setenv("SHGOV_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SHGOV_WEB__PORT", "9100")
    monkeypatch.setenv("SHGOV_EVENTS_URL", "nats://127.0.0.1:4222")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.web.port == 9100
    assert settings.events.url == "nats://127.0.0.1:4222"
    assert settings.database.url == f"sqlite:///{tmp_path.as_posix()}/shgov.db"
    assert settings.lake_dir == tmp_path / "lake"


def test_a_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHGOV_ENV", "dev")
    monkeypatch.setenv("SHGOV_WEB__PORT", "eighty")
    with pytest.raises(ValidationError, match="port"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def _setting_names(model: type[BaseModel], prefix: str) -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= _setting_names(annotation, f"{prefix}{name.upper()}__")
        else:
            names.add(f"{prefix}{name.upper()}")
    return names


def test_env_example_documents_every_setting() -> None:
    documented = set(re.findall(r"^(SHGOV_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert _setting_names(Settings, "SHGOV_") == documented

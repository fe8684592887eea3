"""The two commands: a second run with nothing changed installs nothing; locks name no registry host."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_a_second_setup_with_unchanged_locks_does_nothing() -> None:
    make = shutil.which("make")
    if make is None or not (ROOT / ".venv" / ".dev").exists():
        pytest.skip("not set up by `make test`")
    locale_dir = ROOT / "src" / "shgov" / "locale"
    catalogs = [str(p.with_suffix(".mo").relative_to(ROOT)) for p in locale_dir.rglob("*.po")]
    targets = [".venv/.runtime", ".venv/.dev", "src/shgov/web/static/vendor/.built", *catalogs]
    result = subprocess.run([make, "-q", *targets], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"make would rebuild: {result.stdout}{result.stderr}"


def test_python_locks_are_hashed_and_name_no_registry_host() -> None:
    for lock in ("requirements/main.txt", "requirements/dev.txt"):
        text = (ROOT / lock).read_text()
        pins = re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==", text, re.MULTILINE)
        assert pins, lock
        assert text.count("--hash=sha256:") >= len(pins)
        assert not re.search(r"https?://", text), lock
    assert not (ROOT / "uv.lock").exists()


def test_the_npm_lock_has_no_resolved_urls() -> None:
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert all("resolved" not in entry for entry in lock["packages"].values())

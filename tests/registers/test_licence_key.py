"""The licence signing key: created once even when several processes sign their first licence at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shgov.registers import licences
from tests.conftest import make_settings


def test_processes_racing_to_create_the_key_all_end_up_with_the_same_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    path = licences.key_path(settings)

    def first_use(_: int) -> str:
        if not path.exists():
            licences._create_key_file(path)
        return path.read_text()

    with ThreadPoolExecutor(8) as pool:
        seen = set(pool.map(first_use, range(32)))
    assert len(seen) == 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no drafts left behind
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    licences._keys.pop(path, None)
    key = licences.signing_key(settings)
    assert key.private_hex == seen.pop().strip()

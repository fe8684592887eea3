"""Download files on disk, without a database."""

from __future__ import annotations

import os
import time
from pathlib import Path

from shgov.opendata import service as opendata


def test_files_of_older_versions_are_pruned_after_a_grace_time(tmp_path: Path) -> None:
    current, older, recent = tmp_path / "v=000003", tmp_path / "v=000001", tmp_path / "v=000002"
    for folder in (current, older, recent):
        folder.mkdir()
        (folder / "x.csv").write_text("a\n")
    stale = time.time() - 7200
    os.utime(older / "x.csv", (stale, stale))
    opendata.Downloads._prune(current)
    assert current.exists()
    assert recent.exists()  # written within the hour: a download may still be reading it
    assert not older.exists()

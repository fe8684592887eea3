"""The boundary between contexts is one import contract (issue #27): a context may import another
context's `service` or `events` and nothing else of it. These tests keep the contract's list of
contexts in step with `shgov.contexts` and prove that the contract fails on the imports it forbids —
by linting a copy of the package with probe modules added, so that src/ is never touched."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

import shgov
from shgov.contexts import CONTEXTS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(shgov.__file__).resolve().parent
CONTRACT = "contexts reach one another only through service and events"

# Probe modules written into the copy: (path under shgov/, source, forbidden?).
PROBES: tuple[tuple[str, str, bool], ...] = (
    # The two holes of the old hand-listed contracts.
    ("ratings/probe_models.py", "from shgov.workorders.models import WorkOrder\n", True),
    ("sensing/probe_classifier.py", "from shgov.workorders import classifier\n", True),
    # A lazy import is an import too.
    ("registers/probe_lazy.py", "def f() -> None:\n    import shgov.lake.models\n", True),
    # The façade stays open.
    ("benefits/probe_service.py", "from shgov.workorders import service\n", False),
)


def _contracts() -> list[dict[str, Any]]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        config = tomllib.load(f)
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _contract(name: str) -> dict[str, Any]:
    return next(c for c in _contracts() if c["name"] == name)


def test_the_contract_covers_every_installed_context() -> None:
    contract = _contract(CONTRACT)
    assert contract["type"] == "independence"
    assert sorted(contract["modules"]) == sorted(f"shgov.{c}" for c in CONTEXTS)
    # And the layers contract places every context (it gives the direction between them).
    layers = _contract("composition root > web shell > core")["layers"]
    placed = {m.strip() for layer in layers for m in layer.split(":")}
    assert {f"shgov.{c}" for c in CONTEXTS} <= placed


def _copy_sources(target: Path) -> None:
    """Copy the package's Python files only (data, templates and assets do not matter to the graph)."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {
            n for n in names if n == "__pycache__" or (not (Path(directory) / n).is_dir() and not n.endswith(".py"))
        }

    shutil.copytree(PACKAGE, target / "shgov", ignore=ignore)


@pytest.fixture(scope="module")
def lint_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str]:
    """Lint a copy of the package with the probes added, under the project's contracts."""
    tree = tmp_path_factory.mktemp("boundaries")
    _copy_sources(tree)
    for path, source, _ in PROBES:
        (tree / "shgov" / path).write_text(source, encoding="utf-8")
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    # A fresh interpreter whose working directory (first on sys.path) holds the copy, so that the
    # graph is built from it and not from the installed package.
    code = (
        "import sys\n"
        "from importlinter.cli import lint_imports\n"
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, timeout=60, check=False
    )
    return done.returncode, done.stdout + done.stderr


def test_probes_across_contexts_break_the_contract(lint_report: tuple[int, str]) -> None:
    returncode, report = lint_report
    assert returncode == 1, report
    assert f"{CONTRACT} BROKEN" in report, report
    # The layers and core contracts still hold: only the boundary rule is broken.
    assert "composition root > web shell > core KEPT" in report, report
    for path, _, forbidden in PROBES:
        module = "shgov." + path.removesuffix(".py").replace("/", ".")
        assert (module in report) is forbidden, (module, report)

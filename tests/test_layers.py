"""The one-way flow of DESIGN.md holds: `lint-imports` keeps every contract in pyproject.toml's [tool.importlinter]
(layers, no cycles, torch-free modules); a broken contract fails with import-linter's own report."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("importlinter", reason="import-linter is in the test extra: pip install -e .[test]")


def test_import_contracts_are_kept():
    # importlinter.cli in a fresh interpreter, from the repository root: it reads pyproject.toml there, and the
    # tlearn it analyses is this checkout's (first on the path), not whichever one is installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                             "sys.exit(lint_imports_command())", "--no-cache"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"lint-imports found broken contracts:\n{result.stdout}\n{result.stderr}"
    assert "0 broken" in result.stdout

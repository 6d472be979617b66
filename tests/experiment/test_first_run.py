"""A new user's first hour (issue 12): light commands, a readable summary, variations that keep
the stored results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pymc", "arviz", "pytensor", "nutpie", "numba", "matplotlib", "dask")


@pytest.mark.parametrize(
    "argv",
    [["validate", "experiments/quickstart.toml"], ["--help"], ["list"], ["validate", "scaling"]],
    ids=["validate", "help", "list", "validate-scaling"],
)
def test_light_commands_import_no_heavy_library(argv):
    """validate, list and --help answer without importing PyMC, ArviZ, numba, matplotlib or Dask
    (they took 13 s and 2 s when they did)."""
    code = (
        "import sys; from workbench.cli import main; "
        f"main({argv!r}); "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-2000:]

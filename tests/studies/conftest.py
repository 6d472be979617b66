"""Shared by the study tests: each test module names its quick config (``QUICK``, and
``EXECUTOR`` if not the default local processes); the ``study`` fixture runs it once per module
through the CLI, report included, and returns the experiment's directory."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from workbench.cli import main

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # for study_pages, imported by name by the test modules
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="module")
def study(request, tmp_path_factory) -> Path:
    config: Path = request.module.QUICK
    executor = getattr(request.module, "EXECUTOR", None)
    reports = tmp_path_factory.mktemp("reports")
    args = ["run", str(config), "--quiet", "--reports-dir", str(reports)]
    args += ["--executor", executor] if executor else []
    start = time.monotonic()
    assert main(args) == 0
    print(f"{config.stem}: {time.monotonic() - start:.1f} s (run and report)")
    return reports / config.stem

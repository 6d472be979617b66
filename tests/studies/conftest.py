"""Shared by the study tests: each test module names its quick config (``QUICK``, and
``EXECUTOR`` if not the default local processes); the ``study`` fixture runs it once per module
through the CLI, report included, and returns the experiment's directory."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.report.plotting import collecting

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "report"):  # study_pages and figure_layout, by name
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


FIGURES: dict[str, list] = {}  # config stem -> (key, matplotlib figure, caption) of its report


@pytest.fixture(scope="module")
def study(request, tmp_path_factory) -> Path:
    config: Path = request.module.QUICK
    executor = getattr(request.module, "EXECUTOR", None)
    reports = tmp_path_factory.mktemp("reports")
    args = ["run", str(config), "--quiet", "--reports-dir", str(reports)]
    args += ["--executor", executor] if executor else []
    start = time.monotonic()
    drawn: list = []
    with collecting(drawn):  # every figure of the report, for the layout checks
        assert main(args) == 0
    FIGURES[config.stem] = drawn
    print(f"{config.stem}: {time.monotonic() - start:.1f} s (run and report)")
    return reports / config.stem


@pytest.fixture(scope="module")
def study_figures(study) -> list:
    """``(key, figure, caption)`` of every figure the study's report drew."""
    return FIGURES[study.name]

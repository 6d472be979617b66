"""Shared helpers for the experiment-runner tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(HERE) not in sys.path:  # experiment_fakes: test fitters and the SMALL config
    sys.path.insert(0, str(HERE))


@pytest.fixture
def write_config(tmp_path):
    """Write config text to tmp_path/<name>.toml and return its path."""

    def write(text: str, name: str = "config") -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def fakes(monkeypatch):
    """Register the test-only fitters under methods crash, sleep, error, slow_em."""
    import experiment_fakes as f

    from workbench.settings import fitters

    for name, spec in (
        ("crash", f.CRASH),
        ("sleep", f.SLEEP),
        ("error", f.ERROR),
        ("slow_em", f.SLOW_EM),
    ):
        monkeypatch.setitem(fitters.FITTERS, name, spec)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    return f

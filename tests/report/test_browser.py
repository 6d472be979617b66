"""The report page opened in a headless browser, as a person would, and screenshotted."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = next(
    (
        p
        for p in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser"))
        if p and Path(p).is_file()
    ),
    None,
)


def screenshot(page: Path, png: Path, profile: Path, size: str = "1280,2000") -> None:
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={size}",
            page.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def require_chromium() -> None:
    """Skip on a developer's machine without chromium; under CI (``CI`` set) fail instead, so a
    missing install step of ``.ci/run`` cannot hide this test."""
    if CHROMIUM is not None:
        return
    message = "no chromium binary: install Debian's chromium (see README, Set up and run)"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {message}")
    pytest.skip(message)


def test_report_renders_in_a_headless_browser(separation_report, tmp_path):
    require_chromium()
    png = tmp_path / "report.png"
    screenshot(separation_report, png, tmp_path / "profile")
    assert png.is_file() and png.stat().st_size > 20_000
    image = np.asarray(Image.open(png).convert("RGB"), dtype=float)
    assert image.shape == (2000, 1280, 3)
    not_white = np.mean(image.min(axis=2) < 235)
    assert not_white > 0.05, f"page looks blank ({not_white:.1%} non-white pixels)"
    assert image.std() > 20  # text, tables and figures, not a flat colour
    # Keep a copy for people to look at (pytest's basetemp, like every other artefact).
    shutil.copy(png, separation_report.parent / "screenshot.png")

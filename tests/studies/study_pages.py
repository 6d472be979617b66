"""Reading a study's report section back: its HTML, its figures and its findings."""

from __future__ import annotations

import re
from pathlib import Path

from scipy.stats import binomtest


def section_html(directory: Path, key: str) -> str:
    """The inner HTML of ``<section id="key">`` in ``directory/report.html``."""
    page = (directory / "report.html").read_text(encoding="utf-8")
    found = re.search(rf'<section id="{key}">(.*?)</section>', page, re.S)
    assert found, f"no {key} section in the report"
    return found.group(1)


def checked_section(directory: Path, key: str, figures: tuple[str, ...]) -> tuple[str, list[str]]:
    """Section ``key``'s HTML and its generated findings, after checking that every figure in
    ``figures`` is shown in it and saved as PNG and PDF."""
    html = section_html(directory, key)
    for figure in figures:
        assert f'id="fig-{figure}"' in html, figure
        assert (directory / "figures" / f"{figure}.png").is_file(), figure
        assert (directory / "figures" / f"{figure}.pdf").is_file(), figure
    return html, re.findall(r'<p class="finding">(.*?)</p>', html, re.S)


def wilson_text(k: int, n: int) -> str:
    """The report's rate text, its interval from scipy's Wilson interval (independent of
    workbench.evaluate)."""
    lower, upper = binomtest(k, n).proportion_ci(method="wilson")
    return f"{k / n:.3g} (95% CI {lower:.2g}-{upper:.2g}; {k}/{n} data sets)"

"""The terminal summary of a stored experiment, readable at 100 columns.

Condition labels can be long (``jin(init=random_from_data, n_restarts=...)``), so the table
names conditions by short keys (F1, F2 ... for fitter conditions, D1, D2 ... for data
conditions) printed with their full labels above it, and splits its metric columns over as
many tables as the width needs: nothing is ever cut short with an ellipsis.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

SUMMARY_WIDTH = 100  # columns when the output is not a terminal
TIME_NOTE = (
    "fit_time: fitting (EM) or sampling (Bayes) seconds, compile excluded; "
    "compile_time: seconds compiling or loading compiled code (near 0 once loaded)"
)


def fmt(value: Any, se: Any) -> str:
    """``value ± se`` to 3 and 2 significant digits; ``-`` for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:.3g}"
    missing = se is None or (isinstance(se, float) and math.isnan(se))
    return text if missing else f"{text} ± {se:.2g}"


def condition_keys(labels: list[str], prefix: str) -> dict[str, str]:
    """label -> short key (``F1``, ``F2`` ...) in order of first appearance."""
    unique = list(dict.fromkeys(labels))
    return {label: f"{prefix}{i}" for i, label in enumerate(unique, start=1)}


def key_lines(title: str, keys: dict[str, str], width: int) -> list[str]:
    """``title`` then one ``  F1  label`` line per condition, long labels wrapped at their
    commas onto indented lines no wider than ``width``."""
    lines = [title]
    pad = max(len(k) for k in keys.values()) + 4
    for label, key in keys.items():
        lines += textwrap.wrap(
            label,
            width=width,
            initial_indent=f"  {key:<{pad - 2}}",
            subsequent_indent=" " * (pad + 2),
            break_on_hyphens=False,
        ) or [f"  {key}"]
    return lines


def summary_tables(summary: Any, width: int) -> tuple[list[str], list[Any]]:
    """(key lines, rich Tables) for a ``summary_table`` frame, each table at most ``width``
    columns wide: the condition keys, fits and errors, then as many metric columns as fit."""
    from rich.console import Console
    from rich.table import Table

    fitters = condition_keys([str(f) for f in summary["fitter"]], "F")
    datas = condition_keys([str(d) for d in summary["data"]], "D")
    lines = key_lines("fitters:", fitters, width) + key_lines("data:", datas, width)
    metrics = [c for c in summary.columns if c not in ("fitter", "data", "fits", "errors")]
    metrics = [c for c in metrics if not c.endswith("_se")]
    columns = {
        "fitter": [fitters[str(f)] for f in summary["fitter"]],
        "data": [datas[str(d)] for d in summary["data"]],
        "fits": [str(v) for v in summary["fits"]],
        "errors": [str(v) for v in summary["errors"]],
    }
    for m in metrics:
        se = summary[f"{m}_se"] if f"{m}_se" in summary else [None] * len(summary)
        columns[m] = [fmt(v, s) for v, s in zip(summary[m], se, strict=True)]
    measure = Console(width=10_000)

    def table(names: list[str]) -> Any:
        out = Table()
        for name in names:
            out.add_column(name, justify="left" if name in ("fitter", "data") else "right")
            out.columns[-1].no_wrap = True
        for i in range(len(summary)):
            out.add_row(*[columns[name][i] for name in names])
        return out

    def wide(names: list[str]) -> int:
        return measure.measure(table(names)).maximum

    fixed = ["fitter", "data", "fits", "errors"]
    groups: list[list[str]] = [[]]
    for m in metrics:
        if groups[-1] and wide([*fixed, *groups[-1], m]) > width:
            groups.append([])
        groups[-1].append(m)
    return lines, [table([*fixed, *g]) for g in groups]


def print_summary(directory: Path, width: int | None = None) -> None:
    """Failure rate and mean metrics per fitter x data condition, with Monte Carlo standard
    errors, at ``width`` columns (default: the terminal's, else 100)."""
    import sys

    from rich.console import Console

    from workbench.experiment.tables import load_table, summary_table

    summary = summary_table(load_table(directory))
    if summary.empty:
        print("no finished fits yet")
        return
    if width is None:
        width = Console().width if sys.stdout.isatty() else SUMMARY_WIDTH
    title = f"{directory}: mean ± Monte Carlo standard error over replicates"
    lines, tables = summary_tables(summary, width)
    console = Console(width=width, soft_wrap=False)
    print("\n".join([*textwrap.wrap(title, width, break_on_hyphens=False), *lines]))
    for table in tables:
        console.print(table)
    if "compile_time" in summary:
        print("\n".join(textwrap.wrap(TIME_NOTE, width)))

"""The generic figures of a report, each saved as PNG and PDF.

Every figure is generic over the grid: it is drawn against each grid variable the stored table
holds (``data.*`` columns with more than one value), with one line per fitter condition
(prefixed by the experiment when several are overlaid). Rates of 0/1 flags carry 95% Wilson
interval bars and means sd / sqrt(m) error bars (one standard error), from per-replicate rows.
The shared plotting pieces live in :mod:`workbench.report.plotting`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.evaluate import FAILURE_RULE
from workbench.report.plotting import (
    ERRORBAR_NOTE,
    Figure,
    colours,
    errorbars,
    figure_legend,
    line_panel,
    save,
    wrap_label,
)
from workbench.report.store_reader import ReportData, completed, grid_variables, short_name, slug
from workbench.report.summaries import (
    coverage_columns,
    nominal_level,
    paired,
    pairs,
    summarise,
)
from workbench.status import FailureKind

OUTCOME_COLOURS = {
    "global optimum": "tab:blue",
    "saddle or unresolved": "tab:orange",
    "local optimum": "tab:red",
    FailureKind.DEGENERATE: "0.55",
}


def axes_variables(data: ReportData) -> list[str | None]:
    """Each data grid variable, or [None] (one point per series) when the grid has none."""
    return grid_variables(data.table) or [None]  # type: ignore[return-value]


def _suffix(variable: str | None) -> str:
    return slug(short_name(variable)) if variable else "fitter"


def _versus(variable: str | None) -> str:
    return f"vs {short_name(variable)}" if variable else "by fitter"


def _others(data: ReportData, variable: str | None) -> str:
    rest = [short_name(v) for v in grid_variables(data.table) if v != variable]
    return f" Averaged over {', '.join(rest)}." if rest else ""


# ---- the figures ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Panel:
    """One panel of a figure against a grid variable: ``column`` summarised as a ``rate`` or
    per-start ``starts`` rate (95% Wilson interval) or a ``mean`` (sd / sqrt(m) error)."""

    column: str
    title: str
    ylabel: str
    kind: str = "mean"
    log: bool = False
    unit: bool = False  # y in [0, 1]
    method: str | None = None  # only fits of this method (e.g. EM iterations)
    reference: bool = False  # draw the figure's reference levels (e.g. nominal coverage)


def metric_figures(
    data: ReportData,
    out: Path,
    stem: str,
    title: str,
    panels: list[Panel] | list[list[Panel]],
    note: str = "",
    references: tuple[float, ...] | list[float] = (),
) -> list[Figure]:
    """One figure per grid variable, one panel per metric (a list of lists: rows of panels),
    one line per series, one legend below; ``references`` are dashed horizontal lines (e.g.
    nominal levels) on the panels marked ``reference``."""
    frame = completed(data.table)
    grid = panels if panels and isinstance(panels[0], list) else [panels]
    grid = [[p for p in row if p.column in frame and frame[p.column].notna().any()] for row in grid]
    grid = [row for row in grid if row]  # type: ignore[misc]
    if not grid:
        return []
    columns = [p.column for row in grid for p in row]
    frame = frame[frame[columns].notna().any(axis=1)]
    palette, figures = colours(data), []
    ncols = max(len(row) for row in grid)
    rates = any(p.kind in ("rate", "starts") for row in grid for p in row)
    bars = "" if rates else ERRORBAR_NOTE  # a rate panel's note says which bar is which
    for variable in axes_variables(data):
        size = (5.0 * ncols + 0.5, 3.7 * len(grid) + 0.9)
        fig, axes = plt.subplots(len(grid), ncols, figsize=size, squeeze=False,
                                 layout="constrained")  # fmt: skip
        drawn = 0
        for r, row in enumerate(grid):
            for ax in axes[r, len(row) :]:
                ax.set_visible(False)
            for ax, panel in zip(axes[r], row, strict=False):
                rows = frame if panel.method is None else frame[frame["method"] == panel.method]
                if line_panel(ax, rows, variable, panel.column, panel.kind, palette):
                    drawn += 1
                else:
                    _nothing(ax, f"no fit with both\n{panel.title} and\n{_versus(variable)}")
                ax.set(ylabel=panel.ylabel, title=panel.title)
                ax.grid(alpha=0.3)
                if panel.log:
                    ax.set_yscale("log")
                if panel.unit:
                    ax.set_ylim(-0.05, 1.05)
                for level in references if panel.reference else ():
                    ax.axhline(level, color="k", ls="--", lw=1, label=f"nominal {level:g}")
        if not drawn:  # nothing comparable against this variable (an overlay)
            plt.close(fig)
            continue
        figure_legend(fig, axes)
        skipped = _skipped(data, variable)
        caption = f"{note or 'Mean over replicates.'}{_others(data, variable)} {bars}{skipped}"
        key = f"{stem}_{_suffix(variable)}"
        figures.append(save(fig, out, key, f"{title} {_versus(variable)}", caption))
    return figures


def _nothing(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9)


def _skipped(data: ReportData, variable: str | None) -> str:
    """A sentence naming the overlaid experiments that have no ``variable`` axis (not drawn)."""
    if variable is None or len(data.experiments) < 2:
        return ""
    missing = [
        e.name for e in data.experiments if not e.table.get(variable, pd.Series()).notna().any()
    ]
    if not missing:
        return ""
    return f" Not drawn: {', '.join(missing)} (no {short_name(variable)} in its grid)."


def _has(table: pd.DataFrame, column: str) -> bool:
    return column in table and bool(table[column].notna().any())


def failure_rate_figures(data: ReportData, out: Path) -> list[Figure]:
    """Failure rate of the returned fit and of single starts against each grid variable."""
    panels = [
        Panel("failed", "returned fit (best of its restarts)", "local-optimum rate", "rate",
              unit=True),
        Panel("restart_failure_rate", "single start (fraction of restarts at a local optimum)",
              "per-start local-optimum rate", "starts", unit=True),
    ]  # fmt: skip
    note = (
        "A fit fails when, polished to its fixed point, it is a local optimum: more than "
        "1e-6 + 1e-8 |L| nats below the best known optimum (reference bank and all restarts) "
        f"with parameters that differ (rule {FAILURE_RULE}; degenerate fits are not failures). "
        "Error bars: 95% Wilson intervals, over fits for the returned fit and over every start "
        "for the per-start rate (a fit's restarts a correlated cluster: effective n)."
    )
    return metric_figures(data, out, "failure_rate", "Failure rate", panels, note)


def convergence_figures(data: ReportData, out: Path) -> list[Figure]:
    """Iterations and wall time against each grid variable."""
    panels = [Panel("n_iter", "EM iterations", "iterations (mean)", method="em"),
              Panel("fit_time", "fitting / sampling time (compile excluded)", "seconds (mean)",
                    log=True)]  # fmt: skip
    return metric_figures(data, out, "convergence", "Iterations and wall time", panels)


def recovery_figures(data: ReportData, out: Path) -> list[Figure]:
    """Recovery error per fitter against the grid, and paired comparisons on the same data."""
    panels = [Panel("overall_rmse", "overall RMSE (matched parameters)", "RMSE (mean)"),
              Panel("means_rmse", "means RMSE", "RMSE (mean)")]  # fmt: skip
    figures = metric_figures(data, out, "recovery", "Recovery error", panels)
    table, palette = data.table, plt.get_cmap("tab10")
    comparisons = [(a, b) for a, b in pairs(table) if not paired(table, a, b, "overall_rmse").empty]
    if not comparisons:
        return figures
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2), layout="constrained")
    hi = 0.0
    compared = {d for a, b in comparisons for d in paired(table, a, b, "overall_rmse")["data"]}
    order = [d for d in dict.fromkeys(table["data"]) if d in compared]  # conditions with pairs
    room = max(8, int(6.0 * 72 / max(len(order), 1) / (0.6 * 7)) - 1)  # characters per label
    for i, (a, b) in enumerate(comparisons):
        rows = paired(table, a, b, "overall_rmse")
        label = f"{b} vs {a}"
        left.scatter(rows["a"], rows["b"], s=18, alpha=0.7, color=palette(i), label=label)
        hi = max(hi, rows["a"].max(), rows["b"].max())
        stats = summarise(rows, ["data"], "difference", "mean")
        x = np.array([order.index(d) for d in stats["data"]]) + 0.08 * i
        errorbars(right, x, stats["value"], stats["se"], palette(i), label, fmt="o")
    right.set_xticks(range(len(order)), [wrap_label(o, room) for o in order], fontsize=7)
    left.plot([0, hi * 1.05], [0, hi * 1.05], "k--", lw=1, label="equal error")
    firsts = " or ".join(dict.fromkeys(a for a, _ in comparisons))
    seconds = " or ".join(dict.fromkeys(b for _, b in comparisons))
    left.set_xlabel(wrap_label(f"overall RMSE, {firsts}", 60))
    left.set_ylabel(wrap_label(f"overall RMSE, {seconds}", 40))
    left.set_title("each point: one data set fitted by both", fontsize=10)
    right.axhline(0.0, color="k", lw=1, ls="--")
    right.set_xlabel("data condition")
    right.set_ylabel(wrap_label(f"mean paired difference ({seconds} − {firsts})", 40))
    right.set_title("paired difference per condition", fontsize=10)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    figure_legend(fig, [left, right])
    caption = (
        f"Recovery error of {seconds} against {firsts} on the very same data sets (paired by "
        f"data condition and replicate). Left: one point per data set, the x axis the first "
        "fitter of the pair (legend: second vs first), the y axis the second; below the diagonal "
        "the second recovers the truth better. Right: mean of the per-data-set differences "
        "(second − first) per condition. " + ERRORBAR_NOTE
    )
    figures.append(save(fig, out, "recovery_paired", "Recovery error, paired", caption))
    return figures


def coverage_figures(data: ReportData, out: Path) -> list[Figure]:
    """Interval coverage of the truth against each grid variable, with the nominal level(s),
    and below it the mean interval width: coverage bought with wide intervals shows."""
    frame = completed(data.table)
    columns = coverage_columns(frame)
    if not columns:
        return []
    has = frame[columns].notna().any(axis=1)
    levels = sorted(set(nominal_level(frame)[has]))
    names = [c.removesuffix("_coverage") for c in columns]
    coverage = [Panel(c, f"{n}: coverage", "coverage of the truth", unit=True, reference=True)
                for c, n in zip(columns, names, strict=True)]  # fmt: skip
    widths = [Panel(f"{n}_width", f"{n}: interval width",
                    "mean width" + ("" if n == "weights" else " (data units)"))
              for n in names if _has(frame, f"{n}_width")]  # fmt: skip
    methods = set(frame.loc[has, "method"])
    kinds = []
    if "em" in methods:
        kinds.append("EM: Wald intervals from the observed information")
    if "bayes" in methods:
        kinds.append("Bayes: equal-tailed credible intervals")
    kinds += [f"{m}: its intervals" for m in sorted(methods - {"em", "bayes"})]
    only = ""
    if methods == {"bayes"}:
        only = (
            " Only Bayes is drawn: no EM fit stored intervals (set interval_level for Wald ones)."
        )
    elif methods == {"em"}:
        only = " Only EM is drawn: no Bayesian fit stored intervals."
    note = (
        f"Top: fraction of true parameters inside their interval ({'; '.join(kinds)}), averaged "
        f"over replicates; nominal level {', '.join(f'{v:g}' for v in levels)} dashed.{only} "
        "Bottom: the mean width of those intervals (weights in [0, 1]; means and sds in data "
        "units): high coverage from very wide intervals is no success."
    )
    return metric_figures(data, out, "coverage", "Interval coverage", [coverage, widths], note,
                          levels)  # fmt: skip

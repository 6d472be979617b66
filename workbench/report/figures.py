"""Matplotlib figures of a report, each saved as PNG and PDF.

Every figure is generic over the grid: it is drawn against each grid variable the stored table
holds (``data.*`` columns with more than one value), with one line per fitter condition
(prefixed by the experiment when several are overlaid). Rates carry binomial Monte Carlo error
bars and means sd / sqrt(m) error bars (one standard error), computed from per-replicate rows.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from workbench.evaluate import FAILURE_RULE  # noqa: E402
from workbench.report.summary import (  # noqa: E402
    ReportData,
    completed,
    coverage_columns,
    grid_variables,
    nominal_level,
    numeric_variable,
    paired,
    pairs,
    short_name,
    slug,
    summarise,
)

ERRORBAR_NOTE = "Error bars: one Monte Carlo standard error over replicates."
OUTCOME_COLOURS = {"global optimum": "tab:blue", "local optimum": "tab:red", "degenerate": "0.55"}


@dataclass(frozen=True)
class Figure:
    """A saved figure: ``key`` is the file stem of ``png`` and ``pdf``."""

    key: str
    title: str
    caption: str
    png: Path
    pdf: Path


def save(fig: plt.Figure, out: Path, key: str, title: str, caption: str) -> Figure:
    """Save ``fig`` as ``out/key.png`` and ``out/key.pdf`` and close it."""
    out.mkdir(parents=True, exist_ok=True)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    png, pdf = out / f"{key}.png", out / f"{key}.pdf"
    fig.savefig(png, dpi=110)
    fig.savefig(pdf)
    plt.close(fig)
    return Figure(key, title, caption, png, pdf)


def colours(data: ReportData) -> dict[str, tuple]:
    """One colour per legend series, stable across all figures of a report."""
    cmap = plt.get_cmap("tab10")
    names = list(dict.fromkeys(data.table["series"]))
    return {name: cmap(i % 10) for i, name in enumerate(names)}


# ---- shared line plot ----------------------------------------------------------------------------
def line_panel(
    ax: plt.Axes,
    frame: pd.DataFrame,
    variable: str | None,
    column: str,
    kind: str,
    palette: dict[str, tuple],
) -> bool:
    """Mean (or rate) of ``column`` against ``variable`` with MC error bars, one line per
    series. ``variable`` None puts the series on the x axis. Returns whether anything was drawn."""
    if variable is None:
        stats = summarise(frame, ["series"], column, kind)
        for i, row in enumerate(stats.itertuples()):
            _bars(ax, i, row.value, row.se, palette.get(row.series), row.series, fmt="o")
        ax.set_xticks(range(len(stats)), [wrap_label(s) for s in stats["series"]], fontsize=8)
        return not stats.empty
    stats = summarise(frame, ["series", variable], column, kind)
    if stats.empty:
        return False
    values = frame[variable].dropna().tolist()
    numeric = numeric_variable(frame[variable])
    if numeric:
        order = sorted(set(values))
        log = min(order) > 0 and max(order) / min(order) >= 20
        if log:
            ax.set_xscale("log")
    else:
        order = list(dict.fromkeys(str(v) for v in values))
        ax.set_xticks(range(len(order)), order, fontsize=8)
    series = list(dict.fromkeys(stats["series"]))
    for i, name in enumerate(series):
        rows = stats[stats["series"] == name]
        if numeric:
            x = rows[variable].to_numpy(dtype=float)
            idx = np.argsort(x)
            spread = _jitter(order, log) * (i - (len(series) - 1) / 2)
            x = x[idx] * math.exp(spread) if log else x[idx] + spread
        else:
            idx = np.argsort([order.index(str(v)) for v in rows[variable]])
            x = np.array([order.index(str(v)) for v in rows[variable]])[idx]
            x = x + 0.06 * (i - (len(series) - 1) / 2)
        _bars(
            ax,
            x,
            rows["value"].to_numpy()[idx],
            rows["se"].to_numpy()[idx],
            palette.get(name),
            name,
            marker="o",
        )
    ax.set_xlabel(short_name(variable))
    return True


def _jitter(order: list, log: bool) -> float:
    if len(order) < 2:
        return 0.0
    span = math.log(order[-1] / order[0]) if log else order[-1] - order[0]
    return 0.008 * span


def _bars(ax: plt.Axes, x, y, se, colour, label: str, **style) -> None:
    """Points (or a line) with one-standard-error bars; a missing se draws no bar."""
    se = np.nan_to_num(np.asarray(se, dtype=float), nan=0.0)
    ax.errorbar(x, y, yerr=se, capsize=3, color=colour, label=label, **style)


def wrap_label(text: str, width: int = 22) -> str:
    """``text`` on lines of at most ``width`` characters (a legend or tick label)."""
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


def _legend(ax: plt.Axes) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="best")


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
    """One panel of a figure against a grid variable: ``column`` summarised as a ``rate``
    (binomial error) or a ``mean`` (sd / sqrt(m) error)."""

    column: str
    title: str
    ylabel: str
    kind: str = "mean"
    log: bool = False
    unit: bool = False  # y in [0, 1]
    method: str | None = None  # only fits of this method (e.g. EM iterations)


def metric_figures(
    data: ReportData,
    out: Path,
    stem: str,
    title: str,
    panels: list[Panel],
    note: str = "",
    references: tuple[float, ...] | list[float] = (),
) -> list[Figure]:
    """One figure per grid variable, one panel per metric, one line per series; ``references``
    are dashed horizontal lines (e.g. nominal levels)."""
    frame = completed(data.table)
    panels = [p for p in panels if p.column in frame and frame[p.column].notna().any()]
    if not panels:
        return []
    frame = frame[frame[[p.column for p in panels]].notna().any(axis=1)]
    palette, figures = colours(data), []
    for variable in axes_variables(data):
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
        for ax, panel in zip(axes[0], panels, strict=True):
            rows = frame if panel.method is None else frame[frame["method"] == panel.method]
            line_panel(ax, rows, variable, panel.column, panel.kind, palette)
            ax.set(ylabel=panel.ylabel, title=panel.title)
            ax.grid(alpha=0.3)
            if panel.log:
                ax.set_yscale("log")
            if panel.unit:
                ax.set_ylim(-0.05, 1.05)
            for level in references:
                ax.axhline(level, color="k", ls="--", lw=1, label=f"nominal {level:g}")
        _legend(axes[0, 0])
        caption = f"{note or 'Mean over replicates.'}{_others(data, variable)} {ERRORBAR_NOTE}"
        key = f"{stem}_{_suffix(variable)}"
        figures.append(save(fig, out, key, f"{title} {_versus(variable)}", caption))
    return figures


def failure_rate_figures(data: ReportData, out: Path) -> list[Figure]:
    """Failure rate of the returned fit and of single starts against each grid variable."""
    panels = [
        Panel("failed", "returned fit (best of its restarts)", "local-optimum rate", "rate",
              unit=True),
        Panel("restart_failure_rate", "single start (fraction of restarts at a local optimum)",
              "per-start local-optimum rate", unit=True),
    ]  # fmt: skip
    note = (
        "A fit fails when, polished to its fixed point, it is a local optimum: more than "
        "1e-6 + 1e-8 |L| nats below the best known optimum (reference bank and all restarts) "
        f"with parameters that differ (rule {FAILURE_RULE}; degenerate fits are not failures). "
        "Binomial error bars for the returned fit, sd/sqrt(m) for the per-start rate."
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
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    hi = 0.0
    for i, (a, b) in enumerate(comparisons):
        rows = paired(table, a, b, "overall_rmse")
        label = f"{b} vs {a}"
        left.scatter(rows["a"], rows["b"], s=18, alpha=0.7, color=palette(i), label=label)
        hi = max(hi, rows["a"].max(), rows["b"].max())
        stats = summarise(rows, ["data"], "difference", "mean")
        order = list(dict.fromkeys(table["data"]))
        x = np.array([order.index(d) for d in stats["data"]]) + 0.08 * i
        _bars(right, x, stats["value"], stats["se"], palette(i), label, fmt="o")
        right.set_xticks(range(len(order)), [wrap_label(o, 18) for o in order], fontsize=7)
    left.plot([0, hi * 1.05], [0, hi * 1.05], "k--", lw=1, label="equal error")
    left.set_xlabel("overall RMSE, first fitter")
    left.set_ylabel("overall RMSE, second fitter")
    left.set_title("each point: one data set fitted by both")
    right.axhline(0.0, color="k", lw=1, ls="--")
    right.set_xlabel("data condition")
    right.set_ylabel("mean paired difference (second - first)")
    right.set_title("paired difference per condition")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    caption = (
        "Recovery error of two fitters on the very same data sets (paired by data condition and "
        "replicate). Below the diagonal the second fitter recovers the truth better. Right: mean "
        "of the per-data-set differences. " + ERRORBAR_NOTE
    )
    figures.append(save(fig, out, "recovery_paired", "Recovery error, paired", caption))
    return figures


def coverage_figures(data: ReportData, out: Path) -> list[Figure]:
    """Interval coverage of the truth against each grid variable, with the nominal level(s)."""
    frame = completed(data.table)
    columns = coverage_columns(frame)
    if not columns:
        return []
    has = frame[columns].notna().any(axis=1)
    levels = sorted(set(nominal_level(frame)[has]))
    panels = [Panel(c, c.removesuffix("_coverage"), "coverage of the truth", unit=True)
              for c in columns]  # fmt: skip
    note = (
        "Fraction of true parameters inside their interval (EM: Wald intervals from the observed "
        "information; Bayes: credible intervals), averaged over replicates; nominal level "
        f"{', '.join(f'{v:g}' for v in levels)} dashed."
    )
    return metric_figures(data, out, "coverage", "Interval coverage", panels, note, levels)

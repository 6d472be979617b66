"""The figure plumbing every report section shares: saving a figure as PNG and PDF, one colour
per legend series, error bars (one Monte Carlo standard error, or a rate's 95% Wilson interval),
side-by-side offsets so that bars at one x do not hide each other, the shared line panel of a
summary against a grid variable, wrapped labels and one legend below the panels."""

from __future__ import annotations

import math
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from workbench.report.store_reader import ReportData, numeric_variable, short_name  # noqa: E402
from workbench.report.summaries import summarise  # noqa: E402

ERRORBAR_NOTE = "Error bars: one Monte Carlo standard error over replicates."


@dataclass(frozen=True)
class Figure:
    """A saved figure: ``key`` is the file stem of ``png`` and ``pdf``."""

    key: str
    title: str
    caption: str
    png: Path
    pdf: Path


_COLLECTORS: list[list] = []


@contextmanager
def collecting(into: list | None):
    """While active, :func:`save` appends ``(key, matplotlib figure, caption)`` to ``into``
    before closing each figure (a hook for tests that inspect the drawn figures)."""
    if into is None:
        yield
        return
    _COLLECTORS.append(into)
    try:
        yield
    finally:
        _COLLECTORS.remove(into)


def save(fig: plt.Figure, out: Path, key: str, title: str, caption: str) -> Figure:
    """Save ``fig`` as ``out/key.png`` and ``out/key.pdf`` and close it."""
    out.mkdir(parents=True, exist_ok=True)
    fig.suptitle(title, fontsize=12)
    if fig.get_layout_engine() is None:  # constrained-layout figures place themselves
        fig.tight_layout()
    png, pdf = out / f"{key}.png", out / f"{key}.pdf"
    fig.savefig(png, dpi=110)
    fig.savefig(pdf)
    for into in _COLLECTORS:
        into.append((key, fig, caption))
    plt.close(fig)
    return Figure(key, title, caption, png, pdf)


def colours(data: ReportData) -> dict[str, tuple]:
    """One colour per legend series, stable across all figures of a report."""
    names = list(dict.fromkeys(data.table["series"]))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def rate_yerr(stats: pd.DataFrame) -> np.ndarray:
    """Asymmetric matplotlib ``yerr`` (2, m) from ``rate``/``value``, ``lower`` and ``upper``
    columns: the 95% Wilson interval around each rate (no bar where it is undefined)."""
    value = stats["rate"] if "rate" in stats else stats["value"]
    value = value.to_numpy(dtype=float)
    below = value - stats["lower"].to_numpy(dtype=float)
    above = stats["upper"].to_numpy(dtype=float) - value
    return np.nan_to_num(np.vstack([below, above]), nan=0.0).clip(min=0.0)


def errorbars(ax: plt.Axes, x, y, err, colour=None, label: str | None = None, **style) -> None:
    """Points (or a line, with ``marker``) with error bars: ``err`` symmetric (m,) or
    asymmetric (2, m); a missing (NaN) error draws no bar beyond the point."""
    err = np.nan_to_num(np.asarray(err, dtype=float), nan=0.0)
    if colour is not None:
        style["color"] = colour
    if label is not None:
        style["label"] = label
    ax.errorbar(x, y, yerr=err, capsize=3, **style)


def rate_bars(
    ax: plt.Axes, x, stats: pd.DataFrame, width: float, colour=None, label: str | None = None
) -> None:
    """Bars of the ``rate`` column of ``stats`` at ``x`` (NaN: no bar), each with its 95%
    Wilson interval (:func:`rate_yerr`)."""
    style: dict = {"label": label} if label is not None else {}
    if colour is not None:
        style["color"] = colour
    ax.bar(x, stats["rate"], width, yerr=rate_yerr(stats), capsize=3, **style)


def errorbar_line(
    ax: plt.Axes,
    stats: pd.DataFrame,
    x: str,
    label: str,
    colour=None,
    log_shift: float = 0.0,
    **style,
) -> None:
    """The means of a :func:`~workbench.report.summaries.summarise` frame against its column
    ``x``, joined in order of ``x``, with one-se bars; ``log_shift`` moves the points by the
    factor exp(log_shift) (side by side on a log axis)."""
    stats = stats.sort_values(x)
    xs = stats[x].to_numpy(dtype=float)
    if log_shift:
        xs = xs * math.exp(log_shift)
    errorbars(ax, xs, stats["value"], stats["se"], colour, label, marker="o", **style)


def offset(index: int, count: int, step: float) -> float:
    """Where series ``index`` of ``count`` sits beside the others at one x: centred steps of
    ``step`` (so that their error bars do not hide each other)."""
    return step * (index - (count - 1) / 2)


def spread_step(order: list, log: bool) -> float:
    """The side-by-side step on an axis with the sorted grid values ``order``: 0.8% of its span
    (of log x on a log axis)."""
    if len(order) < 2:
        return 0.0
    span = math.log(order[-1] / order[0]) if log else order[-1] - order[0]
    return 0.008 * span


def summary_errors(stats: pd.DataFrame) -> np.ndarray:
    """Error bars of :func:`~workbench.report.summaries.summarise` rows: the 95% Wilson interval
    (2, m) of a rate, else one standard error (m,)."""
    return rate_yerr(stats) if "lower" in stats else stats["se"].to_numpy(dtype=float)


def wrap_label(text: str, width: int = 22) -> str:
    """``text`` on lines of at most ``width`` characters (a legend or tick label)."""
    lines = textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)
    return "\n".join(lines) or text


def figure_legend(fig: plt.Figure, axes) -> None:
    """One legend below the panels (outside the data) with every labelled series of every
    panel, each label once. The figure must use the constrained layout."""
    seen: dict[str, object] = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if seen:
        width = fig.get_figwidth()  # inches; a wrapped 36-character label at 8 pt is ~2.8 in
        ncol = max(1, min(len(seen), 4, int(width // 3.0)))
        labels = [wrap_label(label, 36) for label in seen]
        fig.legend(list(seen.values()), labels, loc="outside lower center", ncol=ncol, fontsize=8)


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
        errors = summary_errors(stats)
        for i, row in enumerate(stats.itertuples()):
            errorbars(
                ax, i, row.value, errors[..., i], palette.get(row.series), row.series, fmt="o"
            )
        ax.set_xticks(range(len(stats)), [wrap_label(s) for s in stats["series"]], fontsize=8)
        return not stats.empty
    stats = summarise(frame, ["series", variable], column, kind)
    if stats.empty:
        return False
    stats = stats[stats[variable].notna()]  # an overlaid experiment without this axis
    if stats.empty:
        return False
    values = frame[variable].dropna().tolist()
    numeric = numeric_variable(frame[variable]) and not categorical(variable)
    log = False
    if numeric:
        order = sorted(set(values))
        log = min(order) > 0 and max(order) / min(order) >= 20
        if log:
            ax.set_xscale("log")
        if len(order) <= 8:  # ticks at the grid values, none between them
            ax.set_xticks(order, [f"{v:g}" for v in order], fontsize=8)
            ax.minorticks_off()
    else:
        order = list(dict.fromkeys(_category(v) for v in values))
        ax.set_xticks(range(len(order)), order, fontsize=8)
        ax.set_xlim(-0.5, len(order) - 0.5)
    series = list(dict.fromkeys(stats["series"]))
    for i, name in enumerate(series):
        rows = stats[stats["series"] == name]
        if numeric:
            x = rows[variable].to_numpy(dtype=float)
            idx = np.argsort(x)
            spread = offset(i, len(series), spread_step(order, log))
            x = x[idx] * math.exp(spread) if log else x[idx] + spread
        else:
            positions = [order.index(_category(v)) for v in rows[variable]]
            idx = np.argsort(positions)
            x = np.array(positions)[idx] + offset(i, len(series), 0.06)
        style = {"marker": "o"} if numeric else {"fmt": "o"}  # categories are not joined
        errorbars(
            ax,
            x,
            rows["value"].to_numpy()[idx],
            summary_errors(rows)[..., idx],
            palette.get(name),
            name,
            **style,
        )
    ax.set_xlabel(short_name(variable))
    return True


CATEGORICAL = ("K", "d")  # structural counts: a few distinct values, no order in between


def categorical(variable: str) -> bool:
    """Whether a numeric grid variable is drawn as categories (K, d, and any fit.* setting)."""
    return short_name(variable) in CATEGORICAL or variable.startswith("fit.")


def _category(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)

"""Report section of the scaling study (issue 6, item 5).

Wall time against the size of the problem: EM against n, K and d, NUTS against n (several
experiments may be overlaid, e.g. ``workbench report reports/scaling reports/scaling_bayes``).

- wall time: EM's own loop (``fit_time``, initialisation excluded); for Bayes the sampling time
  (``diag.sample_seconds``, compilation excluded), else ``fit_time``;
- time per iteration: EM's ``fit_time / n_iter``.

An *arm* of a series is a set of fits in which one of n, K, d varies and every other data
setting is fixed (found from the stored table, not from the config). Log-log slopes come from an
ordinary least-squares fit of log10(time) on log10(size) over the per-fit rows, with the
regression's standard error; the upper range uses the three largest sizes. The first fit of each
worker process and method is left out as a precaution (EM's compiled kernels are loaded before
any EM clock starts, but a process's first fit still meets cold caches and, for NUTS, a cold
sampler).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats as sps

from workbench.report import ReportContext, register_section
from workbench.report.html import Section
from workbench.report.plotting import ERRORBAR_NOTE, Figure, colours, errorbars, save
from workbench.report.store_reader import ReportData, completed, grid_variables, numbers, short_name
from workbench.report.summaries import summarise
from workbench.report.text import plus_minus, with_se

SIZES = ("data.n", "data.K", "data.d")
QUANTITIES = (("wall", "wall time (s)"), ("per_iter", "time per iteration (s)"))


def timing_table(data: ReportData) -> pd.DataFrame:
    """Completed fits with ``wall``, ``per_iter`` (EM) and ``warmup`` (first fit of its worker
    process and method)."""
    table = completed(data.table).copy()
    if table.empty:
        return table
    sample = numbers(table, "diag.sample_seconds")
    table["wall"] = sample.where(sample.notna(), numbers(table, "fit_time"))
    iters = numbers(table, "n_iter")
    table["per_iter"] = np.where(
        (table["method"] == "em") & (iters > 0), numbers(table, "fit_time") / iters, np.nan
    )
    first = table.sort_values("started_at").groupby(["experiment", "worker", "method"]).head(1)
    table["warmup"] = table.index.isin(first.index)
    table["order"] = table.groupby("series", sort=False).ngroup()  # legend order
    return table


def arms(table: pd.DataFrame) -> list[tuple[str, str, str, pd.DataFrame]]:
    """(series, size variable, fixed settings, rows) for each series and each of n, K, d that
    varies with everything else fixed (the group with most distinct sizes)."""
    variables = grid_variables(table)
    out = []
    for (_, series), rows in table.groupby(["order", "series"]):
        for size in (v for v in SIZES if v in variables):
            others = [v for v in variables if v != size]
            groups = rows.groupby(others, sort=False, dropna=False) if others else [((), rows)]
            best = None
            for key, group in groups:
                key = key if isinstance(key, tuple) else (key,)
                if group[size].nunique() >= 2 and (
                    best is None or group[size].nunique() > best[1][size].nunique()
                ):
                    fixed = ", ".join(
                        f"{short_name(v)}={_text(k)}"
                        for v, k in zip(others, key, strict=True)
                        if not _missing(k)
                    )
                    best = (fixed, group)
            if best is not None:
                out.append((str(series), size, best[0], best[1]))
    return out


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float | int) else str(value)


def slope(rows: pd.DataFrame, size: str, quantity: str) -> dict[str, float]:
    """Log-log OLS slope of ``quantity`` on ``size`` over per-fit rows: slope, se, r2, fits."""
    x = numbers(rows, size).to_numpy()
    y = numbers(rows, quantity).to_numpy()
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = np.log10(x[keep]), np.log10(y[keep])
    if keep.sum() < 3 or np.unique(x).size < 2:
        return {"slope": math.nan, "slope se": math.nan, "r2": math.nan, "fits": int(keep.sum())}
    fit = sps.linregress(x, y)
    return {
        "slope": float(fit.slope),
        "slope se": float(fit.stderr),
        "r2": float(fit.rvalue**2),
        "intercept": float(fit.intercept),
        "fits": int(keep.sum()),
    }


def slope_table(table: pd.DataFrame) -> pd.DataFrame:
    """Slopes per (series, size, quantity): over all sizes and over the three largest."""
    rows = []
    for series, size, fixed, group in arms(table[~table["warmup"]]):
        values = sorted(group[size].dropna().unique())
        ranges = [("all", values)]
        if len(values) >= 4:
            ranges.append(("upper", values[-3:]))
        for quantity, label in QUANTITIES:
            if group[quantity].notna().sum() == 0:
                continue
            for name, keep in ranges:
                fit = slope(group[group[size].isin(keep)], size, quantity)
                rows.append(
                    {
                        "series": series,
                        "against": short_name(size),
                        "fixed": fixed,
                        "quantity": label,
                        "range": f"{_text(keep[0])}..{_text(keep[-1])}",
                        "which": name,
                        **fit,
                    }
                )
    return pd.DataFrame(rows)


def means_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per (series, size variable, size): mean wall time, time per iteration and iterations."""
    rows = []
    for series, size, fixed, group in arms(table[~table["warmup"]]):
        merged = None
        for column, label in (*QUANTITIES, ("n_iter", "iterations")):
            stats = summarise(group, [size], column)
            if stats.empty:
                continue
            stats = stats.rename(columns={"value": label, "se": f"{label} se", "m": "fits"})
            merged = stats if merged is None else merged.merge(stats.drop(columns="fits"))
        if merged is None:
            continue
        merged = merged.rename(columns={size: "size"}).sort_values("size")
        merged.insert(0, "fixed", fixed)
        merged.insert(0, "against", short_name(size))
        merged.insert(0, "series", series)
        rows.append(merged)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def scaling_figures(data: ReportData, table: pd.DataFrame, out: Path) -> list[Figure]:
    """Per size variable: log-log wall time and time per iteration, one line per series, with
    the fitted power law dashed."""
    palette, figures = colours(data), []
    found = arms(table[~table["warmup"]])
    for size in SIZES:
        mine = [a for a in found if a[1] == size]
        if not mine:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.4))
        for ax, (quantity, label) in zip(axes, QUANTITIES, strict=True):
            for series, _, fixed, group in mine:
                stats = summarise(group, [size], quantity).sort_values(size)
                if stats.empty:
                    continue
                fit = slope(group, size, quantity)
                name = f"{series} ({fixed})" if fixed else series
                if np.isfinite(fit["slope"]):
                    name += f": slope {fit['slope']:.2f} ± {fit['slope se']:.2f}"
                    grid = np.geomspace(stats[size].min(), stats[size].max(), 50)
                    ax.plot(
                        grid,
                        10 ** (fit["intercept"] + fit["slope"] * np.log10(grid)),
                        ls="--",
                        lw=1,
                        color=palette.get(series),
                    )
                errorbars(ax, stats[size], stats["value"], stats["se"], palette.get(series), name,
                          marker="o", ls="none")  # fmt: skip
            ax.set(xscale="log", yscale="log", xlabel=short_name(size), ylabel=label)
            ax.grid(alpha=0.3, which="both")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        caption = (
            f"Mean over replicates against {short_name(size)} on log-log axes; dashed: the "
            "least-squares power law over the per-fit rows (slope ± its regression standard "
            "error in the legend). EM: its own loop (initialisation excluded); Bayes: sampling "
            "(compilation excluded). " + ERRORBAR_NOTE
        )
        key = f"scaling_{short_name(size)}"
        figures.append(save(fig, out, key, f"Wall time against {short_name(size)}", caption))
    return figures


def _slope(row: pd.Series) -> str:
    return plus_minus(row["slope"], row["slope se"], ".2f", ".2f")


def findings(table: pd.DataFrame, slopes: pd.DataFrame, means: pd.DataFrame) -> list[str]:
    """Sentences generated from the numbers."""
    out = []
    warm = int(table["warmup"].sum())
    out.append(f"{len(table)} timed fits; {warm} first-in-process fit(s) left out as warm-up.")
    for (series, against), rows in slopes.groupby(["series", "against"], sort=False):
        parts = []
        for _, r in rows.iterrows():
            parts.append(
                f"{r['quantity']} ~ {against}^({_slope(r)}) over "
                f"{against} = {r['range']} (R² {r['r2']:.2f}, {r['fits']} fits)"
            )
        out.append(f"{series}, against {against}: " + "; ".join(parts) + ".")
    n_rows = means[means["against"] == "n"] if not means.empty else means
    largest = []
    for series, rows in n_rows.groupby("series", sort=False):
        top = rows.loc[rows["size"].idxmax()]
        where = f" ({top['fixed']})" if top["fixed"] else ""
        text = f"{series}{where} at n = {_text(top['size'])}: {top['wall time (s)']:.3g} s per fit"
        if np.isfinite(top.get("time per iteration (s)", math.nan)):
            text += f" ({1e3 * top['time per iteration (s)']:.3g} ms per iteration)"
        largest.append(text)
    common = None
    for _, rows in n_rows.groupby("series", sort=False):
        sizes = set(rows["size"])
        common = sizes if common is None else common & sizes
    if largest:
        out.append("Largest n: " + "; ".join(largest) + ".")
    if common and n_rows["series"].nunique() > 1:
        at = max(common)
        at_n = n_rows[n_rows["size"] == at].set_index("series")
        rows = at_n["wall time (s)"]
        slow, fast = rows.idxmax(), rows.idxmin()

        def named(series: str) -> str:  # the series and its data (the arms may differ in K, d)
            fixed = at_n.loc[series, "fixed"]
            return f"{series}, {fixed}" if fixed else str(series)

        out.append(
            f"At n = {_text(at)}, the slowest series ({named(slow)}) took "
            f"{rows.max() / rows.min():.3g} times as long per fit as the fastest ({named(fast)})."
        )
    return out


@register_section("scaling", "Scaling: wall time against n, K and d")
def scaling_section(ctx: ReportContext, section: Section) -> None:
    """Wall time and time per iteration against n, K and d, with log-log slopes."""
    table = timing_table(ctx.data)
    if table.empty:
        section.note("No completed fit in this experiment.")
        return
    section.text(
        "Cost of a fit against the size of the problem. EM: wall time of its own loop "
        "(initialisation excluded) and time per iteration; Bayes: NUTS sampling time "
        "(compilation excluded). Slopes of log time on log size from least squares over the "
        "per-fit rows, ± the regression's standard error. Timings depend on the machine and its "
        "load (see the runs' provenance)."
    )
    slopes, means = slope_table(table), means_table(table)
    section.figures(scaling_figures(ctx.data, table, ctx.figures_dir))
    if slopes.empty:
        section.note("No arm in which n, K or d varies with everything else fixed.")
    else:
        section.table(
            with_se(slopes.drop(columns=["intercept", "which"], errors="ignore")),
            "log-log slopes (± regression se)",
        )
        section.table(with_se(means), "mean times per size (± MC se)", True)
    section.heading("What we found")
    for sentence in findings(table, slopes, means):
        section.text(sentence, "finding")

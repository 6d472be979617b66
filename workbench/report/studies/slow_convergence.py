"""Report section of the slow-convergence study (issue 6, item 2): EM-map evaluations and time
to reach tol against Delta and n; the rate measured from each trace against the DM-matrix rate at
the fit and the population curve; SQUAREM's savings at equal accuracy (within ``EPSILON`` nats of
the best known optimum); over-specified fits (Dwivedi et al. 2020) with log-log slopes over n.
Arms come from the stored settings: ``symmetric_means`` fits of one-component data are the
over-specified arm, other EM fits of two-component data the rate study (SQUAREM by
``acceleration``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.montecarlo import count_rate, mean_se
from workbench.population_theory import population_rate
from workbench.report import ReportContext, register_section
from workbench.report.html import Section
from workbench.report.plotting import ERRORBAR_NOTE, Figure, errorbar_line, save
from workbench.report.store_reader import Experiment, ReportData, completed, numbers
from workbench.report.studies._overspecified import (
    flag,
    loglog_slope,
    overspecified_figure,
    overspecified_findings,
    overspecified_fits,
    slope_table,
)
from workbench.report.summaries import summarise
from workbench.report.text import rate_text, with_se

EPSILON = 1e-6  # nats: the accuracy at which SQUAREM and plain EM are compared
RATE_TOLERANCE = 0.05  # relative: measured against computed rate
GOAL = 10.0  # SQUAREM's goal: this many times fewer EM-map evaluations at the smallest Delta


# ---- the fits of each arm ------------------------------------------------------------------------
def rate_fits(data: ReportData) -> pd.DataFrame:
    """Completed EM fits of two-component data, not over-specified: the rate and SQUAREM arms,
    with a ``scheme`` column (``plain EM`` or ``SQUAREM``)."""
    table = completed(data.table)
    table = table[(table["method"] == "em") & (numbers(table, "data.K") == 2)]
    table = table[~flag(table, "fit.symmetric_means")].copy()
    squarem = table.get("fit.acceleration", pd.Series(None, index=table.index)) == "squarem"
    table["scheme"] = np.where(squarem, "SQUAREM", "plain EM")
    if data.table["experiment"].nunique() > 1:
        table["scheme"] = table["experiment"] + ": " + table["scheme"]
    return table


def axis_rows(table: pd.DataFrame, axis: str, fixed: str) -> tuple[pd.DataFrame, float | None]:
    """Rows along ``axis`` (e.g. data.separation) at the value of ``fixed`` (e.g. data.n) with
    the most distinct ``axis`` values; (rows, that value)."""
    if table.empty or axis not in table or fixed not in table:
        return table.iloc[0:0], None
    counts = table.groupby(fixed)[axis].nunique()
    if counts.max() < 2:
        return table.iloc[0:0], None
    value = counts.idxmax()
    return table[table[fixed] == value], float(value)


def population_rates(deltas: np.ndarray) -> np.ndarray:
    """The population fraction of missing information (all five parameters free) at each Delta."""
    return np.array([_population_rate(float(x)) for x in np.asarray(deltas, dtype=float)])


@functools.lru_cache(maxsize=256)
def _population_rate(delta: float) -> float:
    # A closed form (quadrature), not a fit: the report still reads every result from the store.
    return float(population_rate(delta))


def squarem_pairs(exp: Experiment, table: pd.DataFrame) -> pd.DataFrame:
    """Per data set fitted by both plain EM and SQUAREM: EM-map evaluations to come within
    EPSILON nats of the best known optimum (both fits, both truth-started references). Plain EM:
    its first such iteration (its total when it stopped short: ``em_reached`` False). SQUAREM,
    from its per-cycle trace (1 evaluation, 3 per cycle, plus those its rejected extrapolations
    cost anywhere in the run): between ``squarem_low`` and ``squarem_evaluations``."""
    rows = table[table["experiment"] == exp.name]
    plain = rows[rows["scheme"].str.endswith("plain EM")]
    fast = rows[rows["scheme"].str.endswith("SQUAREM")]
    both = plain.merge(fast, on=["data_id", "replicate"], suffixes=("", "_sq"))
    if both.empty:
        return pd.DataFrame()
    # The optimum both runs head for: their own ends and the truth-started runs, not the bank's
    # best known optimum, which can be another (higher) fixed point neither run is heading to.
    columns = ("loglik", "loglik_sq", "diag.truth_start_loglik", "diag.truth_start_loglik_sq")
    best = np.fmax.reduce([numbers(both, c).to_numpy() for c in columns])
    ids = [*both["cell_id"], *both["cell_id_sq"]]
    traces = exp.traces(ids)
    top = traces["cell_id"].map(dict(zip(ids, np.r_[best, best], strict=True)))
    close = traces[top - traces["loglik"] <= EPSILON].groupby("cell_id")["iteration"].min()
    cycles = both["cell_id_sq"].map(traces.groupby("cell_id")["iteration"].max())
    total = both["n_iter_sq"].astype(float)
    extra = (total - 1 - 3 * cycles).clip(lower=0)
    first = both["cell_id"].map(close)
    pairs = both[["data_id", "replicate", "data.separation", "data.n"]].copy()
    pairs["em_reached"] = first.notna()
    pairs["em_evaluations"] = first.fillna(both["n_iter"]).astype(float)
    pairs["squarem_low"] = 1 + 3 * both["cell_id_sq"].map(close)
    pairs["squarem_evaluations"] = np.minimum(pairs["squarem_low"] + extra, total)
    pairs["squarem_final_gap"] = best - numbers(both, "loglik_sq")
    pairs["ratio"] = pairs["em_evaluations"] / pairs["squarem_evaluations"]
    pairs["ratio_optimistic"] = pairs["em_evaluations"] / pairs["squarem_low"]
    pairs["tol_ratio"] = numbers(both, "n_iter") / total
    pairs["time_ratio"] = numbers(both, "fit_time") / numbers(both, "fit_time_sq")
    return pairs


# ---- figures -------------------------------------------------------------------------------------
def axis_figure(fits: pd.DataFrame, out: Path, axis: str, fixed: str) -> Figure | None:
    """Evaluations, wall time and rates against ``axis`` (data.separation or data.n)."""
    rows, value = axis_rows(fits, axis, fixed)
    if rows.empty:
        return None
    name = "Delta" if axis == "data.separation" else "n"
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.6))
    for scheme, group in rows.groupby("scheme", sort=False):
        errorbar_line(left, summarise(group, [axis], "n_iter"), axis, scheme)
        errorbar_line(middle, summarise(group, [axis], "fit_time"), axis, scheme)
    plain = rows[rows["scheme"].str.endswith("plain EM")]
    errorbar_line(right, summarise(plain, [axis], "diag.rate_measured"), axis, "measured (trace)")
    errorbar_line(right, summarise(plain, [axis], "diag.rate_theory"), axis, "DM matrix at the fit",
          ls="--", mfc="none")  # fmt: skip
    if axis == "data.separation":
        grid = np.unique(np.r_[np.linspace(rows[axis].min(), rows[axis].max(), 10), rows[axis]])
        curve = population_rates(grid)
    else:
        grid = np.array([rows[axis].min(), rows[axis].max()])
        curve = population_rates(np.array([value, value]))  # flat: Delta is fixed
    right.plot(grid, curve, "k:", lw=1.5, label="population (n = infinity)")
    for ax, ylabel in ((left, "EM-map evaluations"), (middle, "fit time (s, compile excluded)"),
                       (right, "linear rate")):  # fmt: skip
        ax.set(xlabel=name, ylabel=ylabel, xscale="log" if name == "n" else "linear")
        ax.set_yscale("linear" if ax is right else "log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    at = f"n = {value:g}" if axis == "data.separation" else f"Delta = {value:g}"
    caption = (
        f"Two unit Gaussians, weights 1/2, {at}, all five parameters free, kmeans++ start. Left: "
        "EM-map evaluations to reach tol (one per iteration for plain EM). Right: the linear "
        "rate measured from each trace, the spectral radius of the EM map's Jacobian at the fit, "
        f"and the population fraction of missing information. {ERRORBAR_NOTE}"
    )
    key = f"slow_convergence_vs_{'separation' if name == 'Delta' else 'n'}"
    return save(fig, out, key, f"Iterations, time and rate vs {name}", caption)


def squarem_figure(pairs: pd.DataFrame, out: Path) -> Figure | None:
    """EM-map evaluations to come within EPSILON nats, plain EM and SQUAREM, and their ratio."""
    rows, value = axis_rows(pairs, "data.separation", "data.n")
    if rows.empty:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, column, label in (
        (left, "em_evaluations", "plain EM"),
        (left, "squarem_evaluations", "SQUAREM (upper bound)"),
        (right, "ratio", "plain EM / SQUAREM (conservative)"),
        (right, "tol_ratio", "same, counting all evaluations to tol"),
    ):
        errorbar_line(ax, summarise(rows, ["data.separation"], column), "data.separation", label)
    right.axhline(GOAL, color="k", ls="--", lw=1, label=f"goal {GOAL:g}x")
    right.axhline(1.0, color="0.5", lw=1)
    left.set(xlabel="Delta", ylabel="EM-map evaluations", yscale="log")
    right.set(xlabel="Delta", ylabel="evaluation ratio (per data set)", yscale="log")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    caption = (
        f"n = {value:g}. EM-map evaluations to come within {EPSILON:g} nats of the best known "
        "optimum of each data set: plain EM's first such iteration, from its trace; SQUAREM's "
        "first such cycle, counting 3 evaluations per cycle plus every evaluation the run spent "
        "on rejected extrapolations (an upper bound). Right, also: all evaluations to "
        f"convergence at tol (plain EM then stops less close to the optimum). {ERRORBAR_NOTE}"
    )
    return save(fig, out, "slow_convergence_squarem", "SQUAREM's savings", caption)


# ---- tables and findings -------------------------------------------------------------------------
def stat_table(frame: pd.DataFrame, names: dict[str, str], count: str) -> pd.DataFrame:
    """Per (Delta, n): the number of rows and the mean ± MC se of each column, renamed."""
    by = ["data.separation", "data.n"]
    table = frame.groupby(by, sort=True).size().rename(count).reset_index()
    for column, name in names.items():
        stats = summarise(frame, by, column).rename(columns={"value": name, "se": f"{name} se"})
        table = table.merge(stats.drop(columns="m"), on=by, how="left")
    return table


def rate_table(fits: pd.DataFrame) -> pd.DataFrame:
    """Per (Delta, n) of plain EM: fits, measured and DM rates ± se, the population rate, and the
    share of fits with a measured rate within RATE_TOLERANCE of the DM rate."""
    plain = fits[fits["scheme"].str.endswith("plain EM")].copy()
    plain["relative"] = (
        numbers(plain, "diag.rate_measured") / numbers(plain, "diag.rate_theory") - 1
    ).abs()
    plain["within"] = (plain["relative"] <= RATE_TOLERANCE).where(plain["relative"].notna())
    names = {"diag.rate_measured": "rate measured", "diag.rate_theory": "rate DM matrix",
             "n_iter": "iterations", "fit_time": "fit time (s)"}  # fmt: skip
    table = stat_table(plain, names, "fits")
    table.insert(6, "population rate", population_rates(table["data.separation"].to_numpy()))
    by = ["data.separation", "data.n"]
    within = summarise(plain, by, "within", "rate")
    within[f"within {RATE_TOLERANCE:.0%} (95% CI)"] = [
        rate_text({"rate": r.value, "lower": r.lower, "upper": r.upper, "k": r.k, "n": r.m})
        for r in within.itertuples()
    ]
    return table.merge(within[[*by, within.columns[-1]]], on=by, how="left")


def rate_findings(fits: pd.DataFrame) -> list[str]:
    """Sentences on the rates and the iteration counts."""
    table = rate_table(fits)
    plain = fits[fits["scheme"].str.endswith("plain EM")]
    measured = numbers(plain, "diag.rate_measured")
    relative = (measured / numbers(plain, "diag.rate_theory") - 1).abs().dropna()
    misses = plain.loc[relative.index[relative > RATE_TOLERANCE]]
    where = ", ".join(
        f"{count} at Delta {delta:g}, n = {n:g}"
        for (delta, n), count in misses.groupby(["data.separation", "data.n"]).size().items()
    )
    out = [
        f"Measured rate within {RATE_TOLERANCE:.0%} of the DM-matrix rate: "
        f"{rate_text(count_rate(int((relative <= RATE_TOLERANCE).sum()), len(relative)))} of "
        f"the plain-EM fits with a measurable rate ({int(measured.isna().sum())} converged too "
        "fast to measure one); "
        f"largest relative difference {relative.max():.3g}"
        + (f"; outside: {where}." if where else ".")
    ]
    rows, n = axis_rows(fits, "data.separation", "data.n")
    if n is not None:
        sub = table[table["data.n"] == n]
        parts = [
            f"Delta {r['data.separation']:g}: measured {r['rate measured']:.3f}, DM "
            f"{r['rate DM matrix']:.3f}"
            + (f", population {r['population rate']:.3f}" if "population rate" in r else "")
            + f", {r['iterations']:.0f} ± {r['iterations se']:.2g} iterations"
            for _, r in sub.iterrows()
        ]
        out.append(f"Plain EM at n = {n:g} (mean over replicates): " + "; ".join(parts) + ".")
    rows, delta = axis_rows(fits, "data.n", "data.separation")
    if delta is not None:
        plain_n = rows[rows["scheme"].str.endswith("plain EM")]
        for column, what in (("n_iter", "iterations"), ("fit_time", "wall time")):
            stats = summarise(plain_n, ["data.n"], column)
            slope, se, _ = loglog_slope(stats["data.n"], stats["value"], stats["se"])
            out.append(
                f"Plain EM at Delta = {delta:g}: {what} scaled as n^({slope:.2f} ± {se:.2f}) from "
                f"n = {stats['data.n'].min():g} to {stats['data.n'].max():g}."
            )
    return out


def squarem_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per (Delta, n): data sets, mean evaluations to within EPSILON nats and ratios ± se."""
    names = {"em_evaluations": "plain EM", "squarem_evaluations": "SQUAREM", "ratio": "ratio",
             "ratio_optimistic": "ratio (lower SQUAREM count)", "tol_ratio": "ratio to tol",
             "time_ratio": "wall-time ratio"}  # fmt: skip
    return stat_table(pairs, names, "data sets")


def squarem_findings(pairs: pd.DataFrame) -> list[str]:
    """Sentences on SQUAREM's savings per Delta, and the goal at the smallest Delta."""
    rows, n = axis_rows(pairs, "data.separation", "data.n")
    if rows.empty:
        return []
    out = []
    for _, r in squarem_table(rows).iterrows():
        group = rows[rows["data.separation"] == r["data.separation"]]
        out.append(
            f"SQUAREM, Delta {r['data.separation']:g}, n = {n:g}: to come within {EPSILON:g} nats "
            f"plain EM needed {r['plain EM']:.0f} ± {r['plain EM se']:.2g} EM-map evaluations, "
            f"SQUAREM at most {r['SQUAREM']:.0f} ± {r['SQUAREM se']:.2g}; ratio plain EM / "
            f"SQUAREM {r['ratio']:.2f} ± {r['ratio se']:.2g} per data set "
            f"({r['ratio to tol']:.2f} ± {r['ratio to tol se']:.2g} counting all evaluations "
            "to tol; "
            f"{int(r['data sets'])} data sets, plain EM stopped short in "
            f"{int((~group['em_reached']).sum())}, SQUAREM in "
            f"{int(group['squarem_low'].isna().sum())}); wall time plain EM / SQUAREM "
            f"{r['wall-time ratio']:.2f} ± {r['wall-time ratio se']:.2g}."
        )
    lowest = rows["data.separation"].min()
    ratio, se, _ = mean_se(rows.loc[rows["data.separation"] == lowest, "ratio"].to_numpy())
    verdict = (
        "met beyond twice its MC error" if ratio - 2 * se >= GOAL
        else "met on average only" if ratio >= GOAL else "missed"
    )  # fmt: skip
    out.append(f"SQUAREM's goal of {GOAL:g}x fewer evaluations at Delta = {lowest:g}: {verdict}.")
    return out


@register_section("slow_convergence", "Slow convergence: rates, SQUAREM, over-specified fits")
def slow_convergence_section(ctx: ReportContext, section: Section) -> None:
    """Figures, tables and generated findings of the slow-convergence study."""
    fits, over = rate_fits(ctx.data), overspecified_fits(ctx.data)
    if fits.empty and over.empty:
        section.note("No rate-study or over-specified EM fits are stored for this experiment.")
        return
    pairs = [squarem_pairs(exp, fits) for exp in ctx.data.experiments]
    pairs = pd.concat([p for p in pairs if not p.empty] or [pd.DataFrame()], ignore_index=True)
    out = ctx.figures_dir
    drawn = [
        axis_figure(fits, out, "data.separation", "data.n"),
        axis_figure(fits, out, "data.n", "data.separation"),
        squarem_figure(pairs, out) if not pairs.empty else None,
        overspecified_figure(over, out),
    ]
    section.figures([f for f in drawn if f is not None])
    if not fits.empty:
        section.table(with_se(rate_table(fits)), "linear rate of plain EM by Delta and n")
    if not pairs.empty:
        section.table(with_se(squarem_table(pairs)), "EM-map evaluations to within 1e-6 nats")
    if not over.empty:
        section.table(with_se(slope_table(over)), "over-specified fits: log-log slopes over n")
    section.heading("What we found")
    for frame, findings in ((fits, rate_findings), (pairs, squarem_findings),
                            (over, overspecified_findings)):  # fmt: skip
        for sentence in [] if frame.empty else findings(frame):
            section.text(sentence, "finding")

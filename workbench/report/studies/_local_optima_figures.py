"""Figures of the local-optima study (:mod:`workbench.report.studies.local_optima`), and the
rates they plot: per-start local-optimum rates with 95% Wilson intervals, restarts of one data
set counted as a correlated cluster."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.evaluate import GROSS_CHANGE, PARAM_TOL
from workbench.montecarlo import summarise_rate
from workbench.report.plotting import (
    Figure,
    errorbars,
    figure_legend,
    offset,
    rate_bars,
    rate_yerr,
    save,
)
from workbench.report.store_reader import slug
from workbench.status import FailureKind

DATA_SET = ["data_id", "replicate"]  # restarts on one data set are correlated
CI_NOTE = (
    "Error bars: 95% Wilson intervals (effective sample size allowing for restarts on one data "
    "set being correlated)."
)
KIND_COLOURS = {
    FailureKind.GROSS: "tab:red",
    FailureKind.MINOR: "tab:orange",
    FailureKind.BELOW: "tab:purple",
}


def rates(outcomes: pd.DataFrame, by: list[str], column: str = "failed") -> pd.DataFrame:
    """Per group of ``by``: rate of the 0/1 ``column`` with its 95% Wilson interval (restarts of
    one data set a correlated cluster): columns rate, lower, upper, k, n, n_eff, clusters."""
    if column == "cell_failed":  # one returned fit per cell
        outcomes = outcomes.drop_duplicates("cell_id")
    return summarise_rate(outcomes, by, column, DATA_SET)


def reference_curve(K: np.ndarray) -> np.ndarray:
    """1 - K! / K^K: the chance that K uniform centres leave some cluster without one."""
    K = np.asarray(K, dtype=float)
    return 1.0 - np.exp([math.lgamma(k + 1) - k * math.log(k) for k in K])


# ---- figures -------------------------------------------------------------------------------------
def figure_vs_k(outcomes: pd.DataFrame, arm: str, out: Path) -> Figure | None:
    """One arm (equal weights): per-start local-optimum rate against K (categorical), one line
    per separation, one panel per (dimension, init); nothing pooled."""
    data = outcomes[(outcomes["arm"] == arm) & outcomes["equal_weights"]]
    ks = sorted(data["data.K"].unique())
    if len(ks) < 2:
        return None
    dims, inits = sorted(data["data.d"].unique()), list(dict.fromkeys(data["fit.init"]))
    seps = sorted(data["data.separation"].astype(float).unique())
    cmap = plt.get_cmap("viridis")
    colour = {c: cmap(i / max(len(seps) - 1, 1)) for i, c in enumerate(seps)}
    fig, axes = plt.subplots(len(dims), len(inits), figsize=(4.2 * len(inits), 3.6 * len(dims)),
                             squeeze=False, sharey=True, layout="constrained")  # fmt: skip
    stats = rates(data, ["data.d", "fit.init", "data.separation", "data.K"])
    x = {k: i for i, k in enumerate(ks)}
    for i, d in enumerate(dims):
        for j, init in enumerate(inits):
            ax = axes[i, j]
            for s, sep in enumerate(seps):
                rows = stats[(stats["data.d"] == d) & (stats["fit.init"] == init)
                             & (stats["data.separation"].astype(float) == sep)]  # fmt: skip
                xs = np.array([x[k] for k in rows["data.K"]]) + offset(s, len(seps), 0.06)
                errorbars(ax, xs, rows["rate"], rate_yerr(rows), colour[sep], f"c = {sep:g}",
                          marker="o")  # fmt: skip
            ax.plot(range(len(ks)), reference_curve(ks), "k--", lw=1, label="1 - K!/K^K")
            ax.set_xticks(range(len(ks)), [str(int(k)) for k in ks])
            ax.set(xlabel="K", ylim=(-0.03, 1.03))
            ax.set_title(f"d = {int(d)}, init {init}", fontsize=9)
            ax.grid(alpha=0.3)
        axes[i, 0].set_ylabel("per-start local-optimum rate")
    figure_legend(fig, axes)  # separations (c = ...) and the reference curve, below the panels
    placement = ", ".join(sorted(set(data["data.placement"].astype(str))))
    caption = (
        f"{arm}: fraction of single EM starts ending in a local optimum (minor or gross, judged "
        "at the polished fixed point against the best known optimum), against K at each fixed "
        f"c-separation (one line each), per dimension and initialisation; placement {placement}."
        " Degenerate and unresolved starts are not counted as local optima (table below). "
        f"Dashed: 1 - K!/K^K, the chance that uniform random centres miss a cluster. {CI_NOTE}"
    )
    key = f"local_optima_vs_k_{slug(str(data['fitter_name'].iloc[0]))}"
    return save(fig, out, key, f"Local optima per start vs K: {arm}", caption)


def figure_gaps(outcomes: pd.DataFrame, out: Path) -> Figure | None:
    """Severity: the distribution of the gap (nats below the best known optimum) of every local
    optimum, per arm, minor and gross apart."""
    local = outcomes[outcomes["failed"] == 1]
    gaps = pd.to_numeric(local["gap"], errors="coerce")
    local = local[np.isfinite(gaps) & (gaps > 0)]
    if local.empty:
        return None
    arms = list(dict.fromkeys(outcomes["arm"]))
    arms = [a for a in arms if a in set(local["arm"])]
    fig, axes = plt.subplots(1, len(arms), figsize=(4.6 * len(arms), 3.8), squeeze=False)
    logs = np.log10(pd.to_numeric(local["gap"]))
    bins = np.linspace(np.floor(logs.min()), np.ceil(logs.max()) + 1e-9, 25)
    for ax, arm in zip(axes[0], arms, strict=True):
        rows = local[local["arm"] == arm]
        for kind, colour in KIND_COLOURS.items():
            values = np.log10(pd.to_numeric(rows.loc[rows["failure_kind"] == kind, "gap"]))
            if len(values):
                ax.hist(values, bins=bins, alpha=0.7, color=colour, label=f"{kind} ({len(values)})")
        ax.set(xlabel="log10 gap (nats below the best known)", ylabel="local optima")
        ax.set_title(arm, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    caption = (
        "How bad the local optima are: the log-likelihood gap of every restart judged a local "
        f"optimum. Gross: a best-known cluster moved by more than {GROSS_CHANGE:g} of its sd or "
        "its weight halved or doubled (merged, split or taken by the wrong component); minor: "
        f"a distinct fixed point (parameters differ by more than {PARAM_TOL:g} data sd) short "
        "of that."
    )
    return save(fig, out, "local_optima_gaps", "Gaps of the local optima", caption)


def figure_arms(outcomes: pd.DataFrame, out: Path) -> Figure | None:
    """Unequal-weight K = 2 data (Xu-Hsu-Maleki), per arm: left per init, right against
    separation (inits pooled)."""
    unequal = outcomes[~outcomes["equal_weights"] & (outcomes["data.K"] == 2)]
    if unequal.empty or unequal["arm"].nunique() < 2:
        return None
    cmap = plt.get_cmap("tab10")
    palette = {a: cmap(i % 10) for i, a in enumerate(dict.fromkeys(unequal["arm"]))}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    stats = rates(unequal, ["arm", "fit.init"])
    inits = list(dict.fromkeys(unequal["fit.init"]))
    width = 0.8 / len(palette)
    for i, arm in enumerate(palette):
        rows = stats[stats["arm"] == arm].set_index("fit.init").reindex(inits)
        x = np.arange(len(inits)) + offset(i, len(palette), width)
        rate_bars(left, x, rows, width, palette[arm], arm)
    left.set_xticks(range(len(inits)), inits, fontsize=8)
    left.set(ylabel="per-start local-optimum rate", ylim=(0, 1.03))
    left.set_title("per initialisation, separations pooled", fontsize=9)
    by_sep = rates(unequal, ["arm", "data.separation"])
    for arm, colour in palette.items():
        rows = by_sep[by_sep["arm"] == arm]
        errorbars(right, rows["data.separation"].astype(float), rows["rate"], rate_yerr(rows),
                  colour, arm, marker="o")  # fmt: skip
    separations = sorted(unequal["data.separation"].astype(float).unique())
    right.set_xticks(separations)
    if len(separations) == 1:
        right.set_xlim(separations[0] - 1, separations[0] + 1)
    right.set(xlabel="separation c", ylabel="per-start local-optimum rate", ylim=(-0.03, 1.03))
    right.set_title("against separation, inits pooled", fontsize=9)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    weights = ", ".join(sorted(set(unequal["data.weights"].astype(str))))
    caption = (
        f"Xu, Hsu & Maleki's setting: two components with weights {weights}, the same data sets "
        "fitted by each arm; holding the weights at their true values against estimating them. "
        f"{CI_NOTE}"
    )
    return save(fig, out, "local_optima_arms", "Fixed against free weights (K = 2)", caption)

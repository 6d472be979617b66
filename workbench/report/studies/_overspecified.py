"""The over-specified arm of the slow-convergence study (Dwivedi et al. 2020): two components
with symmetric means +-theta fitted to one Gaussian; the error ||theta_hat|| and the iterations
against n, with weighted log-log slopes (:func:`loglog_slope`, also used for the rate study).
Helpers of :mod:`workbench.report.studies.slow_convergence`, which shows them in its section."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.report.plotting import ERRORBAR_NOTE, Figure, errorbar_line, save
from workbench.report.store_reader import ReportData, completed, numbers
from workbench.report.summaries import summarise


def flag(frame: pd.DataFrame, column: str) -> pd.Series:
    """True where a stored boolean setting ``column`` is true (absent: False)."""
    return frame.get(column, pd.Series(False, index=frame.index)).map(lambda v: v is True)


def overspecified_fits(data: ReportData) -> pd.DataFrame:
    """Symmetric-means fits of one-component data with ``error`` = ||theta|| (the first fitted
    mean; the truth is 0) from the stored parameters, and a ``weights`` label."""
    table = completed(data.table)
    table = table[flag(table, "fit.symmetric_means") & (numbers(table, "data.K") == 1)].copy()
    if table.empty:
        return table
    errors = {}
    for exp in data.experiments:
        ids = table.loc[table["experiment"] == exp.name, "cell_id"].tolist()
        fitted = exp.fitted(ids)
        for cell_id in ids:
            params = fitted.get(cell_id)
            errors[cell_id] = np.linalg.norm(params.means[0]) if params is not None else np.nan
    table["error"] = table["cell_id"].map(errors)
    weights = table.get("fit.fixed_weights", pd.Series("null", index=table.index)).astype(str)
    table["weights"] = "weights " + weights
    table["equal_weights"] = [
        len(set(json.loads(w))) == 1 if w.startswith("[") else None for w in weights
    ]
    if data.table["experiment"].nunique() > 1:
        table["weights"] = table["experiment"] + ": " + table["weights"]
    return table


def loglog_slope(x, y, se) -> tuple[float, float, float]:
    """(slope, its standard error, intercept) of log y on log x by weighted least squares, the
    weights 1 / var(log y) = (y / se)^2 (delta method). Needs >= 3 points with finite se."""
    x, y, se = (np.asarray(a, dtype=float) for a in (x, y, se))
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(se) & (x > 0) & (y > 0) & (se > 0)
    if ok.sum() < 3:
        return np.nan, np.nan, np.nan
    lx, ly, w = np.log(x[ok]), np.log(y[ok]), (y[ok] / se[ok]) ** 2
    design = np.column_stack([np.ones_like(lx), lx])
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    beta = cov @ design.T @ (w * ly)
    return float(beta[1]), float(np.sqrt(cov[1, 1])), float(beta[0])


def slope_table(fits: pd.DataFrame) -> pd.DataFrame:
    """Per weights: log-log slopes over n of the mean error and of the mean iterations, beside
    Dwivedi et al.'s (error -1/4 and iterations 1/2 for equal weights, -1/2 and 0 unequal)."""
    rows = []
    for label, group in fits.groupby("weights", sort=False):
        row = {"arm": label, "n values": group["data.n"].nunique(), "fits": len(group)}
        equal = group["equal_weights"].iloc[0]
        for column, name, expect in (("error", "error slope", (-0.25, -0.5)),
                                     ("n_iter", "iterations slope", (0.5, 0.0))):  # fmt: skip
            stats = summarise(group, ["data.n"], column)
            slope, se, _ = loglog_slope(stats["data.n"], stats["value"], stats["se"])
            row[name], row[f"{name} se"] = slope, se
            row[f"{name} expected"] = np.nan if equal is None else expect[0 if equal else 1]
        rows.append(row)
    return pd.DataFrame(rows)


def overspecified_figure(fits: pd.DataFrame, out: Path) -> Figure | None:
    """Log-log error and iterations against n, with the fitted slopes."""
    if fits.empty or fits["data.n"].nunique() < 2:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    cmap = plt.get_cmap("tab10")
    for i, (label, group) in enumerate(fits.groupby("weights", sort=False)):
        for ax, column in zip(axes, ("error", "n_iter"), strict=True):
            stats = summarise(group, ["data.n"], column)
            slope, se, intercept = loglog_slope(stats["data.n"], stats["value"], stats["se"])
            legend = f"{label}: slope {slope:.2f} ± {se:.2f}"
            errorbar_line(ax, stats, "data.n", legend, cmap(i))
            n = stats["data.n"].to_numpy(dtype=float)
            if np.isfinite(slope):
                ax.plot(n, np.exp(intercept) * n**slope, color=cmap(i), lw=0.8, ls=":")
    axes[0].set(ylabel="mean ||theta_hat|| (truth 0)")
    axes[1].set(ylabel="EM iterations to tol")
    for ax in axes:
        ax.set(xlabel="n", xscale="log", yscale="log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    caption = (
        "Two components with symmetric means +-theta, unit variances and fixed weights, fitted to "
        "one standard Gaussian. Dwivedi et al. (2020): error ~ n^(-1/4) with equal weights (and "
        "about sqrt(n) iterations), ~ n^(-1/2) with unequal weights. Slopes by weighted least "
        f"squares of the log mean on log n, ± their standard error. {ERRORBAR_NOTE}"
    )
    return save(fig, out, "slow_convergence_overspecified", "Over-specified fits", caption)


def _against(value: float, se: float, expected: float) -> str:
    if not (np.isfinite(value) and np.isfinite(se) and np.isfinite(expected)):
        return ""
    inside = abs(value - expected) <= 2 * se
    return f" ({'consistent with' if inside else 'differs from'} {expected:g} within 2 se)"


def overspecified_findings(fits: pd.DataFrame) -> list[str]:
    """Sentences on the Dwivedi et al. slopes."""
    out = []
    for _, r in slope_table(fits).iterrows():
        parts = [
            f"{what} slope {r[f'{what} slope']:.3f} ± {r[f'{what} slope se']:.3f}"
            + _against(r[f"{what} slope"], r[f"{what} slope se"], r[f"{what} slope expected"])
            for what in ("error", "iterations")
        ]
        out.append(
            f"Over-specified, {r['arm']}: {'; '.join(parts)}; over {r['n values']} values of n "
            f"({r['fits']} fits)."
        )
    return out

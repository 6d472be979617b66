"""Report section of the missing-data study (issue 14): what missingness costs, per method.

Rows are completed fits; the mechanism and the fraction missing come from the data block's
``missing`` setting (no setting: nothing missing). Per (mechanism, fraction, method): recovery of
the means (``means_rmse``, data units), coverage of the 90% intervals of the means, the error of
the point imputations of the missing values (``imputation_rmse_sd``, each feature in its
complete-data standard deviations) and, for EM, its iterations and its linear rate measured from
the trace (``diag.rate_measured``) against the spectral radius of the EM map's Jacobian at the
fit (``diag.rate_theory``, the largest fraction of missing information). Means over the data
sets with one Monte Carlo standard error.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.montecarlo import mean_se
from workbench.report import ReportContext, register_section
from workbench.report.html import Section
from workbench.report.plotting import ERRORBAR_NOTE, Figure, errorbars, figure_legend, save
from workbench.report.store_reader import completed, numbers
from workbench.report.text import plus_minus, with_se

METHOD_ORDER = ("em", "bayes", "mice", "mean_impute", "complete_case")
METHOD_NAMES = {
    "em": "EM (incomplete data)",
    "bayes": "Bayes (marginalised)",
    "mice": "MICE + EM",
    "mean_impute": "mean imputation + EM",
    "complete_case": "complete cases + EM",
}
QUANTITIES = (
    ("means_rmse", "RMSE of the means"),
    ("means_coverage", "coverage of 90% intervals (means)"),
    ("imputation_rmse_sd", "imputation RMSE (sd units)"),
)


def _missing_setting(value) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value.startswith("{"):
        return json.loads(value)
    return {}


def missing_table(table: pd.DataFrame) -> pd.DataFrame:
    """Completed fits with ``mechanism`` and ``fraction`` (0 and "none" without missingness)."""
    rows = completed(table).copy()
    if rows.empty or "data.missing" not in rows:
        return rows.iloc[0:0]
    settings = rows["data.missing"].map(_missing_setting)
    rows["fraction"] = settings.map(lambda s: float(s.get("fraction", 0.0)))
    rows["mechanism"] = settings.map(lambda s: s.get("mechanism", "none"))
    return rows


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and MC se of each quantity per (mechanism, fraction, method), EM's iterations and
    rates too."""
    out = []
    columns = [q for q, _ in QUANTITIES] + ["n_iter", "diag.rate_measured", "diag.rate_theory"]
    for (mechanism, fraction, method), group in rows.groupby(["mechanism", "fraction", "method"]):
        record = {
            "mechanism": mechanism,
            "fraction": fraction,
            "method": method,
            "fits": len(group),
        }
        for column in columns:
            if column in group:
                mean, se, _ = mean_se(numbers(group, column).dropna())
                record[column], record[f"{column} se"] = mean, se
        out.append(record)
    frame = pd.DataFrame(out)
    if frame.empty:
        return frame
    frame["order"] = frame["method"].map(
        lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else 9
    )
    return frame.sort_values(["mechanism", "order", "fraction"]).drop(columns="order")


def quantity_figure(stats: pd.DataFrame, out: Path) -> Figure | None:
    """One row of panels per quantity, one column per mechanism: mean against the fraction
    missing, a line per method."""
    mechanisms = [m for m in ("mcar", "mar", "mnar") if m in set(stats["mechanism"])]
    quantities = [(q, label) for q, label in QUANTITIES if q in stats and stats[q].notna().any()]
    if not mechanisms or not quantities:
        return None
    fig, axes = plt.subplots(
        len(quantities), len(mechanisms), figsize=(4.2 * len(mechanisms), 3.0 * len(quantities)),
        squeeze=False, sharex=True, layout="constrained",
    )  # fmt: skip
    zero = stats[stats["fraction"] == 0.0]
    colour = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(METHOD_ORDER)}
    for r, (quantity, label) in enumerate(quantities):
        for c, mechanism in enumerate(mechanisms):
            ax = axes[r, c]
            part = pd.concat([zero, stats[stats["mechanism"] == mechanism]])
            for method in METHOD_ORDER:
                line = part[part["method"] == method].dropna(subset=[quantity])
                line = line.groupby("fraction", as_index=False).first()
                if line.empty:
                    continue
                errorbars(ax, line["fraction"], line[quantity], line[f"{quantity} se"],
                          colour[method], METHOD_NAMES[method], marker="o", ms=4)  # fmt: skip
            if quantity == "means_coverage":
                ax.axhline(0.9, color="0.5", ls="--", lw=1, label="nominal 0.9")
            if r == 0:
                ax.set_title(mechanism.upper())
            if c == 0:
                ax.set_ylabel(label)
            if r == len(quantities) - 1:
                ax.set_xlabel("fraction of values missing")
    figure_legend(fig, axes)
    caption = (
        "Mean over data sets of each quantity against the fraction of values removed, per "
        "mechanism (the points at 0 are the same complete data sets in every column), a line "
        f"per method; coverage against the nominal 0.9 (dashed). {ERRORBAR_NOTE}"
    )
    return save(fig, out, "missing_data_recovery", "What missingness costs, per method", caption)


def rate_figure(rows: pd.DataFrame, out: Path) -> Figure | None:
    """EM's measured rate against the theory, and its iterations against the fraction."""
    em = rows[rows["method"] == "em"]
    measured, theory = numbers(em, "diag.rate_measured"), numbers(em, "diag.rate_theory")
    ok = measured.notna() & theory.notna()
    if not ok.any():
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 4.0))
    points = left.scatter(theory[ok], measured[ok], c=em["fraction"][ok], cmap="viridis", s=14,
                          vmin=0, vmax=max(0.6, float(em["fraction"].max())))  # fmt: skip
    left.plot([0, 1], [0, 1], color="0.4", lw=1, ls="--", label="measured = theory")
    left.set_xlim(0, 1)
    left.set_ylim(0, 1)
    left.set_xlabel("theory: spectral radius of the EM map's Jacobian")
    left.set_ylabel("measured from the log-likelihood trace")
    left.legend(loc="upper left", fontsize=8)
    fig.colorbar(points, ax=left, label="fraction missing")
    for mechanism, group in em.groupby("mechanism"):
        stats = group.groupby("fraction")["n_iter"].agg(["mean", "std", "count"]).reset_index()
        errorbars(right, stats["fraction"], stats["mean"], stats["std"] / np.sqrt(stats["count"]),
                  label=mechanism.upper(), marker="o", ms=4)  # fmt: skip
    right.set_xlabel("fraction of values missing")
    right.set_ylabel("EM iterations to convergence")
    right.legend(fontsize=8)
    caption = (
        "Left: each EM fit's linear rate read off its trace against the spectral radius of the EM "
        "map's Jacobian at the fit (the largest fraction of missing information, missing "
        "coordinates included), coloured by the fraction of values missing. Right: EM's "
        f"iterations against the fraction missing, per mechanism. {ERRORBAR_NOTE}"
    )
    return save(fig, out, "missing_data_rate", "EM slows as information goes missing", caption)


def _at(stats: pd.DataFrame, mechanism: str, fraction: float, method: str, column: str):
    row = stats[(stats["mechanism"] == mechanism) & np.isclose(stats["fraction"], fraction)
                & (stats["method"] == method)]  # fmt: skip
    if row.empty or column not in row or not np.isfinite(row[column].iloc[0]):
        return None
    return float(row[column].iloc[0]), float(row[f"{column} se"].iloc[0])


def findings(stats: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """Sentences from the numbers: recovery and coverage at MCAR 0.3, the rate, MNAR."""
    out = []
    at = stats["fraction"][stats["mechanism"] == "mcar"]
    if at.empty:
        return ["No MCAR data sets in this experiment."]
    fraction = float(at.iloc[(at - 0.3).abs().argmin()])
    parts = []
    for method in ("em", "complete_case", "mean_impute", "mice"):
        value = _at(stats, "mcar", fraction, method, "means_rmse")
        if value:
            parts.append(f"{METHOD_NAMES[method]} {plus_minus(*value)}")
    if parts:
        out.append(
            f"MCAR, {fraction:g} of the values missing: RMSE of the means " + ", ".join(parts) + "."
        )
    coverage = [
        f"{METHOD_NAMES[m]} {plus_minus(*v)}"
        for m in ("em", "bayes", "mice")
        if (v := _at(stats, "mcar", fraction, m, "means_coverage"))
    ]
    if coverage:
        out.append(f"Coverage of the 90% intervals of the means there: {', '.join(coverage)}.")
    em = rows[rows["method"] == "em"]
    ratio = numbers(em, "diag.rate_measured") / numbers(em, "diag.rate_theory")
    ratio = ratio[np.isfinite(ratio)]
    if len(ratio):
        out.append(
            f"EM's measured rate is {np.median(ratio):.3f} times the theoretical one (median over "
            f"{len(ratio)} fits; quartiles {np.quantile(ratio, 0.25):.3f} to "
            f"{np.quantile(ratio, 0.75):.3f}): the slowdown is the fraction of missing information."
        )
    worst = stats[(stats["mechanism"] == "mnar")]
    if not worst.empty:
        top = worst[worst["fraction"] == worst["fraction"].max()].dropna(subset=["means_rmse"])
        if not top.empty:
            best = top.sort_values("means_rmse").iloc[0]
            name = METHOD_NAMES.get(best["method"], best["method"])
            out.append(
                f"Under MNAR with {best['fraction']:g} missing (a misspecification for every "
                f"method), the smallest RMSE of the means is {name}'s "
                f"({plus_minus(best['means_rmse'], best['means_rmse se'])})."
            )
    return out


@register_section("missing_data", "Missing data: what missingness costs")
def missing_data_section(ctx: ReportContext, section: Section) -> None:
    """Recovery, coverage, imputation error and EM's rate against the fraction missing."""
    rows = missing_table(ctx.data.table)
    if rows.empty:
        section.note("No completed fit of data with a missing setting in this experiment.")
        return
    section.text(
        "The same data sets, with values removed completely at random (MCAR), at random given "
        "feature 0 (MAR) or depending on their own value (MNAR), fitted by exact EM for "
        "incomplete data, by the shortcuts users take (complete cases, mean imputation, MICE, "
        "each followed by complete-data EM) and, in a smaller arm, by the Bayesian mixture with "
        "the missing coordinates marginalised."
    )
    stats = summary(rows)
    section.figures([f for f in (quantity_figure(stats, ctx.figures_dir),
                                 rate_figure(rows, ctx.figures_dir)) if f])  # fmt: skip
    shown = stats.rename(columns={"means_rmse": "means RMSE", "means_coverage": "coverage",
                                  "imputation_rmse_sd": "imputation RMSE (sd)"})  # fmt: skip
    shown = shown.rename(columns=lambda c: c.replace("means_rmse se", "means RMSE se")
                         .replace("means_coverage se", "coverage se")
                         .replace("imputation_rmse_sd se", "imputation RMSE (sd) se"))  # fmt: skip
    section.table(with_se(shown), "per mechanism, fraction and method (± MC se)", True)
    section.heading("What we found")
    for sentence in findings(stats, rows):
        section.text(sentence, "finding")

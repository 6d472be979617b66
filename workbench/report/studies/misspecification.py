"""Report section of the misspecification study (issue 6, item 3).

Gaussian mixtures fitted to data whose components are not Gaussian (Student-t, skew-normal,
uniform) or whose number of components is wrong. The truth of a non-Gaussian family is its
moment-matched Gaussian summary, so recovery errors measure how far a fit lands from it. EM and
the Bayesian posterior mean are compared on the very same data sets (paired by data set), and an
EM fitter with ``select_k`` shows the K chosen by BIC against the true K.

Every number is summarised from per-replicate rows first (mean ± sd / sqrt(m); a rate as k/n
with its 95% Wilson interval); the "what we found" paragraph is generated from those numbers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.montecarlo import count_rate, mean_se, rate_interval
from workbench.report import ReportContext, register_section
from workbench.report.html import Section
from workbench.report.plotting import (
    ERRORBAR_NOTE,
    Figure,
    colours,
    errorbars,
    offset,
    save,
    wrap_label,
)
from workbench.report.store_reader import (
    ReportData,
    completed,
    grid_variables,
    numbers,
    setting_label,
)
from workbench.report.summaries import paired, summarise
from workbench.report.text import plus_minus, rate_text, tied_names, with_se
from workbench.status import BayesStatus

# Data settings that define the family (folded into its label), not separate grid axes.
FAMILY_COLUMNS = ("data.generator", "data.df", "data.skew_alpha", "data.K", "data.K_true",
                  "data.K_fit")  # fmt: skip
RECOVERY = (
    ("overall RMSE", "overall_rmse"), ("means RMSE", "means_rmse"), ("scales RMSE", "scales_rmse"),
    ("weights RMSE", "weights_rmse"), ("loglik per point", "loglik_per_point"),
)  # fmt: skip
PAIRED_COLUMNS = (
    "EM fitter", "Bayes fitter", "family", "panel", "data sets", "RMSE: Bayes - EM",
    "RMSE: Bayes - EM se", "loglik/pt: Bayes - EM", "loglik/pt: Bayes - EM se",
    "EM loglik >= Bayes (95% CI)",
)  # fmt: skip
CONTROL = "Gaussian (control)"


# ---- the per-fit table ---------------------------------------------------------------------------
def _value(row: pd.Series, column: str) -> float:
    value = pd.to_numeric(row.get(column), errors="coerce")
    return float(value) if value is not None and np.isfinite(value) else math.nan


def family_label(row: pd.Series) -> str:
    """A readable name of a row's data family: ``Student-t df=3``, ``wrong K (3 true, 2 fit)``."""
    generator = str(row.get("data.generator"))
    if generator == "gaussian_mixture":
        return CONTROL
    if generator == "student_t":
        return f"Student-t df={_value(row, 'data.df'):g}"
    if generator == "skew_normal":
        alpha = _value(row, "data.skew_alpha")
        return "skew-normal" + ("" if math.isnan(alpha) else f" alpha={alpha:g}")
    if generator == "wrong_k":
        return f"wrong K ({_value(row, 'data.K_true'):g} true, {_value(row, 'data.K_fit'):g} fit)"
    return generator.replace("_", " ")


def study_table(data: ReportData) -> pd.DataFrame:
    """Completed fits with ``family``, ``true_k``, ``loglik_per_point``, ``role`` (``fixed``:
    fitted at the data set's K; ``bic``: EM choosing K by BIC) and ``panel`` (the other grid
    variables, e.g. ``separation=2``)."""
    table = completed(data.table).copy()
    if table.empty:
        return table
    table["family"] = [family_label(row) for _, row in table.iterrows()]
    sizes = pd.concat(e.datasets.assign(experiment=e.name) for e in data.experiments)
    sizes = sizes[["experiment", "data_id", "replicate", "n"]]
    table = table.merge(sizes, on=["experiment", "data_id", "replicate"], how="left")
    table["true_k"] = numbers(table, "data.K_true").fillna(numbers(table, "data.K"))
    table["loglik_per_point"] = numbers(table, "loglik") / numbers(table, "n")
    chosen = numbers(table, "diag.chosen_k")
    table["role"] = np.where(chosen.notna(), "bic", "fixed")
    others = [v for v in grid_variables(table) if v not in FAMILY_COLUMNS]
    table["panel"] = [", ".join(setting_label(v, row[v]) for v in others) or "all"
                      for _, row in table.iterrows()]  # fmt: skip
    return table


def _title(panel: str) -> str:
    return "" if panel == "all" else panel


def _where(family: str, panel: str) -> str:
    return family if panel == "all" else f"{family} ({panel})"


def _order(table: pd.DataFrame, column: str) -> list:
    return list(dict.fromkeys(table[column]))


# ---- tables --------------------------------------------------------------------------------------
def recovery_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per (family, panel, fitter): each recovery quantity as value and ``se`` columns."""
    fixed, keys, out = table[table["role"] == "fixed"], ["family", "panel", "series"], None
    for label, column in RECOVERY:
        stats = summarise(fixed, keys, column).rename(columns={"value": label, "se": f"{label} se"})
        stats = stats.rename(columns={"m": "fits"}) if out is None else stats.drop(columns="m")
        out = stats if out is None else out.merge(stats, on=keys, how="outer")
    return out if out is not None else pd.DataFrame()


def _fitter_pairs(fixed: pd.DataFrame) -> list[tuple[str, str]]:
    """(EM fitter, other fitter) pairs compared on the same data sets."""
    em = _order(fixed[fixed["method"] == "em"], "fitter")
    other = _order(fixed[fixed["method"] != "em"], "fitter")
    return [(a, b) for a in em for b in other]


def paired_rows(fixed: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """One row per data set fitted by both ``a`` (EM) and ``b``: differences b - a of overall
    RMSE (``difference_rmse``) and log-likelihood per point (``difference_ll``), the 0/1 flag
    ``em_higher`` (a's log-likelihood at least b's), and the data set's family and panel."""
    where = fixed.drop_duplicates("data_id").set_index("data_id")[["family", "panel"]]
    rmse = paired(fixed, a, b, "overall_rmse")
    loglik = paired(fixed, a, b, "loglik_per_point")
    both = rmse.merge(
        loglik, on=["experiment", "data", "data_id", "replicate"], suffixes=("_rmse", "_ll")
    )
    both["em_higher"] = (both["a_ll"] >= both["b_ll"] - 1e-12).astype(float)
    return both.join(where, on="data_id")


def paired_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per (EM fitter, Bayes fitter, family, panel): Bayes minus EM on the same data sets, for
    overall RMSE and log-likelihood per point (mean and ``se``), and how often EM's
    log-likelihood was at least Bayes' (k/n with its 95% Wilson interval)."""
    fixed = table[table["role"] == "fixed"]
    rows = []
    for a, b in _fitter_pairs(fixed):
        both = paired_rows(fixed, a, b)
        for (family, panel), group in both.groupby(["family", "panel"], sort=False):
            d_rmse, se_rmse, m = mean_se(group["difference_rmse"].to_numpy())
            d_ll, se_ll, _ = mean_se(group["difference_ll"].to_numpy())
            higher = rate_text(rate_interval(group["em_higher"].to_numpy()), "data sets")
            values = (a, b, family, panel, m, d_rmse, se_rmse, d_ll, se_ll, higher)
            rows.append(dict(zip(PAIRED_COLUMNS, values, strict=True)))
    return pd.DataFrame(rows)


def bic_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per (fitter, family, panel): true K, how often BIC chose each K, the rate of choosing the
    true K (``chose true K``, with its 95% Wilson interval and k/n in ``chose true K (95% CI)``)
    and the mean chosen K ± MC se."""
    bic = table[table["role"] == "bic"]
    if bic.empty:
        return pd.DataFrame()
    ks = sorted({int(k) for k in numbers(bic, "diag.chosen_k").dropna()})
    rows = []
    for (series, family, panel), group in bic.groupby(["series", "family", "panel"], sort=False):
        chosen = numbers(group, "diag.chosen_k").to_numpy()
        true_k = numbers(group, "true_k").to_numpy()
        stats = rate_interval((chosen == true_k).astype(float))
        mean, se, _ = mean_se(chosen)
        row = {"fitter": series, "family": family, "panel": panel, "true K": int(true_k[0])}
        row.update({f"K={k}": int(np.sum(chosen == k)) for k in ks})
        row["data sets"] = int(stats["n"])
        row["chose true K"] = stats["rate"]
        row["chose true K (95% CI)"] = rate_text(stats, "data sets")
        row.update({"mean chosen K": mean, "mean chosen K se": se})
        rows.append(row)
    return pd.DataFrame(rows)


# ---- figures -------------------------------------------------------------------------------------
def _family_axes(ax: plt.Axes, order: list[str]) -> None:
    """Family names as horizontal tick labels wrapped to the room each one has."""
    room = ax.get_position().width * ax.figure.get_figwidth() * 72 / max(len(order), 1)  # pt
    chars = max(6, int(room / (0.6 * 7)) - 1)  # a 7-pt character is about 0.6 x 7 pt wide
    labels = [wrap_label(f, chars) for f in order]
    ax.set_xticks(range(len(order)), labels, fontsize=7)
    ax.grid(alpha=0.3)


def recovery_figure(data: ReportData, table: pd.DataFrame, out: Path) -> list[Figure]:
    """Overall RMSE and log-likelihood per point by family, one panel column per panel value."""
    fixed = table[table["role"] == "fixed"]
    if fixed.empty:
        return []
    palette, order, panels = colours(data), _order(fixed, "family"), _order(fixed, "panel")
    fig, axes = plt.subplots(2, len(panels), figsize=(5.2 * len(panels), 8), squeeze=False)
    for j, panel in enumerate(panels):
        rows = fixed[fixed["panel"] == panel]
        series = _order(rows, "series")
        for i, column in enumerate(("overall_rmse", "loglik_per_point")):
            ax = axes[i, j]
            for s, name in enumerate(series):
                stats = summarise(rows[rows["series"] == name], ["family"], column)
                x = np.array([order.index(f) for f in stats["family"]], dtype=float)
                x += offset(s, len(series), 0.12)
                errorbars(ax, x, stats["value"], stats["se"], palette.get(name), name, fmt="o")
            _family_axes(ax, order)
            ax.set_title(_title(panel), fontsize=9)
            ax.set_ylabel(
                "overall RMSE vs moment-matched truth"
                if i == 0
                else "log-likelihood per point (nats)"
            )
    axes[0, 0].legend(fontsize=8)
    caption = (
        "Top: overall RMSE of the matched weights, means and standard deviations against the "
        "moment-matched Gaussian truth; bottom: log-likelihood per data point of the fitted "
        "mixture (EM: the estimate; Bayes: the posterior mean). " + ERRORBAR_NOTE
    )
    return [save(fig, out, "misspec_recovery", "Recovery and fit by family", caption)]


def paired_figure(pairs: pd.DataFrame, out: Path) -> list[Figure]:
    """Paired Bayes - EM differences by family: overall RMSE and log-likelihood per point."""
    if pairs.empty:
        return []
    order, panels = _order(pairs, "family"), _order(pairs, "panel")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    cmap = plt.get_cmap("tab10")
    labels = list(
        dict.fromkeys(zip(pairs["EM fitter"], pairs["Bayes fitter"], pairs["panel"], strict=True))
    )
    for i, (a, b, panel) in enumerate(labels):
        rows = pairs[
            (pairs["EM fitter"] == a) & (pairs["Bayes fitter"] == b) & (pairs["panel"] == panel)
        ]
        x = np.array([order.index(f) for f in rows["family"]]) + offset(i, len(labels), 0.1)
        name = f"{b} - {a}" + (f" ({panel})" if len(panels) > 1 else "")
        for ax, column in zip(axes, ("RMSE: Bayes - EM", "loglik/pt: Bayes - EM"), strict=True):
            errorbars(ax, x, rows[column], rows[f"{column} se"], cmap(i), name, fmt="o")
    for ax, title in zip(axes, ("overall RMSE", "log-likelihood per point"), strict=True):
        ax.axhline(0.0, color="k", lw=1, ls="--")
        _family_axes(ax, order)
        ax.set_title(f"{title}: Bayes minus EM, same data sets", fontsize=10)
    axes[0].legend(fontsize=8)
    caption = (
        "Mean over data sets of the paired difference (Bayes minus EM) on the very same data. "
        "Below zero on the left: Bayes is closer to the moment-matched truth. EM maximises the "
        "likelihood, so on the right Bayes' posterior mean sits below zero unless EM stopped at "
        "a local optimum. " + ERRORBAR_NOTE
    )
    return [save(fig, out, "misspec_paired", "EM vs Bayes on the same data sets", caption)]


def bic_figure(bic: pd.DataFrame, out: Path) -> list[Figure]:
    """Share of data sets for which BIC chose each K, by family, with the true K marked."""
    if bic.empty:
        return []
    ks = [c for c in bic.columns if c.startswith("K=")]
    cmap = plt.get_cmap("viridis", max(len(ks), 2))
    panels = _order(bic, "panel")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 4.6), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        rows = bic[bic["panel"] == panel].reset_index(drop=True)
        shares = rows[ks].to_numpy(dtype=float) / rows["data sets"].to_numpy()[:, None]
        bottom = np.zeros(len(rows))
        for j, k in enumerate(ks):
            ax.bar(range(len(rows)), shares[:, j], bottom=bottom, color=cmap(j), label=k)
            bottom += shares[:, j]
        for i, true_k in enumerate(rows["true K"]):  # outline the true K's segment
            if (j := ks.index(f"K={true_k}") if f"K={true_k}" in ks else -1) >= 0:
                for y in (shares[i, :j].sum(), shares[i, : j + 1].sum()):
                    ax.plot([i - 0.4, i + 0.4], [y, y], "r-", lw=1.5)
        _family_axes(ax, rows["family"].tolist())
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("share of data sets")
        ax.set_title(_title(panel), fontsize=9)
    axes[0, 0].legend(title="chosen K", fontsize=8)
    caption = (
        "K chosen by BIC (EM fitted at every K of select_k, lowest BIC kept); the true K's "
        "segment is outlined in red (for a non-Gaussian family the true K counts its "
        "components, not the Gaussians needed to mimic them)."
    )
    return [save(fig, out, "misspec_bic_k", "K chosen by BIC against the true K", caption)]


# ---- findings ------------------------------------------------------------------------------------
def findings(table: pd.DataFrame, pairs: pd.DataFrame, bic: pd.DataFrame) -> list[str]:
    """Sentences generated from the numbers (families pooled over the panel variables)."""
    out = []
    fixed = table[table["role"] == "fixed"]
    for series, rows in fixed.groupby("series", sort=False):
        stats = summarise(rows, ["family"], "overall_rmse").set_index("family")
        if stats.empty:
            continue
        worst = stats["value"].idxmax()
        rmse = plus_minus(stats.loc[worst, "value"], stats.loc[worst, "se"])
        text = f"{series}: overall RMSE {rmse}"
        named = tied_names(stats.reset_index(), "family", stats.loc[worst, "value"], "value")
        text += f" under {named} (the worst family)"
        if CONTROL in stats.index and worst != CONTROL:
            ratio = stats.loc[worst, "value"] / stats.loc[CONTROL, "value"]
            control = plus_minus(stats.loc[CONTROL, "value"], stats.loc[CONTROL, "se"])
            text += f", {ratio:.2g} times the {control} of the Gaussian control"
        best = stats["value"].idxmin()
        lowest = plus_minus(stats.loc[best, "value"], stats.loc[best, "se"])
        named = tied_names(stats.reset_index(), "family", stats.loc[best, "value"], "value")
        out.append(f"{text}; lowest under {named} ({lowest}).")
    if not pairs.empty:
        for (a, b), rows in pairs.groupby(["EM fitter", "Bayes fitter"], sort=False):
            d = rows["RMSE: Bayes - EM"].to_numpy(dtype=float)
            se = rows["RMSE: Bayes - EM se"].to_numpy(dtype=float)
            clear = np.isfinite(se) & (np.abs(d) > 2 * se)
            where = [_where(f, p) for f, p in zip(rows["family"], rows["panel"], strict=True)]
            worse = [w for w, flag in zip(where, clear & (d > 0), strict=True) if flag]
            better = [w for w, flag in zip(where, clear & (d < 0), strict=True) if flag]
            text = (
                f"Paired on the same data sets, {b} minus {a} overall RMSE differed by more "
                f"than twice its MC error in {int(clear.sum())} of {len(rows)} conditions"
            )
            if better:
                text += f"; {b} was closer to the truth under {', '.join(better)}"
            if worse:
                text += f"; {a} was closer under {', '.join(worse)}"
            i = int(np.nanargmax(np.abs(d)))
            text += f". Largest mean difference: {plus_minus(d[i], se[i])} under {where[i]}."
            out.append(text)
            higher = rate_interval(paired_rows(fixed, a, b)["em_higher"].to_numpy())
            ll = rows["loglik/pt: Bayes - EM"].to_numpy(dtype=float)
            out.append(
                f"The log-likelihood of {a} was at least that of the {b} posterior mean on a "
                f"share {rate_text(higher, 'data sets')} of the data sets (per-condition mean "
                f"difference Bayes - EM between {np.nanmin(ll):.3g} and {np.nanmax(ll):.3g} nats "
                "per point)."
            )
    if not bic.empty:
        for series, rows in bic.groupby("fitter", sort=False):
            pooled = []
            for family, group in rows.groupby("family", sort=False):
                sub = table[(table["series"] == series) & (table["family"] == family)]
                chosen = numbers(sub, "diag.chosen_k").to_numpy()
                stats = rate_interval((chosen == numbers(sub, "true_k").to_numpy()).astype(float))
                mean, se, _ = mean_se(chosen)
                pooled.append((stats, family, mean, se, int(group["true K"].iloc[0])))
            parts = [
                f"{f}: true K {k} chosen at a rate {rate_text(stats, 'data sets')} "
                f"(mean chosen K {plus_minus(mean, se)})"
                for stats, f, mean, se, k in sorted(pooled, key=lambda r: -r[0]["rate"])
            ]
            out.append(
                f"BIC ({series}), best to worst (equal rates in family order): "
                + "; ".join(parts)
                + "."
            )
            out += _largest_k(table[table["series"] == series], series)
    statuses = fixed[fixed["method"] != "em"]
    for series, rows in statuses.groupby("series", sort=False):
        flagged = rows[rows["status"] != BayesStatus.OK]
        if len(flagged):
            counts = flagged.groupby("family", sort=False)["status"].agg(
                lambda s: ", ".join(f"{v} {k}" for k, v in s.value_counts().items())
            )
            text = "; ".join(f"{f}: {c}" for f, c in counts.items())
            out.append(f"{series} fits not ok ({len(flagged)} of {len(rows)}): {text}.")
        else:
            out.append(f"All {len(rows)} {series} fits had status ok.")
    return out


def _largest_k(rows: pd.DataFrame, series: str) -> list[str]:
    """A sentence when BIC chose the largest K offered (the true optimum may lie beyond it)."""
    offered = [json.loads(v) for v in rows["fit.select_k"].dropna().unique()]
    if not offered:
        return []
    largest = max(max(ks) for ks in offered)
    hits = rows[numbers(rows, "diag.chosen_k") == largest].groupby("family", sort=False).size()
    if hits.empty:
        return []
    where = ", ".join(
        f"{f} ({rate_text(count_rate(n, (rows['family'] == f).sum()), 'data sets')})"
        for f, n in hits.items()
    )
    return [f"BIC ({series}) chose the largest K offered, {largest}, under {where}."]


# ---- the section ---------------------------------------------------------------------------------
@register_section("misspecification", "Misspecification: heavy tails, skew, uniform, wrong K")
def misspecification_section(ctx: ReportContext, section: Section) -> None:
    """Recovery and log-likelihood by family (EM vs Bayes, paired) and BIC's K vs the true K."""
    table = study_table(ctx.data)
    if table.empty:
        section.note("No completed fit in this experiment.")
        return
    section.text(
        "Gaussian mixtures fitted to non-Gaussian components (truth: the moment-matched Gaussian "
        "summary of each component) and to a wrong number of components, beside a Gaussian "
        "control. EM and the Bayesian posterior mean are compared on the very same data sets; "
        "an EM fitter with select_k picks K by BIC. Tables: mean ± Monte Carlo standard error "
        "over data sets; rates as k/n data sets with their 95% Wilson interval."
    )
    pairs, bic = paired_table(table), bic_table(table)
    section.figures(recovery_figure(ctx.data, table, ctx.figures_dir))
    section.figures(paired_figure(pairs, ctx.figures_dir))
    section.figures(bic_figure(bic, ctx.figures_dir))
    section.table(with_se(recovery_table(table)), "recovery and fit by family and fitter", True)
    if not pairs.empty:
        section.table(with_se(pairs), "paired differences, Bayes minus EM", True)
    if not bic.empty:
        shown = with_se(bic.drop(columns="chose true K"))  # the rate is in its CI column
        section.table(shown, "K chosen by BIC against the true K", True)
    section.heading("What we found")
    for sentence in findings(table, pairs, bic):
        section.text(sentence, "finding")

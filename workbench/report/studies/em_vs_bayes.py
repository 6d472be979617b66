"""Report section of the EM-vs-Bayes study (issue 6, item 4).

Recovery bias and RMSE of EM and of the Bayesian posterior mean, interval coverage of EM's Wald
intervals (observed information) against Bayesian credible intervals across n and separation,
and a paired cross-tab: on the data sets where EM returned a local optimum (``failed``), how
often did the NUTS chains flag multimodality (status ``multimodal`` or ``label_switching``)?

Signed errors are the run's, judged at evaluation after Hungarian matching
(:func:`workbench.evaluate.signed_errors`):
``weights``: the weight of the true component with the lowest (first-coordinate) mean;
``means``: the error of each mean along the direction from the mixture centre to the true mean,
averaged over components (> 0: components pushed apart, < 0: pulled together); ``scales``: the
error of every standard deviation, averaged. RMSE = sqrt(mean over data sets of the per-fit mean
squared error), its Monte Carlo error by the delta method. Everything is summarised per
replicate first; the "what we found" paragraph is generated from the numbers.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.montecarlo import count_rate, mean_se
from workbench.report import ReportContext, register_section
from workbench.report.html import Section
from workbench.report.plotting import (
    ERRORBAR_NOTE,
    Figure,
    colours,
    errorbar_line,
    figure_legend,
    offset,
    rate_bars,
    save,
)
from workbench.report.store_reader import (
    ReportData,
    completed,
    grid_variables,
    numbers,
    setting_label,
    short_name,
)
from workbench.report.summaries import nominal_level, paired, summarise
from workbench.report.text import plus_minus, rate_text, tied_names, with_se
from workbench.status import BayesStatus, FailureKind

PARAMETERS = ("weights", "means", "scales")
FLAGS = (BayesStatus.MULTIMODAL, BayesStatus.LABEL_SWITCHING)
CROSS_KEYS = ("EM fitter", "Bayes fitter", "EM returned", "data sets")
KINDS = {  # figure title and caption per kind
    "bias": ("Bias (mean signed error)", "Mean signed error over data sets: weight of the lowest "
             "component, means along the outward direction (< 0: pulled together), standard "
             "deviations."),
    "rmse": ("RMSE", "Root mean squared error over data sets (matched components), Monte Carlo "
             "error by the delta method."),
    "coverage": ("Interval coverage", "Share of true parameters inside their intervals (EM: "
                 "Wald intervals from the observed information; Bayes: equal-tailed credible "
                 "intervals); nominal dashed."),
}  # fmt: skip


def study_table(data: ReportData) -> pd.DataFrame:
    """Completed fits with their stored signed errors ``bias_*`` (judged at evaluation,
    :func:`workbench.evaluate.signed_errors`) and per-fit squared errors ``mse_*``."""
    table = completed(data.table).reset_index(drop=True)
    for p in PARAMETERS:
        table[f"bias_{p}"] = numbers(table, f"bias_{p}")
        table[f"mse_{p}"] = numbers(table, f"{p}_rmse") ** 2
    return table


def rmse_stats(frame: pd.DataFrame, by: list[str], parameter: str) -> pd.DataFrame:
    """Per group: RMSE = sqrt(mean per-fit MSE), se by the delta method, m."""
    stats = summarise(frame, by, f"mse_{parameter}")
    value = np.sqrt(stats["value"].to_numpy(dtype=float))
    stats["se"] = stats["se"].to_numpy(dtype=float) / np.where(value > 0, 2 * value, np.nan)
    stats["value"] = value
    return stats


# ---- layout of the grid --------------------------------------------------------------------------
def layout(table: pd.DataFrame) -> tuple[str | None, str | None, list[str]]:
    """(x axis, panel-column variable, remaining variables): ``data.n`` on x when it varies,
    ``data.separation`` across panels, anything else splits figures."""
    variables = grid_variables(table)
    x = "data.n" if "data.n" in variables else (variables[0] if variables else None)
    rest = [v for v in variables if v != x]
    col = "data.separation" if "data.separation" in rest else (rest[0] if rest else None)
    return x, col, [v for v in rest if v != col]


def facets(table: pd.DataFrame, x: str | None, others: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) for each combination of the remaining variables with >= 2 values of x."""
    if x is None:
        return [("", table)]
    if not others:
        return [("", table)] if table[x].nunique() > 1 else []
    out = []
    for key, rows in table.groupby(others, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        if rows[x].nunique() > 1:
            out.append(
                (", ".join(setting_label(v, k) for v, k in zip(others, key, strict=True)), rows)
            )
    return out


def grid_figure(data: ReportData, table: pd.DataFrame, out: Path, kind: str) -> list[Figure]:
    """One figure per facet: rows = parameters, columns = separation, x = n, one line per
    series. ``kind``: ``bias``, ``rmse`` or ``coverage``."""
    x, col, others = layout(table)
    if x is None or not pd.api.types.is_numeric_dtype(numbers(table, x)):
        return []
    palette, figures = colours(data), []
    for number, (title, rows) in enumerate(facets(table, x, others)):
        cols = list(dict.fromkeys(rows[col])) if col else [None]
        size = (4.6 * len(cols), 10)
        fig, axes = plt.subplots(3, len(cols), figsize=size, squeeze=False, layout="constrained")
        for i, p in enumerate(PARAMETERS):
            for j, c in enumerate(cols):
                ax, sub = axes[i, j], rows if c is None else rows[rows[col] == c]
                series = list(dict.fromkeys(sub["series"]))
                for s, name in enumerate(series):
                    mine = sub[sub["series"] == name]
                    if kind == "rmse":
                        stats = rmse_stats(mine, [x], p)
                    else:
                        column = f"bias_{p}" if kind == "bias" else f"{p}_coverage"
                        stats = summarise(mine, [x], column)
                    if not stats.empty:
                        shift = offset(s, len(series), 0.03)
                        errorbar_line(ax, stats, x, name, palette.get(name), log_shift=shift)
                if kind == "coverage":
                    for level in sorted(set(nominal_level(sub))):
                        ax.axhline(level, color="k", ls="--", lw=1, label=f"nominal {level:g}")
                    ax.set_ylim(-0.05, 1.05)
                elif kind == "bias":
                    ax.axhline(0.0, color="k", lw=1)
                ax.set_xscale("log")
                grid = sorted(set(numbers(rows, x).dropna()))
                if len(grid) <= 8:  # ticks at the grid values, not at 2x10^2
                    ax.set_xticks(grid, [f"{v:g}" for v in grid])
                    ax.minorticks_off()
                ax.grid(alpha=0.3)
                ax.set_xlabel(short_name(x))
                ax.set_ylabel(f"{p}: {kind}")
                ax.set_title(setting_label(col, c) if c is not None else "", fontsize=9)
        figure_legend(fig, axes)
        what, caption = KINDS[kind]
        key = f"evb_{kind}" + (f"_{number}" if number else "")
        name = f"{what} against {short_name(x)}" + (f" ({title})" if title else "")
        figures.append(save(fig, out, key, name, f"{caption} {ERRORBAR_NOTE}"))
    return figures


# ---- tables --------------------------------------------------------------------------------------
def _keys(table: pd.DataFrame) -> list[str]:
    return ["series", *grid_variables(table)]


def _merged(parts: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """Join (label, summarise-style stats) on their keys as ``label`` / ``label se`` columns."""
    out = None
    for label, stats in parts:
        if stats.empty:
            continue
        stats = stats.rename(columns={"value": label, "se": f"{label} se", "m": "fits"})
        out = stats if out is None else out.merge(stats.drop(columns="fits"), how="outer")
    if out is None:
        return pd.DataFrame()
    return out.rename(columns={c: short_name(c) for c in out.columns if "." in c})


def recovery_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per series and grid point: bias and RMSE of each parameter (value and se columns)."""
    keys = _keys(table)
    return _merged([part for p in PARAMETERS for part in (
        (f"{p} bias", summarise(table, keys, f"bias_{p}")),
        (f"{p} RMSE", rmse_stats(table, keys, p)),
    )])  # fmt: skip


def coverage_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per series and grid point: coverage (± se) and mean width of each parameter."""
    keys = _keys(table)
    return _merged([(f"{p} {what}", summarise(table, keys, f"{p}_{what}"))
                    for p in PARAMETERS for what in ("coverage", "width")])  # fmt: skip


def crosstab(table: pd.DataFrame) -> pd.DataFrame:
    """Per (EM fitter, Bayes fitter, EM outcome): data sets by Bayes status, flagged (status
    multimodal or label_switching) and chains split into several groups."""
    ems = list(dict.fromkeys(table.loc[table["method"] == "em", "series"]))
    others = list(dict.fromkeys(table.loc[table["method"] != "em", "series"]))
    statuses = sorted(set(table.loc[table["method"] != "em", "status"]))
    keys = ["experiment", "data_id", "replicate"]
    rows = []
    for a in ems:
        em = table[(table["series"] == a) & numbers(table, "failed").notna()]
        for b in others:
            bayes = table[table["series"] == b]
            both = em[[*keys, "failed", "failure_kind"]].merge(
                bayes[[*keys, "status"]].assign(groups=numbers(bayes, "diag.n_chain_groups")),
                on=keys,
            )
            # EM's verdict on its returned fit: a local optimum (failed), or the best known
            # optimum itself (kind "best"); saddles and unresolved runs are in neither row.
            verdicts = {
                "local optimum": numbers(both, "failed") == 1.0,
                "best known optimum": both["failure_kind"] == FailureKind.BEST,
            }
            for label, chosen in verdicts.items():
                part = both[chosen]
                row = dict(zip(CROSS_KEYS, (a, b, label, len(part)), strict=True))
                row.update({f"Bayes {s}": int((part["status"] == s).sum()) for s in statuses})
                row["flagged"] = int(part["status"].isin(FLAGS).sum())
                row["flagged rate (95% CI)"] = rate_text(
                    count_rate(row["flagged"], len(part)), "data sets"
                )
                row["chains split"] = int((part["groups"] > 1).sum())
                rows.append(row)
    return pd.DataFrame(rows)


def crosstab_figure(cross: pd.DataFrame, out: Path) -> list[Figure]:
    """P(Bayes flags multimodality | EM outcome) per (EM fitter, Bayes fitter), with 95% Wilson
    intervals and k/n above each bar."""
    if cross.empty or cross["data sets"].sum() == 0:
        return []
    fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
    pairs = list(dict.fromkeys(zip(cross["EM fitter"], cross["Bayes fitter"], strict=True)))
    for i, outcome in enumerate(("local optimum", "best known optimum")):
        rows = cross[cross["EM returned"] == outcome]
        stats = pd.DataFrame(
            [count_rate(k, m) for k, m in zip(rows["flagged"], rows["data sets"], strict=True)]
        )
        x = np.arange(len(rows)) + 0.2 * (i - 0.5)
        label = f"EM returned the {outcome}"
        rate_bars(ax, x, stats.assign(rate=stats["rate"].fillna(0.0)), 0.38, label=label)
        tops = stats["upper"].fillna(0.0).to_numpy()  # k/n just above each interval
        for xi, top, k, m in zip(x, tops, rows["flagged"], rows["data sets"], strict=True):
            ax.annotate(f"{k}/{m}", (xi, top + 0.015), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(pairs)), [f"{b}\nvs {a}" for a, b in pairs], fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share flagged multimodal / label switching")
    ax.grid(alpha=0.3, axis="y")
    figure_legend(fig, [ax])  # below the axes: the k/n labels may reach the top
    caption = (
        "On the same data sets: how often the Bayesian fit's status was multimodal or "
        "label_switching, split by whether EM returned a local optimum (failed) or the best "
        "known optimum. Error bars: 95% Wilson intervals; k/n = flagged / data sets."
    )
    return [save(fig, out, "evb_crosstab", "Bayes flags where EM fails", caption)]


# ---- findings ------------------------------------------------------------------------------------
def _share(k: int, m: int) -> str:
    """`` (rate, 95% Wilson interval, k/m)`` of k in m, or nothing for m = 0."""
    return f" ({rate_text(count_rate(k, m), 'data sets')})" if m else ""


def findings(table: pd.DataFrame, cross: pd.DataFrame) -> list[str]:
    """Sentences generated from the numbers."""
    out = []
    x, _, _ = layout(table)
    if x is not None and table[x].nunique() > 1:
        low, high = table[x].min(), table[x].max()
        for p in PARAMETERS:
            parts = []
            for series, rows in table.groupby("series", sort=False):
                a = summarise(rows[rows[x] == low], ["series"], f"bias_{p}")
                b = summarise(rows[rows[x] == high], ["series"], f"bias_{p}")
                if not a.empty and not b.empty:
                    parts.append(
                        f"{series} {plus_minus(a['value'][0], a['se'][0])} at "
                        f"{setting_label(x, low)}, {plus_minus(b['value'][0], b['se'][0])} at "
                        f"{setting_label(x, high)}"
                    )
            if parts:
                out.append(
                    f"Bias of {p}, pooled over the other grid variables: " + "; ".join(parts) + "."
                )
    ems = list(dict.fromkeys(table.loc[table["method"] == "em", "series"]))
    bayes = list(dict.fromkeys(table.loc[table["method"] != "em", "series"]))
    for a in ems:
        for b in bayes:
            diffs = paired(table, a, b, "overall_rmse")
            mean, se, m = mean_se(diffs["difference"].to_numpy())
            if m:
                verdict = (
                    "no difference beyond twice its MC error"
                    if not abs(mean) > 2 * se
                    else f"{b if mean < 0 else a} closer to the truth"
                )
                out.append(
                    f"Overall RMSE, {b} minus {a} on the same {m} data sets: "
                    f"{plus_minus(mean, se)} ({verdict})."
                )
    level = nominal_level(table)
    columns = [f"{p}_coverage" for p in PARAMETERS if f"{p}_coverage" in table]
    keys = _keys(table)
    for series, rows in table.groupby("series", sort=False):
        values = rows[columns].mean(axis=1) if columns else pd.Series(dtype=float)
        mean, se, m = mean_se(values.to_numpy())
        if not m:
            continue
        nominal = float(level[rows.index].iloc[0])
        text = (
            f"{series}: intervals covered {plus_minus(mean, se)} of the true parameters against a "
            f"nominal {nominal:g} ({m} fits)"
        )
        below, cells = 0, []
        for p in PARAMETERS:
            stats = summarise(rows, keys, f"{p}_coverage")
            for _, s in stats.iterrows():
                below += int(np.isfinite(s["se"]) and s["value"] < nominal - 2 * max(s["se"], 0))
                where = ", ".join(setting_label(k, s[k]) for k in keys[1:])
                name = f"{p} {plus_minus(s['value'], s['se'])} at {where}"
                cells.append({"value": s["value"], "cell": name})
        if cells:
            cells = pd.DataFrame(cells)
            lowest = tied_names(cells, "cell", cells["value"].min(), "value", "; ")
            text += (
                f"; {below} of {len(cells)} (parameter, condition) cells fell more than two MC "
                f"errors below nominal; lowest: {lowest}"
            )
        out.append(text + ".")
    for (a, b), rows in cross.groupby(["EM fitter", "Bayes fitter"], sort=False):
        rows = rows.set_index("EM returned")
        fail, ok = rows.loc["local optimum"], rows.loc["best known optimum"]
        if fail["data sets"] + ok["data sets"] == 0:
            continue
        (k1, m1), (k0, m0) = ((int(r["flagged"]), int(r["data sets"])) for r in (fail, ok))
        text = (
            f"{a} returned a local optimum on {m1} of {m1 + m0} data sets; {b} flagged "
            f"multimodality (multimodal or label_switching) on {k1} of those{_share(k1, m1)} "
            f"and on {k0} of the {m0} where EM found the best known optimum{_share(k0, m0)}."
        )
        out.append(text)
    return out


# ---- the section ---------------------------------------------------------------------------------
@register_section("em_vs_bayes", "EM against Bayes: bias, RMSE, coverage, multimodality")
def em_vs_bayes_section(ctx: ReportContext, section: Section) -> None:
    """Bias and RMSE, interval coverage against nominal, and the EM-failure / Bayes-flag table."""
    table = study_table(ctx.data)
    if table.empty:
        section.note("No completed fit in this experiment.")
        return
    section.text(
        "EM and the Bayesian posterior mean on the very same data sets. Bias and RMSE of the "
        "matched parameters, interval coverage of EM's Wald intervals (observed information) and "
        "of Bayesian credible intervals against their nominal level, and whether the Bayesian "
        "chains flag multimodality where EM returns a local optimum. Tables: mean ± Monte "
        "Carlo standard error over data sets; the flagged rate as k/n data sets with its 95% "
        "Wilson interval."
    )
    for kind in ("bias", "rmse", "coverage"):
        section.figures(grid_figure(ctx.data, table, ctx.figures_dir, kind))
    cross = crosstab(table)
    section.figures(crosstab_figure(cross, ctx.figures_dir))
    section.table(with_se(recovery_table(table)), "bias and RMSE (± MC se)", True)
    section.table(with_se(coverage_table(table)), "interval coverage and width (± MC se)", True)
    if not cross.empty:
        section.table(cross, "EM outcome against the Bayesian status, same data sets", True)
    section.heading("What we found")
    for sentence in findings(table, cross):
        section.text(sentence, "finding")

"""Report section of the local-optima study (issue 6, item 1).

How often does one EM start end in a local optimum, against the number of components K, their
separation, the dimension and the initialisation; with the arms of Jin et al. (2016: weights and
covariances known, means estimated) and Xu, Hsu & Maleki (2018: K = 2, unequal weights held
fixed or left free).

Every EM restart is one fit. A restart fails when it is degenerate or its log-likelihood lies
more than ``FAILURE_GAP_PER_POINT * n`` nats below the best known optimum of its data set and
model: the truth-started fit and every restart of every initialisation of the same fitter table
on that data set (so all inits are judged against one reference). Rates are summarised per
replicate first (restarts on one data set are correlated), then as the mean over replicates with
its Monte Carlo standard error.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.evaluate import FAILURE_GAP_PER_POINT, is_failure
from workbench.report import ReportContext, register_section
from workbench.report.figures import ERRORBAR_NOTE, Figure, save
from workbench.report.html import Section, plus_minus, with_se
from workbench.report.summary import Experiment, ReportData, completed, summarise

KEEP = (
    "cell_id", "position", "experiment", "data_id", "replicate", "fitter_name", "fit.init",
    "data.separation", "data.d", "data.weights", "fit.fixed_weights", "fit.fixed_means",
    "fit.fixed_covariances", "fit.symmetric_means", "diag.truth_start_loglik",
)  # fmt: skip
EQUAL = "equal"


# ---- outcomes of every restart -------------------------------------------------------------------
def restart_outcomes(exp: Experiment) -> pd.DataFrame:
    """One row per EM restart of ``exp``: its settings, ``gap`` to the best known optimum of its
    data set and fitter table (across inits), ``failed`` and ``cell_failed`` (every restart of
    its cell failed: the returned best-of-R fit is a local optimum)."""
    em = completed(exp.table)
    em = em[em["method"] == "em"]
    if em.empty:
        return pd.DataFrame()
    restarts = exp.query("SELECT cell_id, restart, loglik, status FROM restarts")
    rows = restarts.merge(em[[c for c in KEEP if c in em]], on="cell_id")
    rows = rows.sort_values(["position", "restart"], ignore_index=True)  # design order
    sizes = exp.datasets[["data_id", "replicate", "n", "n_components_to_fit"]]
    rows = rows.merge(sizes.rename(columns={"n_components_to_fit": "data.K"}), how="left")
    for column, default in (("fit.init", "default"), ("data.separation", np.nan),
                            ("data.d", 1), ("data.weights", EQUAL)):  # fmt: skip
        rows[column] = rows[column].fillna(default) if column in rows else default
    loglik = pd.to_numeric(rows["loglik"], errors="coerce")
    usable = loglik.where((rows["status"] != "degenerate") & np.isfinite(loglik))
    keys = ["data_id", "replicate", "fitter_name"]
    truth = pd.to_numeric(rows.get("diag.truth_start_loglik"), errors="coerce")
    best = np.fmax(
        usable.groupby([rows[k] for k in keys]).transform("max"),
        truth.groupby([rows[k] for k in keys]).transform("max"),
    )
    rows["gap"] = best - loglik
    rows["failed"] = (rows["status"] == "degenerate") | is_failure(
        rows["gap"].fillna(np.inf), rows["n"].to_numpy(dtype=float)
    )
    rows["failed"] = rows["failed"].astype(float)
    rows["cell_failed"] = rows.groupby("cell_id")["failed"].transform("min")
    rows["arm"] = arm_labels(rows)
    rows["equal_weights"] = rows["data.weights"].astype(str) == EQUAL
    return rows


def arm_labels(rows: pd.DataFrame) -> pd.Series:
    """Each row's fitter table and what it holds fixed, e.g. ``means_only (weights, covariances
    known)``."""
    labels = {}
    for name, group in rows.groupby("fitter_name", sort=False):
        first = group.iloc[0]
        fixed = [
            part
            for part in ("weights", "means", "covariances")
            if isinstance(first.get(f"fit.fixed_{part}"), str)
        ]
        known = f"{', '.join(fixed)} known" if fixed else "all free"
        symmetric = first.get("fit.symmetric_means") is True
        labels[name] = f"{name} ({known}{'; means ±θ' if symmetric else ''})"
    return rows["fitter_name"].map(labels)


def rates(outcomes: pd.DataFrame, by: list[str], column: str = "failed") -> pd.DataFrame:
    """Mean over replicates (± MC se, m replicates) of the per-replicate failure fraction of
    ``column``, per group of ``by``."""
    if outcomes.empty:
        return pd.DataFrame(columns=[*by, "value", "se", "m"])
    per_rep = outcomes.groupby([*by, "replicate"], sort=True)[column].mean().reset_index()
    return summarise(per_rep, by, column, "mean")


def reference_curve(K: np.ndarray) -> np.ndarray:
    """1 - K! / K^K: the chance that K uniform centres leave some cluster without one."""
    K = np.asarray(K, dtype=float)
    return 1.0 - np.exp([math.lgamma(k + 1) - k * math.log(k) for k in K])


# ---- figures -------------------------------------------------------------------------------------
def _lines(ax, stats: pd.DataFrame, x: str, series: str, palette: dict) -> None:
    """One error-bar line per ``series`` value (in palette order), slightly dodged in x."""
    names = [n for n in palette if n in set(stats[series])]
    for i, name in enumerate(names):
        rows = stats[stats[series] == name].sort_values(x)
        xs = rows[x].to_numpy(dtype=float)
        span = max(xs.max() - xs.min(), 1.0) if xs.size else 1.0
        xs = xs + 0.01 * span * (i - 1.5)
        ax.errorbar(xs, rows["value"], yerr=rows["se"].fillna(0.0), marker="o", capsize=3,
                    color=palette.get(name), label=str(name))  # fmt: skip


def _palette(names) -> dict:
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(dict.fromkeys(names))}


def figure_vs_k(outcomes: pd.DataFrame, out: Path) -> Figure | None:
    """Per-start failure rate against K, one line per init, one panel per arm (equal weights)."""
    data = outcomes[outcomes["equal_weights"]]
    arms = list(dict.fromkeys(data["arm"]))
    if not arms or data["data.K"].nunique() < 2:
        return None
    palette = _palette(outcomes["fit.init"])
    fig, axes = plt.subplots(1, len(arms), figsize=(5.6 * len(arms), 4.4), squeeze=False)
    ks = np.arange(2, int(data["data.K"].max()) + 1)
    for ax, arm in zip(axes[0], arms, strict=True):
        _lines(ax, rates(data[data["arm"] == arm], ["fit.init", "data.K"]), "data.K",
               "fit.init", palette)  # fmt: skip
        ax.plot(ks, reference_curve(ks), "k--", lw=1, label="1 - K!/K^K")
        ax.set(xlabel="K", ylabel="per-start failure rate", title=arm, ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    caption = (
        "Fraction of single EM starts ending in a local optimum (or degenerate), on equal-weight "
        "data, pooled over separation and dimension within each replicate. Dashed: 1 - K!/K^K, "
        f"the chance that uniform random centres miss a cluster. {ERRORBAR_NOTE}"
    )
    return save(fig, out, "local_optima_vs_k", "Failure rate per start vs K", caption)


def figure_vs(outcomes: pd.DataFrame, out: Path, variable: str, label: str) -> Figure | None:
    """Per-start failure rate against ``variable``: rows are arms, columns K, lines inits."""
    data = outcomes[outcomes["equal_weights"]]
    if variable not in data or data[variable].nunique() < 2:
        return None
    arms, ks = list(dict.fromkeys(data["arm"])), sorted(data["data.K"].unique())
    palette = _palette(outcomes["fit.init"])
    fig, axes = plt.subplots(len(arms), len(ks), figsize=(3.9 * len(ks), 3.4 * len(arms)),
                             squeeze=False, sharey=True)  # fmt: skip
    for i, arm in enumerate(arms):
        for j, k in enumerate(ks):
            rows = data[(data["arm"] == arm) & (data["data.K"] == k)]
            _lines(axes[i, j], rates(rows, ["fit.init", variable]), variable, "fit.init", palette)
            axes[i, j].set_title(f"{arm}\nK = {k}", fontsize=8)
            axes[i, j].set(xlabel=label, ylim=(-0.03, 1.03))
            axes[i, j].grid(alpha=0.3)
        axes[i, 0].set_ylabel("per-start failure rate")
    axes[0, 0].legend(fontsize=7)
    others = "dimension" if variable == "data.separation" else "separation"
    caption = (
        f"Per-start failure rate against {label} on equal-weight data, pooled over {others} "
        f"within each replicate. {ERRORBAR_NOTE}"
    )
    key = f"local_optima_vs_{variable.split('.')[-1]}"
    return save(fig, out, key, f"Failure rate per start vs {label}", caption)


def figure_arms(outcomes: pd.DataFrame, out: Path) -> Figure | None:
    """Unequal-weight K = 2 data (Xu-Hsu-Maleki), per arm: left per init, right against
    separation (inits pooled)."""
    unequal = outcomes[~outcomes["equal_weights"] & (outcomes["data.K"] == 2)]
    if unequal.empty or unequal["arm"].nunique() < 2:
        return None
    palette = _palette(unequal["arm"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    stats = rates(unequal, ["arm", "fit.init"])
    inits = list(dict.fromkeys(stats["fit.init"]))
    arms = [a for a in palette if a in set(stats["arm"])]
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        rows = stats[stats["arm"] == arm].set_index("fit.init").reindex(inits)
        x = np.arange(len(inits)) + width * (i - (len(arms) - 1) / 2)
        left.bar(x, rows["value"], width, yerr=rows["se"].fillna(0), capsize=3,
                 color=palette[arm], label=arm)  # fmt: skip
    left.set_xticks(range(len(inits)), inits, fontsize=8)
    left.set(ylabel="per-start failure rate", ylim=(0, 1.03))
    left.set_title("per initialisation, separations pooled", fontsize=9)
    _lines(right, rates(unequal, ["arm", "data.separation"]), "data.separation", "arm", palette)
    separations = sorted(unequal["data.separation"].astype(float).unique())
    right.set_xticks(separations)
    if len(separations) == 1:
        right.set_xlim(separations[0] - 1, separations[0] + 1)
    right.set(xlabel="separation c", ylabel="per-start failure rate", ylim=(-0.03, 1.03))
    right.set_title("against separation, inits pooled", fontsize=9)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    weights = ", ".join(sorted(set(unequal["data.weights"].astype(str))))
    caption = (
        f"Xu, Hsu & Maleki's setting: two components with weights {weights}, the same data sets "
        "fitted by each arm; holding the weights at their true values against estimating them. "
        f"{ERRORBAR_NOTE}"
    )
    return save(fig, out, "local_optima_arms", "Fixed against free weights (K = 2)", caption)


# ---- tables and findings -------------------------------------------------------------------------
def rate_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per arm, data weights, init and K: EM fits, per-start and best-of-R failure rates ± se."""
    by = ["arm", "data.weights", "fit.init", "data.K"]
    names = {"per-start": "failed", "best-of-R": "cell_failed"}
    table = outcomes.groupby(by, sort=True).size().rename("EM fits").reset_index()
    for label, column in names.items():
        stats = rates(outcomes, by, column).rename(
            columns={"value": f"{label} failure rate", "se": f"{label} failure rate se"}
        )
        if "replicates" in table:
            stats = stats.drop(columns="m")
        table = table.merge(stats.rename(columns={"m": "replicates"}), on=by)
    return table


def _fmt(value: float, se: float) -> str:
    return plus_minus(value, se, ".3f", ".3f")  # rates: three decimals


def _compare(a: pd.Series, b: pd.Series) -> str:
    """'higher', 'lower' or 'indistinguishable' (b against a, beyond twice the combined MC se);
    'not judged' when a standard error is unknown (a single replicate)."""
    diff = b["value"] - a["value"]
    if diff == 0:
        return "indistinguishable"
    if not (np.isfinite(a["se"]) and np.isfinite(b["se"])):
        return "not judged (no MC error from a single replicate)"
    if abs(diff) <= 2 * math.hypot(a["se"], b["se"]):
        return "indistinguishable"
    return "higher" if diff > 0 else "lower"


def findings(outcomes: pd.DataFrame) -> list[str]:
    """Sentences generated from the numbers (no number is written by hand)."""
    at_limit = outcomes["status"] == "max_iter"
    out = [
        f"{len(outcomes)} EM fits (restarts) in {outcomes['cell_id'].nunique()} cells on "
        f"{outcomes.groupby(['data_id', 'replicate']).ngroups} data sets; "
        f"{int((outcomes['status'] == 'degenerate').sum())} ended degenerate (counted as failed) "
        f"and {int(at_limit.sum())} at max_iter, of which "
        f"{int(outcomes.loc[at_limit, 'failed'].sum())} were still beyond the threshold "
        "(counted as failed: slow convergence or a local optimum)."
    ]
    equal = outcomes[outcomes["equal_weights"]]
    for arm, rows in equal.groupby("arm", sort=False):
        stats = rates(rows, ["fit.init", "data.K"])
        k_lo, k_hi = stats["data.K"].min(), stats["data.K"].max()
        lo, hi = stats[stats["data.K"] == k_lo], stats[stats["data.K"] == k_hi]
        worst_lo = lo.loc[lo["value"].idxmax()]
        best_hi, worst_hi = hi.loc[hi["value"].idxmin()], hi.loc[hi["value"].idxmax()]
        rising = [
            init
            for init, g in stats.groupby("fit.init", sort=False)
            if _compare(g.iloc[0], g.iloc[-1]) == "higher"
        ]
        which = "every init" if lo["value"].nunique() == 1 else worst_lo["fit.init"]
        out.append(
            f"{arm}, equal weights: at K = {k_lo} the per-start failure rate was at most "
            f"{_fmt(worst_lo['value'], worst_lo['se'])} ({which}); at K = {k_hi} it "
            f"ranged from {_fmt(best_hi['value'], best_hi['se'])} ({best_hi['fit.init']}) to "
            f"{_fmt(worst_hi['value'], worst_hi['se'])} ({worst_hi['fit.init']}). It rose from "
            f"K = {k_lo} to K = {k_hi} beyond twice its MC error for "
            f"{len(rising)} of {stats['fit.init'].nunique()} inits"
            + (f" ({', '.join(rising)})." if rising else ".")
        )
        best = rates(rows[rows["data.K"] == k_hi], ["fit.init"], "cell_failed")
        lo_best, hi_best = best.loc[best["value"].idxmin()], best.loc[best["value"].idxmax()]
        out.append(
            f"{arm}, K = {k_hi}: the returned fit (best of its restarts) failed on "
            f"{_fmt(lo_best['value'], lo_best['se'])} ({lo_best['fit.init']}) to "
            f"{_fmt(hi_best['value'], hi_best['se'])} ({hi_best['fit.init']}) of the data sets."
        )
        curve = reference_curve(stats["data.K"].to_numpy())
        below = int(np.sum(stats["value"].to_numpy() < curve))
        out.append(
            f"{arm}: {below} of {len(stats)} (init, K) rates lie below the reference curve "
            "1 - K!/K^K."
        )
        for variable, name in (("data.separation", "separation"), ("data.d", "dimension")):
            trend = rates(rows[rows["data.K"] == k_hi], [variable])
            if len(trend) >= 2:
                first, last = trend.iloc[0], trend.iloc[-1]
                out.append(
                    f"{arm}, K = {k_hi}, all inits: from {name} {first[variable]:g} to "
                    f"{last[variable]:g} the failure rate went from "
                    f"{_fmt(first['value'], first['se'])} to {_fmt(last['value'], last['se'])}: "
                    f"{_compare(first, last)}."
                )
    unequal = outcomes[~outcomes["equal_weights"] & (outcomes["data.K"] == 2)]
    if not unequal.empty and unequal["arm"].nunique() >= 2:
        stats = rates(unequal, ["arm"])
        parts = [f"{r['arm']}: {_fmt(r['value'], r['se'])}" for _, r in stats.iterrows()]
        hi, lo = stats.loc[stats["value"].idxmax()], stats.loc[stats["value"].idxmin()]
        out.append(
            "K = 2 with unequal weights (Xu, Hsu & Maleki), all inits pooled: "
            + "; ".join(parts)
            + f". {hi['arm']} against {lo['arm']}: {_compare(lo, hi)}."
        )
        by_init = rates(unequal[unequal["arm"] == hi["arm"]], ["fit.init"])
        best, worst = by_init.loc[by_init["value"].idxmin()], by_init.loc[by_init["value"].idxmax()]
        by_sep = rates(unequal[unequal["arm"] == hi["arm"]], ["data.separation"])
        seps = "; ".join(
            f"c = {r['data.separation']:g}: {_fmt(r['value'], r['se'])}"
            for _, r in by_sep.iterrows()
        )
        out.append(
            f"{hi['arm']}, by initialisation: from {_fmt(best['value'], best['se'])} "
            f"({best['fit.init']}) to {_fmt(worst['value'], worst['se'])} ({worst['fit.init']}); "
            f"by separation, inits pooled: {seps}."
        )
    return out


# ---- the section ---------------------------------------------------------------------------------
def all_outcomes(data: ReportData) -> pd.DataFrame:
    """Restart outcomes of every experiment; arms prefixed by the experiment when overlaid."""
    frames = [restart_outcomes(exp) for exp in data.experiments]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    outcomes = pd.concat(frames, ignore_index=True)
    if len(data.experiments) > 1:
        outcomes["arm"] = outcomes["experiment"].astype(str) + ": " + outcomes["arm"]
    return outcomes


@register_section("local_optima", "Local optima: failure rate per EM start")
def local_optima_section(ctx: ReportContext, section: Section) -> None:
    """Figures, table and generated findings of the local-optima study."""
    outcomes = all_outcomes(ctx.data)
    if outcomes.empty:
        section.note("No EM restarts are stored for this experiment.")
        return
    section.text(
        "Every EM restart counts as one fit. A restart fails when it is degenerate or ends more "
        f"than {FAILURE_GAP_PER_POINT:g} nats per point below the best known optimum of its data "
        "set and model (the truth-started fit and every restart of every initialisation of that "
        "fitter table). Rates are computed per replicate first, then averaged over replicates "
        "with their Monte Carlo standard error. A small_em restart is itself the best of many "
        "short EM runs, so it costs more than one start of the other strategies."
    )
    drawn = [
        figure_vs_k(outcomes, ctx.figures_dir),
        figure_vs(outcomes, ctx.figures_dir, "data.separation", "separation"),
        figure_vs(outcomes, ctx.figures_dir, "data.d", "dimension"),
        figure_arms(outcomes, ctx.figures_dir),
    ]
    section.figures([f for f in drawn if f is not None])
    section.table(with_se(rate_table(outcomes)), "failure rates by arm, init and K", scroll=True)
    section.parts.append("<h3>What we found</h3>")
    for sentence in findings(outcomes):
        section.text(sentence, "finding")

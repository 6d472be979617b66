"""Report section of the local-optima study (issue 6, item 1; issue 10, trustworthy verdicts).

How often does one EM start end in a local optimum, against the number of components K at each
fixed separation, the dimension and the initialisation; with the arms of Jin et al. (2016:
well-separated random centres, weights and covariances known, means estimated), an overlapping
arm, and Xu, Hsu & Maleki (2018: K = 2, unequal weights held fixed or left free).

Every EM restart is one fit. Its verdict is the one the run stored (``failure_kind`` of the
restarts table, under the rule named in the ``failure_rule`` metric, :mod:`workbench.evaluate`),
judged against the best known optimum that run found (reference bank + polished restarts); the
report never recomputes it. A local optimum (``minor`` or ``gross``) is a failure; ``degenerate``
and ``unresolved`` restarts are counted apart. Rates are binomial with a 95% Wilson interval
whose effective sample size allows for restarts on one data set being correlated.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from workbench.evaluate import GROSS_CHANGE, LOCAL_OPTIMUM_KINDS, PARAM_TOL
from workbench.report import ReportContext, register_section
from workbench.report.figures import Figure, save
from workbench.report.html import Section
from workbench.report.summary import (
    Experiment,
    ReportData,
    completed,
    rate_ci,
    rate_text,
    slug,
    summarise_rate,
)

KEEP = (
    "cell_id", "position", "experiment", "data_id", "replicate", "fitter_name", "fit.init",
    "data.separation", "data.d", "data.weights", "data.placement", "fit.fixed_weights",
    "fit.fixed_means", "fit.fixed_covariances", "fit.symmetric_means", "failure_rule",
    "diag.reference_loglik", "diag.reference_source", "diag.reference_starts",
)  # fmt: skip
EQUAL = "equal"
DATA_SET = ["data_id", "replicate"]  # restarts on one data set are correlated
CI_NOTE = "Error bars: 95% Wilson intervals (effective sample size allowing for restarts on one data set being correlated)."  # noqa: E501
KIND_COLOURS = {"gross": "tab:red", "minor": "tab:orange", "below": "tab:purple"}


# ---- outcomes of every restart -------------------------------------------------------------------
def _verdicts(restarts: pd.DataFrame) -> pd.DataFrame:
    """The stored verdict of each restart, from its ``extra`` JSON (older stores: from
    ``failed`` and ``status``, kind ``below`` or ``best``)."""
    extra = [json.loads(e) if isinstance(e, str) else {} for e in restarts.get("extra", [])]
    frame = pd.DataFrame(extra, index=restarts.index)
    for column in ("failure_kind", "polished_loglik", "param_distance", "cluster_change"):
        if column not in frame:
            frame[column] = np.nan
    old = frame["failure_kind"].isna()
    failed = pd.to_numeric(restarts["failed"], errors="coerce").fillna(0).astype(bool)
    fallback = np.where(restarts["status"] == "degenerate", "degenerate",
                        np.where(failed, "below", "best"))  # fmt: skip
    frame.loc[old, "failure_kind"] = fallback[old.to_numpy()]
    return frame[["failure_kind", "polished_loglik", "param_distance", "cluster_change"]]


def restart_outcomes(exp: Experiment) -> pd.DataFrame:
    """One row per EM restart of ``exp``: its settings, the stored ``gap`` (nats below the best
    known optimum, polished) and ``failure_kind``; 0/1 columns ``failed`` (a local optimum),
    ``gross``, ``minor``, ``degenerate``, ``unresolved``, and ``cell_failed`` (the returned fit,
    the best of its cell's restarts, is a local optimum)."""
    em = completed(exp.table)
    em = em[em["method"] == "em"]
    if em.empty:
        return pd.DataFrame()
    restarts = exp.query("SELECT * FROM restarts")
    restarts = pd.concat([restarts.drop(columns="extra"), _verdicts(restarts)], axis=1)
    rows = restarts.merge(em[[c for c in KEEP if c in em]], on="cell_id")
    rows = rows.sort_values(["position", "restart"], ignore_index=True)  # design order
    sizes = exp.datasets[["data_id", "replicate", "n", "n_components_to_fit"]]
    rows = rows.merge(sizes.rename(columns={"n_components_to_fit": "data.K"}), how="left")
    defaults = (("fit.init", "default"), ("data.separation", np.nan), ("data.d", 1),
                ("data.weights", EQUAL), ("data.placement", "compact"),
                ("failure_rule", "gap-per-point (before fixed-point-v1)"))  # fmt: skip
    for column, default in defaults:
        rows[column] = rows[column].fillna(default) if column in rows else default
    kind = rows["failure_kind"].astype(str)
    rows["failed"] = kind.isin(LOCAL_OPTIMUM_KINDS).astype(float)
    for name in ("gross", "minor", "degenerate", "saddle", "unresolved"):
        rows[name] = (kind == name).astype(float)
    best = pd.to_numeric(rows["best"], errors="coerce").fillna(0).astype(bool)
    returned = rows.loc[best, ["cell_id", "failed"]].rename(columns={"failed": "cell_failed"})
    rows = rows.merge(returned, on="cell_id", how="left")
    rows["arm"] = arm_labels(rows)
    rows["equal_weights"] = rows["data.weights"].astype(str) == EQUAL
    return rows


def arm_labels(rows: pd.DataFrame) -> pd.Series:
    """Each row's fitter table and what it holds fixed, e.g. ``jin (weights, covariances
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
def _yerr(stats: pd.DataFrame) -> np.ndarray:
    return np.vstack([stats["rate"] - stats["lower"], stats["upper"] - stats["rate"]]).clip(0)


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
                             squeeze=False, sharey=True)  # fmt: skip
    stats = rates(data, ["data.d", "fit.init", "data.separation", "data.K"])
    x = {k: i for i, k in enumerate(ks)}
    for i, d in enumerate(dims):
        for j, init in enumerate(inits):
            ax = axes[i, j]
            for s, sep in enumerate(seps):
                rows = stats[(stats["data.d"] == d) & (stats["fit.init"] == init)
                             & (stats["data.separation"].astype(float) == sep)]  # fmt: skip
                xs = np.array([x[k] for k in rows["data.K"]]) + 0.06 * (s - (len(seps) - 1) / 2)
                ax.errorbar(xs, rows["rate"], yerr=_yerr(rows), marker="o", capsize=3,
                            color=colour[sep], label=f"c = {sep:g}")  # fmt: skip
            ax.plot(range(len(ks)), reference_curve(ks), "k--", lw=1, label="1 - K!/K^K")
            ax.set_xticks(range(len(ks)), [str(int(k)) for k in ks])
            ax.set(xlabel="K", ylim=(-0.03, 1.03))
            ax.set_title(f"d = {int(d)}, init {init}", fontsize=9)
            ax.grid(alpha=0.3)
        axes[i, 0].set_ylabel("per-start local-optimum rate")
    axes[0, 0].legend(fontsize=7, title="separation", title_fontsize=7)
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
        x = np.arange(len(inits)) + width * (i - (len(palette) - 1) / 2)
        left.bar(x, rows["rate"], width, yerr=_yerr(rows), capsize=3, color=palette[arm],
                 label=arm)  # fmt: skip
    left.set_xticks(range(len(inits)), inits, fontsize=8)
    left.set(ylabel="per-start local-optimum rate", ylim=(0, 1.03))
    left.set_title("per initialisation, separations pooled", fontsize=9)
    by_sep = rates(unequal, ["arm", "data.separation"])
    for arm, colour in palette.items():
        rows = by_sep[by_sep["arm"] == arm]
        right.errorbar(rows["data.separation"].astype(float), rows["rate"], yerr=_yerr(rows),
                       marker="o", capsize=3, color=colour, label=arm)  # fmt: skip
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


# ---- tables and findings -------------------------------------------------------------------------
TABLE_BY = ["arm", "data.weights", "data.d", "data.separation", "fit.init", "data.K"]


def rate_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per arm, weights, d, separation, init and K: starts, local-optimum rate (95% CI, k/n),
    gross / minor / degenerate / saddle / unresolved counts, the returned fit's local-optimum
    rate and the median gap of the local optima."""
    rows = []
    for key, group in outcomes.groupby(TABLE_BY, sort=True):
        stats = rate_ci(group["failed"].to_numpy(), group[DATA_SET].astype(str).agg("|".join, 1))
        cells = group.drop_duplicates("cell_id")
        returned = rate_ci(cells["cell_failed"].to_numpy())
        gaps = pd.to_numeric(group.loc[group["failed"] == 1, "gap"], errors="coerce")
        rows.append(
            {
                **dict(zip(TABLE_BY, key, strict=True)),
                "starts": len(group),
                "local optima per start": rate_text(stats, "starts"),
                "gross": int(group["gross"].sum()),
                "minor": int(group["minor"].sum()),
                "degenerate": int(group["degenerate"].sum()),
                "saddle": int(group["saddle"].sum()),
                "unresolved": int(group["unresolved"].sum()),
                "returned fit a local optimum": rate_text(returned, "fits"),
                "median gap (nats)": float(gaps.median()) if len(gaps) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def _names(stats: pd.DataFrame, column: str, value: float) -> str:
    """Every group whose rate equals ``value`` (ties listed, none picked arbitrarily)."""
    tied = stats.loc[np.isclose(stats["rate"], value), column].astype(str).tolist()
    return tied[0] if len(tied) == 1 else f"tied: {', '.join(tied)}"


def _compare(a: pd.Series, b: pd.Series) -> str:
    """'higher' / 'lower' when b's 95% Wilson interval lies wholly above / below a's, else
    'not distinguishable (intervals overlap)'."""
    if b["lower"] > a["upper"]:
        return "higher"
    if b["upper"] < a["lower"]:
        return "lower"
    return "not distinguishable (95% intervals overlap)"


def _counts_sentence(outcomes: pd.DataFrame) -> str:
    kinds = outcomes["failure_kind"].value_counts()
    get = lambda k: int(kinds.get(k, 0))  # noqa: E731
    rules = ", ".join(sorted(set(outcomes["failure_rule"].astype(str))))
    below = (
        f", {get('below')} below the best known (parameters not compared)" if get("below") else ""
    )
    return (
        f"{len(outcomes)} EM fits (restarts) in {outcomes['cell_id'].nunique()} cells on "
        f"{outcomes.groupby(DATA_SET).ngroups} data sets, judged by rule {rules}: "
        f"{get('minor') + get('gross') + get('below')} local optima ({get('gross')} gross, "
        f"{get('minor')} minor{below or ''}), {get('degenerate')} degenerate, {get('saddle')} "
        f"saddle points (EM-map Jacobian eigenvalue above 1) and {get('unresolved')} "
        "unresolved (still moving after polishing), none of which counts as a local optimum; "
        f"{get('best')} reached the best known optimum."
    )


def _reference_sentence(outcomes: pd.DataFrame) -> str | None:
    if "diag.reference_loglik" not in outcomes:
        return None
    cells = outcomes.drop_duplicates("cell_id")
    ref = pd.to_numeric(cells["diag.reference_loglik"], errors="coerce")
    spread = ref.groupby([cells[k] for k in (*DATA_SET, "fitter_name")]).agg(["max", "min"])
    differ = int(((spread["max"] - spread["min"]) > 1e-6 + 1e-8 * spread["max"].abs()).sum())
    source = cells.get("diag.reference_source", pd.Series(dtype=str)).astype(str)
    by_restart = int(source.str.startswith("restart").sum())
    starts = pd.to_numeric(cells.get("diag.reference_starts"), errors="coerce").dropna()
    sizes = sorted({int(v) for v in starts if v > 0})
    bank = f"{' or '.join(map(str, sizes))} runs" if sizes else "no bank"
    return (
        f"Best known optimum: a reference bank of {bank} (truth start and bank starts, seeded by "
        f"the data) per cell, raised by a cell's own restart in {by_restart} of {len(cells)} "
        f"cells; on {differ} of {len(spread)} (data set, fitter table) pairs the cells' best known "
        "optima differ (a restart beat the bank there)."
    )


def _arm_findings(arm: str, rows: pd.DataFrame) -> list[str]:
    out = []
    stats = rates(rows, ["fit.init", "data.separation", "data.K", "data.d"])
    k_lo, k_hi = stats["data.K"].min(), stats["data.K"].max()
    for (init, d), group in stats.groupby(["fit.init", "data.d"], sort=False):
        lo, hi = group[group["data.K"] == k_lo], group[group["data.K"] == k_hi]
        both = lo.merge(hi, on="data.separation", suffixes=("_lo", "_hi"))
        rising = sum(
            _compare(
                pd.Series({k: r[f"{k}_lo"] for k in ("rate", "lower", "upper")}),
                pd.Series({k: r[f"{k}_hi"] for k in ("rate", "lower", "upper")}),
            )
            == "higher"
            for _, r in both.iterrows()
        )
        lo_text = "; ".join(
            f"c = {r['data.separation']:g}: {rate_text(r, 'starts')}" for _, r in lo.iterrows()
        )
        hi_text = "; ".join(
            f"c = {r['data.separation']:g}: {rate_text(r, 'starts')}" for _, r in hi.iterrows()
        )
        out.append(
            f"{arm}, init {init}, d = {d:g}: local optima per start at K = {k_lo:g}: {lo_text}. "
            f"At K = {k_hi:g}: {hi_text}. The rate at K = {k_hi:g} lies above the K = {k_lo:g} "
            f"interval at {rising} of {len(both)} separations."
        )
        if hi["data.separation"].nunique() >= 2:
            first = hi.loc[hi["data.separation"].astype(float).idxmin()]
            last = hi.loc[hi["data.separation"].astype(float).idxmax()]
            out.append(
                f"{arm}, init {init}, d = {d:g}, K = {k_hi:g}: from separation "
                f"{first['data.separation']:g} to {last['data.separation']:g} the rate went "
                f"from {first['rate']:.3g} to {last['rate']:.3g}: {_compare(first, last)}."
            )
    best = rates(rows[rows["data.K"] == k_hi], ["fit.init"], "cell_failed")
    low, high = best["rate"].min(), best["rate"].max()
    if low == high:
        each = "; ".join(
            f"{r['fit.init']}: {rate_text(r, 'data sets')}" for _, r in best.iterrows()
        )
        out.append(
            f"{arm}, K = {k_hi:g}: the returned fit (best of its restarts) was a local optimum "
            f"equally often for every init ({each})."
        )
        return out
    out.append(
        f"{arm}, K = {k_hi:g}: the returned fit (best of its restarts) was a local optimum on "
        f"{rate_text(best.loc[best['rate'].idxmin()], 'data sets')} "
        f"({_names(best, 'fit.init', low)}) to "
        f"{rate_text(best.loc[best['rate'].idxmax()], 'data sets')} "
        f"({_names(best, 'fit.init', high)})."
    )
    return out


def findings(outcomes: pd.DataFrame) -> list[str]:
    """Sentences generated from the numbers (no number is written by hand); every rate with its
    n and 95% Wilson interval; ties named as ties."""
    out = [_counts_sentence(outcomes)]
    reference = _reference_sentence(outcomes)
    if reference:
        out.append(reference)
    local = pd.to_numeric(outcomes.loc[outcomes["failed"] == 1, "gap"], errors="coerce")
    if len(local):
        q = local.quantile([0.0, 0.25, 0.5, 0.75, 1.0])
        out.append(
            f"Gaps of the {len(local)} local optima: median {q[0.5]:.3g} nats (quartiles "
            f"{q[0.25]:.3g}-{q[0.75]:.3g}, range {q[0.0]:.3g}-{q[1.0]:.3g})."
        )
    equal = outcomes[outcomes["equal_weights"]]
    for arm, rows in equal.groupby("arm", sort=False):
        out += _arm_findings(arm, rows)
    unequal = outcomes[~outcomes["equal_weights"] & (outcomes["data.K"] == 2)]
    if not unequal.empty and unequal["arm"].nunique() >= 2:
        stats = rates(unequal, ["arm"])
        parts = [f"{r['arm']}: {rate_text(r, 'starts')}" for _, r in stats.iterrows()]
        hi, lo = stats.loc[stats["rate"].idxmax()], stats.loc[stats["rate"].idxmin()]
        verdict = (
            "tied"
            if hi["rate"] == lo["rate"]
            else f"{hi['arm']} against {lo['arm']}: {_compare(lo, hi)}"
        )
        out.append(
            "K = 2 with unequal weights (Xu, Hsu & Maleki), all inits pooled, local optima per "
            "start: " + "; ".join(parts) + f". {verdict}."
        )
        by_init = rates(unequal[unequal["arm"] == hi["arm"]], ["fit.init"])
        low, high = by_init["rate"].min(), by_init["rate"].max()
        out.append(
            f"{hi['arm']}, by initialisation: from "
            f"{rate_text(by_init.loc[by_init['rate'].idxmin()], 'starts')} "
            f"({_names(by_init, 'fit.init', low)}) to "
            f"{rate_text(by_init.loc[by_init['rate'].idxmax()], 'starts')} "
            f"({_names(by_init, 'fit.init', high)})."
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
    rules = ", ".join(sorted(set(outcomes["failure_rule"].astype(str))))
    section.text(
        f"Every EM restart counts as one fit, judged by rule {rules} as the run stored it. The "
        "fit is first polished (EM continued to a relative change of 1e-12); it is a local "
        "optimum when it then lies more than 1e-6 + 1e-8 |L| nats below the best known optimum "
        "of its data set and model AND its Hungarian-matched weights, means or covariances differ "
        f"from the best known fit's by more than {PARAM_TOL:g} data standard deviations: another "
        "fixed point, not a run that stopped early. The best known optimum is the best of a "
        "reference bank (EM from the truth and from k-means++ and random-data-point starts, "
        "seeded by the data, so every cell on one data set shares it) and the cell's own "
        "polished restarts. Gross local optima merge, split or swap a cluster; minor ones do "
        "not. Degenerate runs, saddle points (the EM map's Jacobian at the polished fit has an "
        "eigenvalue above 1, so EM would leave it, however slowly) and runs still moving after "
        "polishing (unresolved) are counted apart. Rates carry 95% Wilson intervals and their "
        "counts. A small_em restart is itself the best of many short EM runs, so it costs more "
        "than one start of the other strategies."
    )
    arms = list(dict.fromkeys(outcomes.loc[outcomes["equal_weights"], "arm"]))
    drawn = [figure_vs_k(outcomes, arm, ctx.figures_dir) for arm in arms]
    drawn += [figure_gaps(outcomes, ctx.figures_dir), figure_arms(outcomes, ctx.figures_dir)]
    section.figures([f for f in drawn if f is not None])
    section.table(rate_table(outcomes), "local optima by arm, separation, init and K", scroll=True)
    section.parts.append("<h3>What we found</h3>")
    for sentence in findings(outcomes):
        section.text(sentence, "finding")

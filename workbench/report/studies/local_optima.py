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

import numpy as np
import pandas as pd

from workbench.evaluate import PARAM_TOL
from workbench.montecarlo import rate_interval
from workbench.report import ReportContext, register_section
from workbench.report.html import Section
from workbench.report.store_reader import Experiment, ReportData, completed
from workbench.report.studies._local_optima_figures import (
    DATA_SET,
    figure_arms,
    figure_gaps,
    figure_vs_k,
    rates,
    reference_curve,
)
from workbench.report.text import rate_text, tied_names
from workbench.status import LOCAL_OPTIMUM_KINDS, FailureKind

__all__ = ["findings", "local_optima_section", "rate_table", "rates", "reference_curve",
           "restart_outcomes"]  # fmt: skip

KEEP = (
    "cell_id", "position", "experiment", "data_id", "replicate", "fitter_name", "fit.init",
    "data.separation", "data.d", "data.weights", "data.placement", "fit.fixed_weights",
    "fit.fixed_means", "fit.fixed_covariances", "fit.symmetric_means", "failure_rule",
    "diag.reference_loglik", "diag.reference_source", "diag.reference_starts",
)  # fmt: skip
EQUAL = "equal"


# Restart kinds counted apart in the rate table (one 0/1 column each).
COUNTED_KINDS = (
    FailureKind.GROSS,
    FailureKind.MINOR,
    FailureKind.DEGENERATE,
    FailureKind.SADDLE,
    FailureKind.UNRESOLVED,
)


# ---- outcomes of every restart -------------------------------------------------------------------
def restart_outcomes(exp: Experiment) -> pd.DataFrame:
    """One row per EM restart of ``exp``: its settings, the stored ``gap`` (nats below the best
    known optimum, polished) and ``failure_kind``; 0/1 columns ``failed`` (a local optimum),
    ``gross``, ``minor``, ``degenerate``, ``unresolved``, and ``cell_failed`` (the returned fit,
    the best of its cell's restarts, is a local optimum)."""
    em = completed(exp.table)
    em = em[em["method"] == "em"]
    if em.empty:
        return pd.DataFrame()
    rows = exp.restarts().merge(em[[c for c in KEEP if c in em]], on="cell_id")
    rows = rows.sort_values(["position", "restart"], ignore_index=True)  # design order
    sizes = exp.datasets[["data_id", "replicate", "n", "n_components_to_fit"]]
    rows = rows.merge(sizes.rename(columns={"n_components_to_fit": "data.K"}), how="left")
    defaults = (("fit.init", "default"), ("data.separation", np.nan), ("data.d", 1),
                ("data.weights", EQUAL), ("data.placement", "compact"),
                ("failure_rule", "gap-per-point (before fixed-point-v1)"))  # fmt: skip
    for column, default in defaults:
        rows[column] = rows[column].fillna(default) if column in rows else default
    kind = rows["failure_kind"].astype(str)
    for name in COUNTED_KINDS:
        rows[str(name)] = (kind == name).astype(float)
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


# ---- tables and findings -------------------------------------------------------------------------
TABLE_BY = ["arm", "data.weights", "data.d", "data.separation", "fit.init", "data.K"]


def rate_table(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per arm, weights, d, separation, init and K: starts, local-optimum rate (95% CI, k/n),
    gross / minor / degenerate / saddle / unresolved counts, the returned fit's local-optimum
    rate and the median gap of the local optima."""
    rows = []
    for key, group in outcomes.groupby(TABLE_BY, sort=True):
        stats = rate_interval(
            group["failed"].to_numpy(), group[DATA_SET].astype(str).agg("|".join, 1)
        )
        cells = group.drop_duplicates("cell_id")
        returned = rate_interval(cells["cell_failed"].to_numpy())
        gaps = pd.to_numeric(group.loc[group["failed"] == 1, "gap"], errors="coerce")
        rows.append(
            {
                **dict(zip(TABLE_BY, key, strict=True)),
                "starts": len(group),
                "local optima per start": rate_text(stats, "starts"),
                **{str(name): int(group[name].sum()) for name in COUNTED_KINDS},
                "returned fit a local optimum": rate_text(returned, "fits"),
                "median gap (nats)": float(gaps.median()) if len(gaps) else np.nan,
            }
        )
    return pd.DataFrame(rows)


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
    n = {kind: int(kinds.get(kind, 0)) for kind in FailureKind}
    rules = ", ".join(sorted(set(outcomes["failure_rule"].astype(str))))
    below = n[FailureKind.BELOW]
    below = f", {below} below the best known (parameters not compared)" if below else ""
    return (
        f"{len(outcomes)} EM fits (restarts) in {outcomes['cell_id'].nunique()} cells on "
        f"{outcomes.groupby(DATA_SET).ngroups} data sets, judged by rule {rules}: "
        f"{sum(n[k] for k in LOCAL_OPTIMUM_KINDS)} local optima ({n[FailureKind.GROSS]} gross, "
        f"{n[FailureKind.MINOR]} minor{below}), {n[FailureKind.DEGENERATE]} degenerate, "
        f"{n[FailureKind.SADDLE]} saddle points (EM-map Jacobian eigenvalue above 1) and "
        f"{n[FailureKind.UNRESOLVED]} unresolved (still moving after polishing), none of which "
        f"counts as a local optimum; {n[FailureKind.BEST]} reached the best known optimum."
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
        f"({tied_names(best, 'fit.init', low)}) to "
        f"{rate_text(best.loc[best['rate'].idxmax()], 'data sets')} "
        f"({tied_names(best, 'fit.init', high)})."
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
            f"({tied_names(by_init, 'fit.init', low)}) to "
            f"{rate_text(by_init.loc[by_init['rate'].idxmax()], 'starts')} "
            f"({tied_names(by_init, 'fit.init', high)})."
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
        "fit is first polished (EM continued to a change below 1e-12 nats per point); it is a "
        "local optimum when it then lies more than 1e-6 + 1e-8 |L| nats below the best known "
        "optimum of its data set and model AND its Hungarian-matched weights, means or "
        f"covariances differ from the best known fit's by more than {PARAM_TOL:g} data "
        "standard deviations: another fixed point, not a run that stopped early. The best known "
        "optimum is the best of a reference bank (EM from the truth and from the configured "
        "starts: k-means++, random data points and spikes by default, "
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
    section.heading("What we found")
    for sentence in findings(outcomes):
        section.text(sentence, "finding")

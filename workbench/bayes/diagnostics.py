"""Diagnostics as numbers: sampler health, relabelling, mode classification, truth comparison.

Shapes: C chains, S draws per chain, K components, d dimensions, p features per component.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import linear_sum_assignment

from workbench.bayes.models import Draws
from workbench.matching import matched_truth_index
from workbench.params import MixtureParams
from workbench.settings.fitters import ESS_PER_CHAIN_MIN, RHAT_MAX
from workbench.status import BayesStatus

if TYPE_CHECKING:
    import xarray as xr

# Every status a Bayes fit can have (``classify`` documents the order of the checks). The
# convergence thresholds of Vehtari et al. (2021), RHAT_MAX and ESS_PER_CHAIN_MIN, are the
# defaults of BayesFitter's ``rhat_max`` and ``ess_per_chain_min`` (workbench.settings.fitters).
STATUSES = tuple(BayesStatus)
_EXHAUSTIVE_MAX_K = 5  # up to K! = 120 permutations, solve the assignment by enumeration


# ---- relabelling (Stephens 2000) ------------------------------------------------------------
def component_features(draws: Draws, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per-draw component features for matching, (C, S, K, 2d + 1).

    Standardised means (mu - loc) / scale, log(sd / scale) per dimension, log weight.
    """
    scale = np.asarray(scale, dtype=float)
    means = (draws.means - loc) / scale
    log_sd = np.log(draws.scales() / scale)
    log_w = np.log(np.clip(draws.weights, 1e-300, None))[..., None]
    return np.concatenate([means, log_sd, log_w], axis=-1)


def assign(cost: np.ndarray) -> np.ndarray:
    """Solve N assignment problems. cost: (N, K, K), cost[n, j, k] of giving raw component k
    the label j. Returns perms (N, K): label j goes to raw component perms[n, j].

    Hungarian algorithm (``linear_sum_assignment``); for K <= 5 the same optimum is found by
    vectorised enumeration of the K! permutations, which is much faster for many draws.
    """
    N, K, _ = cost.shape
    if K <= _EXHAUSTIVE_MAX_K:
        perms = np.array(list(itertools.permutations(range(K))))  # (P, K)
        totals = cost[:, np.arange(K)[None, :], perms].sum(axis=-1)  # (N, P)
        return perms[np.argmin(totals, axis=1)]
    return np.stack([linear_sum_assignment(c)[1] for c in cost])


def relabel(
    features: np.ndarray, lp: np.ndarray | None = None, max_iter: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Relabel every draw to a pivot (Stephens 2000, normal-loss variant).

    features: (C, S, K, p). lp: (C, S) log density, whose best draw is the first pivot
    (default: the first draw). Then iterate: assign each draw's components to the pivot's by the
    Hungarian algorithm on squared distances scaled by the relabelled posterior sd, and move the
    pivot to the relabelled posterior mean, until the labels stop changing. Labels are then
    sorted by the pivot's first feature (the first mean coordinate for ``component_features``).
    Returns (perms (C, S, K) with new label j = old component perms[c, s, j], pivot (K, p)).
    """
    C, S, K, p = features.shape
    flat = features.reshape(C * S, K, p)
    best = 0 if lp is None else int(np.argmax(np.asarray(lp).reshape(-1)))
    pivot, spread = flat[best], np.ones((K, p))
    perms = None
    for _ in range(max_iter):
        diff = (flat[:, None, :, :] - pivot[None, :, None, :]) / spread[None, :, None, :]
        new = assign(np.sum(diff**2, axis=-1))  # cost[n, j, k]
        if perms is not None and np.array_equal(new, perms):
            break
        perms = new
        labelled = np.take_along_axis(flat, perms[..., None], axis=1)
        pivot = labelled.mean(axis=0)
        spread = np.maximum(labelled.std(axis=0), 0.05)
    order = np.argsort(pivot[:, 0], kind="stable")  # canonical order: by the first feature
    return perms[:, order].reshape(C, S, K), pivot[order]


def identity_perms(C: int, S: int, K: int) -> np.ndarray:
    """No relabelling, (C, S, K)."""
    return np.broadcast_to(np.arange(K), (C, S, K)).copy()


def switched_fraction(perms: np.ndarray) -> float:
    """Fraction of draws whose relabelling differs from the most common one."""
    C, S, K = perms.shape
    _, counts = np.unique(perms.reshape(C * S, K), axis=0, return_counts=True)
    return float(1.0 - counts.max() / (C * S))


# ---- sampler health -------------------------------------------------------------------------
def _dataset(arrays: dict[str, np.ndarray]) -> xr.Dataset:
    import arviz as az  # loaded on use: `workbench validate` never needs it

    return az.convert_to_dataset({k: np.asarray(v) for k, v in arrays.items()})


def convergence(arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """Rank-normalised split R-hat (max) and bulk / tail ESS (min) over all scalars.

    arrays: name -> (C, S, ...). Constant scalars (known parameters) are ignored.
    """
    import arviz as az

    ds = _dataset({k: v for k, v in arrays.items() if np.ptp(v) > 0})
    if not ds.data_vars:
        return {
            "rhat_max": float("nan"),
            "ess_bulk_min": float("nan"),
            "ess_tail_min": float("nan"),
        }

    def extreme(result: xr.Dataset, fn) -> float:
        values = np.concatenate([np.ravel(result[v].values) for v in result.data_vars])
        return float(fn(values)) if np.isfinite(values).any() else float("nan")

    return {
        "rhat_max": extreme(az.rhat(ds, method="rank"), np.nanmax),
        "ess_bulk_min": extreme(az.ess(ds, method="bulk"), np.nanmin),
        "ess_tail_min": extreme(az.ess(ds, method="tail"), np.nanmin),
    }


def sampler_stats(sample_stats: xr.Dataset) -> dict[str, float]:
    """Divergences, maximum-tree-depth hits, E-BFMI (min over chains), from nutpie or PyMC."""
    import arviz as az

    diverging = np.asarray(sample_stats["diverging"])
    depth_name = next(
        (n for n in ("maxdepth_reached", "reached_max_treedepth") if n in sample_stats), None
    )
    depth_hits = 0 if depth_name is None else int(np.sum(sample_stats[depth_name]))
    energy = np.asarray(sample_stats["energy"], dtype=float)
    ebfmi = az.bfmi(energy) if energy.shape[1] > 1 else np.array([np.nan])
    return {
        "n_divergences": int(diverging.sum()),
        "n_max_treedepth": depth_hits,
        "ebfmi_min": float(np.nanmin(ebfmi)) if np.isfinite(ebfmi).any() else float("nan"),
    }


def log_density(sample_stats: xr.Dataset) -> np.ndarray:
    """The sampler's log density per draw, (C, S)."""
    name = "lp" if "lp" in sample_stats else "logp"
    return np.asarray(sample_stats[name], dtype=float)


# ---- mode classification --------------------------------------------------------------------
def chain_groups(
    features: np.ndarray, lp: np.ndarray, tolerance: float = 1.0, z_min: float = 4.0
) -> tuple[list[list[int]], float]:
    """Group chains whose per-chain posterior means agree.

    features: (C, S, K, p) relabelled; lp: (C, S). Chains c, c' disagree when some feature (or
    the log density) differs between their means by more than ``tolerance`` pooled within-chain
    posterior sds *and* by more than ``z_min`` Monte Carlo standard errors (within-chain ESS), so
    that slow mixing inside one mode is not called multimodality. Groups are connected
    components of the agreement graph, largest first. Returns (groups, largest distance in sds).
    """
    C, S = lp.shape
    x = np.concatenate([features.reshape(C, S, -1), lp[..., None]], axis=-1)  # (C, S, F)
    means = x.mean(axis=1)
    var = x.var(axis=1, ddof=1) if S > 1 else np.zeros_like(means)
    sd = np.sqrt(var.mean(axis=0))
    live = sd > 0
    if C == 1 or not live.any():
        return [list(range(C))], 0.0
    ess = np.stack([_chain_ess(x[c][:, live]) for c in range(C)])  # (C, F_live)
    se2 = var[:, live] / np.maximum(ess, 1.0)
    diff = np.abs(means[:, None, live] - means[None, :, live])  # (C, C, F)
    dist = diff / sd[live]
    z = diff / np.sqrt(se2[:, None, :] + se2[None, :, :] + 1e-300)
    disagree = np.any((dist > tolerance) & (z > z_min), axis=-1)
    groups: list[list[int]] = []
    unseen = set(range(C))
    while unseen:
        stack, group = [min(unseen)], []
        while stack:
            c = stack.pop()
            if c in unseen:
                unseen.remove(c)
                group.append(c)
                stack += [o for o in range(C) if not disagree[c, o] and o in unseen]
        groups.append(sorted(group))
    chain_lp = means[:, -1]
    groups.sort(key=lambda g: (-len(g), -max(chain_lp[g])))
    return groups, float(dist.max())


def _chain_ess(x: np.ndarray) -> np.ndarray:
    """Bulk ESS of each column of one chain's draws (S, F) -> (F,)."""
    import arviz as az

    ds = az.convert_to_dataset({"v": x[None, :, :]})
    return np.asarray(az.ess(ds, method="bulk")["v"].values, dtype=float)


def failed_convergence_checks(
    summary: dict[str, float],
    n_chains: int,
    rhat_max: float = RHAT_MAX,
    ess_per_chain_min: float = ESS_PER_CHAIN_MIN,
) -> list[str]:
    """The convergence checks that fail (Vehtari et al. 2021); an empty list means converged.

    summary: :func:`convergence`'s numbers over every reported scalar (the maximum
    rank-normalised split R-hat, the minimum bulk and tail ESS). Fails ``rhat`` when R-hat >
    ``rhat_max``, ``ess_bulk`` / ``ess_tail`` when that ESS < ``ess_per_chain_min`` * n_chains.
    A NaN number (nothing could be computed) fails its check.
    """
    ess_min = ess_per_chain_min * n_chains
    checks = {
        "rhat": summary["rhat_max"] <= rhat_max,
        "ess_bulk": summary["ess_bulk_min"] >= ess_min,
        "ess_tail": summary["ess_tail_min"] >= ess_min,
    }
    return [name for name, passed in checks.items() if not passed]


def classify(
    *,
    n_divergences: int,
    n_draws_total: int,
    groups: list[list[int]],
    switched: float,
    exchangeable: bool,
    n_components: int,
    failed_checks: list[str],
    divergence_tolerance: float = 0.0,
    switch_tolerance: float = 0.01,
) -> str:
    """Status of a fit (one of ``STATUSES``), checked in this order; the first that applies wins.

    1. ``multimodal``: the chains fall into more than one group after relabelling. Checked
       first, so a few divergent draws never hide disagreeing chains (the divergences stay on
       record in ``n_divergences``; a stuck divergent chain can also look like a separate mode).
    2. ``divergent``: more than ``divergence_tolerance`` * draws divergent transitions.
    3. ``label_switching``: the chains agree after relabelling but labels had to be changed for
       more than ``switch_tolerance`` of the draws, or the model is exchangeable (its K! label
       modes exist whatever the chains visited, so agreeing chains prove nothing).
    4. ``not_converged``: some convergence check failed (``failed_checks`` from
       :func:`failed_convergence_checks`). Every reported parameter, after relabelling where it
       applies, needs rank-normalised split R-hat <= ``rhat_max`` and bulk and tail ESS >=
       ``ess_per_chain_min`` per chain (Vehtari et al. 2021).
    5. ``ok``: none of the above.

    A mode verdict or divergences explain poor R-hat / ESS, so they come before
    ``not_converged``; ``ok`` therefore always means converged by the thresholds.
    """
    if len(groups) > 1:
        return BayesStatus.MULTIMODAL
    if n_divergences > divergence_tolerance * n_draws_total:
        return BayesStatus.DIVERGENT
    if n_components > 1 and (exchangeable or switched > switch_tolerance):
        return BayesStatus.LABEL_SWITCHING
    if failed_checks:
        return BayesStatus.NOT_CONVERGED
    return BayesStatus.OK


# ---- intervals and the truth ----------------------------------------------------------------
def posterior_means(draws: Draws) -> MixtureParams:
    """Posterior-mean mixture (covariance_type "full") of relabelled draws."""
    weights = draws.weights.mean(axis=(0, 1))
    return MixtureParams(
        weights / weights.sum(), draws.means.mean(axis=(0, 1)), draws.covariances.mean(axis=(0, 1))
    )


def credible_intervals(
    draws: Draws, level: float = 0.9
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Equal-tailed intervals: weights (K,), means (K, d), scales (K, d), each (lower, upper)."""
    q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    out = {}
    for name, arr in (
        ("weights", draws.weights),
        ("means", draws.means),
        ("scales", draws.scales()),
    ):
        lo, hi = np.quantile(arr, q, axis=(0, 1))
        out[name] = (lo, hi)
    return out


def truth_comparison(
    params: MixtureParams,
    intervals: dict[str, tuple[np.ndarray, np.ndarray]],
    truth: MixtureParams,
) -> dict[str, dict[str, np.ndarray]]:
    """Per true parameter, after label alignment: error of the posterior mean, whether the
    interval covers the truth, and the interval width. {group: {"error"|"covered"|"width": arr}}
    with arrays shaped like the truth's weights (K,), means (K, d), scales (K, d).
    """
    order, true_order = matched_truth_index(params, truth)
    fitted = params.permuted(order)
    values = {"weights": fitted.weights, "means": fitted.means, "scales": fitted.scales()}
    true = {"weights": truth.weights, "means": truth.means, "scales": truth.scales()}
    true = {name: value[true_order] for name, value in true.items()}
    out = {}
    for name, (lo, hi) in intervals.items():
        lo, hi = lo[order], hi[order]
        out[name] = {
            "error": values[name] - true[name],
            "covered": (lo <= true[name]) & (true[name] <= hi),
            "width": hi - lo,
        }
    return out


def truth_summary(comparison: dict[str, dict[str, np.ndarray]]) -> dict[str, float]:
    """Flat numbers from ``truth_comparison``: mean |error|, coverage fraction, mean width."""
    out = {}
    for name, parts in comparison.items():
        out[f"truth_abs_error_{name}"] = float(np.mean(np.abs(parts["error"])))
        out[f"truth_coverage_{name}"] = float(np.mean(parts["covered"]))
        out[f"truth_width_{name}"] = float(np.mean(parts["width"]))
    return out


def sbc_rank(draws: np.ndarray, true_value: float) -> int:
    """Rank of the true value among posterior draws (0..len(draws)), Talts et al. 2018."""
    return int(np.sum(np.asarray(draws) < true_value))


def sbc_uniformity(ranks: np.ndarray, n_draws: int, bins: int = 10) -> dict[str, float]:
    """Uniformity of SBC ranks (Talts et al. 2018). ranks: (n_sims,) in 0..n_draws.

    Chi-square test on ``bins`` equal bins of the n_draws + 1 possible ranks (needs
    (n_draws + 1) divisible by bins), and a KS test of (rank + U(0, 1)) / (n_draws + 1), whose
    jitter makes the discrete uniform ranks continuous uniform. Returns both p-values.
    """
    from scipy import stats

    ranks = np.asarray(ranks)
    if (n_draws + 1) % bins:
        raise ValueError(f"bins={bins}: must divide the {n_draws + 1} possible ranks")
    counts = np.bincount(ranks * bins // (n_draws + 1), minlength=bins)
    jitter = np.random.default_rng(0).random(ranks.size)
    return {
        "chi2_p": float(stats.chisquare(counts).pvalue),
        "ks_p": float(stats.kstest((ranks + jitter) / (n_draws + 1), "uniform").pvalue),
    }

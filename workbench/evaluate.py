"""Scoring a fit against the truth: label matching, recovery errors, log-likelihood gaps,
failure classification, clustering agreement, interval coverage and Monte Carlo errors.

A fitted mixture's component labels are arbitrary, so every comparison first matches fitted to
true components (:mod:`workbench.matching`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import comb

from workbench.data.dataset import Dataset
from workbench.fitters import FitResult
from workbench.matching import match_components, matched_truth_index, matching_cost
from workbench.params import MixtureParams

# A fit "fails" when its log-likelihood is more than this many nats per data point below the
# best known optimum. Why 1e-3: a converged EM run at tol=1e-8 sits within ~1e-8 |L| / (1 - rate)
# of its optimum (<< 1e-3 n even at rate 0.999), while a genuine local optimum that merges or
# splits a true cluster loses O(n / K) nats, i.e. O(0.1) per point or more.
__all__ = [
    "FAILURE_GAP_PER_POINT",
    "adjusted_rand_index",
    "evaluate_fit",
    "interval_coverage",
    "is_failure",
    "loglik_gap",
    "match_components",
    "matched_truth_index",
    "matching_cost",
    "mc_standard_error_mean",
    "mc_standard_error_rate",
    "recovery_errors",
    "restart_table",
]

FAILURE_GAP_PER_POINT = 1e-3


def recovery_errors(fitted: MixtureParams, truth: MixtureParams) -> dict[str, Any]:
    """Errors of matched components, per parameter and overall.

    Returns arrays ``weights_error`` (m,), ``means_error`` (m, d), ``scales_error`` (m, d),
    ``covariances_error`` (m, d, d) (fitted minus true, m matched components) and scalars: root
    mean squares ``*_rmse`` and ``overall_rmse`` (over all matched parameters), and the number of
    unmatched components on either side.
    """
    fit_idx, true_idx = matched_truth_index(fitted, truth)
    errors = {
        "weights_error": fitted.weights[fit_idx] - truth.weights[true_idx],
        "means_error": fitted.means[fit_idx] - truth.means[true_idx],
        "scales_error": fitted.scales()[fit_idx] - truth.scales()[true_idx],
        "covariances_error": fitted.full_covariances()[fit_idx]
        - truth.full_covariances()[true_idx],
    }
    summary: dict[str, Any] = {
        f"{name.removesuffix('_error')}_rmse": float(np.sqrt(np.mean(value**2)))
        for name, value in errors.items()
    }
    core = np.concatenate(
        [errors[k].ravel() for k in ("weights_error", "means_error", "scales_error")]
    )
    summary["overall_rmse"] = float(np.sqrt(np.mean(core**2)))
    summary["unmatched_fitted"] = fitted.n_components - len(fit_idx)
    summary["unmatched_true"] = truth.n_components - len(true_idx)
    return {**errors, **summary}


def loglik_gap(loglik: float | np.ndarray, reference: float) -> float | np.ndarray:
    """Nats below the best known optimum (>= 0 up to round-off)."""
    return reference - np.asarray(loglik, dtype=float)


def is_failure(gap, n: int, threshold_per_point: float = FAILURE_GAP_PER_POINT):
    """True where the gap exceeds ``threshold_per_point * n`` nats."""
    return np.asarray(gap) > threshold_per_point * n


def adjusted_rand_index(labels_true: np.ndarray, labels_pred: np.ndarray) -> float:
    """Hubert & Arabie's adjusted Rand index from the contingency table (1 = same partition)."""
    labels_true = np.unique(labels_true, return_inverse=True)[1]
    labels_pred = np.unique(labels_pred, return_inverse=True)[1]
    table = np.zeros((labels_true.max() + 1, labels_pred.max() + 1))
    np.add.at(table, (labels_true, labels_pred), 1)
    n = labels_true.size
    sum_cells = comb(table, 2).sum()
    sum_rows = comb(table.sum(axis=1), 2).sum()
    sum_cols = comb(table.sum(axis=0), 2).sum()
    expected = sum_rows * sum_cols / comb(n, 2)
    max_index = 0.5 * (sum_rows + sum_cols)
    if max_index == expected:  # both partitions trivial
        return 1.0
    return float((sum_cells - expected) / (max_index - expected))


def interval_coverage(
    intervals: dict[str, tuple[np.ndarray, np.ndarray]],
    fitted: MixtureParams,
    truth: MixtureParams,
) -> dict[str, float]:
    """Fraction of true parameters inside their interval, and mean interval width, per
    parameter name (``weights``, ``means``, ``scales``), after matching components."""
    fit_idx, true_idx = matched_truth_index(fitted, truth)
    true_values = {"weights": truth.weights, "means": truth.means, "scales": truth.scales()}
    out: dict[str, float] = {}
    for name, (lower, upper) in intervals.items():
        lower, upper = np.asarray(lower)[fit_idx], np.asarray(upper)[fit_idx]
        value = true_values[name][true_idx]
        out[f"{name}_coverage"] = float(np.mean((lower <= value) & (value <= upper)))
        out[f"{name}_width"] = float(np.mean(upper - lower))
    return out


def evaluate_fit(dataset: Dataset, result: FitResult) -> dict[str, Any]:
    """Flat metrics of one fit for the results store (numbers and short strings)."""
    metrics: dict[str, Any] = {
        "status": result.status,
        "loglik": result.loglik,
        "n_iter": result.n_iter,
        "wall_time": result.wall_time,
    }
    reference = result.diagnostics.get("reference_loglik", np.nan)
    if result.params is None:
        return metrics
    n = dataset.n
    gap = float(loglik_gap(result.loglik, reference)) if np.isfinite(reference) else np.nan
    metrics["gap"] = gap
    metrics["failed"] = bool(is_failure(gap, n)) if np.isfinite(gap) else None
    errors = recovery_errors(result.params, dataset.truth)
    metrics.update({k: v for k, v in errors.items() if np.isscalar(v)})
    metrics["ari"] = adjusted_rand_index(dataset.labels, result.params.predict(dataset.X))
    if result.intervals:
        metrics.update(interval_coverage(result.intervals, result.params, dataset.truth))
    if result.restarts is not None and np.isfinite(reference):
        gaps = loglik_gap(result.restarts.loglik, reference)
        failed = is_failure(gaps, n) | (result.restarts.status == "degenerate")
        metrics["restart_failure_rate"] = float(np.mean(failed))
    return metrics


def restart_table(result: FitResult, n: int) -> list[dict[str, Any]]:
    """One row per restart: restart, loglik, status, n_iter, gap and failed."""
    if result.restarts is None:
        return []
    reference = result.diagnostics.get("reference_loglik", np.nan)
    rows = []
    for r, (ll, status, iters) in enumerate(zip(*result.restarts[:3], strict=True)):
        gap = float(reference - ll) if np.isfinite(reference) else np.nan
        failed = bool(status == "degenerate" or (np.isfinite(gap) and is_failure(gap, n)))
        rows.append(
            {
                "restart": r,
                "loglik": float(ll),
                "status": str(status),
                "n_iter": int(iters),
                "gap": gap,
                "failed": failed,
            }
        )
    return rows


def mc_standard_error_rate(rate: float, n_replicates: int) -> float:
    """Binomial Monte Carlo standard error of a proportion, sqrt(p (1 - p) / m)."""
    return float(np.sqrt(rate * (1.0 - rate) / n_replicates)) if n_replicates else np.nan


def mc_standard_error_mean(values: np.ndarray) -> float:
    """Monte Carlo standard error of a mean over replicates, sd / sqrt(m)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else np.nan

"""Scoring a fit against the truth: label matching, recovery errors, log-likelihood gaps,
failure classification, clustering agreement and interval coverage (Monte Carlo errors of
the summaries over many fits: :mod:`workbench.montecarlo`).

A fitted mixture's component labels are arbitrary, so every comparison first matches fitted to
true components (:mod:`workbench.matching`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import comb

from workbench.data.dataset import Dataset
from workbench.fitter_interface import FitResult
from workbench.matching import match_components, matched_truth_index, matching_cost
from workbench.params import MixtureParams
from workbench.patterns import observed_responsibilities
from workbench.status import LOCAL_OPTIMUM_KINDS, EMStatus, FailureKind

__all__ = [
    "FAILURE_RULE",
    "adjusted_rand_index",
    "evaluate_fit",
    "interval_coverage",
    "judge",
    "loglik_gap",
    "loglik_tolerance",
    "cluster_change",
    "match_components",
    "matched_truth_index",
    "matching_cost",
    "parameter_distance",
    "recovery_errors",
    "restart_table",
    "restart_verdicts",
    "signed_errors",
]

# ---- the failure rule ----------------------------------------------------------------------------
# A fit (one EM restart) is a LOCAL OPTIMUM when, judged at its polished fixed point (EM
# continued to a change below 1e-12 nats per point, workbench.em.reference), (1) its
# log-likelihood lies more than LOGLIK_ABS_TOL + LOGLIK_REL_TOL * |L_best| nats below the best
# known optimum L_best, and (2) its
# Hungarian-matched parameters differ from the best known fit's by more than PARAM_TOL: weights
# (absolute), means (in data standard deviations per dimension) or covariance entries (in products
# of data sds). Why these: after polishing, a run sits within ~1e-9 |L| of its fixed point (rate
# <= 0.999), so the relative tolerance 1e-8 |L| is ten times that, and a different fixed point
# 0.008 nats below (the smallest gap seen with overlapping components) is still caught at
# |L| < 8e5; neither term grows like n times a per-point threshold. A run that has not finished
# converging moves towards the best known fit, so it fails (2) or, still moving after polishing,
# is "unresolved" (not counted as a local optimum). Severity: GROSS when, after the matching, some
# component of the best known fit changed beyond GROSS_CHANGE: its matched fitted mean lies more
# than one of its own standard deviations away (Mahalanobis), or its weight halved or doubled,
# i.e. a cluster was merged with another, split, or taken by the wrong component; MINOR otherwise.
# A polished fit whose EM-map Jacobian has an eigenvalue above 1 + SADDLE_TOL is a SADDLE (a
# fixed point EM leaves, however slowly: with overlapping components it can pass a relative
# change of 1e-12 and climb to the best known optimum thousands of iterations later): not a local
# optimum. Degenerate runs are their own kind, never a local optimum either.
FAILURE_RULE = "fixed-point-v1"
LOGLIK_ABS_TOL = 1e-6
LOGLIK_REL_TOL = 1e-8
PARAM_TOL = 1e-2
GROSS_CHANGE = 1.0
SADDLE_TOL = 1e-6  # >> the ~1e-10 error of the central-difference Jacobian


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


def signed_errors(
    fitted: MixtureParams, truth: MixtureParams, matched: tuple[np.ndarray, ...] | None = None
) -> dict[str, float]:
    """Signed recovery errors of one fit after Hungarian matching (``matched``: its
    :func:`matched_truth_index`, computed when not given): ``bias_weights``, the fitted minus
    true weight of the true component with the lowest (first-coordinate) mean; ``bias_means``,
    the error of each mean along the direction from the mixture centre to its true mean,
    averaged over components (> 0: pushed apart, < 0: pulled together); ``bias_scales``, the
    error of every standard deviation, averaged. NaN where undefined."""
    fit_idx, true_idx = matched_truth_index(fitted, truth) if matched is None else matched
    out = {f"bias_{p}": np.nan for p in ("weights", "means", "scales")}
    if len(true_idx) == 0:
        return out
    lowest = int(np.argmin(truth.means[true_idx, 0]))
    out["bias_weights"] = float(fitted.weights[fit_idx[lowest]] - truth.weights[true_idx[lowest]])
    centre = truth.weights @ truth.means
    outward = truth.means[true_idx] - centre
    norm = np.linalg.norm(outward, axis=1, keepdims=True)
    if np.all(norm > 0):
        error = fitted.means[fit_idx] - truth.means[true_idx]
        out["bias_means"] = float(np.mean(np.sum(error * outward / norm, axis=1)))
    out["bias_scales"] = float(np.mean(fitted.scales()[fit_idx] - truth.scales()[true_idx]))
    return out


def matching_text(matched: tuple[np.ndarray, ...]) -> str:
    """A matching as stored: JSON ``[[fitted, true], ...]`` component index pairs."""
    return json.dumps([[int(f), int(t)] for f, t in zip(*matched, strict=True)])


def loglik_gap(loglik: float | np.ndarray, reference: float) -> float | np.ndarray:
    """Nats below the best known optimum (>= 0 up to round-off)."""
    return reference - np.asarray(loglik, dtype=float)


def loglik_tolerance(reference: float) -> float:
    """Nats a polished fit may lie below the best known optimum and still count as reaching it."""
    return LOGLIK_ABS_TOL + LOGLIK_REL_TOL * abs(reference)


def _matched(fitted: MixtureParams, best: MixtureParams, sd: np.ndarray) -> np.ndarray:
    """Index of the fitted component matched to each of best's (K,), by the Hungarian algorithm
    on squared differences of weights, means (data sds) and covariances (products of data sds)."""
    scale = np.outer(sd, sd)
    flat = [
        np.concatenate(
            [
                p.weights[:, None],
                p.means / sd,
                (p.full_covariances() / scale).reshape(len(p.weights), -1),
            ],
            axis=1,
        )
        for p in (fitted, best)
    ]
    cost = ((flat[0][:, None, :] - flat[1][None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return rows[np.argsort(cols)]


def parameter_distance(fitted: MixtureParams, best: MixtureParams, sd: np.ndarray) -> float:
    """Largest difference of a matched parameter between two K-component fits: weights
    (absolute), means (data sds) or covariance entries (products of data sds). ``sd`` (d,)."""
    if fitted.n_components != best.n_components:
        return np.inf
    sd = np.asarray(sd, dtype=float)
    order = _matched(fitted, best, sd)
    diffs = (
        fitted.weights[order] - best.weights,
        (fitted.means[order] - best.means) / sd,
        (fitted.full_covariances()[order] - best.full_covariances()) / np.outer(sd, sd),
    )
    return float(max(np.max(np.abs(d)) for d in diffs))


def cluster_change(fitted: MixtureParams, best: MixtureParams, sd: np.ndarray) -> float:
    """Largest change of a best-known component under the matching: max over k of the
    Mahalanobis distance (under best's covariance k) from its mean to its matched fitted mean,
    and of |log2(fitted weight / best weight)|. Above 1 (GROSS_CHANGE): a cluster merged,
    split or taken by the wrong component."""
    if fitted.n_components != best.n_components:
        return np.inf
    order = _matched(fitted, best, np.asarray(sd, dtype=float))
    diff = fitted.means[order] - best.means
    solved = np.linalg.solve(best.full_covariances(), diff[..., None])[..., 0]
    shift = np.sqrt(np.maximum(np.sum(diff * solved, axis=-1), 0.0))
    with np.errstate(divide="ignore"):
        ratio = np.abs(np.log2(fitted.weights[order] / best.weights))
    return float(max(shift.max(), ratio.max()))


def judge(
    status: str,
    gap: float,
    reference: float,
    distance: float = np.nan,
    change: float = np.nan,
    polished_status: str = EMStatus.CONVERGED,
    max_eigenvalue: float = np.nan,
) -> str:
    """The kind of one fit under FAILURE_RULE: ``best`` (reached the best known optimum),
    ``minor`` / ``gross`` (a local optimum), ``below`` (below it, parameters not compared),
    ``degenerate``, ``saddle`` (EM-map Jacobian eigenvalue above 1), ``unresolved`` (still
    moving after polishing) or ``unjudged`` (no reference).
    ``gap`` is measured from the polished log-likelihood."""
    if EMStatus.DEGENERATE in (status, polished_status):
        return FailureKind.DEGENERATE
    if not (np.isfinite(gap) and np.isfinite(reference)):
        return FailureKind.UNJUDGED
    if gap <= loglik_tolerance(reference) or distance <= PARAM_TOL:
        return FailureKind.BEST
    if polished_status != EMStatus.CONVERGED:
        return FailureKind.UNRESOLVED
    if max_eigenvalue > 1.0 + SADDLE_TOL:
        return FailureKind.SADDLE
    if not np.isfinite(distance):
        return FailureKind.BELOW
    return FailureKind.GROSS if change > GROSS_CHANGE else FailureKind.MINOR


def mixture_sd(params: MixtureParams) -> np.ndarray:
    """Per-dimension standard deviation (d,) of the mixture's marginal distribution. At a
    maximum-likelihood fit with free parameters it equals the data's (EM preserves the first two
    moments), so it serves as the data-sd unit of :func:`parameter_distance`."""
    w = params.weights[:, None]
    mean = (w * params.means).sum(axis=0)
    second = w * (np.diagonal(params.full_covariances(), axis1=1, axis2=2) + params.means**2)
    sd = np.sqrt(np.maximum(second.sum(axis=0) - mean**2, 0.0))
    return np.where(sd > 0, sd, 1.0)


def restart_verdicts(result: FitResult) -> list[dict[str, Any]]:
    """Per restart: polished log-likelihood, gap, parameter distances, kind and ``failed`` (a
    local optimum; None when unjudged)."""
    reference = result.diagnostics.get("reference_loglik", np.nan)
    known = result.best_known.params if result.best_known is not None else None
    sd = mixture_sd(known) if known is not None else None
    restarts = result.restarts
    polished = restarts.polished
    out = []
    for r, (ll, status) in enumerate(zip(restarts.loglik, restarts.status, strict=True)):
        row: dict[str, Any] = {"polished_loglik": float(ll), "polished_status": EMStatus.CONVERGED}
        distance = change = np.nan
        if polished is not None:
            row["polished_loglik"] = float(polished.loglik[r])
            row["polished_status"] = str(polished.status[r])
            row["polished_iter"] = int(polished.n_iter[r])
            if polished.max_eigenvalue is not None:
                row["max_eigenvalue"] = float(polished.max_eigenvalue[r])
            if known is not None and polished.params[r] is not None:
                distance = parameter_distance(polished.params[r], known, sd)
                change = cluster_change(polished.params[r], known, sd)
        gap = float(reference - row["polished_loglik"]) if np.isfinite(reference) else np.nan
        eig = row.get("max_eigenvalue", np.nan)
        kind = judge(str(status), gap, reference, distance, change, row["polished_status"], eig)
        if polished is None and kind != FailureKind.DEGENERATE:
            kind = FailureKind.UNJUDGED  # no reference bank, no polishing: no verdict
        row.update(gap=gap, param_distance=distance, cluster_change=change, failure_kind=kind)
        # a local optimum or not; None when unjudged (no reference: no verdict, not a success)
        row["failed"] = None if kind == FailureKind.UNJUDGED else kind in LOCAL_OPTIMUM_KINDS
        out.append(row)
    return out


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


def evaluate_fit(
    dataset: Dataset, result: FitResult, verdicts: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Flat metrics of one fit for the results store (numbers and short strings). ``verdicts``:
    :func:`restart_verdicts` of ``result`` when the caller has them already.

    With restarts (EM): ``gap`` (nats, polished), ``failure_kind`` and ``failed`` (a local
    optimum under FAILURE_RULE, named in ``failure_rule``) of the returned fit, its
    ``param_distance`` and ``cluster_change`` to the best known fit, and the fractions of restarts
    that ended in a local optimum, degenerate or unresolved. With parameters: the recovery
    errors, ``matching`` (the fitted-to-true component pairs every comparison with the truth
    used, JSON) and the signed errors ``bias_*`` (:func:`signed_errors`)."""
    metrics: dict[str, Any] = {
        "status": result.status,
        "loglik": result.loglik,
        "n_iter": result.n_iter,
        "wall_time": result.wall_time,
    }
    reference = result.diagnostics.get("reference_loglik", np.nan)
    if result.params is None:
        return metrics
    if result.restarts is not None:
        verdicts = restart_verdicts(result) if verdicts is None else verdicts
        mine = verdicts[result.restarts.best]
        kinds = np.array([v["failure_kind"] for v in verdicts])
        metrics.update({k: mine[k] for k in ("gap", "param_distance", "cluster_change")})
        metrics["failure_kind"] = mine["failure_kind"]
        judged = mine["failure_kind"] != FailureKind.UNJUDGED
        metrics["failed"] = bool(mine["failed"]) if judged else None
        metrics["failure_rule"] = FAILURE_RULE
        if judged:
            metrics["restart_failure_rate"] = float(np.isin(kinds, LOCAL_OPTIMUM_KINDS).mean())
            metrics["restart_degenerate_rate"] = float(np.mean(kinds == FailureKind.DEGENERATE))
            metrics["restart_unresolved_rate"] = float(np.mean(kinds == FailureKind.UNRESOLVED))
            metrics["restart_saddle_rate"] = float(np.mean(kinds == FailureKind.SADDLE))
    else:  # no restarts (Bayes): the gap alone, no verdict
        gap = float(loglik_gap(result.loglik, reference)) if np.isfinite(reference) else np.nan
        metrics["gap"] = gap
    errors = recovery_errors(result.params, dataset.truth)
    metrics.update({k: v for k, v in errors.items() if np.isscalar(v)})
    matched = matched_truth_index(result.params, dataset.truth)
    metrics["matching"] = matching_text(matched)
    metrics.update(signed_errors(result.params, dataset.truth, matched))
    metrics["ari"] = adjusted_rand_index(dataset.labels, _predicted(result.params, dataset.X))
    metrics.update(imputation_errors(dataset, result.imputed))
    if result.intervals:
        metrics.update(interval_coverage(result.intervals, result.params, dataset.truth))
    return metrics


def _predicted(params: MixtureParams, X: np.ndarray) -> np.ndarray:
    """(n,) most probable component of each row, from its observed coordinates where X has
    NaN (missing values)."""
    if not np.isnan(X).any():
        return params.predict(X)
    return observed_responsibilities(params, X).argmax(axis=1)


def imputation_errors(dataset: Dataset, imputed: np.ndarray | None) -> dict[str, float]:
    """``imputation_rmse`` (data units) and ``imputation_rmse_sd`` (each feature in units of
    its complete-data sd) of a method's point imputations of the missing values against the
    true values; {} when the data set has no missing value or the method imputes none."""
    mask = dataset.mask
    if imputed is None or mask is None or not mask.any() or dataset.X_complete is None:
        return {}
    error = np.asarray(imputed, dtype=float) - dataset.X_complete
    sd = dataset.X_complete.std(axis=0)
    scaled = error / np.where(sd > 0, sd, 1.0)
    return {
        "imputation_rmse": float(np.sqrt(np.mean(error[mask] ** 2))),
        "imputation_rmse_sd": float(np.sqrt(np.mean(scaled[mask] ** 2))),
    }


def restart_table(
    result: FitResult, verdicts: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """One row per restart: restart, loglik, status, n_iter, gap, failed (a local optimum), and
    the verdict's inputs and kind (polished_loglik, polished_status, polished_iter,
    param_distance, cluster_change, failure_kind). ``verdicts``: :func:`restart_verdicts` of
    ``result`` when the caller has them already."""
    if result.restarts is None:
        return []
    restarts = result.restarts
    verdicts = restart_verdicts(result) if verdicts is None else verdicts
    return [
        {
            "restart": r,
            "loglik": float(restarts.loglik[r]),
            "status": str(restarts.status[r]),
            "n_iter": int(restarts.n_iter[r]),
            **verdict,
        }
        for r, verdict in enumerate(verdicts)
    ]

"""What users do with incomplete data today, as fitters: drop or fill in, then complete-data EM.

- ``complete_case`` (:class:`CompleteCaseEM`): drop every row with a missing value, fit EM on
  the rest.
- ``mean_impute`` (:class:`MeanImputeEM`): replace each missing value by its column's observed
  mean, fit EM as if the data were complete.
- ``mice`` (:class:`MiceEM`): multiple imputation by chained equations (scikit-learn's
  ``IterativeImputer`` with ``sample_posterior=True``, an optional extra: ``pip install -e
  ".[mice]"``): ``m`` imputed data sets, EM on each, the estimates pooled. Each fit's components
  are matched to the first fit's (Hungarian matching, :mod:`workbench.matching`), then weights,
  means and covariances are averaged; with ``interval_level`` EM's Wald intervals are pooled by
  Rubin's rules (Rubin 1987: total variance, reference t with ``(m - 1)(1 + 1/r)^2`` degrees
  of freedom, r the relative increase in variance due to nonresponse).

Every EM setting of :class:`workbench.em.fitter.EMFitter` is accepted and passed on (the
settings: :mod:`workbench.settings.fitters`); EM runs through its
public ``fit_array`` only. The result keeps EM's fit (status, restarts, trace, its log-likelihood
on the data it saw) and adds ``diagnostics["observed_loglik"]``, the observed-data
log-likelihood of all rows at the fitted parameters (comparable between methods), and
``n_rows_used``. (MICE's pooled fit has no single EM run: its ``loglik`` is the observed-data
log-likelihood, without restarts or a best known optimum.) Data with no missing value pass to
EM unchanged.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from workbench.data.dataset import Dataset
from workbench.em.fitter import EMFitter
from workbench.fitter_interface import FitResult
from workbench.matching import matched_truth_index
from workbench.params import MixtureParams, as_data_matrix
from workbench.patterns import observed_log_likelihood
from workbench.settings.base import build
from workbench.settings.fitters import (
    CompleteCaseOptions,
    EMOptions,
    MeanImputeOptions,
    MiceOptions,
)

SKLEARN_MISSING = "needs scikit-learn's IterativeImputer: pip install -e '.[mice]'"


class _ThenEM:
    """Shared shape: turn the data into a complete array, then fit EM on it. The settings are
    checked by ``options`` (:mod:`workbench.settings.fitters`): EM's, and a method's own."""

    method = ""
    options: type[EMOptions] = EMOptions

    def __init__(self, **settings: Any) -> None:
        self.settings = build(self.options, settings)
        self.em = EMFitter(**{k: getattr(self.settings, k) for k in EMOptions.model_fields})

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.settings.model_dump().items())
        return f"{type(self).__name__}({inner})"

    def prepare(self) -> float:
        """Load EM's compiled kernels before a cell's clock starts (see EMFitter.prepare)."""
        return self.em.prepare()

    def _k(self, dataset: Dataset) -> int | None:
        return None if self.em.select_k else self.em.n_components or dataset.n_components_to_fit

    def _fit_em(self, X: np.ndarray, dataset: Dataset, rng: np.random.Generator) -> FitResult:
        return self.em.fit_array(X, rng, truth=dataset.truth, n_components=self._k(dataset))


def _finish(
    result: FitResult, method: str, X: np.ndarray, rows_used: int, start: float, **extra
) -> FitResult:
    """``result`` renamed to ``method`` with the observed-data log-likelihood of X (all rows,
    NaN = missing) and the rows EM saw in its diagnostics; wall_time is everything since
    ``start`` (perf_counter seconds: dropping or imputing and every EM fit) but EM's compile."""
    observed = np.nan
    if result.params is not None:
        observed = observed_log_likelihood(result.params, X)
    diagnostics = {
        **result.diagnostics,
        "observed_loglik": observed,
        "n_rows_used": rows_used,
        "n_rows_data": X.shape[0],
    }
    wall_time = time.perf_counter() - start - diagnostics.get("compile_time", 0.0)
    return dataclasses.replace(
        result, method=method, diagnostics=diagnostics, wall_time=wall_time, **extra
    )


class CompleteCaseEM(_ThenEM):
    """Complete-case analysis: EM on the rows without a missing value (method ``complete_case``).

    Fewer complete rows than EM can use (e.g. none) raise EM's one-line ValueError."""

    method = "complete_case"
    options = CompleteCaseOptions

    def fit(self, dataset: Dataset, rng: np.random.Generator) -> FitResult:
        start = time.perf_counter()
        X = as_data_matrix(dataset.X)
        complete = ~np.isnan(X).any(axis=1)
        if not complete.any():
            raise ValueError("data: no row is complete; complete-case analysis has nothing to fit")
        result = self._fit_em(X[complete], dataset, rng)
        return _finish(result, self.method, X, int(complete.sum()), start)


def mean_imputed(X: np.ndarray) -> np.ndarray:
    """(n, d) X with each NaN replaced by its column's mean over the observed values."""
    X = np.asarray(X, dtype=float)
    means = np.nanmean(X, axis=0) if np.isnan(X).any() else X.mean(axis=0)
    return np.where(np.isnan(X), means, X)


class MeanImputeEM(_ThenEM):
    """Mean imputation, then EM as if the data were complete (method ``mean_impute``)."""

    method = "mean_impute"
    options = MeanImputeOptions

    def fit(self, dataset: Dataset, rng: np.random.Generator) -> FitResult:
        start = time.perf_counter()
        X = as_data_matrix(dataset.X)
        if np.isnan(X).all(axis=0).any():
            j = int(np.flatnonzero(np.isnan(X).all(axis=0))[0])
            raise ValueError(f"data: column {j} has no observed value to impute from")
        filled = mean_imputed(X)
        result = self._fit_em(filled, dataset, rng)
        imputed = filled if np.isnan(X).any() else None
        return _finish(result, self.method, X, X.shape[0], start, imputed=imputed)


class MiceEM(_ThenEM):
    """Multiple imputation by chained equations, EM on each imputed data set, pooled (method
    ``mice``; module docstring). m: imputed data sets (>= 2). mice_max_iter: rounds of chained
    equations per imputation (IterativeImputer's ``max_iter``)."""

    method = "mice"
    options = MiceOptions

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        if importlib.util.find_spec("sklearn") is None:  # found without importing it
            raise ValueError(f"method='mice': {SKLEARN_MISSING}")

    def fit(self, dataset: Dataset, rng: np.random.Generator) -> FitResult:
        start = time.perf_counter()
        X = as_data_matrix(dataset.X)
        if not np.isnan(X).any():  # nothing to impute: one EM fit
            return _finish(self._fit_em(X, dataset, rng), self.method, X, X.shape[0], start)
        imputer_class = iterative_imputer()
        seeds = rng.integers(2**31, size=self.settings.m)
        fits, filled = [], []
        for seed in seeds:
            imputer = imputer_class(
                sample_posterior=True, max_iter=self.settings.mice_max_iter, random_state=int(seed)
            )
            filled.append(imputer.fit_transform(X))
            fits.append(self._fit_em(filled[-1], dataset, rng))
        result = pool_fits(fits, level=self.em.interval_level)
        compile_time = sum(f.diagnostics.get("compile_time", 0.0) for f in fits)
        result = dataclasses.replace(
            result, diagnostics={**result.diagnostics, "compile_time": compile_time}
        )
        imputed = np.mean(filled, axis=0)
        result = _finish(result, self.method, X, X.shape[0], start, imputed=imputed)
        return dataclasses.replace(result, loglik=result.diagnostics["observed_loglik"])


def iterative_imputer() -> type:
    """scikit-learn's IterativeImputer class, or a one-line ImportError naming the extra."""
    try:
        from sklearn.experimental import enable_iterative_imputer  # noqa: F401
        from sklearn.impute import IterativeImputer
    except ImportError:
        raise ImportError(f"method 'mice': {SKLEARN_MISSING}") from None
    return IterativeImputer


def pool_fits(fits: list[FitResult], level: float | None = None) -> FitResult:
    """Pool m EM fits of imputed data sets into one FitResult.

    Components are matched to the first usable fit's; weights, means and covariances are
    averaged. With ``level`` and every fit carrying Wald intervals, each interval kind
    (weights, means, scales) is pooled by Rubin's rules: total variance T = U + (1 + 1/m) B
    (U the mean within-imputation variance, B the between-imputation variance of the
    estimates), interval ``mean +- t_nu sqrt(T)`` with nu = (m - 1)(1 + U / ((1 + 1/m) B))^2.
    The first fit supplies status, iterations and trace; loglik is the caller's to set (EM's
    log-likelihoods belong to one imputed data set each), restarts and best_known are dropped
    (no single EM run is judged). Diagnostics gain ``mice_m``, ``mice_statuses`` and
    ``mice_between_sd_means`` (largest between-imputation sd of a mean).
    """
    usable = [f for f in fits if f.params is not None]
    if not usable:
        return fits[0]
    reference = usable[0].params
    matched = [_matched(f, reference) for f in usable]
    params = [p for p, _ in matched]
    pooled = MixtureParams(
        np.mean([p.weights for p in params], axis=0),
        np.mean([p.means for p in params], axis=0),
        np.mean([p.full_covariances() for p in params], axis=0),
    )
    m = len(params)
    intervals = None
    if level is not None and all(iv is not None for _, iv in matched):
        intervals = {}
        for name in matched[0][1]:
            if all(name in iv for _, iv in matched):
                intervals[name] = rubin_interval([iv[name] for _, iv in matched], level)
    means = np.array([p.means for p in params])
    diagnostics = {
        **{k: v for k, v in usable[0].diagnostics.items() if k not in ONE_RUN_DIAGNOSTICS},
        "mice_m": m,
        "mice_statuses": ",".join(f.status for f in fits),
        "mice_between_sd_means": float(np.max(means.std(axis=0, ddof=1))) if m > 1 else 0.0,
    }
    return dataclasses.replace(
        usable[0],
        params=pooled,
        intervals=intervals,
        diagnostics=diagnostics,
        loglik=np.nan,
        restarts=None,
        best_known=None,
    )


# Diagnostics about one EM run's optimum, meaningless for a pooled fit.
ONE_RUN_DIAGNOSTICS = ("reference_loglik", "reference_source", "best_known_params", "objective")


def _matched(fit: FitResult, reference: MixtureParams):
    """(params, intervals) of ``fit`` with components in ``reference``'s order."""
    order = matched_truth_index(fit.params, reference)[0]
    intervals = None
    if fit.intervals is not None:
        intervals = {k: (lo[order], hi[order]) for k, (lo, hi) in fit.intervals.items()}
    return fit.params.permuted(order), intervals


def rubin_interval(
    intervals: list[tuple[np.ndarray, np.ndarray]], level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rubin's rules for m symmetric Wald intervals ``estimate +- z se`` at ``level``: the
    pooled (lower, upper), each the shape of one interval's arrays."""
    from scipy.special import ndtri

    z = ndtri(0.5 + level / 2)
    lower = np.array([lo for lo, _ in intervals], dtype=float)
    upper = np.array([hi for _, hi in intervals], dtype=float)
    estimates, se = (lower + upper) / 2, (upper - lower) / (2 * z)
    m = len(intervals)
    within = np.mean(se**2, axis=0)
    between = np.var(estimates, axis=0, ddof=1)
    total = within + (1 + 1 / m) * between
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (1 + 1 / m) * between / within
        dof = np.where(ratio > 0, (m - 1) * (1 + 1 / ratio) ** 2, np.inf)
    half = student_t.ppf(0.5 + level / 2, dof) * np.sqrt(total)
    centre = estimates.mean(axis=0)
    return centre - half, centre + half

"""EMFitter: the EM side of the one fitter interface, ``fit(dataset, rng) -> FitResult``."""

from __future__ import annotations

import dataclasses

import numpy as np

from workbench.data.dataset import Dataset
from workbench.em import reference as bank
from workbench.em.columns import ColumnStats, column_stats
from workbench.em.covariance import MISSING_TYPES
from workbench.em.covariance.registry import strategy
from workbench.em.init import INITS, mean_imputed, small_em
from workbench.em.loop import best_restart, restart_counts
from workbench.em.run import DEGENERATE_KINDS as KINDS
from workbench.em.run import (
    EMRun,
    EMSettings,
    EMState,
    default_prior,
    init_state,
    run_em,
    splits_passes,
    warm,
)
from workbench.em.theory import dm_rate, trace_rate
from workbench.em.uncertainty import wald_intervals
from workbench.fitter_interface import BestKnown, FitResult, PolishedRestarts, RestartSummary
from workbench.params import MixtureParams, as_data_matrix
from workbench.patterns import impute_conditional_mean
from workbench.settings.base import OneLineErrors, build
from workbench.settings.data import MAX_ABS_DATA
from workbench.settings.fitters import EMOptions
from workbench.status import EMStatus


class EMFitter(OneLineErrors, EMOptions):
    """Maximum-likelihood (or MAP) EM for a Gaussian mixture, with R batched restarts; the
    settings and their checks: :class:`workbench.settings.fitters.EMOptions`."""

    def prepare(self) -> float:
        """Load the compiled EM loop (once per process), so that a runner can do it
        before a cell's clock starts (issue 11: start-up is not the first cell's time).
        Returns the seconds spent (0 when already loaded): the runner records them as the
        cell's ``compile_time``."""
        return warm(self.covariance_type)

    # ------------------------------------------------------------------------------------------
    def fit(self, dataset: Dataset, rng: np.random.Generator) -> FitResult:
        """Fit ``dataset.X``; ``dataset.truth`` serves the ``truth`` init, the ``"truth"``
        constraints and the reference optimum."""
        if not isinstance(getattr(dataset, "X", None), np.ndarray):
            raise TypeError(
                f"dataset: expected a workbench Dataset (with .X and .truth), not "
                f"{type(dataset).__name__}; use fit_array(X, rng) for a bare array"
            )
        K = None if self.select_k else self.n_components or dataset.n_components_to_fit
        return self.fit_array(dataset.X, rng, truth=dataset.truth, n_components=K)

    def fit_array(
        self,
        X,
        rng: np.random.Generator,
        truth: MixtureParams | None = None,
        n_components: int | None = None,
    ) -> FitResult:
        """Fit an (n, d) or (n,) array. ``n_components`` defaults to the setting, then truth's K;
        with ``select_k``, every K of the list is fitted and the BIC chooses.

        Raises ValueError, before any compiled code runs, for data EM cannot carry (see
        :func:`check_data`)."""
        if rng is not None and not isinstance(rng, np.random.Generator):  # None: init="truth"
            raise TypeError(f"rng={rng!r}: must be a numpy.random.Generator")
        try:
            X = as_data_matrix(X)
        except (TypeError, ValueError) as err:
            raise ValueError(f"data: not an array of numbers ({err})") from None
        if not self.select_k:
            return self._fit_k(X, rng, truth, n_components)
        if n_components is not None:
            raise ValueError(f"n_components={n_components}: not with select_k={self.select_k}")
        fits = {k: self._fit_k(X, rng, truth, k) for k in self.select_k}
        return choose_by_bic(fits)

    def _fit_k(self, X, rng, truth: MixtureParams | None, n_components: int | None) -> FitResult:
        if n_components is None:
            n_components = self.n_components or (truth.n_components if truth else None)
        if n_components is None:
            raise ValueError("n_components: required when there is no truth to take it from")
        K = build(EMOptions, {"n_components": n_components}).n_components
        X_given = X
        X, dropped, n_missing = self._missing_values(X)
        complete = n_missing == 0
        X_start = X if complete else mean_imputed(X)  # starts (and the checks): complete data
        columns = check_data(X_start, K)
        settings = self.settings(X_start, K, truth)
        split = splits_passes(X, K, self.covariance_type)
        compile_time = warm(self.covariance_type, split)  # compiled code, outside wall_time
        if self.symmetric_means and K != 2:  # the data's K (a K set in the settings: checked)
            raise ValueError(f"symmetric_means=True: needs n_components=2, not {K}")
        weights, means, covs = self._starts(X_start, K, truth, settings, rng)
        if self.symmetric_means:
            half = (means[:, 0] - means[:, 1]) / 2
            means = np.stack([half, -half], axis=1)
        start = init_state(weights, means, covs, settings, columns.var)
        # the column summaries of complete data are the checks'; with missing values, run_em
        # takes the observed values' own variances
        run = run_em(X, start, settings, columns if complete else None)
        reference = self._reference(X, K, truth, settings, run)
        result = _fit_result(run, settings, X, *reference)
        result.diagnostics["compile_time"] = compile_time
        result.diagnostics["missing_fraction"] = n_missing / X.size
        result.diagnostics["rows_all_missing"] = dropped
        if dropped or result.diagnostics["missing_fraction"] > 0:
            # each missing value's conditional mean given the row's observed ones
            empty = np.isnan(X_given).all(axis=1)
            imputed = np.empty_like(X_given)
            imputed[~empty] = impute_conditional_mean(result.params, X)
            imputed[empty] = result.params.weights @ result.params.means  # nothing observed
            result = dataclasses.replace(result, imputed=imputed)
        best = result.restarts.best
        state = EMState(*(a[best : best + 1] for a in run.state))
        if self.interval_level is not None and result.status != EMStatus.DEGENERATE:
            intervals = wald_intervals(X, state, settings, self.interval_level)
            result = dataclasses.replace(result, intervals=intervals or None)
        if self.rate_diagnostics:
            rates = {"rate_measured": trace_rate(result.trace), "rate_theory": np.nan}
            if result.status != EMStatus.DEGENERATE:
                rates["rate_theory"] = dm_rate(X, state, settings)
            result = dataclasses.replace(result, diagnostics={**result.diagnostics, **rates})
        return result

    def _missing_values(self, X: np.ndarray) -> tuple[np.ndarray, int, int]:
        """(X without its rows of nothing but NaN, how many such rows, how many values are
        missing in the rows kept): values missing at random (NaN) are fitted by exact EM for
        incomplete data (full and diag covariances)."""
        missing = np.isnan(X)
        n_missing = int(np.count_nonzero(missing))
        if not n_missing:
            return X, 0, 0
        if self.covariance_type not in MISSING_TYPES:
            raise ValueError(
                f"covariance_type={self.covariance_type!r}: data with missing values (NaN) need "
                f"one of {', '.join(MISSING_TYPES)}"
            )
        empty = missing.all(axis=1)
        n_empty = int(empty.sum())
        return X[~empty], n_empty, n_missing - n_empty * X.shape[1]

    def settings(self, X: np.ndarray, K: int, truth: MixtureParams | None) -> EMSettings:
        """Resolve the fixed parameters and the prior for this data set."""
        cov_type = self.covariance_type
        fixed = {}
        for name in ("weights", "means", "covariances"):
            value = getattr(self, f"fixed_{name}")
            if isinstance(value, str):  # "truth"
                value = _truth_in_type(truth, K, cov_type, f"fixed_{name}")[name]
            fixed[name] = _fixed_array(value, name, K, X.shape[1], cov_type)
        prior = None
        if self.prior is not None:
            prior = default_prior(X, K, cov_type)
            if isinstance(self.prior, dict):
                prior = prior._replace(**{k: np.asarray(v, float) for k, v in self.prior.items()})
        return EMSettings(
            covariance_type=cov_type,
            tol=self.tol,
            max_iter=self.max_iter,
            reg_covar=self.reg_covar,
            prior=prior,
            fixed_weights=fixed["weights"],
            fixed_means=fixed["means"],
            fixed_covariances=fixed["covariances"],
            symmetric_means=self.symmetric_means,
            squarem=self.acceleration == "squarem",
        )

    def _starts(self, X, K, truth, settings: EMSettings, rng):
        cov_type, R = self.covariance_type, self.n_restarts
        if isinstance(self.init, dict):
            given = _given_params(self.init, K, X.shape[1], cov_type)
            return tuple(np.broadcast_to(a, (R, *a.shape)).copy() for a in given)
        if self.init == "truth":
            given = _truth_in_type(truth, K, cov_type, "init")
            return tuple(
                np.broadcast_to(given[k], (R, *given[k].shape)).copy()
                for k in ("weights", "means", "covariances")
            )
        if self.init == "small_em":
            weights, means, full = small_em(X, K, R, rng, settings)
        else:
            weights, means, full = INITS[self.init](X, K, R, rng)
        return weights, means, strategy(cov_type).from_full(full, weights)

    def _reference(self, X, K, truth, settings, run: EMRun):
        """(truth-start log-likelihood, best known optimum, polished restarts); NaN / None
        without a reference (``reference = false``). The truth start joins the bank when the
        data set has a truth with this K and d."""
        if not self.reference:
            return np.nan, None, None
        truth_start = None
        if truth is not None and truth.n_components == K and truth.n_features == X.shape[1]:
            given = _truth_in_type(truth, K, self.covariance_type, "init")
            truth_start = tuple(given[k][None] for k in ("weights", "means", "covariances"))
        starts = bank.DEFAULT_STARTS if self.reference_starts is None else self.reference_starts
        optimum, truth_loglik = bank.bank_optimum(X, K, settings, starts, truth_start)
        polished = bank.polish_restarts(X, run, settings)
        n_starts = (truth_start is not None) + sum(starts.values())
        known = bank.best_known(optimum, polished, n_starts)
        if known is not None:
            polished = bank.with_stability(X, polished, known.loglik, settings)
        return truth_loglik, known, polished


# ---- input guards (issue 11): data the numerics cannot carry fail here, before compiled code --
# MAX_ABS_DATA (from workbench.data.dataset): larger values overflow squared distances and
# scatter sums in float64 (k-means++ then crashes the interpreter inside scipy).


def check_data(X: np.ndarray, K: int) -> ColumnStats:
    """ValueError (one line) unless X (n, d) is finite, below MAX_ABS_DATA in magnitude, has
    spread in every column, and holds at least K distinct points; returns X's column summaries
    (:func:`~workbench.em.columns.column_stats`), computed on the way."""
    n, d = X.shape
    if n == 0 or d == 0:
        raise ValueError(f"data: shape {X.shape} holds no values")
    columns = column_stats(X)  # a NaN or inf anywhere makes its column's mean non-finite
    bad = 0 if np.isfinite(columns.mean).all() else int(np.sum(~np.isfinite(X)))
    if bad:
        raise ValueError(
            f"data: {bad} non-finite values (NaN or inf); EM needs finite values (missing "
            "values: NaN, with covariance_type full or diag)"
        )
    if K > n:
        raise ValueError(f"n_components={K}: more components than data points ({n})")
    largest = float(max(-columns.low.min(), columns.high.max()))
    if largest > MAX_ABS_DATA:
        raise ValueError(
            f"data: values as large as {largest:.3g} overflow float64 in squared distances "
            f"(|x| must stay below {MAX_ABS_DATA:g}); rescale the data"
        )
    spread = columns.high - columns.low
    flat = np.flatnonzero(~(spread > 0) | ~(columns.var > np.finfo(float).tiny))
    if flat.size:
        raise ValueError(
            f"data: column {int(flat[0])} is constant ({X[0, flat[0]]:g}) or has no spread "
            "float64 can carry; a Gaussian mixture needs a positive variance in every column"
        )
    if K > 1 and _n_distinct(X, K) < K:
        raise ValueError(
            f"n_components={K}: the data hold only {_n_distinct(X, n)} distinct points"
        )
    return columns


def _n_distinct(X: np.ndarray, enough: int) -> int:
    """Distinct rows of X, counted exactly once a quick look at the first rows finds fewer than
    ``enough``."""
    head = np.unique(X[: 64 * enough], axis=0).shape[0]
    return head if head >= enough else np.unique(X, axis=0).shape[0]


# ---------------------------------------------------------------------------------------------
def choose_by_bic(fits: dict[int, FitResult]) -> FitResult:
    """The fit with the lowest finite BIC among those not ``degenerate`` (all of them when every
    one is degenerate, flagged by ``select_k_all_degenerate``), with the per-K BICs and statuses
    in its diagnostics and the summed wall time."""
    bics = {k: fit.diagnostics["bic"] for k, fit in fits.items()}
    usable = {
        k: b for k, b in bics.items() if fits[k].status != EMStatus.DEGENERATE and np.isfinite(b)
    }
    all_degenerate = not usable
    if all_degenerate:
        usable = {k: b for k, b in bics.items() if np.isfinite(b)}
    chosen = min(usable, key=usable.get) if usable else next(iter(fits))
    best = fits[chosen]
    extra = {
        "chosen_k": chosen,
        "select_k_all_degenerate": int(all_degenerate),
        **{f"bic_k{k}": b for k, b in bics.items()},
        **{f"status_k{k}": fit.status for k, fit in fits.items()},
    }
    extra["compile_time"] = sum(fit.diagnostics["compile_time"] for fit in fits.values())
    wall = sum(fit.wall_time for fit in fits.values())
    return dataclasses.replace(best, diagnostics={**best.diagnostics, **extra}, wall_time=wall)


def _fit_result(
    run: EMRun,
    settings: EMSettings,
    X: np.ndarray,
    truth_loglik: float,
    optimum: BestKnown | None = None,
    polished: PolishedRestarts | None = None,
):
    best = best_restart(run.status, run.objective)
    s = run.state
    params = MixtureParams(
        s.weights[best], s.means[best], s.covariances[best], settings.covariance_type
    )
    loglik = float(run.loglik[best])
    if optimum is None:  # no reference bank: the best restart is the best known
        finite = run.loglik[np.isfinite(run.loglik) & (run.status != EMStatus.DEGENERATE)]
        best_known = max([x for x in (truth_loglik, *finite) if np.isfinite(x)], default=np.nan)
        source, n_starts, known_params = "restarts", 0, None
    else:
        best_known, source, n_starts = optimum.loglik, optimum.source, optimum.n_starts
        known_params = None if optimum.params is None else optimum.params.to_dict()
    n = X.shape[0]
    diagnostics = {
        "reference_loglik": best_known,
        "reference_source": source,
        "reference_starts": n_starts,
        "best_known_params": known_params,
        "truth_start_loglik": truth_loglik,
        "objective": float(run.objective[best]),
        **restart_counts(run.status),
        **{f"n_degenerate_{kind}": int(np.sum(run.degenerate_kind == kind)) for kind in KINDS},
        "n_max_iter": int(np.sum(run.status == EMStatus.MAX_ITER)),
        "degenerate_component": int(run.degenerate_component[best]),
        "degenerate_kind": str(run.degenerate_kind[best]),
        "n_loglik_decreases": int(run.n_decreases[best]),
        "max_loglik_decrease": float(run.max_decrease[best]),
        "bic": float(-2 * loglik + params.n_free_parameters() * np.log(n)),
        "aic": float(-2 * loglik + 2 * params.n_free_parameters()),
    }
    summary = RestartSummary(
        run.loglik.copy(),
        run.status.copy(),
        run.n_iter.copy(),
        best,
        traces=run.traces,
        polished=polished,
    )
    return FitResult(
        method="em",
        status=str(run.status[best]),
        params=params,
        loglik=loglik,
        n_iter=int(run.n_iter[best]),
        wall_time=run.wall_time,
        diagnostics=diagnostics,
        trace=run.traces[best],
        restarts=summary,
        best_known=optimum,
    )


def _truth_in_type(truth: MixtureParams | None, K: int, cov_type: str, key: str) -> dict:
    if truth is None or truth.n_components != K:
        raise ValueError(f"{key}='truth': the data set has no {K}-component truth")
    full = truth.full_covariances()
    return {
        "weights": truth.weights.copy(),
        "means": truth.means.copy(),
        "covariances": strategy(cov_type).from_full(full, truth.weights),
    }


def _fixed_array(value, name: str, K: int, d: int, cov_type: str):
    if value is None:
        return None
    shape = {"weights": (K,), "means": (K, d), "covariances": strategy(cov_type).cov_shape(K, d)}
    array = np.asarray(value, dtype=float)
    if array.size != int(np.prod(shape[name])):
        raise ValueError(f"fixed_{name}={value!r}: expected shape {shape[name]}")
    return array.reshape(shape[name])


def _given_params(init: dict, K: int, d: int, cov_type: str):
    missing = {"weights", "means", "covariances"} - set(init)
    if missing:
        raise ValueError(f"init: a dict of parameters needs {', '.join(sorted(missing))}")
    return tuple(
        _fixed_array(init[k], k, K, d, cov_type) for k in ("weights", "means", "covariances")
    )

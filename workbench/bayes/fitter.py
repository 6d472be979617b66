"""BayesFitter: the Bayesian side of the one fitter interface, ``fit(dataset, rng) -> FitResult``.

Each fit reuses the compiled model of its structure (``workbench.bayes.sampling``), so a runner
can call ``build_fitter("bayes", settings).fit(dataset, rng)`` on a whole grid of data sets.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.bayes import diagnostics as dg
from workbench.bayes import missing as incomplete
from workbench.bayes.models import Draws, ModelSpec, posterior_draws
from workbench.bayes.sampling import compile_model, get_compiled, sample
from workbench.data.dataset import Dataset
from workbench.fitter_interface import FitResult
from workbench.params import MixtureParams, as_data_matrix
from workbench.patterns import observed_log_likelihood
from workbench.settings.base import OneLineErrors
from workbench.settings.fitters import BayesOptions
from workbench.status import CellStatus

if TYPE_CHECKING:  # arviz loads on first fit, so `workbench validate` stays light
    import arviz as az


def _fail(key: str, value: Any, why: str) -> None:
    raise ValueError(f"{key}={value!r}: {why}")


class BayesFitter(OneLineErrors, BayesOptions):
    """PyMC Gaussian mixture sampled with NUTS (nutpie or PyMC); its settings are declared and
    checked by :class:`workbench.settings.fitters.BayesOptions`.

    n_components: K (default: the data set's ``n_components_to_fit``). identifiability:
    ``ordered`` (1-D: ordered means; d > 1: relabelling to a pivot) or ``none`` (exchangeable;
    draws are still relabelled for the summaries, and the fit is never ``ok``).
    sampler, chains, draws, tune, target_accept, max_treedepth, cores: NUTS settings (cores
    default min(chains, CPUs)). interval_level: equal-tailed credible intervals.
    standardize: priors in units of the data's mean and standard deviation (default) or raw
    units. prior_*: see :mod:`workbench.bayes.models`. fixed_weights / fixed_covariances: known
    values ((K,) weights; (K,) variances, (K, d) diagonal or (K, d, d) covariances) or
    ``"truth"``. mode_tolerance: posterior sds by which chain means must differ to disagree.
    divergence_tolerance: fraction of divergent draws above which the fit is ``divergent``.
    rhat_max, ess_per_chain_min: convergence thresholds (rank-normalised split R-hat, bulk and
    tail ESS per chain; Vehtari et al. 2021) below which the fit is ``not_converged``; the
    status and the order of its checks are documented in :func:`diagnostics.classify`.
    keep_posterior: keep the InferenceData in the result.
    covariance_type: ``full`` (LKJ prior) or ``diag`` (HalfNormal sds; d > 1).
    missing: how data with missing values (NaN) are fitted (:mod:`workbench.bayes.missing`):
    ``marginalise`` (the missing coordinates integrated out; compiled once per set of
    missingness patterns) or ``impute`` (PyMC's automatic imputation, the missing values
    sampled as latent variables; compiled for each fit). Either way ``imputed`` of the result
    holds the posterior predictive mean of every missing value (``marginalise``: from
    ``imputation_draws`` posterior draws, each drawing the value from the conditional normal
    given the row's observed values and a component drawn from its responsibilities).
    Complete data are fitted as before, whatever ``missing`` says. missing_patterns: the
    marginalised model is built for the patterns ``present`` in the data set (the compile cache
    reuses it for data sets with the same set) or for ``all`` 2^d - 1 patterns (d <= 8; one
    compile per K and d for every data set, absent patterns with no rows).

    Timing: ``diagnostics["compile_time"]`` is the seconds spent getting the compiled model
    (compiling it, or a cache look-up when this structure was compiled before in the process);
    ``wall_time`` is everything else of the fit (sampling and summaries), compile excluded.
    (``sampler="pymc"``: ``pm.sample`` compiles on every call, so that cost stays in wall_time.)
    """

    @property
    def settings(self) -> dict[str, Any]:
        """Every setting by name (given or default)."""
        return self.model_dump()

    # ------------------------------------------------------------------------------------------
    def spec(self, K: int, d: int) -> ModelSpec:
        """The model structure (compile-cache key, with the sampler) for K components in d-D."""
        return ModelSpec(
            n_components=K,
            n_features=d,
            identifiability=self.identifiability,
            covariance_type=self.covariance_type,
            fixed_weights=self.fixed_weights is not None,
            fixed_covariances=self.fixed_covariances is not None,
            prior_weights_alpha=float(self.prior_weights_alpha),
            prior_mean_loc=float(self.prior_mean_loc),
            prior_mean_scale=float(self.prior_mean_scale),
            prior_scale_scale=float(self.prior_scale_scale),
            prior_lkj_eta=float(self.prior_lkj_eta),
        )

    def fit(self, dataset: Dataset, rng: np.random.Generator) -> FitResult:
        """Sample the posterior for ``dataset.X``; seeds come from ``rng`` (same rng, same draws).

        ``dataset.truth`` serves the ``"truth"`` constraints and the ``truth_*`` diagnostics.
        """
        start = time.perf_counter()
        X, spec, data, loc, scale = self._setup(dataset)
        n = X.shape[0]
        seed = int(rng.integers(2**31))
        compile_start = time.perf_counter()
        impute = self._imputes(X)
        if impute:  # the latent missing values' size is the data set's own: compile it
            model = incomplete.build_impute_model(spec, (X - loc) / scale, data)
            free = [*spec.free_names(), incomplete.IMPUTED_NAME]
            entry, cached = compile_model(spec, self.sampler, model, free), False
        else:
            entry, cached = get_compiled(spec, self.sampler)
        compile_time = time.perf_counter() - compile_start
        try:
            idata, sample_seconds = sample(
                entry,
                {} if impute else data,  # the impute model holds its data as constants
                chains=self.chains,
                draws=self.draws,
                tune=self.tune,
                target_accept=self.target_accept,
                max_treedepth=self.max_treedepth,
                seed=seed,
                cores=self.cores,
            )
        except Exception as exc:  # numerical trouble is a status, not a crash
            return FitResult(
                method=self.method,
                status=CellStatus.ERROR,
                params=None,
                loglik=float("nan"),
                n_iter=0,
                wall_time=time.perf_counter() - start - compile_time,
                diagnostics={
                    "error": f"{type(exc).__name__}: {exc}"[:300],
                    "seed": seed,
                    "compile_time": compile_time,
                    "compile_cached": int(cached),
                },
            )
        draws = posterior_draws(idata.posterior, spec, data, loc, scale)
        params, intervals, diag, posterior = self._summarise(
            X, spec, draws, idata.sample_stats, data, loc, scale, dataset.truth
        )
        imputed = None
        if np.isnan(X).any():
            imputed, seconds = self._imputations(X, draws, idata.posterior, loc, scale, seed)
            diag.update(
                missing_mode=self.missing,
                n_missing=int(np.isnan(X).sum()),
                n_patterns=len(incomplete.data_patterns(X)[0]),
                imputation_seconds=seconds,
            )
        diag.update(
            compile_time=compile_time,
            sample_seconds=sample_seconds,
            compile_cached=int(cached),
            ess_bulk_per_second=diag["ess_bulk_min"] / sample_seconds,
            seed=seed,
            n=n,
        )
        return FitResult(
            method=self.method,
            status=diag.pop("status"),
            params=params,
            loglik=observed_log_likelihood(params, X),
            n_iter=self.draws,
            wall_time=time.perf_counter() - start - compile_time,
            diagnostics=diag,
            intervals=intervals,
            posterior=posterior if self.keep_posterior else None,
            imputed=imputed,
        )

    def _imputes(self, X: np.ndarray) -> bool:
        """Whether this fit uses PyMC's automatic imputation (``missing = "impute"`` on data
        with missing values)."""
        return self.missing == "impute" and bool(np.isnan(X).any())

    def _imputations(self, X, draws: Draws, posterior, loc, scale, seed: int):
        """((n, d) X with each missing value replaced by its posterior predictive mean,
        seconds it took); see the class docstring."""
        begin = time.perf_counter()
        if self.missing == "impute":
            latent = np.asarray(posterior[incomplete.IMPUTED_NAME]).mean(axis=(0, 1))
            rows, cols = np.nonzero(np.isnan(X))  # PyMC's row-major order of the mask
            imputed = X.copy()
            imputed[rows, cols] = loc[cols] + scale[cols] * latent
        else:
            imputed = incomplete.predictive_imputations(
                draws.weights,
                draws.means,
                draws.covariances,
                X,
                np.random.default_rng(seed),
                self.imputation_draws,
            )
        return imputed, time.perf_counter() - begin

    def model_spec(self, dataset: Dataset) -> ModelSpec:
        """The model structure this fitter compiles for ``dataset`` (with the sampler, the key
        of the compile cache); a runner compiles it once up front with :meth:`compile`."""
        return self._setup(dataset)[1]

    def compile(self, dataset: Dataset) -> float:
        """Compile (or look up) the model for ``dataset``'s structure; returns the seconds
        (0 under ``missing = "impute"`` with values missing: that model is compiled per fit)."""
        start = time.perf_counter()
        spec = self.model_spec(dataset)
        if not self._imputes(as_data_matrix(dataset.X)):
            get_compiled(spec, self.sampler)
        return time.perf_counter() - start

    # ------------------------------------------------------------------------------------------
    def _setup(self, dataset: Dataset) -> tuple[np.ndarray, ModelSpec, dict, np.ndarray, Any]:
        """(X (n, d), the model structure, the standardised ``pm.Data`` arrays, loc, scale)."""
        X = as_data_matrix(dataset.X)
        if np.any(np.isinf(X)):
            _fail("data", f"{int(np.sum(np.isinf(X)))} infinite values", "need finite data")
        K = int(self.n_components or dataset.n_components_to_fit)
        d = X.shape[1]
        spec = self.spec(K, d)
        loc, scale = np.zeros(d), np.ones(d)
        if self.standardize:  # over the observed values
            loc, scale = np.nanmean(X, axis=0), np.nanstd(X, axis=0)
            scale = np.where(scale > 0, scale, 1.0)
        data = self._model_data(X, spec, dataset.truth, loc, scale)
        if np.isnan(X).any() and d == 1:
            _fail("data", f"{int(np.isnan(X).sum())} missing values", "in 1-D drop those rows")
        if np.isnan(X).any() and not self._imputes(X):  # marginalised over missing values
            patterns, rows = incomplete.data_patterns(X)
            if self.missing_patterns == "all":
                if 2**d - 1 > incomplete.MAX_ALL_PATTERNS:
                    _fail("missing_patterns", "all", f"{2**d - 1} patterns in {d}-D; use present")
                patterns, rows = incomplete.every_pattern(d, patterns, rows)
            spec = dataclasses.replace(spec, patterns=patterns)
            del data["x"]
            data.update(incomplete.pattern_arrays((X - loc) / scale, patterns, rows))
        elif spec.diagonal:  # the marginal builder, one pattern
            data["x_0"] = data.pop("x")
        if _labels_known(data):  # known values differ between components: no ordering needed
            spec = dataclasses.replace(spec, identifiability="none")
        return X, spec, data, loc, scale

    def _model_data(
        self,
        X: np.ndarray,
        spec: ModelSpec,
        truth: MixtureParams | None,
        loc: np.ndarray,
        scale: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Standardised ``pm.Data`` arrays (see ``models.build_model``)."""
        K, d = spec.n_components, spec.n_features
        z = (X - loc) / scale
        data: dict[str, np.ndarray] = {"x": z[:, 0] if d == 1 else z}
        if spec.weights_are_data:
            w = np.ones(1) if self.fixed_weights is None else self.fixed_weights
            if isinstance(w, str):
                w = _from_truth(truth, K, d, "fixed_weights").weights
            w = np.asarray(w, dtype=float)
            if w.shape != (K,):
                _fail("fixed_weights", self.fixed_weights, f"expected {K} weights")
            data["w_fixed"] = w
        if spec.fixed_covariances:
            cov = self.fixed_covariances
            if isinstance(cov, str):
                cov = _from_truth(truth, K, d, "fixed_covariances").full_covariances()
            cov = _full_covariances(np.asarray(cov, dtype=float), K, d, self.fixed_covariances)
            cov_z = cov / (scale[:, None] * scale[None, :])
            if d == 1:
                data["sigma_fixed"] = np.sqrt(cov_z[:, 0, 0])
            else:
                data["chol_fixed"] = np.linalg.cholesky(cov_z)
        return data

    def _summarise(
        self,
        X: np.ndarray,
        spec: ModelSpec,
        draws: Draws,
        sample_stats: Any,
        data: dict[str, np.ndarray],
        loc: np.ndarray,
        scale: np.ndarray,
        truth: MixtureParams | None,
    ) -> tuple[MixtureParams, dict, dict[str, Any], az.InferenceData]:
        """Relabel, summarise, classify. Returns (params, intervals, diagnostics, posterior)."""
        C, S, K = draws.weights.shape
        lp = dg.log_density(sample_stats)
        features = dg.component_features(draws, loc, scale)
        labels_known = _labels_known(data)
        if spec.ordered or labels_known or K == 1:
            perms = dg.identity_perms(C, S, K)
        else:
            perms, _ = dg.relabel(features, lp)
        rel = draws.permuted(perms)
        rel_features = np.take_along_axis(features, perms[..., None], axis=2)
        params = dg.posterior_means(rel)
        intervals = dg.credible_intervals(rel, self.interval_level)
        diag: dict[str, Any] = {}
        diag.update(dg.convergence(_tracked(rel, spec)))
        diag["rhat_max_raw"] = dg.convergence(_tracked(draws, spec))["rhat_max"]
        diag.update(dg.sampler_stats(sample_stats))
        groups, distance = dg.chain_groups(rel_features, lp, self.mode_tolerance)
        switched = dg.switched_fraction(perms)
        failed_checks = dg.failed_convergence_checks(diag, C, self.rhat_max, self.ess_per_chain_min)
        diag["status"] = dg.classify(
            n_divergences=diag["n_divergences"],
            n_draws_total=C * S,
            groups=groups,
            switched=switched,
            exchangeable=self.identifiability == "none" and not labels_known,
            n_components=K,
            failed_checks=failed_checks,
            divergence_tolerance=self.divergence_tolerance,
        )
        diag["convergence_failed"] = ",".join(failed_checks)  # "" when converged
        diag["n_chains"] = C
        diag["threshold_rhat_max"] = float(self.rhat_max)
        diag["threshold_ess_per_chain_min"] = float(self.ess_per_chain_min)
        diag["disagreeing_chains"] = ",".join(str(c) for g in groups[1:] for c in g)
        diag["n_chain_groups"] = len(groups)
        diag["chain_distance_max"] = distance
        diag["switched_fraction"] = switched
        if truth is not None and truth.n_components == K and truth.n_features == X.shape[1]:
            comparison = dg.truth_comparison(params, intervals, truth)
            diag.update(dg.truth_summary(comparison))
        return params, intervals, diag, _inference_data(rel, perms, sample_stats, X)


def _labels_known(data: dict[str, np.ndarray]) -> bool:
    """Whether known weights or covariances differ between components (they name the labels)."""
    known = [data[k] for k in ("w_fixed", "sigma_fixed", "chol_fixed") if k in data]
    return any(len(v) > 1 and not np.allclose(v, v[:1]) for v in known)


def _from_truth(truth: MixtureParams | None, K: int, d: int, key: str) -> MixtureParams:
    if truth is None or truth.n_components != K or truth.n_features != d:
        _fail(key, "truth", f"the data set's truth does not have {K} components in {d}-D")
    return truth


def _full_covariances(cov: np.ndarray, K: int, d: int, value: Any) -> np.ndarray:
    """(K,) variances, (K, d) diagonals or (K, d, d) matrices -> (K, d, d), checked."""
    if cov.shape == (K,):
        cov = cov[:, None, None] * np.eye(d)
    elif cov.shape == (K, d):
        cov = cov[:, :, None] * np.eye(d)
    if cov.shape != (K, d, d):
        _fail("fixed_covariances", value, f"expected shape ({K},), ({K}, {d}) or ({K}, {d}, {d})")
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        _fail("fixed_covariances", value, "not positive definite")
    return cov


def _tracked(draws: Draws, spec: ModelSpec) -> dict[str, np.ndarray]:
    """Free scalars for R-hat / ESS: weights, means, scales, correlations, (C, S, ...)."""
    out = {"mu": draws.means}
    if not spec.weights_are_data:
        out["w"] = draws.weights
    if not spec.fixed_covariances:
        out["sigma"] = draws.scales()
        d = spec.n_features
        if d > 1 and not spec.diagonal:  # diagonal: correlations are 0 by construction
            sd = draws.scales()
            corr = draws.covariances / (sd[..., :, None] * sd[..., None, :])
            rows, cols = np.triu_indices(d, k=1)
            out["corr"] = corr[..., rows, cols]
    return out


def _inference_data(rel: Draws, perms: np.ndarray, sample_stats: Any, X: np.ndarray):
    """InferenceData of the relabelled draws in data units, sample stats and the data."""
    import arviz as az

    K, d = rel.means.shape[2:]
    stats = {k: np.asarray(v) for k, v in sample_stats.data_vars.items()}
    stats["relabel_permutation"] = perms
    return az.from_dict(
        posterior={
            "w": rel.weights,
            "mu": rel.means,
            "sigma": rel.scales(),
            "cov": rel.covariances,
        },
        sample_stats=stats,
        observed_data={"x": X},
        coords={"component": np.arange(K), "dim": np.arange(d), "dim_b": np.arange(d)},
        dims={
            "w": ["component"],
            "mu": ["component", "dim"],
            "sigma": ["component", "dim"],
            "cov": ["component", "dim", "dim_b"],
            "relabel_permutation": ["component"],
            "x": ["obs", "dim"],
        },
    )


def save_netcdf(result: FitResult, path: str | Path) -> Path:
    """Write a Bayes fit's InferenceData to netCDF; returns the path."""
    if result.posterior is None:
        raise ValueError(f"{path}: the fit has no posterior to save (keep_posterior=False?)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    result.posterior.to_netcdf(str(path))
    return path

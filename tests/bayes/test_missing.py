"""The Bayesian mixture on data with missing values (issue 14): the marginalised likelihood
against scipy at fixed parameters, the complete-data model when nothing is missing, and short
fits (marginalised and PyMC's automatic imputation) recovering the means of a small MCAR set.

The log-likelihood checks fix every free variable with ``pm.do`` and compile the observed
terms with PyTensor (seconds); the fits share one session fixture (nutpie compiles each model
once)."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import stats
from scipy.special import logsumexp

from workbench.baselines import mean_imputed
from workbench.bayes import BayesFitter
from workbench.bayes.missing import build_marginal_model, data_patterns, pattern_arrays
from workbench.bayes.models import ModelSpec, build_model, unpack_cholesky
from workbench.data import generate

W = np.array([0.3, 0.7])
MU = np.array([[-1.0, 0.5, 2.0], [1.5, -0.5, 0.0]])
PACKED = [np.array([1.0, 0.2, 0.8, -0.1, 0.3, 1.1]), np.array([0.7, 0.0, 1.2, 0.1, -0.2, 0.9])]
SIGMA = np.array([[1.0, 0.6, 1.3], [0.8, 1.1, 0.5]])


def incomplete(seed: int = 0, n: int = 40, d: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * 1.5
    X[rng.random(X.shape) < 0.35] = np.nan
    return X[~np.isnan(X).all(axis=1)]


def fixed_loglik(model: pm.Model, values: dict[str, np.ndarray]) -> float:
    """Sum of the observed terms of ``model`` with every free variable fixed to ``values``."""
    fixed = pm.do(model, values)
    assert not fixed.free_RVs
    return float(fixed.compile_logp(vars=fixed.observed_RVs, sum=True)({}))


def scipy_loglik(X: np.ndarray, w, mu, covs) -> float:
    """sum_i log sum_k w_k N(x_i,obs | mu_k,obs, S_k,obs), row by row."""
    total = 0.0
    for x in X:
        o = ~np.isnan(x)
        terms = [
            np.log(w[k]) + stats.multivariate_normal(mu[k][o], covs[k][np.ix_(o, o)]).logpdf(x[o])
            for k in range(len(w))
        ]
        total += logsumexp(terms)
    return total


def marginal(X: np.ndarray, **spec_settings) -> pm.Model:
    patterns, rows = data_patterns(X)
    spec = ModelSpec(2, X.shape[1], patterns=patterns, **spec_settings)
    return build_marginal_model(spec, pattern_arrays(X, patterns, rows))


def test_marginal_loglik_full_covariance_equals_scipy():
    X = incomplete()
    assert len(data_patterns(X)[0]) >= 5  # every pattern kind: 1, 2 and 3 observed
    chols = [unpack_cholesky(p, 3) for p in PACKED]
    covs = [c @ c.T for c in chols]
    got = fixed_loglik(marginal(X), {"w": W, "mu": MU, "chol_0": PACKED[0], "chol_1": PACKED[1]})
    assert got == pytest.approx(scipy_loglik(X, W, MU, covs), rel=1e-10)


def test_marginal_loglik_diagonal_covariance_equals_scipy():
    X = incomplete(1)
    covs = [np.diag(s**2) for s in SIGMA]
    got = fixed_loglik(marginal(X, covariance_type="diag"), {"w": W, "mu": MU, "sigma": SIGMA})
    assert got == pytest.approx(scipy_loglik(X, W, MU, covs), rel=1e-10)


def test_nothing_missing_gives_the_complete_data_model():
    X = np.random.default_rng(2).normal(size=(25, 3))
    values = {"w": W, "mu": MU, "chol_0": PACKED[0], "chol_1": PACKED[1]}
    complete = build_model(ModelSpec(2, 3), {"x": X})
    assert fixed_loglik(marginal(X), values) == pytest.approx(
        fixed_loglik(complete, values), rel=1e-12
    )


# ---- short fits ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def mcar_fits():
    """n = 150, K = 2, d = 2, 25% MCAR; 2 chains of 300 draws each way."""
    data = generate("gaussian_mixture", np.random.default_rng(3), n=150, K=2, d=2,
                    separation=4.0, missing={"mechanism": "mcar", "fraction": 0.25})  # fmt: skip
    fits = {
        mode: BayesFitter(chains=2, draws=300, tune=300, missing=mode).fit(
            data, np.random.default_rng(1)
        )
        for mode in ("marginalise", "impute")
    }
    return data, fits


@pytest.mark.parametrize("mode", ["marginalise", "impute"])
def test_short_fit_recovers_the_means(mcar_fits, mode):
    data, fits = mcar_fits
    fit = fits[mode]
    assert fit.status != "error", fit.diagnostics.get("error")
    order = np.argsort(fit.params.means[:, 0])
    truth = data.truth.means[np.argsort(data.truth.means[:, 0])]
    np.testing.assert_allclose(fit.params.means[order], truth, atol=0.4)
    diag = fit.diagnostics
    assert diag["missing_mode"] == mode and diag["n_missing"] == int(data.mask.sum())
    assert diag["sample_seconds"] > 0 and diag["ess_bulk_per_second"] > 0
    assert np.isfinite(fit.loglik)


@pytest.mark.parametrize("mode", ["marginalise", "impute"])
def test_posterior_imputations_beat_the_column_mean(mcar_fits, mode):
    """Separated clusters: a missing value's predictive mean uses the observed coordinate (which
    says the cluster), so it lies closer to the truth than the column mean."""
    data, fits = mcar_fits
    imputed = fits[mode].imputed
    np.testing.assert_array_equal(imputed[~data.mask], data.X[~data.mask])
    bayes = np.sqrt(np.mean((imputed - data.X_complete)[data.mask] ** 2))
    mean = np.sqrt(np.mean((mean_imputed(data.X) - data.X_complete)[data.mask] ** 2))
    assert bayes < 0.8 * mean


def test_both_modes_agree(mcar_fits):
    """The two models have the same posterior of the parameters: means within Monte Carlo and
    prior-to-posterior noise of each other, imputations close."""
    data, fits = mcar_fits
    a, b = (fits[m] for m in ("marginalise", "impute"))
    order_a, order_b = np.argsort(a.params.means[:, 0]), np.argsort(b.params.means[:, 0])
    np.testing.assert_allclose(a.params.means[order_a], b.params.means[order_b], atol=0.15)
    gap = np.abs(a.imputed - b.imputed)[data.mask]
    assert np.median(gap) < 0.3


def test_compiled_once_per_set_of_patterns(mcar_fits):
    """Another data set (other n, MAR: only patterns (0, 1) and (0,)) fitted with every pattern
    of d = 2 reuses the model compiled for the MCAR set (all three patterns present there): an
    absent pattern has no rows."""
    data, fits = mcar_fits
    assert fits["marginalise"].diagnostics["n_patterns"] == 3
    mar = generate("gaussian_mixture", np.random.default_rng(9), n=120, K=2, d=2,
                   separation=4.0, missing={"mechanism": "mar", "fraction": 0.3})  # fmt: skip
    fitter = BayesFitter(chains=1, draws=100, tune=100, missing_patterns="all")
    fit = fitter.fit(mar, np.random.default_rng(2))
    assert fit.diagnostics["compile_cached"] == 1 and fit.diagnostics["n_patterns"] == 2
    assert fitter.model_spec(mar).patterns == ((0, 1), (0,), (1,))
    assert BayesFitter().model_spec(mar).patterns == ((0, 1), (0,))
    assert fit.status != "error" and not np.isnan(fit.imputed).any()


def test_settings_errors_one_line():
    for key, value in (("missing", "drop"), ("covariance_type", "tied"), ("imputation_draws", 0),
                       ("missing_patterns", "some")):  # fmt: skip
        with pytest.raises(ValueError, match=rf"^{key}=") as err:
            BayesFitter(**{key: value})
        assert "\n" not in str(err.value)

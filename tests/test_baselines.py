"""The baselines users reach for on incomplete data (issue 14), each against an independent
computation, and the observed-data helpers of workbench.patterns against scipy."""

import importlib.util

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from workbench.baselines import CompleteCaseEM, MeanImputeEM, MiceEM, rubin_interval
from workbench.data import Dataset, generate
from workbench.em.fitter import EMFitter
from workbench.fitter_interface import build_fitter
from workbench.params import MixtureParams
from workbench.patterns import (
    conditional_means,
    impute_conditional_mean,
    missingness_patterns,
    observed_log_likelihood,
)

EM = {"n_restarts": 2, "init": "kmeans++"}
PARAMS = MixtureParams(
    [0.3, 0.7],
    [[-1.0, 0.5, 2.0], [1.5, -0.5, 0.0]],
    [
        [[1.0, 0.3, -0.2], [0.3, 0.8, 0.1], [-0.2, 0.1, 1.5]],
        [[0.6, -0.1, 0.0], [-0.1, 1.2, 0.4], [0.0, 0.4, 0.9]],
    ],
)


@pytest.fixture(scope="module")
def mcar():
    return generate("gaussian_mixture", np.random.default_rng(3), n=400, K=2, d=3,
                    separation=4.0, missing={"mechanism": "mcar", "fraction": 0.2})  # fmt: skip


def with_nans(seed: int = 0, n: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X, _ = PARAMS.sample(n, rng)
    mask = rng.random(X.shape) < 0.35
    mask[mask.all(axis=1), 0] = False  # keep one value per row
    return np.where(mask, np.nan, X)


# ---- observed-data helpers -----------------------------------------------------------------------
def test_observed_loglik_equals_scipy_row_by_row():
    X = with_nans()
    direct = 0.0
    for x in X:
        o = ~np.isnan(x)
        terms = [
            np.log(w) + stats.multivariate_normal(mu[o], cov[np.ix_(o, o)]).logpdf(x[o])
            for w, mu, cov in zip(PARAMS.weights, PARAMS.means, PARAMS.covariances, strict=True)
        ]
        direct += logsumexp(terms)
    assert observed_log_likelihood(PARAMS, X) == pytest.approx(direct, rel=1e-12)
    assert len(missingness_patterns(X)) > 3


def test_observed_loglik_without_missing_is_the_loglik():
    X, _ = PARAMS.sample(50, np.random.default_rng(1))
    assert observed_log_likelihood(PARAMS, X) == pytest.approx(PARAMS.log_likelihood(X), 1e-12)
    assert [p.observed for p in missingness_patterns(X)] == [(0, 1, 2)]


def test_conditional_means_closed_form():
    X = with_nans(2, 20)
    cond = conditional_means(PARAMS, X)
    for i, x in enumerate(X):
        o, m = ~np.isnan(x), np.isnan(x)
        for k in range(2):
            mu, S = PARAMS.means[k], PARAMS.covariances[k]
            expected = mu[m] + S[np.ix_(m, o)] @ np.linalg.inv(S[np.ix_(o, o)]) @ (x[o] - mu[o])
            np.testing.assert_allclose(cond[k, i, m], expected, rtol=1e-10, atol=1e-12)
            np.testing.assert_array_equal(cond[k, i, o], x[o])
    imputed = impute_conditional_mean(PARAMS, X)
    assert not np.isnan(imputed).any()
    np.testing.assert_array_equal(imputed[~np.isnan(X)], X[~np.isnan(X)])


def test_rows_with_nothing_observed_refused():
    X = with_nans()
    X[3] = np.nan
    with pytest.raises(ValueError, match=r"^data: 1 rows have every coordinate missing"):
        observed_log_likelihood(PARAMS, X)


# ---- complete case and mean imputation -----------------------------------------------------------
def test_complete_case_equals_em_on_the_dropped_rows(mcar):
    result = build_fitter("complete_case", EM).fit(mcar, np.random.default_rng(5))
    rows = [i for i in range(mcar.n) if not any(np.isnan(v) for v in mcar.X[i])]
    direct = EMFitter(**EM).fit_array(mcar.X[rows], np.random.default_rng(5), truth=mcar.truth,
                                      n_components=2)  # fmt: skip
    assert result.method == "complete_case" and result.status == direct.status
    np.testing.assert_array_equal(result.params.means, direct.params.means)
    np.testing.assert_array_equal(result.params.covariances, direct.params.covariances)
    assert result.loglik == direct.loglik
    assert result.diagnostics["n_rows_used"] == len(rows) < mcar.n
    assert result.diagnostics["observed_loglik"] == pytest.approx(
        observed_log_likelihood(direct.params, mcar.X)
    )
    assert result.imputed is None


def test_mean_imputation_equals_em_on_the_imputed_matrix(mcar):
    from sklearn.impute import SimpleImputer

    filled = SimpleImputer(strategy="mean").fit_transform(mcar.X)
    result = build_fitter("mean_impute", EM).fit(mcar, np.random.default_rng(6))
    direct = EMFitter(**EM).fit_array(filled, np.random.default_rng(6), truth=mcar.truth,
                                      n_components=2)  # fmt: skip
    np.testing.assert_array_equal(result.params.means, direct.params.means)
    assert result.loglik == direct.loglik and result.status == direct.status
    np.testing.assert_allclose(result.imputed, filled, rtol=1e-15)
    assert result.diagnostics["n_rows_used"] == mcar.n


def test_without_missing_values_every_baseline_is_em():
    data = generate("gaussian_mixture", np.random.default_rng(4), n=200, K=2, d=2)
    direct = EMFitter(**EM).fit(data, np.random.default_rng(1))
    for method in ("complete_case", "mean_impute", "mice"):
        result = build_fitter(method, EM).fit(data, np.random.default_rng(1))
        np.testing.assert_array_equal(result.params.means, direct.params.means)
        assert result.loglik == direct.loglik and result.imputed is None


def test_bad_settings_one_line():
    for factory, settings, key in [
        (CompleteCaseEM, {"n_restart": 3}, "n_restart=3"),
        (MeanImputeEM, {"init": "bogus"}, "init='bogus'"),
        (MiceEM, {"m": 1}, "m=1"),
        (MiceEM, {"mice_max_iter": 0}, "mice_max_iter=0"),
        (MiceEM, {"select_k": [1, 2]}, "select_k=[1, 2]: not with mice"),
    ]:
        with pytest.raises(ValueError) as err:
            factory(**settings)
        assert str(err.value).startswith(key) and "\n" not in str(err.value)


def test_no_complete_row_is_a_one_line_error():
    data = generate("gaussian_mixture", np.random.default_rng(4), n=30, K=2, d=2)
    X = data.X.copy()
    X[:, 1] = np.nan  # every row misses feature 1
    holed = Dataset(X, data.labels, data.truth, 2, {}, mask=np.isnan(X), X_complete=data.X)
    with pytest.raises(ValueError, match=r"^data: no row is complete") as err:
        CompleteCaseEM(**EM).fit(holed, np.random.default_rng(0))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"^data: column 1 has no observed value"):
        MeanImputeEM(**EM).fit(holed, np.random.default_rng(0))


# ---- MICE and Rubin's rules ----------------------------------------------------------------------
def test_rubin_rules_by_hand():
    z = stats.norm.ppf(0.95)
    estimates, ses = np.array([1.0, 1.4, 0.9, 1.2]), np.array([0.2, 0.25, 0.22, 0.18])
    walds = [(e - z * s, e + z * s) for e, s in zip(estimates, ses, strict=True)]
    lower, upper = rubin_interval(walds, 0.9)
    m, qbar = 4, estimates.mean()
    u, b = np.mean(ses**2), np.sum((estimates - qbar) ** 2) / (m - 1)
    t = u + (1 + 1 / m) * b
    nu = (m - 1) * (1 + u / ((1 + 1 / m) * b)) ** 2
    half = stats.t.ppf(0.95, nu) * np.sqrt(t)
    assert lower == pytest.approx(qbar - half, rel=1e-12)
    assert upper == pytest.approx(qbar + half, rel=1e-12)
    # identical imputations: no between variance, the Wald interval itself
    same = rubin_interval([(np.array([0.5]), np.array([1.5]))] * 3, 0.9)
    np.testing.assert_allclose(same, ([0.5], [1.5]), rtol=1e-12)


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="the mice extra")
def test_mice_recovers_the_means_and_pools_intervals(mcar):
    result = build_fitter("mice", {**EM, "m": 4, "interval_level": 0.9}).fit(
        mcar, np.random.default_rng(7)
    )
    assert result.method == "mice" and result.diagnostics["mice_m"] == 4
    order = np.argsort(result.params.means[:, 0])
    truth = mcar.truth.means[np.argsort(mcar.truth.means[:, 0])]
    np.testing.assert_allclose(result.params.means[order], truth, atol=0.3)
    lower, upper = result.intervals["means"]
    assert np.all(lower < result.params.means) and np.all(result.params.means < upper)
    assert result.loglik == pytest.approx(observed_log_likelihood(result.params, mcar.X))
    assert result.restarts is None and result.best_known is None
    observed = ~mcar.mask
    np.testing.assert_array_equal(result.imputed[observed], mcar.X[observed])
    assert not np.isnan(result.imputed).any()


def test_mice_without_scikit_learn_is_a_one_line_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a)
    )
    with pytest.raises(ValueError, match=r"^method='mice': needs scikit-learn") as err:
        MiceEM()
    assert "pip install" in str(err.value) and "\n" not in str(err.value)


# ---- evaluation of fits on incomplete data ------------------------------------------------------
def test_evaluate_scores_incomplete_data_from_observed_values(mcar):
    from workbench.evaluate import evaluate_fit

    result = build_fitter("mean_impute", EM).fit(mcar, np.random.default_rng(6))
    metrics = evaluate_fit(mcar, result)
    # ARI from each row's observed coordinates: the same as predicting on the complete values
    # would nearly give, far above what NaN rows would (predict on NaN gives one label)
    from workbench.evaluate import adjusted_rand_index

    on_complete = adjusted_rand_index(mcar.labels, result.params.predict(mcar.X_complete))
    assert metrics["ari"] > 0.9 and abs(metrics["ari"] - on_complete) < 0.1
    error = (result.imputed - mcar.X_complete)[mcar.mask]
    assert metrics["imputation_rmse"] == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-12)
    assert 0 < metrics["imputation_rmse_sd"] < 2
    cc = evaluate_fit(mcar, build_fitter("complete_case", EM).fit(mcar, np.random.default_rng(6)))
    assert "imputation_rmse" not in cc  # complete case imputes nothing

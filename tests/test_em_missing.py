"""EM for Gaussian mixtures with values missing at random, against independent references:
complete-data EM when nothing is missing, a direct numerical maximisation of the observed-data
log-likelihood (scipy.optimize), the classical EM for one multivariate normal with missing
values (Little & Rubin 2002, written out here), and the rate theory."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from workbench.em import derivatives, loop
from workbench.em.covariance.registry import strategy
from workbench.em.fitter import EMFitter
from workbench.em.missing_model import MISSING_TYPES
from workbench.em.run import EMSettings, init_state, loop_inputs, run_em
from workbench.em.theory import trace_rate


def two_clusters(n=400, d=3, seed=0, fraction=0.25):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    cov = np.eye(d) * 0.6 + 0.25
    X = rng.multivariate_normal(np.zeros(d), cov, size=n) + labels[:, None] * 2.2
    Xm = X.copy()
    Xm[rng.random(X.shape) < fraction] = np.nan
    keep = ~np.isnan(Xm).all(axis=1)
    return X[keep], Xm[keep]


def start_state(X, cov_type, K=2, seed=1):
    rng = np.random.default_rng(seed)
    Xf = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
    weights = np.full((1, K), 1.0 / K)
    means = Xf[rng.choice(len(X), K, replace=False)][None]
    full = np.broadcast_to(np.cov(Xf.T), (1, K, X.shape[1], X.shape[1]))
    covs = strategy(cov_type).from_full(full, weights)
    return init_state(weights, means, covs, EMSettings(covariance_type=cov_type), Xf.var(0))


def observed_loglik(Xm, weights, means, covariances):
    """sum_i log sum_k w_k N(x_O | mu_O, S_OO), straight from scipy."""
    total = 0.0
    for x in Xm:
        o = ~np.isnan(x)
        dens = sum(
            w * stats.multivariate_normal(mu[o], S[np.ix_(o, o)]).pdf(x[o])
            for w, mu, S in zip(weights, means, covariances, strict=True)
        )
        total += np.log(dens)
    return total


@pytest.mark.parametrize("cov_type", MISSING_TYPES)
def test_nothing_missing_is_complete_data_em(cov_type):
    """The missing-data model on complete data (one pattern) gives complete-data EM's run."""
    X, _ = two_clusters(seed=2)
    settings = EMSettings(covariance_type=cov_type, max_iter=60, tol=0.0)
    start = start_state(X, cov_type)
    complete = run_em(X, start, settings)
    model, XT, cfg, params, shift = loop_inputs(X, start, settings, missing=True)
    out = loop.run(model, XT, params, cfg, loop.LoopSettings(60, 0.0))
    np.testing.assert_allclose(out.traces[0], complete.traces[0], rtol=1e-10)
    np.testing.assert_allclose(out.params[1][0] + shift, complete.state.means[0], rtol=1e-10)
    np.testing.assert_allclose(out.params[2][0], complete.state.covariances[0], rtol=1e-10)


@pytest.mark.parametrize("cov_type", MISSING_TYPES)
def test_log_likelihood_is_the_observed_data_one_and_never_decreases(cov_type):
    _, Xm = two_clusters(n=200, seed=3)
    run = run_em(Xm, start_state(Xm, cov_type), EMSettings(covariance_type=cov_type))
    assert run.status[0] == "converged"
    trace = run.traces[0]
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    s = run.state
    covs = s.covariances[0]
    if covs.ndim == 2:  # diag: the matrices
        covs = np.stack([np.diag(v) for v in covs])
    expected = observed_loglik(Xm, s.weights[0], s.means[0], covs)
    assert run.loglik[0] == pytest.approx(expected, rel=1e-10)


def test_fixed_point_is_the_direct_maximum_of_the_observed_likelihood():
    """scipy.optimize on the observed-data log-likelihood (weights by logit, covariances by
    their Cholesky factors) from the EM fit cannot climb higher, and lands on it."""
    _, Xm = two_clusters(n=150, d=2, seed=4, fraction=0.3)
    settings = EMSettings(covariance_type="full", tol=1e-13, max_iter=20_000)
    run = run_em(Xm, start_state(Xm, "full"), settings)
    s = run.state
    d = 2
    rows, cols = np.tril_indices(d)

    def unpack(theta):
        w = 1 / (1 + np.exp(-theta[0]))
        means = theta[1 : 1 + 2 * d].reshape(2, d)
        covs = []
        for k in range(2):
            L = np.zeros((d, d))
            L[rows, cols] = theta[1 + 2 * d + 3 * k : 1 + 2 * d + 3 * (k + 1)]
            covs.append(L @ L.T)
        return [w, 1 - w], means, covs

    theta0 = [np.log(s.weights[0, 0] / s.weights[0, 1]), *s.means[0].ravel()]
    for k in range(2):
        theta0 += list(np.linalg.cholesky(s.covariances[0, k])[rows, cols])
    best = optimize.minimize(lambda t: -observed_loglik(Xm, *unpack(t)), np.array(theta0),
                             method="BFGS", options={"gtol": 1e-8})  # fmt: skip
    assert -best.fun == pytest.approx(run.loglik[0], abs=1e-6)
    w, means, _ = unpack(best.x)
    np.testing.assert_allclose(means, s.means[0], atol=1e-4)


def classical_mvn_em(Xm, iterations=1000):
    """EM for one multivariate normal with missing values (Little & Rubin 2002, sec. 11.2)."""
    mu = np.nanmean(Xm, axis=0)
    S = np.diag(np.nanvar(Xm, axis=0))
    n, d = Xm.shape
    for _ in range(iterations):
        sums, second = np.zeros(d), np.zeros((d, d))
        for x in Xm:
            o, m = ~np.isnan(x), np.isnan(x)
            xhat, C = x.copy(), np.zeros((d, d))
            if m.any():
                B = S[np.ix_(m, o)] @ np.linalg.inv(S[np.ix_(o, o)])
                xhat[m] = mu[m] + B @ (x[o] - mu[o])
                C[np.ix_(m, m)] = S[np.ix_(m, m)] - B @ S[np.ix_(o, m)]
            sums += xhat
            second += np.outer(xhat, xhat) + C
        mu = sums / n
        S = second / n - np.outer(mu, mu)
    return mu, S


def test_one_component_reproduces_the_classical_multivariate_normal_em():
    _, Xm = two_clusters(n=120, d=3, seed=5, fraction=0.3)
    fit = EMFitter(n_components=1, tol=0.0, max_iter=1000, reference=False)
    result = fit.fit_array(Xm, np.random.default_rng(0))
    mu, S = classical_mvn_em(Xm)
    np.testing.assert_allclose(result.params.means[0], mu, rtol=1e-8)
    np.testing.assert_allclose(result.params.covariances[0], S, rtol=1e-7)


def test_measured_rate_is_the_fraction_of_missing_information():
    """The rate read off the trace equals the spectral radius of the EM map's Jacobian (the
    largest eigenvalue of the fraction of missing information) within 5%; more missing values,
    a slower EM."""
    rates = []
    for fraction in (0.1, 0.5):
        _, Xm = two_clusters(n=3000, d=2, seed=6, fraction=fraction)
        settings = EMSettings(covariance_type="full", tol=1e-15, max_iter=50_000)
        run = run_em(Xm, start_state(Xm, "full"), settings)
        model, XT, cfg, params, _ = loop_inputs(Xm, run.state, settings)
        theory = derivatives.rate(model, XT, cfg, model.take(params, 0))
        assert trace_rate(run.traces[0]) == pytest.approx(theory, rel=0.05)
        rates.append(theory)
    assert rates[1] > rates[0]


def test_the_fitter_takes_missing_values_and_gives_intervals():
    X, Xm = two_clusters(n=300, seed=7)
    Xm = np.vstack([Xm, np.full((2, 3), np.nan)])  # rows of nothing are dropped and counted
    fit = EMFitter(n_components=2, n_restarts=3, interval_level=0.9, rate_diagnostics=True)
    result = fit.fit_array(Xm, np.random.default_rng(0))
    assert result.status == "converged"
    assert result.diagnostics["rows_all_missing"] == 2
    assert 0.2 < result.diagnostics["missing_fraction"] < 0.3
    lo, hi = result.intervals["means"]
    assert np.all(lo < result.params.means) and np.all(result.params.means < hi)
    with pytest.raises(ValueError, match="^covariance_type='tied'"):
        EMFitter(n_components=2, covariance_type="tied").fit_array(Xm, np.random.default_rng(0))


def test_squarem_on_incomplete_data_reaches_the_same_optimum_faster():
    _, Xm = two_clusters(n=600, d=2, seed=8, fraction=0.3)
    settings = EMSettings(covariance_type="full", tol=1e-12, max_iter=20_000)
    start = start_state(Xm, "full")
    plain, fast = run_em(Xm, start, settings), run_em(Xm, start, settings._replace(squarem=True))
    assert plain.status[0] == fast.status[0] == "converged"
    assert fast.loglik[0] == pytest.approx(plain.loglik[0], abs=1e-6)
    assert plain.n_iter[0] > 2 * fast.n_iter[0]

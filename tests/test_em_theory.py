"""Convergence-rate theory and SQUAREM, against published values and plain EM."""

import numpy as np
import pytest

from workbench.em.fitter import EMFitter
from workbench.em.run import EMSettings, run_em
from workbench.em.theory import dm_rate, measured_rate, population_rate, single_state
from workbench.params import MixtureParams

# Fraction of missing information for two unit Gaussians, weights 1/2, means +-delta/2
# (reference.md, from Redner & Walker 1984 / Meng & Rubin 1991 style calculations).
PUBLISHED = {
    2: (0.995, 0.450),
    3: (0.932, 0.444),
    4: (0.725, 0.274),
    6: (0.181, 0.037),
    8: (0.013, 0.002),
}


def two_unit_gaussians(delta, n, seed):
    truth = MixtureParams([0.5, 0.5], [[-delta / 2], [delta / 2]], [[[1.0]], [[1.0]]])
    return truth, truth.sample(n, np.random.default_rng(seed))[0]


@pytest.mark.parametrize("delta", sorted(PUBLISHED))
def test_population_rate_matches_published_values(delta):
    all_free, means_only = PUBLISHED[delta]
    assert population_rate(delta) == pytest.approx(all_free, abs=6e-4)
    assert population_rate(delta, free="means") == pytest.approx(means_only, abs=6e-4)


@pytest.mark.parametrize("delta", [3, 4, 6])
def test_measured_rate_matches_dm_matrix(delta):
    """The observed step ratio of an EM run equals the computed spectral radius within 5%."""
    truth, X = two_unit_gaussians(delta, 5000, seed=delta)
    settings = EMSettings(covariance_type="full", tol=1e-14, max_iter=100000)
    fit = EMFitter(init="truth", tol=1e-14, max_iter=100000).fit_array(X, None, truth=truth)
    p = fit.params
    computed = dm_rate(X, single_state(p.weights, p.means, p.covariances, settings, X), settings)
    start = single_state(
        [0.6, 0.4], [[-delta / 2 + 0.3], [delta / 2 + 0.2]], [[[1.3]], [[0.8]]], settings, X
    )
    measured = measured_rate(X, start, settings)
    assert measured == pytest.approx(computed, rel=0.05)


@pytest.mark.parametrize("delta", [3, 4])
def test_sample_rate_approaches_population_rate(delta):
    truth, X = two_unit_gaussians(delta, 40000, seed=10 + delta)
    settings = EMSettings(covariance_type="full")
    fit = EMFitter(init="truth", tol=1e-13, max_iter=100000).fit_array(X, None, truth=truth)
    p = fit.params
    rate = dm_rate(X, single_state(p.weights, p.means, p.covariances, settings, X), settings)
    assert rate == pytest.approx(population_rate(delta), rel=0.03)


def test_squarem_reaches_the_em_optimum_with_far_fewer_map_evaluations():
    truth, X = two_unit_gaussians(2.0, 2000, seed=0)
    settings = EMSettings(covariance_type="full", tol=1e-15, max_iter=200000)
    start = single_state([0.6, 0.4], [[-1.5], [0.5]], [[[1.5]], [[0.7]]], settings, X)
    accelerated = run_em(X, start, settings._replace(squarem=True))
    plain = run_em(X, start, settings)
    assert accelerated.status[0] == plain.status[0] == "converged"
    assert accelerated.loglik[0] >= plain.loglik[0] - 1e-9 * abs(plain.loglik[0])
    trace = accelerated.traces[0]
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    assert plain.n_iter[0] >= 5 * accelerated.n_iter[0]


def test_fitter_with_squarem_restarts():
    truth, X = two_unit_gaussians(4.0, 500, seed=3)
    fit = EMFitter(init="random_from_data", n_restarts=4, acceleration="squarem").fit_array(
        X, np.random.default_rng(0), truth=truth
    )
    plain = EMFitter(init="truth", tol=1e-12).fit_array(X, None, truth=truth)
    assert len(fit.restarts.loglik) == 4
    assert fit.loglik == pytest.approx(plain.loglik, rel=1e-8)


def test_wald_intervals_cover_at_the_nominal_rate():
    """90% observed-information intervals over 120 replicates: coverage within 3 binomial
    Monte Carlo standard errors of 0.9 for each parameter family."""
    from workbench.evaluate import interval_coverage

    truth = MixtureParams([0.3, 0.7], [[-2.0], [2.0]], [[[1.0]], [[0.5]]])
    hits: dict[str, list[float]] = {}
    replicates = 120
    for rep in range(replicates):
        rng = np.random.default_rng(100 + rep)
        X = truth.sample(300, rng)[0]
        fit = EMFitter(init="truth", interval_level=0.9).fit_array(X, rng, truth=truth)
        for key, value in interval_coverage(fit.intervals, fit.params, truth).items():
            hits.setdefault(key, []).append(value)
    mc_error = np.sqrt(0.9 * 0.1 / replicates)  # conservative: components are correlated
    for name in ("weights", "means", "scales"):
        assert np.mean(hits[f"{name}_coverage"]) == pytest.approx(0.9, abs=3 * mc_error)


@pytest.mark.parametrize("delta", [2, 4])
def test_rate_from_the_trace_matches_the_dm_matrix(delta):
    """The fitter's rate diagnostics: measured from the log-likelihood trace vs computed."""
    truth, X = two_unit_gaussians(delta, 3000, seed=20 + delta)
    fit = EMFitter(
        init="random_from_data", tol=1e-14, max_iter=100000, rate_diagnostics=True
    ).fit_array(X, np.random.default_rng(0), truth=truth)
    d = fit.diagnostics
    assert d["rate_measured"] == pytest.approx(d["rate_theory"], rel=0.05)


def test_jacobian_of_the_means_only_map_matches_its_closed_form():
    """1-D, K = 2, weights and variances fixed: the map is mu_k' = sum r_ik x_i / sum r_ik with
    d r_ik / d mu_j = r_ik (1[k = j] - r_ij) (x_i - mu_j) / s_j^2, so its Jacobian is
    sum_i (x_i - mu_k') d r_ik / d mu_j / sum_i r_ik. The central difference agrees to 5e-9
    (measured 9.5e-10)."""
    from scipy.stats import norm

    from workbench.em.theory import dm_jacobian

    w, m, v = np.array([0.4, 0.6]), np.array([-1.0, 1.2]), np.array([1.0, 1.5])
    X = MixtureParams(w, m[:, None], v[:, None, None]).sample(400, np.random.default_rng(5))[0]
    x = X[:, 0]
    dens = w * norm.pdf(x[:, None], m, np.sqrt(v))
    r = dens / dens.sum(axis=1, keepdims=True)
    mapped = (r * x[:, None]).sum(axis=0) / r.sum(axis=0)
    expected = np.array(
        [
            [
                np.sum((x - mapped[k]) * r[:, k] * ((k == j) - r[:, j]) * (x - m[j]) / v[j])
                / r[:, k].sum()
                for j in range(2)
            ]
            for k in range(2)
        ]
    )
    settings = EMSettings(fixed_weights=w, fixed_covariances=v[:, None, None])
    state = single_state(w, m[:, None], v[:, None, None], settings, X)
    np.testing.assert_allclose(dm_jacobian(X, state, settings), expected, rtol=0, atol=5e-9)


@pytest.mark.parametrize("unit", [1e-3, 1e3])
def test_dm_rate_does_not_depend_on_the_datas_units(unit):
    """The EM map commutes with x -> a x, so its Jacobian's spectral radius is the same for data
    in any unit (steps of a fixed floor of 1 left the parameter space for data in small units:
    NaN)."""
    truth = MixtureParams([0.4, 0.6], [[-1.5], [1.5]], [[[1.0]], [[1.0]]])
    X = truth.sample(500, np.random.default_rng(9))[0]
    settings = EMSettings()
    rates = []
    for a in (1.0, unit):
        scaled = MixtureParams(truth.weights, truth.means * a, truth.covariances * a**2)
        fit = EMFitter(init="truth", tol=1e-12, max_iter=100000).fit_array(
            X * a, None, truth=scaled
        )
        p = fit.params
        state = single_state(p.weights, p.means, p.covariances, settings, X * a)
        rates.append(dm_rate(X * a, state, settings))
    assert np.isfinite(rates[1]) and rates[1] == pytest.approx(rates[0], rel=1e-8)

"""The hand-written EM against independent references: scikit-learn and sampling theory."""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from workbench.em.covariance.registry import strategy
from workbench.em.fitter import EMFitter
from workbench.evaluate import adjusted_rand_index, match_components, recovery_errors
from workbench.params import MixtureParams

COV_TYPES = ["full", "diag", "spherical", "tied"]


def three_clusters(rng, n=600, d=2):
    truth = MixtureParams(
        [0.2, 0.5, 0.3],
        [[0.0] * d, [3.0] * d, [-3.0] + [1.0] * (d - 1)],
        np.stack([np.eye(d) * s for s in (0.5, 1.0, 1.5)]),
    )
    return truth, truth.sample(n, rng)[0]


def start_params(truth: MixtureParams, cov_type: str, rng):
    """A start near, but not at, the truth, in the covariance type's shapes."""
    means = truth.means + rng.normal(scale=0.7, size=truth.means.shape)
    weights = np.full(truth.n_components, 1.0 / truth.n_components)
    covs = strategy(cov_type).from_full(truth.full_covariances() * 1.3, weights)
    return weights, means, covs


def sklearn_precisions(covs, cov_type):
    if cov_type in ("full", "tied"):
        return np.linalg.inv(covs)
    return 1.0 / covs


def sklearn_fit(X, start, cov_type, max_iter, tol):
    weights, means, covs = start
    gm = GaussianMixture(
        len(weights),
        covariance_type=cov_type,
        weights_init=weights,
        means_init=means,
        precisions_init=sklearn_precisions(covs, cov_type),
        max_iter=max_iter,
        tol=tol,
        reg_covar=0.0,  # our floor (1e-6) is inactive on these data; sklearn's would add 1e-6
    )
    return gm.fit(X)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_same_iterates_as_sklearn(cov_type):
    """From the same start, 25 EM iterations give the same parameters as scikit-learn."""
    rng = np.random.default_rng(1)
    truth, X = three_clusters(rng)
    start = start_params(truth, cov_type, rng)
    init = dict(zip(("weights", "means", "covariances"), (a.tolist() for a in start), strict=True))
    ours = EMFitter(covariance_type=cov_type, init=init, tol=0.0, max_iter=25)
    result = ours.fit_array(X, rng, n_components=3)
    gm = sklearn_fit(X, start, cov_type, max_iter=25, tol=0.0)
    assert result.n_iter == 25
    np.testing.assert_allclose(result.params.weights, gm.weights_, rtol=1e-9)
    np.testing.assert_allclose(result.params.means, gm.means_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.params.covariances, gm.covariances_, rtol=1e-9)
    assert result.loglik == pytest.approx(gm.score(X) * len(X), rel=1e-10)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_same_optimum_as_sklearn(cov_type):
    """Run to convergence from the same start: log-likelihoods agree within 1e-8 relative."""
    rng = np.random.default_rng(2)
    truth, X = three_clusters(rng, n=800, d=3)
    start = start_params(truth, cov_type, rng)
    init = dict(zip(("weights", "means", "covariances"), (a.tolist() for a in start), strict=True))
    result = EMFitter(covariance_type=cov_type, init=init, tol=1e-13, max_iter=20000).fit_array(
        X, rng, n_components=3
    )
    gm = sklearn_fit(X, start, cov_type, max_iter=20000, tol=1e-14)
    assert result.status == "converged"
    assert result.loglik == pytest.approx(gm.score(X) * len(X), rel=1e-8)
    assert result.diagnostics["bic"] == pytest.approx(gm.bic(X), rel=1e-8)
    assert result.diagnostics["aic"] == pytest.approx(gm.aic(X), rel=1e-8)


def test_density_and_assignments_match_sklearn():
    rng = np.random.default_rng(3)
    truth, X = three_clusters(rng)
    gm = GaussianMixture(3, random_state=0).fit(X)
    params = MixtureParams(gm.weights_, gm.means_, gm.covariances_, "full")
    X_new = truth.sample(50, rng)[0]
    np.testing.assert_allclose(params.score_samples(X_new), gm.score_samples(X_new), rtol=1e-12)
    np.testing.assert_allclose(params.responsibilities(X_new), gm.predict_proba(X_new), atol=1e-12)
    np.testing.assert_array_equal(params.predict(X_new), gm.predict(X_new))
    assert params.bic(X) == pytest.approx(gm.bic(X), rel=1e-12)
    assert params.aic(X) == pytest.approx(gm.aic(X), rel=1e-12)


def test_adjusted_rand_index_matches_sklearn():
    rng = np.random.default_rng(4)
    for _ in range(20):
        a = rng.integers(0, 4, size=200)
        b = np.where(rng.random(200) < 0.7, a, rng.integers(0, 5, size=200))
        assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_recovers_truth_within_sampling_error(cov_type):
    """Well-separated data: every estimate within 5 standard errors, errors derived from n."""
    rng = np.random.default_rng(5)
    n = 20000
    truth = MixtureParams(
        [0.3, 0.7], [[-4.0, 0.0], [4.0, 1.0]], [np.diag([1.0, 2.0]), np.diag([0.5, 1.0])]
    )
    X, _ = truth.sample(n, rng)
    result = EMFitter(covariance_type=cov_type, init="kmeans++", n_restarts=3).fit_array(
        X, rng, n_components=2
    )
    fitted = result.params.permuted(match_components(result.params, truth))
    w = truth.weights
    var = np.diagonal(truth.full_covariances(), axis1=1, axis2=2)  # (K, d)
    n_k = (n * w)[:, None]
    assert np.all(np.abs(fitted.weights - w) <= 5 * np.sqrt(w * (1 - w) / n))
    assert np.all(np.abs(fitted.means - truth.means) <= 5 * np.sqrt(var / n_k))
    fitted_var = np.diagonal(fitted.full_covariances(), axis1=1, axis2=2)
    assert np.all(np.abs(fitted_var - var) <= 5 * var * np.sqrt(2 / n_k))
    errors = recovery_errors(result.params, truth)
    assert errors["overall_rmse"] < 0.05


def test_permutation_matching_recovers_order():
    rng = np.random.default_rng(6)
    truth, _ = three_clusters(rng)
    shuffled = truth.permuted(np.array([2, 0, 1]))
    order = match_components(shuffled, truth)
    np.testing.assert_array_equal(shuffled.permuted(order).means, truth.means)
    assert recovery_errors(shuffled, truth)["overall_rmse"] == 0.0

"""Synthetic data generators: determinism, exact separation, covariance bounds, moments, errors.

Statistical tolerances are derived from the sample size: a sample mean of unit-variance values is
checked to 5 standard errors, 5 / sqrt(n_k); a covariance entry of whitened data z to
6 sqrt(kappa / n_k), since Var(z_i z_j) <= E[z_i^2 z_j^2] <= kappa (Cauchy-Schwarz), with kappa
the marginal kurtosis of the family. Seeds are fixed, so the tests are deterministic.
"""

import inspect
import json
import types
import typing

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import pdist

from workbench.data import GENERATORS, Dataset, generate
from workbench.data.gaussian import gaussian_mixture
from workbench.data.registry import generator_settings

MIXTURES = ("gaussian_mixture", "student_t", "skew_normal", "uniform")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def achieved_c(ds: Dataset) -> float:
    """min pairwise mean distance / sqrt(d * largest eigenvalue of any truth covariance)."""
    covs = ds.truth.full_covariances()
    return pdist(ds.truth.means).min() / np.sqrt(ds.d * np.linalg.eigvalsh(covs).max())


# ---- determinism and records ---------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_deterministic_given_seed(name):
    extra = {} if name == "founding" else {"d": 3, "covariance": "full", "weights": "dirichlet"}
    a, b = generate(name, rng(7), **extra), generate(name, rng(7), **extra)
    for x, y in [(a.X, b.X), (a.labels, b.labels), (a.truth.means, b.truth.means)]:
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.truth.covariances, b.truth.covariances)
    np.testing.assert_array_equal(a.truth.weights, b.truth.weights)
    assert a.info == b.info
    assert not np.array_equal(a.X, generate(name, rng(8), **extra).X)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_record_shapes_and_info(name):
    ds = generate(name, rng(1))
    K = ds.truth.n_components
    assert ds.X.shape == (ds.n, ds.d) and ds.labels.shape == (ds.n,)
    assert ds.truth.covariance_type == "full"
    assert ds.truth.covariances.shape == (K, ds.d, ds.d)
    assert set(np.unique(ds.labels)) <= set(range(K))
    assert ds.info["generator"] == name
    json.dumps(ds.info, allow_nan=False)  # plain JSON-able values
    for key in generator_settings(name):
        assert key in ds.info


def test_registry_matches_direct_call():
    direct = gaussian_mixture(rng(3), K=3, d=2)
    via = generate("gaussian_mixture", rng(3), K=3, d=2)
    np.testing.assert_array_equal(direct.X, via.X)


# ---- separation and covariances ------------------------------------------------------------------
@pytest.mark.parametrize("name", MIXTURES)
@pytest.mark.parametrize(
    "K,d,covariance",
    [(2, 1, "spherical"), (5, 1, "full"), (2, 2, "identity"), (3, 2, "diag"), (5, 3, "full"),
     (8, 10, "full"), (4, 5, "spherical")],
)  # fmt: skip
@pytest.mark.parametrize("c", [0.5, 3.0])
def test_separation_exact(name, K, d, covariance, c):
    ds = generate(name, rng(K * d), n=50, K=K, d=d, covariance=covariance, separation=c)
    assert achieved_c(ds) == pytest.approx(c, rel=1e-10)
    np.testing.assert_allclose(ds.truth.means.mean(axis=0), 0.0, atol=1e-12 * c * K)


def test_one_dimensional_means_equally_spaced_and_single_component():
    ds = gaussian_mixture(rng(), K=4, separation=2.0, covariance="identity")
    np.testing.assert_allclose(ds.truth.means.ravel(), [-3.0, -1.0, 1.0, 3.0], atol=1e-12)
    one = gaussian_mixture(rng(), K=1, d=3, n=10)
    np.testing.assert_array_equal(one.truth.means, np.zeros((1, 3)))
    assert one.info["min_mean_distance"] is None


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_random_covariances_bounded(covariance):
    ds = gaussian_mixture(
        rng(4), n=20, K=20, d=4, covariance=covariance, max_condition=5.0, min_variance=0.3,
        max_variance=3.0,
    )  # fmt: skip
    covs = ds.truth.covariances
    np.testing.assert_array_equal(covs, np.swapaxes(covs, -1, -2))
    eig = np.linalg.eigvalsh(covs)
    assert np.all(eig[:, -1] / eig[:, 0] <= 5.0 * (1 + 1e-10))
    assert np.all((eig[:, -1] >= 0.3 - 1e-12) & (eig[:, -1] <= 3.0 + 1e-12))
    offdiag = covs - np.diagonal(covs, axis1=1, axis2=2)[:, :, None] * np.eye(4)
    assert (np.abs(offdiag).max() == 0.0) == (covariance == "diag")


def test_identity_spherical_and_given_covariances():
    eye = gaussian_mixture(rng(), K=3, d=2, covariance="identity").truth.covariances
    np.testing.assert_array_equal(eye, np.broadcast_to(np.eye(2), (3, 2, 2)))
    sph = gaussian_mixture(rng(), K=3, d=2).truth.covariances
    np.testing.assert_allclose(sph, sph[:, :1, :1] * np.eye(2))
    given = [[[2.0, 0.5], [0.5, 1.0]], [[1.0, 0.0], [0.0, 3.0]]]
    full = gaussian_mixture(rng(), d=2, covariance="full", variances=given).truth.covariances
    np.testing.assert_array_equal(full, given)
    diag = gaussian_mixture(rng(), d=2, covariance="diag", variances=[[1, 2], [3, 4]])
    np.testing.assert_array_equal(
        np.diagonal(diag.truth.covariances, axis1=1, axis2=2), [[1, 2], [3, 4]]
    )


# ---- weights -------------------------------------------------------------------------------------
def test_weights_equal_given_dirichlet():
    assert np.array_equal(gaussian_mixture(rng(), K=4).truth.weights, np.full(4, 0.25))
    given = gaussian_mixture(rng(), K=3, weights=[0.2, 0.3, 0.5]).truth.weights
    np.testing.assert_allclose(given, [0.2, 0.3, 0.5], rtol=1e-15)
    w1 = gaussian_mixture(rng(1), K=5, weights="dirichlet").truth.weights
    w2 = gaussian_mixture(rng(2), K=5, weights="dirichlet").truth.weights
    assert np.all(w1 > 0) and w1.sum() == pytest.approx(1.0, abs=1e-12)
    assert not np.allclose(w1, w2)
    flat = gaussian_mixture(rng(), K=5, weights="dirichlet", dirichlet_alpha=1e8).truth.weights
    np.testing.assert_allclose(flat, 0.2, atol=1e-3)


# ---- moments per true label ----------------------------------------------------------------------
def _whitened(ds: Dataset, k: int) -> np.ndarray:
    chol = np.linalg.cholesky(ds.truth.full_covariances()[k])
    return np.linalg.solve(chol, (ds.X[ds.labels == k] - ds.truth.means[k]).T).T


def _skewnorm_std_moment(alpha: float, power: int) -> float:
    mean, var = stats.skewnorm.stats(alpha, moments="mv")
    return stats.skewnorm.expect(lambda x: ((x - mean) / np.sqrt(var)) ** power, args=(alpha,))


KURTOSIS = {
    "gaussian_mixture": ({}, 3.0),
    "uniform": ({}, 1.8),
    "student_t": ({"df": 10.0}, 3.0 + 6.0 / (10.0 - 4.0)),
    "skew_normal": ({"skew_alpha": 4.0}, float(_skewnorm_std_moment(4.0, 4))),
}


@pytest.mark.parametrize("name", MIXTURES)
def test_moments_match_truth(name):
    extra, kappa = KURTOSIS[name]
    n, K, d = 30_000, 3, 3
    ds = generate(name, rng(11), n=n, K=K, d=d, covariance="full", weights=[0.2, 0.3, 0.5], **extra)
    counts = np.bincount(ds.labels, minlength=K)
    w = ds.truth.weights
    assert np.all(np.abs(counts / n - w) <= 5 * np.sqrt(w * (1 - w) / n))
    for k in range(K):
        z = _whitened(ds, k)
        nk = z.shape[0]
        assert np.all(np.abs(z.mean(axis=0)) <= 5 / np.sqrt(nk))
        assert np.all(np.abs(np.cov(z.T) - np.eye(d)) <= 6 * np.sqrt(kappa / nk))


def test_student_t_heavy_tails_means_and_scales():
    ds = generate("student_t", rng(5), n=20_000, K=2, d=2, df=3.0, covariance="full")
    S = np.asarray(ds.info["scales"])
    np.testing.assert_allclose(S * 3.0 / (3.0 - 2.0), ds.truth.covariances, rtol=1e-12)
    for k in range(2):  # variance is finite at df = 3, so the mean has a standard error
        z = _whitened(ds, k)
        assert np.all(np.abs(z.mean(axis=0)) <= 5 / np.sqrt(z.shape[0]))
    assert ds.info["truth_covariances"] == "covariance"


def test_student_t_infinite_variance_uses_scale():
    ds = generate("student_t", rng(6), n=20_000, K=2, d=2, df=1.5, covariance="full")
    assert ds.info["truth_covariances"] == "scale"
    np.testing.assert_allclose(ds.info["scales"], ds.truth.covariances, rtol=1e-12)
    se_median = 1 / (2 * stats.t.pdf(0.0, 1.5))  # asymptotic sd of a median, times sqrt(n)
    for k in range(2):
        z = _whitened(ds, k)  # marginally t(1.5) with unit scale
        assert np.all(np.abs(np.median(z, axis=0)) <= 5 * se_median / np.sqrt(z.shape[0]))


def test_skew_normal_records_and_skewness():
    alpha = 4.0
    ds = generate("skew_normal", rng(9), n=30_000, K=2, d=2, covariance="diag", skew_alpha=alpha)
    mean, var = stats.skewnorm.stats(alpha, moments="mv")  # independent reference
    B = np.asarray(ds.info["scale_matrices"])
    loc = np.asarray(ds.info["locations"])
    np.testing.assert_allclose(loc + B.sum(axis=-1) * mean, ds.truth.means, atol=1e-12)
    np.testing.assert_allclose(B @ np.swapaxes(B, 1, 2) * var, ds.truth.covariances, rtol=1e-12)
    gamma, m6 = _skewnorm_std_moment(alpha, 3), _skewnorm_std_moment(alpha, 6)
    for k in range(2):  # per-dimension skewness of the whitened (here: standardised) data
        z = _whitened(ds, k)
        assert np.all(np.abs((z**3).mean(axis=0) - gamma) <= 6 * np.sqrt(m6 / z.shape[0]))


def test_uniform_support_is_the_box():
    ds = generate("uniform", rng(10), n=5_000, K=3, d=3, covariance="full")
    B = np.asarray(ds.info["scale_matrices"])
    np.testing.assert_allclose(B @ np.swapaxes(B, 1, 2) / 3.0, ds.truth.covariances, rtol=1e-10)
    u = np.einsum("nij,nj->ni", np.linalg.inv(B)[ds.labels], ds.X - ds.truth.means[ds.labels])
    assert np.all(np.abs(u) <= 1 + 1e-10) and np.abs(u).max() > 0.99


def test_wrong_k_and_founding():
    ds = generate("wrong_k", rng(), K_true=4, K_fit=2, d=2)
    assert ds.truth.n_components == 4 and ds.n_components_to_fit == 2
    assert achieved_c(ds) == pytest.approx(3.0, rel=1e-10)
    f = generate("founding", rng())
    assert f.X.shape == (9, 1) and np.all(np.diff(f.X[:, 0]) >= 0)
    assert np.bincount(f.labels).tolist() == [5, 4] and f.n_components_to_fit == 2
    np.testing.assert_array_equal(f.truth.means.ravel(), [-2.0, 2.0])
    assert generate("founding", rng(), n=9, weight1=0.01).info["n_per_component"] == [1, 8]


# ---- bad input -----------------------------------------------------------------------------------
BAD = [
    ("gaussian_mixture", {"n": -3}, "n"),
    ("gaussian_mixture", {"n": 2.5}, "n"),
    ("gaussian_mixture", {"n": True}, "n"),
    ("gaussian_mixture", {"K": 0}, "K"),
    ("gaussian_mixture", {"K": 10, "n": 5}, "K"),
    ("gaussian_mixture", {"d": 0}, "d"),
    ("gaussian_mixture", {"separation": -1.0}, "separation"),
    ("gaussian_mixture", {"separation": float("nan")}, "separation"),
    ("gaussian_mixture", {"weights": [0.5, 0.6]}, "weights"),
    ("gaussian_mixture", {"weights": [-0.5, 1.5]}, "weights"),
    ("gaussian_mixture", {"weights": [1.0]}, "weights"),
    ("gaussian_mixture", {"weights": "uniform"}, "weights"),
    ("gaussian_mixture", {"weights": "dirichlet", "dirichlet_alpha": 0.0}, "dirichlet_alpha"),
    ("gaussian_mixture", {"covariance": "tied"}, "covariance"),
    ("gaussian_mixture", {"variances": [1.0, 2.0, 3.0]}, "variances"),
    ("gaussian_mixture", {"variances": [1.0, -2.0]}, "variances"),
    ("gaussian_mixture", {"variances": [1.0, 2.0], "covariance": "identity"}, "variances"),
    ("gaussian_mixture", {"d": 2, "covariance": "full",
                          "variances": [[[1, 2], [0, 1]], [[1, 0], [0, 1]]]}, "variances"),
    ("gaussian_mixture", {"d": 2, "covariance": "full",
                          "variances": [[[1, 2], [2, 1]], [[1, 0], [0, 1]]]}, "variances"),
    ("gaussian_mixture", {"max_condition": 0.5}, "max_condition"),
    ("gaussian_mixture", {"min_variance": 0.0}, "min_variance"),
    ("gaussian_mixture", {"max_variance": 0.1}, "max_variance"),
    ("student_t", {"df": 0.0}, "df"),
    ("skew_normal", {"skew_alpha": float("inf")}, "skew_alpha"),
    ("uniform", {"K": -1}, "K"),
    ("wrong_k", {"K_true": 0}, "K_true"),
    ("wrong_k", {"K_fit": 0}, "K_fit"),
    ("wrong_k", {"K_fit": 9, "n": 5}, "K_fit"),
    ("founding", {"n": 1}, "n"),
    ("founding", {"sigma1": 0.0}, "sigma1"),
    ("founding", {"weight1": 1.0}, "weight1"),
]  # fmt: skip


@pytest.mark.parametrize("name,settings,key", BAD)
def test_bad_input_names_the_key(name, settings, key):
    with pytest.raises(ValueError, match=rf"^{key}=") as err:
        generate(name, rng(), **settings)
    assert "\n" not in str(err.value)


def test_registry_errors():
    with pytest.raises(ValueError, match=r"^generator='xyz': unknown; expected one of .*founding"):
        generate("xyz", rng())
    with pytest.raises(ValueError, match=r"^dff=3: unknown setting for generator 'student_t'"):
        generate("student_t", rng(), dff=3)
    with pytest.raises(ValueError, match=r"^rng="):
        generate("founding", 0)


def _matches(value, annotation) -> bool:
    """isinstance for the plain annotations generators use (int, float, str, list[...], unions)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(annotation)
        return isinstance(value, list) and all(_matches(v, item) for v in value)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, annotation) and not (annotation is int and isinstance(value, bool))


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_settings_are_introspectable(name):
    settings = generator_settings(name)
    assert settings and list(inspect.signature(GENERATORS[name]).parameters)[0] == "rng"
    for key, p in settings.items():
        assert p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not p.empty, key
        assert _matches(p.default, p.annotation), (key, p.annotation)
    assert _matches([[1.0, 2.0]], generator_settings("gaussian_mixture")["variances"].annotation)

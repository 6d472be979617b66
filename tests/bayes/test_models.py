"""Model graphs: variables, priors against scipy, Cholesky packing, back-transform to data units."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from workbench.bayes.models import (
    Draws,
    ModelSpec,
    build_model,
    placeholder_data,
    posterior_draws,
    unpack_cholesky,
)


@pytest.mark.parametrize(
    ("spec", "free", "data"),
    [
        (ModelSpec(2, 1), ["w", "mu", "sigma"], ["x"]),
        (ModelSpec(3, 1, identifiability="none"), ["w", "mu", "sigma"], ["x"]),
        (ModelSpec(2, 2), ["w", "mu", "chol_0", "chol_1"], ["x"]),
        (ModelSpec(1, 1), ["mu", "sigma"], ["x", "w_fixed"]),
        (
            ModelSpec(2, 1, fixed_weights=True, fixed_covariances=True),
            ["mu"],
            ["x", "w_fixed", "sigma_fixed"],
        ),
        (ModelSpec(2, 3, fixed_covariances=True), ["w", "mu"], ["x", "chol_fixed"]),
    ],
)
def test_model_variables(spec, free, data):
    model = build_model(spec)
    assert [rv.name for rv in model.free_RVs] == free == spec.free_names()
    assert set(data) <= set(model.named_vars)
    assert set(placeholder_data(spec)) == set(data)
    assert [rv.name for rv in model.observed_RVs] == ["obs"]


def test_ordered_transform_only_in_1d_ordered():
    assert ModelSpec(2, 1).ordered and not ModelSpec(2, 1, identifiability="none").ordered
    assert not ModelSpec(2, 2).ordered and not ModelSpec(1, 1).ordered
    model = build_model(ModelSpec(3, 1))
    assert "ordered" in type(model.rvs_to_transforms[model["mu"]]).__name__.lower()


def test_1d_log_density_matches_scipy():
    """Prior + likelihood of the 1-D model equals a hand computation with scipy."""
    spec = ModelSpec(2, 1, identifiability="none", prior_mean_scale=3.0, prior_scale_scale=0.7)
    x = np.array([-1.0, 0.2, 2.5])
    model = build_model(spec, {"x": x})
    point = {"w": np.array([0.3, 0.7]), "mu": np.array([-1.0, 2.0]), "sigma": np.array([0.5, 1.5])}
    logp_fn = model.compile_logp(jacobian=False, mode="FAST_COMPILE")
    logp = logp_fn(model.initial_point() | _transformed(model, point))
    dens = point["w"] * stats.norm.pdf(x[:, None], point["mu"], point["sigma"])
    expected = (
        stats.dirichlet.logpdf(point["w"], [1.0, 1.0])
        + stats.norm.logpdf(point["mu"], 0.0, 3.0).sum()
        + stats.halfnorm.logpdf(point["sigma"], scale=0.7).sum()
        + np.log(dens.sum(axis=1)).sum()
    )
    assert logp == pytest.approx(expected, rel=1e-7)  # simplex transform round trip


def _transformed(model: pm.Model, point: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Values on the sampler's (unconstrained) space for a point on the natural space."""
    out = {}
    for name, value in point.items():
        rv = model[name]
        transform = model.rvs_to_transforms.get(rv)
        value_var = model.rvs_to_values[rv]
        out[value_var.name] = value if transform is None else transform.forward(value).eval()
    return out


def test_unpack_cholesky_matches_pymc():
    d = 3
    packed = np.arange(1.0, 7.0)
    expected = pm.expand_packed_triangular(d, packed, lower=True).eval()
    np.testing.assert_array_equal(unpack_cholesky(packed, d), expected)
    np.testing.assert_array_equal(unpack_cholesky(np.stack([packed] * 2), d)[1], expected)


def test_posterior_draws_back_to_data_units():
    C, S, K, d = 2, 3, 2, 2
    rng = np.random.default_rng(0)
    chol = np.array([[1.0, 0.0], [0.5, 2.0]])
    posterior = {
        "w": np.full((C, S, K), 0.5),
        "mu": rng.standard_normal((C, S, K, d)),
        "chol_0": np.broadcast_to(chol[np.tril_indices(2)], (C, S, 3)),
        "chol_1": np.broadcast_to(np.array([1.0, 0.0, 1.0]), (C, S, 3)),
    }
    loc, scale = np.array([10.0, -1.0]), np.array([2.0, 3.0])
    draws = posterior_draws(posterior, ModelSpec(K, d), {}, loc, scale)
    np.testing.assert_allclose(draws.means, loc + scale * posterior["mu"])
    cov0 = np.diag(scale) @ chol @ chol.T @ np.diag(scale)
    np.testing.assert_allclose(draws.covariances[1, 2, 0], cov0)
    np.testing.assert_allclose(draws.scales()[0, 0, 1], scale)
    fixed = posterior_draws(
        {"mu": np.zeros((C, S, K))},
        ModelSpec(K, 1, fixed_weights=True, fixed_covariances=True),
        {"w_fixed": np.array([0.2, 0.8]), "sigma_fixed": np.array([1.0, 0.5])},
        np.array([1.0]),
        np.array([4.0]),
    )
    np.testing.assert_allclose(fixed.weights[1, 1], [0.2, 0.8])
    np.testing.assert_allclose(fixed.covariances[0, 0, :, 0, 0], [16.0, 4.0])


def test_draws_permuted():
    w = np.array([[[0.1, 0.9]]])
    draws = Draws(w, np.array([[[[1.0], [2.0]]]]), np.ones((1, 1, 2, 1, 1)))
    swapped = draws.permuted(np.array([[[1, 0]]]))
    np.testing.assert_array_equal(swapped.weights, [[[0.9, 0.1]]])
    np.testing.assert_array_equal(swapped.means[..., 0], [[[2.0, 1.0]]])


def test_2d_known_parameters_log_density_matches_scipy():
    """Mixture of MvNormal with known weights and Cholesky factors, against scipy."""
    spec = ModelSpec(2, 2, fixed_weights=True, fixed_covariances=True)
    covs = np.array([[[1.0, 0.4], [0.4, 0.8]], [[0.5, -0.1], [-0.1, 2.0]]])
    data = {
        "x": np.array([[0.0, 1.0], [2.0, -1.0], [-1.5, 0.3]]),
        "w_fixed": np.array([0.25, 0.75]),
        "chol_fixed": np.linalg.cholesky(covs),
    }
    model = build_model(spec, data)
    mu = np.array([[-1.0, 0.5], [1.0, 0.0]])
    logp = model.compile_logp(mode="FAST_COMPILE")({"mu": mu})
    dens = sum(
        data["w_fixed"][k] * stats.multivariate_normal.pdf(data["x"], mu[k], covs[k])
        for k in range(2)
    )
    expected = stats.norm.logpdf(mu, 0.0, 2.0).sum() + np.log(dens).sum()
    assert logp == pytest.approx(expected, rel=1e-8)


def test_sample_prior_matches_the_prior():
    from workbench.bayes.models import sample_prior

    rng = np.random.default_rng(1)
    spec = ModelSpec(2, 1, prior_weights_alpha=2.0, prior_mean_scale=3.0, prior_scale_scale=0.5)
    draws = [sample_prior(spec, rng) for _ in range(4000)]
    w = np.array([d[0] for d in draws])
    mu = np.array([d[1][:, 0] for d in draws])
    sd = np.sqrt(np.array([d[2][:, 0, 0] for d in draws]))
    assert np.all(mu[:, 0] < mu[:, 1])  # ordered
    assert stats.kstest(w.ravel(), stats.beta(2, 2).cdf).pvalue > 0.001
    assert stats.kstest(sd.ravel(), stats.halfnorm(scale=0.5).cdf).pvalue > 0.001
    assert stats.kstest(mu.ravel(), stats.norm(0, 3).cdf).pvalue > 0.001
    spec3 = ModelSpec(2, 3, prior_lkj_eta=2.0)
    covs = np.stack([sample_prior(spec3, rng)[2] for _ in range(2000)])  # (n, K, 3, 3)
    sd3 = np.sqrt(np.diagonal(covs, axis1=-2, axis2=-1))
    corr = covs / (sd3[..., :, None] * sd3[..., None, :])
    b = 2.0 - 1 + 3 / 2  # LKJ marginal: (r + 1) / 2 ~ Beta(b, b)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        r = corr[:, :, i, j].ravel()
        assert stats.kstest((r + 1) / 2, stats.beta(b, b).cdf).pvalue > 0.001
    assert np.all(np.linalg.eigvalsh(covs) > 0)

"""Verdicts that do not depend on units: the relative variance floor, the `floor` and `spurious`
degenerate kinds, fixed weights past an empty component, the `spikes` start, and `select_k` on
arrays (issue 10)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sklearn.mixture import GaussianMixture

from workbench.data.dataset import Dataset
from workbench.em.fitter import EMFitter
from workbench.em.init import INITS, SPIKE_FRACTION
from workbench.em.run import EMRun, EMSettings, EMState, label_solutions, min_support
from workbench.params import MixtureParams

COV_TYPES = ["full", "diag", "spherical", "tied"]
SCALES = [1e-4, 1e-2, 1.0, 1e2, 1e4]


def three_clusters(seed: int, n: int = 330) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [(150, [0.0, 0.0], 1.0), (100, [4.0, 4.0], 0.5), (n - 250, [-3.0, 3.0], 0.7)]
    return np.concatenate([rng.normal(mu, sd, size=(m, 2)) for m, mu, sd in parts])


def far_duplicates(n: int = 200) -> np.ndarray:
    """n points from N(0, 1) and three exact copies of the value 8, far from them."""
    rng = np.random.default_rng(3)
    return np.concatenate([rng.normal(size=(n, 1)), np.full((3, 1), 8.0)])


def fit(X, seed=1, **kwargs):
    kwargs = {"reference": False, **kwargs}
    return EMFitter(**kwargs).fit_array(X, np.random.default_rng(seed))


def assert_equivariant(base, scaled, factor, n_points: int):
    """Same outcomes of every restart, and the parameters and log-likelihood of the scaled fit
    those of the base fit carried over to the new units (x -> x * factor, factor (d,))."""
    np.testing.assert_array_equal(scaled.restarts.status, base.restarts.status)
    np.testing.assert_array_equal(scaled.restarts.n_iter, base.restarts.n_iter)
    for key in ("degenerate_kind", "degenerate_component", "n_degenerate"):
        assert scaled.diagnostics[key] == base.diagnostics[key]
    factor = np.broadcast_to(factor, base.params.means.shape[-1:])
    shift = n_points * np.sum(np.log(factor))  # log-densities lose log|det A| per point
    np.testing.assert_allclose(scaled.restarts.loglik + shift, base.restarts.loglik, rtol=1e-9)
    p, q = base.params, scaled.params
    np.testing.assert_allclose(q.weights, p.weights, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(q.means / factor, p.means, rtol=1e-8, atol=1e-8)
    full_p, full_q = p.full_covariances(), q.full_covariances()
    np.testing.assert_allclose(
        full_q / np.outer(factor, factor), full_p, rtol=1e-8, atol=1e-8 * np.abs(full_p).max()
    )


# ---------------------------------------------------------------------------------------------
# 1. Nothing depends on the data's units
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_rescaling_the_data_changes_nothing(cov_type):
    """Statuses, iteration counts and kinds equal, parameters equal up to the scale, and the
    log-likelihood shifted by exactly n d log(scale), for scales 1e-4 .. 1e4 (random_params and
    kmeans++ starts, some restarts stopping on the floor)."""
    X = three_clusters(0)
    for init in ("kmeans++", "random_params"):
        options = {"covariance_type": cov_type, "init": init, "n_restarts": 6, "n_components": 4}
        base = fit(X, **options)
        for scale in SCALES:
            assert_equivariant(base, fit(X * scale, **options), scale, len(X))


@pytest.mark.parametrize("init", ["kmeans", "small_em", "spikes", "random_from_data"])
def test_every_start_and_the_default_prior_are_equivariant(init):
    """The other starts, and MAP-EM with the default prior (in data units), scale too."""
    X = three_clusters(4)
    for extra in ({}, {"prior": "default"}):
        options = {"init": init, "n_restarts": 3, "n_components": 3, **extra}
        base = fit(X, **options)
        for scale in (1e-4, 1e4):
            assert_equivariant(base, fit(X * scale, **options), scale, len(X))


@pytest.mark.parametrize("cov_type", ["full", "diag", "tied"])
def test_each_feature_in_its_own_units(cov_type):
    """The floor is relative per feature, so rescaling the features by different factors (km
    and mm) changes nothing either, from starts that are equivariant under it (k-means, with
    its Euclidean distances, is not; nor is a spherical model)."""
    X = three_clusters(1)
    factor = np.array([1e-3, 1e3])
    for init in ("random_from_data", "random_params"):
        options = {"covariance_type": cov_type, "init": init, "n_restarts": 5, "n_components": 3}
        base, scaled = fit(X, **options), fit(X * factor, **options)
        assert_equivariant(base, scaled, factor, len(X))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    log_scale=st.floats(-4.0, 4.0),
    cov_type=st.sampled_from(COV_TYPES),
)
@example(seed=0, log_scale=-4.0, cov_type="full")
@example(seed=0, log_scale=4.0, cov_type="diag")
def test_rescaling_property(seed, log_scale, cov_type):
    X = three_clusters(seed, n=300)
    options = {"covariance_type": cov_type, "init": "random_from_data", "n_restarts": 4}
    base = fit(X, seed=seed, n_components=3, **options)
    scaled = fit(X * 10.0**log_scale, seed=seed, n_components=3, **options)
    assert_equivariant(base, scaled, 10.0**log_scale, len(X))


@pytest.mark.parametrize("scale", SCALES)
def test_component_on_duplicates_is_a_floor_spike_at_every_scale(scale):
    """Three exact duplicates far from the rest: the component that takes them collapses onto
    them and is held at the floor (reg_covar times the data variance): degenerate of kind
    floor at every scale (before, the absolute floor 1e-6 made this `converged` in some units
    and `degenerate` in others), and select_k never picks that K."""
    X = far_duplicates() * scale
    result = fit(X, init="kmeans++", n_restarts=10, n_components=2)
    assert result.status == "degenerate"
    assert set(result.restarts.status) == {"degenerate"}
    assert result.diagnostics["degenerate_kind"] == "floor"
    assert result.diagnostics["n_degenerate_floor"] == 10
    spike = result.diagnostics["degenerate_component"]
    assert result.params.means[spike, 0] == pytest.approx(8.0 * scale, rel=1e-9)
    assert result.params.covariances[spike, 0, 0] == pytest.approx(1e-6 * X.var(), rel=1e-9)
    chosen = fit(X, init="kmeans++", n_restarts=10, select_k=[1, 2, 3])
    assert chosen.diagnostics["status_k2"] == "degenerate"
    assert chosen.diagnostics["bic_k2"] < chosen.diagnostics["bic_k1"]  # BIC alone would take it
    assert chosen.diagnostics["chosen_k"] == 1
    assert chosen.status == "converged"
    assert chosen.diagnostics["select_k_all_degenerate"] == 0


def test_squarem_gives_the_same_verdicts_in_any_units():
    """SQUAREM (its own loop) applies the same stopping rule and the same final verdicts."""
    X = far_duplicates()
    options = {"init": "kmeans++", "n_restarts": 3, "n_components": 2, "acceleration": "squarem"}
    base = fit(X, **options)
    assert set(base.restarts.status) == {"degenerate"}
    assert base.diagnostics["degenerate_kind"] == "floor"
    assert_equivariant(base, fit(X * 1e4, **options), 1e4, len(X))
    assert_equivariant(base, fit(X * 1e-4, **options), 1e-4, len(X))


def test_select_k_says_when_every_k_is_degenerate():
    X = far_duplicates()
    chosen = fit(X, init="kmeans++", n_restarts=5, select_k=[2, 3])
    assert chosen.diagnostics["select_k_all_degenerate"] == 1
    assert chosen.status == "degenerate"
    assert {chosen.diagnostics["status_k2"], chosen.diagnostics["status_k3"]} == {"degenerate"}


def test_component_on_one_point_under_a_prior_is_spurious():
    """MAP-EM keeps the variance of a component on an outlier finite and above the floor, but
    it rests on about one point (fewer than d + 1 = 2): degenerate of kind spurious."""
    rng = np.random.default_rng(7)
    X = np.concatenate([rng.normal(size=(100, 1)), [[30.0]]])
    init = {"weights": [0.9, 0.1], "means": [[0.0], [30.0]], "covariances": [[[1.0]], [[1.0]]]}
    result = fit(X, init=init, prior="default", n_components=2)
    assert result.status == "degenerate"
    assert result.diagnostics["degenerate_kind"] == "spurious"
    assert result.diagnostics["degenerate_component"] == 1
    assert result.params.weights[1] * len(X) < 2
    assert result.params.covariances[1, 0, 0] > 1e-3 * X.var()  # not at the floor


def test_support_rule_per_covariance_type():
    """min_support: full d + 1, diag and spherical 2, tied 1, one fewer with fixed means,
    none with fixed covariances; label_solutions applies it to the final expected counts."""
    d = 3
    expected = {"full": 4.0, "diag": 2.0, "spherical": 2.0, "tied": 1.0}
    for cov_type, need in expected.items():
        assert min_support(EMSettings(covariance_type=cov_type), d) == need
        fixed_means = EMSettings(covariance_type=cov_type, fixed_means=np.zeros((2, d)))
        assert min_support(fixed_means, d) == need - 1
    assert min_support(EMSettings(fixed_covariances=np.ones((2, d, d))), d) == 0.0
    covariances = np.broadcast_to(np.eye(d), (3, 2, d, d))
    state = EMState(np.full((3, 2), 0.5), np.zeros((3, 2, d)), covariances, None)
    statuses = np.array(["converged", "max_iter", "converged"])
    run = EMRun(
        state, np.zeros(3), np.zeros(3), np.ones(3, int), statuses,
        np.full(3, -1), np.array(["", "", ""]), [], np.zeros(3, int), np.zeros(3), 0.0,
        np.array([[500.0, 3.9], [4.0, 500.0], [4.0, 4.0]]),
    )  # fmt: skip
    labelled = label_solutions(run, EMSettings(reg_covar=1e-6), np.ones(d))
    assert list(labelled.status) == ["degenerate", "max_iter", "converged"]
    assert list(labelled.degenerate_kind) == ["spurious", "", ""]
    assert list(labelled.degenerate_component) == [1, -1, -1]


# ---------------------------------------------------------------------------------------------
# 2. Fixed weights: an empty component does not stop EM
# ---------------------------------------------------------------------------------------------
def two_clusters() -> tuple[np.ndarray, MixtureParams]:
    truth = MixtureParams([0.5, 0.5], [[-5.0], [5.0]], [[[1.0]], [[1.0]]])
    return truth.sample(200, np.random.default_rng(20))[0], truth


def test_fixed_weights_go_on_past_an_empty_component():
    """A start with one mean at 30, far from every point (its expected count about 1e-100):
    before, EM stopped at once (degenerate, weight); with fixed weights the weight cannot
    collapse, the exact M-step moves that mean to the points nearest it, and EM reaches the
    optimum of the truth-started fit (Jin et al.'s arm: weights and covariances known)."""
    X, truth = two_clusters()
    init = {"weights": [0.5, 0.5], "means": [[0.0], [30.0]], "covariances": [[[1.0]], [[1.0]]]}
    known = {"fixed_weights": "truth", "fixed_covariances": "truth", "tol": 1e-12}
    result = EMFitter(init=init, **known).fit_array(X, None, truth=truth)
    assert result.status == "converged"
    assert result.n_iter >= 4
    assert result.loglik == pytest.approx(result.diagnostics["truth_start_loglik"], abs=1e-6)
    np.testing.assert_allclose(np.sort(result.params.means[:, 0]), [-5, 5], atol=0.3)
    free = EMFitter(init=init).fit_array(X, None, n_components=2)
    assert free.status == "degenerate" and free.diagnostics["degenerate_kind"] == "weight"
    assert free.n_iter == 0  # free weights: the weight collapse stops EM at once, as before


def test_fixed_weights_keep_a_mean_whose_count_underflows():
    """A mean so far away that every responsibility underflows to 0 (n_k = 0): its mean (and
    covariance) stay where they are (no 0/0) and EM converges on the other component. With
    known covariances that is a converged fixed point; with free covariances the empty
    component is then labelled spurious (fewer than d + 1 points), not stopped as a weight
    collapse."""
    X, _ = two_clusters()
    init = {"weights": [0.5, 0.5], "means": [[0.0], [1e4]], "covariances": [[[1.0]], [[1.0]]]}
    known = EMFitter(init=init, fixed_weights=[0.5, 0.5], fixed_covariances=[1.0, 1.0]).fit_array(
        X, None, n_components=2
    )
    assert known.status == "converged"
    assert known.params.means[1, 0] == 1e4
    assert known.params.means[0, 0] == pytest.approx(X.mean(), rel=1e-9)
    free_cov = EMFitter(init=init, fixed_weights=[0.5, 0.5]).fit_array(X, None, n_components=2)
    assert free_cov.diagnostics["degenerate_kind"] == "spurious"
    assert free_cov.diagnostics["degenerate_component"] == 1
    assert free_cov.n_iter > 1
    assert free_cov.params.means[1, 0] == 1e4 and free_cov.params.covariances[1, 0, 0] == 1.0


# ---------------------------------------------------------------------------------------------
# 3. The spike start
# ---------------------------------------------------------------------------------------------
def test_spikes_start_narrow_at_the_random_from_data_points():
    X = three_clusters(2)
    w, mu, cov = INITS["spikes"](X, 3, 4, np.random.default_rng(5))
    w0, mu0, cov0 = INITS["random_from_data"](X, 3, 4, np.random.default_rng(5))
    np.testing.assert_array_equal(mu, mu0)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_allclose(cov, np.diag(SPIKE_FRACTION * X.var(axis=0)) + 0 * cov0)
    assert np.all(np.linalg.eigvalsh(cov0) > 100 * np.linalg.eigvalsh(cov))
    scaled = INITS["spikes"](X * 1e3, 3, 4, np.random.default_rng(5))
    np.testing.assert_allclose(scaled[1], mu * 1e3, rtol=1e-12)
    np.testing.assert_allclose(scaled[2], cov * 1e6, rtol=1e-12)
    one = {"n_components": 3, "max_iter": 1, "tol": 0.0, "n_restarts": 4}
    after_spikes = fit(X, init="spikes", seed=5, **one)
    after_data = fit(X, init="random_from_data", seed=5, **one)
    assert not np.allclose(after_spikes.params.means, after_data.params.means, atol=1e-3)


def galaxies(seed: int, n: int = 82) -> np.ndarray:
    """Simulated velocities in the spirit of Roeder's (1990) galaxies data (1000 km/s): a few
    very narrow clusters of a handful of points beside two wide ones."""
    truth = MixtureParams(
        [0.085, 0.03, 0.42, 0.38, 0.045, 0.04],
        [9.7, 16.4, 19.8, 22.8, 26.0, 33.0],
        np.array([0.35, 0.25, 0.7, 1.2, 1.0, 0.6])[:, None, None] ** 2,
    )
    return truth.sample(n, np.random.default_rng(seed))[0]


def test_spikes_find_optima_the_other_starts_miss():
    """K = 6 on galaxies-like data, 10 restarts per start, 10 data sets: on some of them the
    best non-degenerate optimum from spike starts lies more than one nat above the best of
    every other start (observed: 2 of 10), and spikes are not worse than random_from_data
    overall. Only these robust facts are asserted."""
    others = ["random_from_data", "random_params", "kmeans++", "kmeans", "small_em"]
    ahead, total = 0, {"spikes": 0.0, "random_from_data": 0.0}
    for seed in range(10):
        X = galaxies(seed)
        best = {}
        for init in ["spikes", *others]:
            result = fit(X, seed=seed + 100, init=init, n_restarts=10, n_components=6)
            usable = result.restarts.status != "degenerate"
            best[init] = result.restarts.loglik[usable].max() if usable.any() else -np.inf
        ahead += best["spikes"] > max(best[i] for i in others) + 1.0
        top = max(best.values())
        for init in total:
            total[init] += max(best[init] - top, -10.0)
    assert ahead >= 1
    assert total["spikes"] >= total["random_from_data"]


# ---------------------------------------------------------------------------------------------
# 4. select_k on an array
# ---------------------------------------------------------------------------------------------
def test_fit_array_honours_select_k_as_fit_does():
    rng = np.random.default_rng(30)
    truth = MixtureParams(
        [0.3, 0.4, 0.3], [[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]], np.stack([np.eye(2)] * 3)
    )
    X, labels = truth.sample(600, rng)
    fitter = EMFitter(select_k=[1, 2, 3, 4, 5], n_restarts=5, tol=1e-10, reference=False)
    on_array = fitter.fit_array(X, np.random.default_rng(1))
    data = Dataset(X, labels, truth, n_components_to_fit=3)
    on_dataset = fitter.fit(data, np.random.default_rng(1))
    assert on_array.diagnostics["chosen_k"] == on_dataset.diagnostics["chosen_k"] == 3
    np.testing.assert_array_equal(on_array.params.means, on_dataset.params.means)
    for k in range(1, 6):
        assert on_array.diagnostics[f"bic_k{k}"] == on_dataset.diagnostics[f"bic_k{k}"]
    sklearn_bic = {
        k: GaussianMixture(k, n_init=5, tol=1e-10, max_iter=2000, reg_covar=0.0, random_state=0)
        .fit(X)
        .bic(X)
        for k in range(1, 6)
    }
    assert min(sklearn_bic, key=sklearn_bic.get) == 3
    for k in (1, 2, 3):  # a unique optimum both reach
        assert on_array.diagnostics[f"bic_k{k}"] == pytest.approx(sklearn_bic[k], rel=1e-8)
    with pytest.raises(ValueError, match="^n_components=3: not with select_k"):
        fitter.fit_array(X, np.random.default_rng(1), n_components=3)

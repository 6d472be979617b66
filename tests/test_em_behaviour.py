"""EM behaviour: monotone log-likelihood, collapse handling, constraints, MAP-EM, restarts."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.em.covariance.registry import strategy
from workbench.em.fitter import EMFitter
from workbench.em.gaussian_model import gaussian_model
from workbench.em.loop import LoopSettings
from workbench.em.loop import run as run_loop
from workbench.em.run import EMSettings, em_map, init_state, prepare, run_em
from workbench.params import MixtureParams
from workbench.settings.fitters import INIT_NAMES

COV_TYPES = ["full", "diag", "spherical", "tied"]
RESTARTS_PER_EXAMPLE = 10


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    cov_type=st.sampled_from(COV_TYPES),
    K=st.integers(1, 5),
    d=st.integers(1, 4),
    init=st.sampled_from(["random_params", "random_from_data", "kmeans++"]),
)
def test_loglik_never_decreases(seed, cov_type, K, d, init):
    """100 examples x 10 restarts = 1,000 random fits: no decrease beyond round-off."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20 * K, 60 * K))
    means = rng.normal(scale=3.0, size=(K, d))
    truth = MixtureParams(rng.dirichlet(np.ones(K) * 3), means, np.stack([np.eye(d)] * K))
    X = truth.sample(n, rng)[0]
    fitter = EMFitter(
        covariance_type=cov_type,
        init=init,
        n_restarts=RESTARTS_PER_EXAMPLE,
        max_iter=200,
        reference=False,
    )
    result = fitter.fit_array(X, rng, n_components=K)
    for trace in result.restarts.traces:
        finite = trace[np.isfinite(trace)]
        steps = np.diff(finite)
        assert np.all(steps >= -1e-9 * np.abs(finite[1:])), steps.min()
    assert result.diagnostics["n_loglik_decreases"] == 0


def test_decrease_is_detected_and_reported():
    """A model whose E-step corrupts the log-likelihood makes it fall; the loop must say so.
    (A model with a plain-Python piece runs the same loop interpreted.)"""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 1))
    calls = {"n": 0}
    model = gaussian_model("full")

    def bad_e_step(*args):
        calls["n"] += 1
        return model.e_step(*args) - 10.0 * (calls["n"] == 3)

    bad = model._replace(name="gaussian_full_corrupted", e_step=bad_e_step, e_step_parallel=None)
    cfg = EMSettings(covariance_type="full", max_iter=10, tol=0.0)
    start = init_state(
        np.array([[0.5, 0.5]]),
        np.array([[[-1.0], [1.0]]]),
        np.ones((1, 2, 1, 1)),
        cfg,
        X.var(axis=0),
    )
    Xc, model_cfg, params, _ = prepare(X, start, cfg)
    run = run_loop(bad, Xc, params, model_cfg, LoopSettings(max_iter=10, tol=0.0))
    assert run.n_decreases[0] == 1
    assert 9.0 < run.max_decrease[0] <= 10.0  # 10 nats minus the step's true increase


def collapse_data():
    """100 points from N(0, 1) and a start with one component on the largest data point."""
    X = np.random.default_rng(7).normal(size=(100, 1))
    init = {
        "weights": [0.9, 0.1],
        "means": [[0.0], [float(X.max())]],
        "covariances": [[[1.0]], [[1e-6]]],
    }
    return X, init


def test_collapse_is_degenerate_without_floor():
    X, init = collapse_data()
    result = EMFitter(init=init, reg_covar=0.0).fit_array(
        X, np.random.default_rng(0), n_components=2
    )
    assert result.status == "degenerate"
    assert result.diagnostics["degenerate_component"] == 1
    assert result.diagnostics["degenerate_kind"] == "covariance"
    assert np.isfinite(result.loglik)
    assert np.all(np.isfinite(result.params.covariances))


def test_collapse_is_finite_with_floor_and_with_prior():
    """With the floor, the collapsing component ends held at it (reg_covar times the data
    variance): finite, but degenerate of kind floor. With the prior it stays a real component."""
    X, init = collapse_data()
    rng = np.random.default_rng(0)
    floored = EMFitter(init=init, reg_covar=1e-6).fit_array(X, rng, n_components=2)
    assert floored.status == "degenerate"
    assert floored.diagnostics["degenerate_kind"] == "floor"
    assert floored.diagnostics["degenerate_component"] == 1
    assert floored.params.covariances[1, 0, 0] == pytest.approx(1e-6 * X.var(), rel=1e-12)
    prior = EMFitter(init=init, reg_covar=0.0, prior="default").fit_array(X, rng, n_components=2)
    assert prior.status == "converged"
    for result in (floored, prior):
        assert np.isfinite(result.loglik)
        assert np.all(np.isfinite(result.params.covariances))
        assert np.all(result.params.covariances > 0)


def test_empty_component_is_a_weight_collapse():
    X = np.random.default_rng(8).normal(size=(50, 1))
    init = {"weights": [0.5, 0.5], "means": [[0.0], [1e6]], "covariances": [[[1.0]], [[1.0]]]}
    result = EMFitter(init=init).fit_array(X, np.random.default_rng(0), n_components=2)
    assert result.status == "degenerate"
    assert result.diagnostics["degenerate_kind"] == "weight"
    assert result.diagnostics["degenerate_component"] == 1


def test_non_finite_data_is_refused_in_one_line():
    """inf is refused; NaN (a missing value) only where EM for incomplete data does not go."""
    X = np.random.default_rng(9).normal(size=(50, 2))
    X[3, 1] = np.inf
    with pytest.raises(ValueError, match="^data: 1 non-finite values"):
        EMFitter(init="random_params").fit_array(X, np.random.default_rng(0), n_components=2)
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="^covariance_type='spherical': data with missing"):
        EMFitter(covariance_type="spherical").fit_array(X, np.random.default_rng(0), n_components=2)


def test_nan_during_iteration_is_a_status_not_a_crash():
    """A start whose density underflows everywhere gives NaN responsibilities: status, no raise."""
    X = np.random.default_rng(9).normal(size=(50, 1))
    init = {"weights": [0.5, 0.5], "means": [[1e200], [-1e200]], "covariances": [[[1.0]], [[1.0]]]}
    result = EMFitter(init=init).fit_array(X, np.random.default_rng(0), n_components=2)
    assert result.status == "degenerate"
    assert result.diagnostics["degenerate_kind"] == "nan"


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_constraints_hold_exactly_in_every_iteration(cov_type):
    rng = np.random.default_rng(10)
    X = np.concatenate([rng.normal(-2, 1, size=(150, 2)), rng.normal(2, 0.5, size=(100, 2))])
    fixed_w = np.array([0.7, 0.3])
    fixed_cov = strategy(cov_type).from_full(np.stack([np.eye(2), 0.3 * np.eye(2)]), fixed_w)
    for fixed in (
        {"fixed_weights": fixed_w},
        {"fixed_covariances": fixed_cov},
        {"fixed_means": np.array([[-1.0, -1.0], [1.0, 1.0]])},
    ):
        cfg = EMSettings(covariance_type=cov_type, **fixed)
        full = np.stack([np.eye(2)] * 2)[None]
        start = init_state(
            np.array([[0.5, 0.5]]),
            np.array([[[-0.5, 0.0], [0.5, 0.0]]]),
            strategy(cov_type).from_full(full, np.array([[0.5, 0.5]])),
            cfg,
            X.var(axis=0),
        )
        state = start
        for _ in range(30):  # the loop one iteration at a time
            state, objective, degenerate = em_map(X, state, cfg)
            assert not degenerate[0]
            for name, value in fixed.items():
                current = getattr(state, name.removeprefix("fixed_"))[0]
                np.testing.assert_array_equal(current, value)
        assert np.all(np.isfinite(objective))


def test_truth_constraints_for_jin_setting():
    """Jin et al. 2016: equal weights and identity covariances known, only the means move."""
    rng = np.random.default_rng(11)
    truth = MixtureParams(
        np.full(3, 1 / 3), [[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]], np.stack([np.eye(2)] * 3)
    )
    X = truth.sample(600, rng)[0]
    fitter = EMFitter(
        init="random_from_data", n_restarts=20, fixed_weights="truth", fixed_covariances="truth"
    )
    result = fitter.fit_array(X, rng, truth=truth)
    np.testing.assert_array_equal(result.params.weights, truth.weights)
    np.testing.assert_array_equal(result.params.covariances, truth.covariances)
    assert result.diagnostics["reference_loglik"] >= result.loglik - 1e-6


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_map_em_reaches_a_maximum_of_the_posterior(cov_type):
    """At a MAP-EM fixed point, small perturbations of the parameters lower the objective."""
    rng = np.random.default_rng(12)
    X = np.concatenate([rng.normal(-2, 1, size=(60, 2)), rng.normal(2, 0.7, size=(40, 2))])
    fitter = EMFitter(
        covariance_type=cov_type,
        prior="default",
        reg_covar=0.0,
        tol=1e-14,
        max_iter=5000,
        init="kmeans++",
    )
    result = fitter.fit_array(X, rng, n_components=2)
    assert result.status == "converged"
    cfg = fitter.settings(X, 2, None)._replace(max_iter=0)

    def objective(weights, means, covs):
        state = init_state(weights[None], means[None], covs[None], cfg, X.var(axis=0))
        return run_em(X, state, cfg).objective[0]

    p = result.params
    best = objective(p.weights, p.means, p.covariances)
    assert best == pytest.approx(result.diagnostics["objective"], rel=1e-12)
    for _ in range(20):
        means = p.means + rng.normal(scale=1e-3, size=p.means.shape)
        covs = p.covariances * np.exp(rng.normal(scale=1e-3, size=p.covariances.shape))
        if cov_type in ("full", "tied"):
            covs = (covs + np.swapaxes(covs, -1, -2)) / 2
        assert objective(p.weights, means, covs) < best


@pytest.mark.parametrize("init", INIT_NAMES)
def test_every_init_gives_all_restarts(init):
    rng = np.random.default_rng(13)
    truth = MixtureParams([0.5, 0.5], [[-3.0], [3.0]], [[[1.0]], [[1.0]]])
    X = truth.sample(300, rng)[0]
    result = EMFitter(init=init, n_restarts=7).fit_array(X, rng, truth=truth)
    assert len(result.restarts.loglik) == 7
    assert set(result.restarts.status) <= {"converged", "max_iter", "degenerate"}
    assert result.restarts.loglik[result.restarts.best] == result.loglik
    assert result.loglik == pytest.approx(truth_optimum(X, truth), rel=1e-7)


def truth_optimum(X, truth):
    return (
        EMFitter(init="truth", tol=1e-12).fit_array(X, np.random.default_rng(0), truth=truth).loglik
    )


def test_same_seed_same_numbers():
    X = np.random.default_rng(14).normal(size=(200, 2))
    fits = [
        EMFitter(init="small_em", n_restarts=4).fit_array(
            X, np.random.default_rng(5), n_components=3
        )
        for _ in range(2)
    ]
    np.testing.assert_array_equal(fits[0].restarts.loglik, fits[1].restarts.loglik)
    np.testing.assert_array_equal(fits[0].params.means, fits[1].params.means)


def test_stops_on_change_per_point():
    """EM stops at the first change of the log-likelihood below tol nats per point."""
    X = np.random.default_rng(15).normal(size=(300, 1))
    result = EMFitter(init="random_params", tol=1e-6, max_iter=10000).fit_array(
        X, np.random.default_rng(0), n_components=2
    )
    trace = result.trace
    n = len(X)
    assert abs(trace[-1] - trace[-2]) < 1e-6 * n
    assert np.all(np.abs(np.diff(trace[:-1])) >= 1e-6 * n)
    assert len(trace) == result.n_iter + 1
    assert result.loglik == trace[-1]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("covariance_type", "banana"),
        ("init", "nope"),
        ("n_restarts", 0),
        ("tol", -1.0),
        ("reg_covar", -1e-6),
        ("prior", "flat"),
        ("acceleration", "anderson"),
        ("fixed_weights", 3),
    ],
)
def test_bad_settings_name_the_key(key, value):
    with pytest.raises(ValueError, match=f"^{key}="):
        EMFitter(**{key: value})


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_model_records_have_the_documented_shapes(cov_type):
    """The Gaussian model's records: params (weights, means, covariances, factors, natural
    coefficients) and stats T (K, m), m = second moments + d + 1, whose last column holds the
    expected counts n_k (summing to n) and whose middle block holds sum_i r_ik x_i."""
    rng = np.random.default_rng(16)
    X = rng.normal(size=(40, 3))
    s = strategy(cov_type)
    cfg = EMSettings(covariance_type=cov_type, max_iter=0)
    full = np.stack([np.eye(3)] * 4)[None]
    start = init_state(
        np.full((1, 4), 0.25),
        rng.normal(size=(1, 4, 3)),
        s.from_full(full, np.full((1, 4), 0.25)),
        cfg,
        X.var(axis=0),
    )
    XT, model_cfg, params, shift = prepare(X, start, cfg)
    m = s.n_second(3) + 3 + 1
    assert params[2].shape[1:] == s.cov_shape(4, 3) and params[4].shape == (1, 4, m)
    run = run_loop(gaussian_model(cov_type), XT, params, model_cfg, LoopSettings(max_iter=0))
    T = run.stats[0][0]
    assert T.shape == (4, m)
    assert T[:, -1].sum() == pytest.approx(40.0)
    np.testing.assert_allclose(T[:, s.n_second(3) : -1].sum(axis=0), XT.sum(axis=1), atol=1e-12)


@pytest.mark.parametrize("cov_type", ["full", "spherical"])
def test_symmetric_means_hold_and_stay_monotone(cov_type):
    """Dwivedi et al.'s over-specified model: mu_2 = -mu_1 exactly, log-likelihood monotone."""
    X = np.random.default_rng(17).normal(size=(400, 2))
    fitter = EMFitter(
        n_components=2,
        covariance_type=cov_type,
        init="random_params",
        n_restarts=5,
        symmetric_means=True,
        fixed_weights=[0.3, 0.7],
        reference=False,
    )
    result = fitter.fit_array(X, np.random.default_rng(0))
    np.testing.assert_array_equal(result.params.means[1], -result.params.means[0])
    for trace in result.restarts.traces:
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    with pytest.raises(ValueError, match="^symmetric_means=True"):
        EMFitter(n_components=3, symmetric_means=True).fit_array(X, np.random.default_rng(0))


def test_select_k_by_bic_finds_the_true_k():
    from workbench.data import generate

    data = generate("gaussian_mixture", np.random.default_rng(18), n=1500, K=3, d=2, separation=4.0)
    fit = EMFitter(select_k=[1, 2, 3, 4, 5], n_restarts=5).fit(data, np.random.default_rng(0))
    assert fit.diagnostics["chosen_k"] == 3
    assert fit.params.n_components == 3
    bics = [fit.diagnostics[f"bic_k{k}"] for k in range(1, 6)]
    assert fit.diagnostics["bic"] == min(bics)


@pytest.mark.parametrize("d", [1, 3])
def test_fit_leaves_the_data_untouched(d):
    """EM centres a copy of the data: the caller's array is not changed (with d = 1 the
    transposed data are contiguous already, so a careless copy would be a view)."""
    X = np.random.default_rng(3).normal(size=(200, d)) + 5.0
    given = X.copy()
    EMFitter(n_components=2).fit_array(X, np.random.default_rng(0))
    np.testing.assert_array_equal(X, given)


def test_params_from_partition_is_each_parts_own_moments():
    """The hard M-step of a partition: each part's mean and maximum-likelihood covariance
    (numpy's, per part); a part of at most d points gets the data covariance, an empty part
    the data mean with weight 1/n."""
    from workbench.em.init import data_covariance, params_from_partition

    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 3))
    labels = np.repeat([0, 1, 2], [30, 27, 3])  # part 2: 3 points in d = 3, singular
    weights, means, covs = params_from_partition(X, labels, 4)  # part 3: empty
    for k in (0, 1):
        part = X[labels == k]
        np.testing.assert_allclose(means[0, k], part.mean(axis=0), rtol=1e-13)
        np.testing.assert_allclose(covs[0, k], np.cov(part.T, bias=True), rtol=1e-12)
    np.testing.assert_allclose(covs[0, 2], data_covariance(X), rtol=1e-13)
    np.testing.assert_allclose(means[0, 3], X.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(covs[0, 3], data_covariance(X), rtol=1e-13)
    np.testing.assert_allclose(weights[0], np.array([30, 27, 3, 1]) / 61, rtol=1e-15)


def test_an_unknown_model_option_is_a_one_line_error():
    """em_model's options are checked against the model's factory: a key it does not take is a
    ValueError naming the model and the options (before: a TypeError from the factory)."""
    from workbench.em.model_fitter import ModelEMFitter

    with pytest.raises(ValueError, match=r"^model='gaussian': options=\{'foo': 1\}: .*'foo'$"):
        ModelEMFitter(model="gaussian", options={"foo": 1})

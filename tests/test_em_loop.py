"""The one EM loop (workbench.em.loop over the Gaussian model and its covariance strategies)
against a plain-numpy oracle (tests/oracle_loop.py, tests/oracle_steps.py: the readable E-step,
M-step and loop the compiled code replaced, kept here as a test oracle beside scikit-learn).

Same statuses, iteration counts, degenerate kinds and components, and to round-off the same
traces and final states, for every covariance type, fixed parameters, priors, symmetric means,
collapses and many restarts; bitwise the same results serial, threaded or split by chunks.
"""

from __future__ import annotations

import subprocess
import sys

import numba
import numpy as np
import oracle_loop
import oracle_steps
import pytest

from workbench.em import loop
from workbench.em.covariance import COVARIANCE_TYPES
from workbench.em.covariance.registry import strategy
from workbench.em.init import random_from_data
from workbench.em.run import EMSettings, Prior, init_state, run_em

N = 700  # not a multiple of the chunk size: padding is exercised


def mixture_data(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    return rng.normal(size=(n, d)) * (0.5 + labels[:, None] * 0.4) + labels[:, None] * 2.0


def random_state(X: np.ndarray, K: int, R: int, cov_type: str, seed: int, settings=None):
    """R starts: means at data points, scaled data covariances, Dirichlet weights."""
    rng = np.random.default_rng(seed)
    _, means, covs = random_from_data(X, K, R, rng)
    covs = covs * rng.uniform(0.3, 1.5, size=(R, K, 1, 1))
    weights = rng.dirichlet(np.ones(K), size=R)
    covs = strategy(cov_type).from_full(covs, weights)
    settings = settings or EMSettings(covariance_type=cov_type)
    return init_state(weights, means, covs, settings, X.var(axis=0))


def oracle(X, start, settings):
    """The numpy oracle's run from the same start (its own records: settings converted)."""
    fields = {k: v for k, v in settings._asdict().items() if k != "squarem"}
    if settings.prior is not None:
        fields["prior"] = oracle_steps.Prior(*settings.prior)
    ref_settings = oracle_loop.EMSettings(**fields)
    ref_start = oracle_loop.init_state(*start[:3], ref_settings, X.var(axis=0))
    return oracle_loop.run_em(X, ref_start, ref_settings)


def assert_same_run(got, ref, rtol=1e-10):
    """Same statuses, counts and (to round-off) traces, log-likelihoods and final states."""
    np.testing.assert_array_equal(got.status, ref.status)
    np.testing.assert_array_equal(got.n_iter, ref.n_iter)
    np.testing.assert_array_equal(got.degenerate_component, ref.degenerate_component)
    np.testing.assert_array_equal(got.degenerate_kind, ref.degenerate_kind)
    np.testing.assert_array_equal(got.n_decreases, ref.n_decreases)
    assert len(got.traces) == len(ref.traces)
    for a, b in zip(got.traces, ref.traces, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol)
    np.testing.assert_allclose(got.loglik, ref.loglik, rtol=rtol)
    np.testing.assert_allclose(got.objective, ref.objective, rtol=rtol)
    np.testing.assert_allclose(got.max_decrease, ref.max_decrease, atol=1e-9)
    for a, b in zip(got.state, ref.state, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


FIXED = {
    None: {},
    "weights": {"fixed_weights": [0.2, 0.3, 0.5]},
    "means": {"fixed_means": "start"},
    "covariances": {"fixed_covariances": "start"},
}


@pytest.mark.parametrize("fixed", list(FIXED))
@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_loop_matches_numpy_oracle(cov_type, fixed):
    d = 2
    X = mixture_data(N, d, seed=3)
    start = random_state(X, K=3, R=4, cov_type=cov_type, seed=4)
    extra = {
        key: (start.means[0] if key == "fixed_means" else start.covariances[0])
        if isinstance(value, str) else np.asarray(value)
        for key, value in FIXED[fixed].items()
    }  # fmt: skip
    settings = EMSettings(covariance_type=cov_type, max_iter=60, tol=1e-7, **extra)
    start = init_state(*start[:3], settings, X.var(axis=0))
    ref = oracle(X, start, settings)
    got = run_em(X, start, settings)
    assert_same_run(got, ref)
    assert set(ref.status) <= {"converged", "max_iter"}


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_loop_matches_numpy_oracle_in_higher_dimension(cov_type):
    """d = 6, K = 4, and a restart count not a multiple of the threads."""
    X = mixture_data(N, 6, seed=13)
    settings = EMSettings(covariance_type=cov_type, max_iter=40, tol=1e-7)
    start = random_state(X, K=4, R=5, cov_type=cov_type, seed=14, settings=settings)
    assert_same_run(run_em(X, start, settings), oracle(X, start, settings))


@pytest.mark.parametrize("d", [1, 2])
def test_collapse_onto_a_point(d):
    """A component started on an outlier collapses onto it: degenerate (kind covariance)
    without the variance floor, in the same iteration and with the same trace as the
    reference; with the floor it stays finite, runs to convergence and is labelled degenerate
    of kind floor, held at reg_covar times the data variance."""
    rng = np.random.default_rng(5)
    X = np.vstack([rng.normal(size=(300, d)), np.full((1, d), 40.0)])
    weights = np.array([[0.5, 0.5]])
    means = np.stack([np.zeros(d), np.full(d, 40.0)])[None]
    covs = np.stack([np.eye(d), 0.01 * np.eye(d)])[None]
    for reg_covar, kind in ((0.0, "covariance"), (1e-6, "floor")):
        settings = EMSettings(covariance_type="full", reg_covar=reg_covar, max_iter=200)
        start = init_state(weights, means, covs, settings, X.var(axis=0))
        ref = oracle(X, start, settings)
        got = run_em(X, start, settings)
        assert ref.status[0] == "degenerate"
        assert ref.degenerate_kind[0] == kind and ref.degenerate_component[0] == 1
        assert_same_run(got, ref)
        assert np.all(np.isfinite(got.state.covariances))
    assert ref.n_iter[0] > 1  # with the floor, EM ran on to its fixed point
    floor = 1e-6 * X.var(axis=0)
    whitened = got.state.covariances[0, 1] / np.sqrt(np.outer(floor, floor))
    assert np.linalg.eigvalsh(whitened).min() == pytest.approx(1.0, rel=1e-9)  # at the floor


def test_many_restarts_with_degenerate_ones():
    """Random starts of K=6 in d=1 without the floor: some restarts collapse, the others go on;
    each restart's outcome matches the reference."""
    X = mixture_data(60, 1, seed=7)
    X = np.round(X, 1)  # ties make collapses onto single values likely
    settings = EMSettings(covariance_type="full", reg_covar=0.0, max_iter=150)
    start = random_state(X, K=6, R=24, cov_type="full", seed=8, settings=settings)
    ref = oracle(X, start, settings)
    got = run_em(X, start, settings)
    assert "degenerate" in set(ref.status)
    assert_same_run(got, ref, rtol=1e-9)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_fixed_weights_with_empty_components_match_oracle(cov_type):
    """Fixed weights, one mean far from the data (n_k ~ 1e-100: the exact M-step moves it) and
    one so far that n_k underflows to 0 (kept): the same run as the reference, relative floor
    and final verdicts included."""
    X = mixture_data(N, 2, seed=15)
    weights = np.array([[0.4, 0.3, 0.3]])
    means = np.array([[[0.0, 0.0], [30.0, 30.0], [1e4, 1e4]]])
    covs = strategy(cov_type).from_full(np.stack([np.eye(2)] * 3)[None], weights)
    settings = EMSettings(covariance_type=cov_type, max_iter=80, fixed_weights=weights[0])
    start = init_state(weights, means, covs, settings, X.var(axis=0))
    ref = oracle(X, start, settings)
    got = run_em(X, start, settings)
    assert ref.n_iter[0] > 1 and ref.degenerate_kind[0] != "weight"
    assert np.all(ref.state.means[0, 2] == 1e4)
    assert_same_run(got, ref)
    np.testing.assert_allclose(got.nk, ref.nk, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_map_em_with_a_prior_matches_oracle(cov_type):
    """MAP-EM (the normal-inverse-Wishart prior of Fraley & Raftery) runs compiled, every type."""
    X = mixture_data(N, 2, seed=9)
    prior = Prior(*oracle_steps.default_prior(X, 3, cov_type))
    settings = EMSettings(covariance_type=cov_type, prior=prior, max_iter=40)
    start = random_state(X, K=3, R=2, cov_type=cov_type, seed=10, settings=settings)
    got = run_em(X, start, settings)
    assert_same_run(got, oracle(X, start, settings))
    assert np.all(got.objective != got.loglik)  # the log prior is counted


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_symmetric_means_match_oracle(cov_type):
    """K = 2 with mu_2 = -mu_1 (data not centred: the constraint is about the origin)."""
    rng = np.random.default_rng(21)
    X = np.vstack([rng.normal(-1.2, 1.0, (200, 2)), rng.normal(1.2, 1.0, (200, 2))]) + 0.3
    settings = EMSettings(covariance_type=cov_type, symmetric_means=True, max_iter=50)
    start = random_state(X, K=2, R=2, cov_type=cov_type, seed=22, settings=settings)
    start = init_state(
        start.weights, np.stack([start.means[:, 0], -start.means[:, 0]], axis=1),
        start.covariances, settings, X.var(axis=0),
    )  # fmt: skip
    got = run_em(X, start, settings)
    assert_same_run(got, oracle(X, start, settings))
    np.testing.assert_allclose(got.state.means[:, 1], -got.state.means[:, 0], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Determinism and threads
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_results_do_not_depend_on_threads_or_batching(monkeypatch, cov_type):
    """Serial, one restart per thread, or every pass split over threads: bitwise equal; a
    restart run alone equals the same restart run in a batch."""
    X = mixture_data(30_000, 3, seed=11)
    settings = EMSettings(covariance_type=cov_type, max_iter=15)
    start = random_state(X, K=4, R=3, cov_type=cov_type, seed=12, settings=settings)
    monkeypatch.setattr(loop, "MIN_PASS_WORK", np.inf)
    by_restart = run_em(X, start, settings)  # whole restarts in threads
    monkeypatch.setattr(loop, "MIN_PASS_WORK", 0)
    by_chunk = run_em(X, start, settings)  # each pass split over threads
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        serial = run_em(X, start, settings)
    finally:
        numba.set_num_threads(threads)
    alone = run_em(X, type(start)(*(a[1:2] for a in start)), settings)
    for run in (by_chunk, serial):
        for a, b in zip(run.state, by_restart.state, strict=True):
            assert np.array_equal(a, b)
        assert all(np.array_equal(a, b) for a, b in zip(run.traces, by_restart.traces, strict=True))
    assert np.array_equal(alone.traces[0], by_restart.traces[1])
    assert np.array_equal(alone.state.means[0], by_restart.state.means[1])


def test_first_use_in_a_process_loads_the_compiled_loop_before_any_timed_fit():
    """warm(covariance_type, split_passes=True) loads the loop (serial and split-pass variants,
    plain and SQUAREM) from numba's disk cache before a fit starts its clock. Fresh process."""
    code = (
        "from workbench.em import loop, run\n"
        "from workbench.em.gaussian_model import gaussian_model\n"
        "run.warm('diag', split_passes=True)\n"
        "loops = loop.compile_loop(gaussian_model('diag'))\n"
        "print(len(loops.serial.signatures), len(loops.parallel.signatures),\n"
        "      run.warm('diag'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1", "0.0"], out.stdout + out.stderr


def test_the_warm_up_is_the_first_fits_compile_time_not_its_wall_time():
    """The loop's one-time loading in a process is recorded as that fit's ``compile_time``
    (outside its wall time); later fits record 0. Fresh process, so the warm-up happens in the
    first fit."""
    code = (
        "import numpy as np\n"
        "from workbench.em.fitter import EMFitter\n"
        "X = np.random.default_rng(0).normal(size=(200, 1))\n"
        "fits = [EMFitter(n_components=2).fit_array(X, np.random.default_rng(1))\n"
        "        for _ in range(2)]\n"
        "print(*(f.diagnostics['compile_time'] for f in fits))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = (float(v) for v in out.stdout.split())
    assert first > 0.0 and second == 0.0, out.stdout


def test_a_runner_cells_warm_up_is_its_compile_time():
    """The runner loads the kernels through ``prepare`` before a cell's clock starts and records
    the seconds as that cell's ``compile_time`` (the fit itself then finds them loaded). Fresh
    process, serial executor, so the warm-up falls in the first cell."""
    code = (
        "import numpy as np\n"
        "from workbench.experiment.runner import CellTask, run_cell\n"
        "task = dict(generator='gaussian_mixture', data_settings=dict(n=100, K=2, d=1,\n"
        "    separation=3.0), data_entropy=(1,),\n"
        "    factory='workbench.em.fitter:EMFitter', fitter_settings=dict(reference=False),\n"
        "    fit_entropy=(2,))\n"
        "outs = [run_cell(CellTask(cell_id=str(i), **task)) for i in range(2)]\n"
        "print(*(o.status for o in outs), *(o.diagnostics['compile_time'] for o in outs))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    first_status, second_status, first, second = out.stdout.split()
    assert first_status == second_status == "converged", out.stdout
    assert float(first) > 0.0 and float(second) == 0.0, out.stdout

"""The numba engine (workbench.em.fast, fast_loop, fast_engine) against the numpy reference.

The reference is the pure step functions and the generic loop (engine "numpy"); the fast engine
must give the same numbers to round-off: the two data passes to ~1e-12, whole runs (statuses,
iteration counts, traces, final states) to ~1e-10, and bitwise the same results whichever way
its work is split over threads.
"""

from __future__ import annotations

import subprocess
import sys

import numba
import numpy as np
import pytest

from workbench.em import engines, fast, fast_engine, steps
from workbench.em.fit import NUMPY_ENGINE, EMSettings, init_state, run_em
from workbench.em.init import random_from_data
from workbench.gaussian import COVARIANCE_TYPES

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
    covs = steps.convert_covariances(covs, weights, cov_type)
    settings = settings or EMSettings(covariance_type=cov_type)
    return init_state(weights, means, covs, settings, X.var(axis=0))


# ---------------------------------------------------------------------------------------------
# The two data passes
# ---------------------------------------------------------------------------------------------
DIMS = [1, 3, fast.BLAS_MIN_D + 1]  # d >= BLAS_MIN_D: the matrix products go to BLAS


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_e_step_matches_reference(cov_type, d):
    X = mixture_data(N, d, seed=d)
    R = 1 if d == 1 else 4  # threads split chunks of one restart, or restarts
    state = random_state(X, K=3, R=R, cov_type=cov_type, seed=10 + d)
    log_w = np.log(state.weights)
    log_w[-1, 2] = -np.inf  # a component with zero weight
    ref = steps.e_step(X, log_w, state.means, state.prec_chol, cov_type)
    got = fast_engine.e_step(X, log_w, state.means, state.prec_chol, cov_type)
    assert got.resp.shape == ref.resp.shape == (R, N, 3)
    np.testing.assert_allclose(got.resp, ref.resp, rtol=1e-12, atol=1e-14)
    assert np.all(got.resp[-1, :, 2] == 0.0)
    np.testing.assert_allclose(got.loglik, ref.loglik, rtol=1e-12)
    np.testing.assert_allclose(got.nk, ref.nk, rtol=1e-12)
    np.testing.assert_allclose(got.sum_x, ref.sum_x, rtol=1e-12, atol=1e-12 * np.abs(X).sum())


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_centred_scatter_matches_reference(cov_type, d):
    X = mixture_data(N, d, seed=d)
    state = random_state(X, K=3, R=4, cov_type=cov_type, seed=20 + d)
    stats = steps.e_step(X, np.log(state.weights), state.means, state.prec_chol, cov_type)
    centres = stats.sum_x / stats.nk[..., None]
    ref = steps.centred_scatter(X, stats.resp, centres, cov_type)
    got = fast_engine.centred_scatter(X, stats.resp, centres, cov_type)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-13 * np.abs(ref).max())


def test_exp_within_one_ulp():
    """The vectorisable exp of the E-step, on its domain (v <= 0) and its special values."""
    v = np.concatenate([
        -np.random.default_rng(0).uniform(0, 40, 20_000), -np.linspace(700, 750, 1001),
        [0.0, -0.0, -1e-300, -5e-324, -np.inf, np.nan, -800.0, -1e4],
    ])  # fmt: skip

    @numba.njit
    def apply(values):
        return np.array([fast._exp_nonpos(x) for x in values])

    got, ref = apply(v), np.exp(v)
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert np.all(np.abs(got[ok] - ref[ok]) <= 2 * np.spacing(ref[ok]))  # 1 ulp each way


# ---------------------------------------------------------------------------------------------
# The fused loop
# ---------------------------------------------------------------------------------------------
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
def test_run_block_matches_generic_loop(cov_type, fixed):
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
    ref = run_em(X, start, settings, NUMPY_ENGINE)
    got = run_em(X, start, settings, fast_engine.FAST_ENGINE)
    assert fast_engine.supports(settings)
    assert_same_run(got, ref)
    assert set(ref.status) <= {"converged", "max_iter"}


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_run_block_matches_generic_loop_in_higher_dimension(cov_type):
    """d >= BLAS_MIN_D (BLAS products), K = 4, and a restart count not a multiple of the
    restart groups handed to threads."""
    X = mixture_data(N, fast.BLAS_MIN_D + 2, seed=13)
    settings = EMSettings(covariance_type=cov_type, max_iter=40, tol=1e-7)
    start = random_state(X, K=4, R=5, cov_type=cov_type, seed=14, settings=settings)
    assert_same_run(run_em(X, start, settings, fast_engine.FAST_ENGINE), run_em(X, start, settings))


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
        ref = run_em(X, start, settings, NUMPY_ENGINE)
        got = run_em(X, start, settings, fast_engine.FAST_ENGINE)
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
    ref = run_em(X, start, settings, NUMPY_ENGINE)
    got = run_em(X, start, settings, fast_engine.FAST_ENGINE)
    assert "degenerate" in set(ref.status)
    assert_same_run(got, ref, rtol=1e-9)


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_fixed_weights_with_empty_components_match_generic_loop(cov_type):
    """Fixed weights, one mean far from the data (n_k ~ 1e-100: the exact M-step moves it) and
    one so far that n_k underflows to 0 (kept): the same run as the reference, relative floor
    and final verdicts included."""
    X = mixture_data(N, 2, seed=15)
    weights = np.array([[0.4, 0.3, 0.3]])
    means = np.array([[[0.0, 0.0], [30.0, 30.0], [1e4, 1e4]]])
    covs = steps.convert_covariances(np.stack([np.eye(2)] * 3)[None], weights, cov_type)
    settings = EMSettings(covariance_type=cov_type, max_iter=80, fixed_weights=weights[0])
    start = init_state(weights, means, covs, settings, X.var(axis=0))
    ref = run_em(X, start, settings, NUMPY_ENGINE)
    got = run_em(X, start, settings, fast_engine.FAST_ENGINE)
    assert ref.n_iter[0] > 1 and ref.degenerate_kind[0] != "weight"
    assert np.all(ref.state.means[0, 2] == 1e4)
    assert_same_run(got, ref)
    np.testing.assert_allclose(got.nk, ref.nk, rtol=1e-9, atol=1e-300)


def test_prior_and_unknown_settings_use_generic_loop():
    X = mixture_data(N, 2, seed=9)
    prior = steps.default_prior(X, 3, "full")
    with_prior = EMSettings(covariance_type="full", prior=prior, max_iter=40)
    assert not fast_engine.supports(with_prior)
    assert fast_engine.run_block(X, random_state(X, 3, 2, "full", 1), with_prior, X.var(0)) is None
    start = random_state(X, K=3, R=2, cov_type="full", seed=10, settings=with_prior)
    fast_run = run_em(X, start, with_prior, fast_engine.FAST_ENGINE)
    assert_same_run(fast_run, run_em(X, start, with_prior, NUMPY_ENGINE))
    if "symmetric_means" in EMSettings._fields:
        assert not fast_engine.supports(EMSettings(symmetric_means=True))


# ---------------------------------------------------------------------------------------------
# Determinism and the engine choice
# ---------------------------------------------------------------------------------------------
def test_results_do_not_depend_on_threads_or_batching(monkeypatch):
    """Serial, one restart per thread, or every pass split over threads: bitwise equal; a
    restart run alone equals the same restart run in a batch."""
    X = mixture_data(3000, 2, seed=11)
    settings = EMSettings(covariance_type="full", max_iter=30)
    start = random_state(X, K=4, R=3, cov_type="full", seed=12)
    dv = X.var(axis=0)
    by_restart = fast_engine.run_block(X, start, settings, dv)  # R=3 < MIN_PASS_WORK: per restart
    monkeypatch.setattr(fast_engine, "MIN_PASS_WORK", 0)
    by_chunk = fast_engine.run_block(X, start, settings, dv)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        serial = fast_engine.run_block(X, start, settings, dv)
    finally:
        numba.set_num_threads(threads)
    alone = fast_engine.run_block(X, fast_engine.EMState(*(a[1:2] for a in start)), settings, dv)
    for run in (by_chunk, serial):
        for a, b in zip(run.state, by_restart.state, strict=True):
            assert np.array_equal(a, b)
        assert all(np.array_equal(a, b) for a, b in zip(run.traces, by_restart.traces, strict=True))
    assert np.array_equal(alone.traces[0], by_restart.traces[1])
    assert np.array_equal(alone.state.means[0], by_restart.state.means[1])


def test_engine_choice():
    assert engines.get("numpy") is NUMPY_ENGINE
    assert engines.get("numba") is fast_engine.FAST_ENGINE
    assert engines.get("auto") is fast_engine.FAST_ENGINE  # numba is a dependency


def test_first_use_in_a_process_loads_every_kernel_before_any_timed_fit():
    """engines.get("numba") warms the engine: the fused loop and both passes are loaded (from
    numba's disk cache) before a fit starts its clock. Checked in a fresh process."""
    code = (
        "from workbench.em import engines, fast, fast_loop\n"
        "kernels = (fast_loop.em_restarts, fast.e_pass, fast.s_pass)\n"
        "before = [len(k.signatures) for k in kernels]\n"
        "engines.get('numba')\n"
        "print(before, [len(k.signatures) for k in kernels])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[0, 0, 0] [1, 1, 1]", out.stdout + out.stderr


def test_the_warm_up_is_the_first_fits_compile_time_not_its_wall_time():
    """The numba kernels' one-time warm-up in a process is recorded as that fit's
    ``compile_time`` (outside its wall time); later fits, and numpy fits, record 0. Fresh
    process, so the warm-up happens in the first fit."""
    code = (
        "import numpy as np\n"
        "from workbench.em.fitter import EMFitter\n"
        "X = np.random.default_rng(0).normal(size=(200, 1))\n"
        "fits = [EMFitter(n_components=2, engine=e).fit_array(X, np.random.default_rng(1))\n"
        "        for e in ('numpy', 'numba', 'numba')]\n"
        "print(*(f.diagnostics['compile_time'] for f in fits))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    numpy_fit, first, second = (float(v) for v in out.stdout.split())
    assert numpy_fit == 0.0 and first > 0.0 and second == 0.0, out.stdout


def test_a_runner_cells_warm_up_is_its_compile_time():
    """The runner loads the kernels through ``prepare`` before a cell's clock starts and records
    the seconds as that cell's ``compile_time`` (the fit itself then finds them loaded). Fresh
    process, serial executor, so the warm-up falls in the first cell."""
    code = (
        "import numpy as np\n"
        "from workbench.experiment.runner import CellTask, run_cell\n"
        "task = dict(generator='gaussian_mixture', data_settings=dict(n=100, K=2, d=1,\n"
        "    separation=3.0), data_entropy=(1,), method='em',\n"
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

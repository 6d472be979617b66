"""The EM loop: an ``init`` and a ``step`` on small immutable records, stopping rules, statuses.

All R restarts of one data set run together as batched arrays; a restart that stops (converged,
max_iter or degenerate) is frozen while the others go on. Memory is bounded by running the
restarts in blocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import oracle_steps as steps
from oracle_steps import Prior

from workbench.densities import precision_cholesky

STATUSES = ("converged", "max_iter", "degenerate")
# Degenerate kinds. Stops: "nan" (a non-finite log-likelihood), "weight" (an expected count fell
# below min_count, free weights only), "covariance" (a variance fell below collapse_tol times the
# data's). Verdicts on the final state of a run that converged or reached max_iter: "floor" (a
# covariance held at the variance floor) and "spurious" (a component with fewer expected points
# than its covariance needs, :func:`min_support`).
DEGENERATE_KINDS = ("nan", "weight", "covariance", "floor", "spurious")
# Expected counts below this (the smallest normal float: the responsibilities underflowed) leave
# a component's mean and covariance at their previous values (fixed weights only; see step).
EMPTY_COUNT = float(np.finfo(float).tiny)
# Largest block of work per restart batch, in array elements of the (R, K, n, d) temporaries.
BLOCK_ELEMENTS = 2**25


class EMSettings(NamedTuple):
    """How EM runs. ``fixed_*`` hold parameters at given values in every iteration (shapes as in
    :class:`workbench.params.MixtureParams`, without the restart axis); None leaves them free.

    tol: stop when |L_t - L_{t-1}| < tol * n, L the total log-likelihood (plus log prior for
    MAP-EM): the mean log-likelihood per point changed by less than tol nats. Changes of L do
    not depend on the data's units (L itself shifts by n log|A| under x -> A x).
    reg_covar: the variance floor relative to the data's scale: no variance of a feature below
    reg_covar times that feature's variance in the data
    (:func:`workbench.em.steps.variance_floor`, :func:`~workbench.em.steps.apply_variance_floor`).
    min_count: with free weights, a component whose expected count n_k falls below this has
    collapsed in weight (with fixed weights its weight cannot collapse and EM goes on).
    collapse_tol: a variance below collapse_tol times the data variance (same dimension) is a
    collapsed covariance. decrease_tol: a decrease of L beyond decrease_tol * |L| is reported
    (EM never decreases L; smaller changes are round-off). symmetric_means: K = 2 with
    mu_2 = -mu_1.
    """

    covariance_type: str = "full"
    tol: float = 1e-8
    max_iter: int = 1000
    reg_covar: float = 1e-6
    prior: Prior | None = None
    fixed_weights: np.ndarray | None = None
    fixed_means: np.ndarray | None = None
    fixed_covariances: np.ndarray | None = None
    min_count: float = 1e-3
    collapse_tol: float = 1e-10
    decrease_tol: float = 1e-9
    symmetric_means: bool = False


class EMState(NamedTuple):
    """Batched mixture parameters: weights (R, K), means (R, K, d), covariances (R, ...) and the
    precision Cholesky factors (R, ...)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    prec_chol: np.ndarray


class EMInfo(NamedTuple):
    """What one step learned about the state it was given, and about the state it produced."""

    loglik: np.ndarray  # (R,) log-likelihood of the input state
    objective: np.ndarray  # (R,) loglik + log prior (= loglik without a prior)
    weight_collapsed: np.ndarray  # (R, K) bool, for the produced state
    covariance_collapsed: np.ndarray  # (R, K) bool, for the produced state
    nk: np.ndarray  # (R, K) expected counts sum_i r_ik under the input state


class Engine(NamedTuple):
    """The two data passes of an iteration; numpy reference or a fused kernel.

    run_block, when given, runs a whole block of restarts (same contract as ``_run_block``) and
    returns None for settings it does not support, which then use the generic loop.
    """

    e_step: Callable[..., steps.EStats]
    centred_scatter: Callable[..., np.ndarray]
    run_block: Callable[..., EMRun | None] | None = None


NUMPY_ENGINE = Engine(steps.e_step, steps.centred_scatter)


class EMRun(NamedTuple):
    """Final batched state and per-restart outcomes of :func:`run_em`."""

    state: EMState
    loglik: np.ndarray  # (R,)
    objective: np.ndarray  # (R,)
    n_iter: np.ndarray  # (R,) number of M-steps applied
    status: np.ndarray  # (R,) str
    degenerate_component: np.ndarray  # (R,) int, -1 when none (all K for tied: K)
    degenerate_kind: np.ndarray  # (R,) str: one of DEGENERATE_KINDS, or ""
    traces: list[np.ndarray]  # R arrays of objective per evaluated state, (n_iter + 1,)
    n_decreases: np.ndarray  # (R,) decreases of L beyond round-off
    max_decrease: np.ndarray  # (R,) largest decrease of L (0 when monotone)
    wall_time: float  # seconds, all restarts
    nk: np.ndarray  # (R, K) expected counts sum_i r_ik under the final state


# ---------------------------------------------------------------------------------------------
def safe_precision_cholesky(covariances, covariance_type, data_variance, collapse_tol):
    """Precision Cholesky factors, and which components have collapsed (R, K) bool.

    Collapsed components (non-finite, not positive definite, or a conditional variance below
    collapse_tol * data variance, :func:`workbench.em.steps.variance_scale`) get an identity
    factor so the arrays stay finite.
    """
    covariances = np.array(covariances, dtype=float)
    data_variance = steps.variance_scale(data_variance)
    tied = covariance_type == "tied"
    if covariance_type in ("full", "tied"):
        mats = covariances[:, None] if tied else covariances  # (R, K', d, d)
        bad = ~np.all(np.isfinite(mats), axis=(-1, -2))
        mats[bad] = np.eye(mats.shape[-1])
        try:
            chol = np.linalg.cholesky(mats)
        except np.linalg.LinAlgError:
            chol = np.full_like(mats, np.nan)
            for idx in np.ndindex(mats.shape[:2]):
                try:
                    chol[idx] = np.linalg.cholesky(mats[idx])
                except np.linalg.LinAlgError:
                    bad[idx] = True
        cond_var = np.diagonal(chol, axis1=-2, axis2=-1) ** 2
        with np.errstate(invalid="ignore"):
            bad |= ~np.all(cond_var >= collapse_tol * data_variance, axis=-1)
        mats[bad] = np.eye(mats.shape[-1])
        prec = precision_cholesky(mats, "full")
        return (prec[:, 0] if tied else prec), bad
    scale = data_variance if covariance_type == "diag" else data_variance.mean()
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(covariances) & (covariances >= collapse_tol * scale)
    bad = ~ok if covariance_type == "spherical" else ~np.all(ok, axis=-1)
    covariances[~ok] = 1.0
    return precision_cholesky(covariances, covariance_type), bad


def init_state(weights, means, covariances, settings: EMSettings, data_variance) -> EMState:
    """Batched starting state, with the fixed parameters imposed. Shapes with leading R."""
    weights, means, covariances = _impose_fixed(weights, means, covariances, settings)
    prec_chol, _ = safe_precision_cholesky(
        covariances, settings.covariance_type, data_variance, settings.collapse_tol
    )
    return EMState(weights, means, covariances, prec_chol)


def _impose_fixed(weights, means, covariances, settings: EMSettings):
    def fixed(value, current):
        if value is None:
            return np.asarray(current, dtype=float)
        return np.broadcast_to(np.asarray(value, dtype=float), current.shape).copy()

    return (
        fixed(settings.fixed_weights, weights),
        fixed(settings.fixed_means, means),
        fixed(settings.fixed_covariances, covariances),
    )


def step(X, state: EMState, settings: EMSettings, data_variance, engine=NUMPY_ENGINE):
    """One EM iteration: E-step at ``state``, then M-step. Returns (new_state, EMInfo).

    With fixed weights a component cannot collapse in weight: its M-step stays the exact one
    (mean sum_i r_ik x_i / n_k, however small n_k), and only where n_k underflows
    (< EMPTY_COUNT, the responsibilities are zero; without a prior) are its mean and covariance
    kept: the M-step objective does not depend on them there, so EM stays monotone."""
    cov_type = settings.covariance_type
    with np.errstate(divide="ignore"):
        log_weights = np.log(state.weights)
    stats = engine.e_step(X, log_weights, state.means, state.prec_chol, cov_type)
    objective = stats.loglik
    if settings.prior is not None:
        objective = objective + steps.log_prior_density(
            state.means, state.covariances, state.prec_chol, cov_type, settings.prior
        )
    if settings.fixed_weights is None:
        weight_collapsed = ~(stats.nk >= settings.min_count)
        weights = steps.estimate_weights(stats.nk)
    else:
        weight_collapsed = np.zeros(stats.nk.shape, dtype=bool)
        weights = state.weights
    empty = weight_collapsed  # the M-step is undefined there (0/0) without a prior
    if settings.prior is None:
        empty = empty | ~(stats.nk >= EMPTY_COUNT)
    means = steps.estimate_means(stats.nk, stats.sum_x, settings.prior)
    if settings.symmetric_means:
        means = steps.estimate_symmetric_means(stats.nk, stats.sum_x, state.prec_chol, cov_type)
    if settings.fixed_means is not None:
        means = state.means
    means = np.where(empty[..., None], state.means, means)
    if settings.fixed_covariances is not None:
        new = EMState(weights, means, state.covariances, state.prec_chol)
        cov_collapsed = np.zeros_like(weight_collapsed)
    else:
        scatter = engine.centred_scatter(X, stats.resp, means, cov_type)
        covariances = steps.raw_covariances(scatter, stats.nk, means, cov_type, settings.prior)
        if cov_type != "tied":
            keep = empty.reshape(empty.shape + (1,) * (covariances.ndim - empty.ndim))
            covariances = np.where(keep, state.covariances, covariances)
        floor = steps.variance_floor(settings.reg_covar, data_variance, cov_type)
        covariances = steps.apply_variance_floor(covariances, cov_type, floor)
        prec_chol, cov_collapsed = safe_precision_cholesky(
            covariances, cov_type, data_variance, settings.collapse_tol
        )
        if cov_type == "tied":  # one shared matrix: every component collapses with it
            cov_collapsed = np.broadcast_to(cov_collapsed, weight_collapsed.shape)
        new = EMState(weights, means, covariances, prec_chol)
    collapsed = cov_collapsed & ~weight_collapsed
    return new, EMInfo(stats.loglik, objective, weight_collapsed, collapsed, stats.nk)


def converged(change: np.ndarray, n: int, tol: float) -> np.ndarray:
    """The stopping rule: |L_t - L_{t-1}| < tol * n (the mean log-likelihood per point changed
    by less than tol nats; invariant under any change of the data's units)."""
    return np.abs(change) < tol * n


def min_support(settings: EMSettings, d: int) -> float:
    """The fewest expected points a component needs for its covariance to be estimated from
    its own points: full d + 1 (a scatter of m points about their mean has rank at most
    m - 1), diag and spherical 2 (one variance per feature, or one shared, is zero from a single
    point), tied 1 (the covariance is pooled over all points; only the mean is the component's,
    and one point fixes it). With fixed means the points need not also fix the mean: one fewer.
    0 (no check) when the covariances are fixed."""
    if settings.fixed_covariances is not None:
        return 0.0
    need = {"full": d + 1.0, "diag": 2.0, "spherical": 2.0, "tied": 1.0}[settings.covariance_type]
    return need - (settings.fixed_means is not None)


def label_solutions(run: EMRun, settings: EMSettings, data_variance) -> EMRun:
    """The verdict on each final state that converged or reached max_iter: ``degenerate`` of
    kind ``floor`` when a covariance is held at the variance floor
    (:func:`workbench.em.steps.at_floor`: an eigenvalue of F^-1/2 S F^-1/2 within 1e-9 of 1;
    for tied, every component), else of kind ``spurious`` when a component's expected count
    sum_i r_ik under the final state is below :func:`min_support`. The component recorded is
    the first such one. EM itself ran to its end: the floor keeps it monotone and bounded."""
    cov_type = settings.covariance_type
    R, K, d = run.state.means.shape
    held = np.zeros((R, K), dtype=bool)
    if settings.fixed_covariances is None:
        floor = steps.variance_floor(settings.reg_covar, data_variance, cov_type)
        held |= steps.at_floor(run.state.covariances, cov_type, floor).reshape(R, -1)
    thin = ~(run.nk >= min_support(settings, d))
    open_ = (run.status == "converged") | (run.status == "max_iter")
    if not np.any(open_[:, None] & (held | thin)):
        return run
    status, kind = run.status.astype(object), run.degenerate_kind.astype(object)
    component = run.degenerate_component.copy()
    for name, mask in (("spurious", thin), ("floor", held)):  # floor wins when both
        hit = open_ & mask.any(axis=1)
        status[hit], kind[hit] = "degenerate", name
        component[hit] = np.argmax(mask[hit], axis=1)
    return run._replace(
        status=status.astype(str), degenerate_kind=kind.astype(str), degenerate_component=component
    )


# ---------------------------------------------------------------------------------------------
def run_em(X, start: EMState, settings: EMSettings, engine: Engine = NUMPY_ENGINE) -> EMRun:
    """Run EM from every restart in ``start`` until each stops. Blocks of restarts run in turn."""
    t0 = time.perf_counter()
    R = start.means.shape[0]
    n, d = X.shape
    K = start.means.shape[1]
    block = max(1, BLOCK_ELEMENTS // (n * K * d))
    data_variance = X.var(axis=0)
    parts = [
        _run_any_block(X, _take(start, slice(i, i + block)), settings, engine, data_variance)
        for i in range(0, R, block)
    ]
    merged = {name: [getattr(p, name) for p in parts] for name in EMRun._fields}
    state = EMState(*(np.concatenate([p.state[j] for p in parts]) for j in range(4)))
    run = EMRun(
        state=state,
        loglik=np.concatenate(merged["loglik"]),
        objective=np.concatenate(merged["objective"]),
        n_iter=np.concatenate(merged["n_iter"]),
        status=np.concatenate(merged["status"]),
        degenerate_component=np.concatenate(merged["degenerate_component"]),
        degenerate_kind=np.concatenate(merged["degenerate_kind"]),
        traces=[t for p in parts for t in p.traces],
        n_decreases=np.concatenate(merged["n_decreases"]),
        max_decrease=np.concatenate(merged["max_decrease"]),
        wall_time=0.0,
        nk=np.concatenate(merged["nk"]),
    )
    run = label_solutions(run, settings, data_variance)
    return run._replace(wall_time=time.perf_counter() - t0)


def _run_any_block(X, state: EMState, settings, engine: Engine, data_variance) -> EMRun:
    if engine.run_block is not None:
        run = engine.run_block(X, state, settings, data_variance)
        if run is not None:
            return run
    return _run_block(X, state, settings, engine, data_variance)


def _take(state: EMState, idx) -> EMState:
    return EMState(*(a[idx] for a in state))


def _run_block(X, state: EMState, settings, engine, data_variance) -> EMRun:
    R = state.means.shape[0]
    state = EMState(*(np.array(a, dtype=float) for a in state))
    loglik = np.full(R, np.nan)
    objective = np.full(R, np.nan)
    n_iter = np.zeros(R, dtype=int)
    status = np.full(R, "max_iter", dtype=object)
    deg_component = np.full(R, -1)
    deg_kind = np.full(R, "", dtype=object)
    trace: list[np.ndarray] = []  # one (R,) row per iteration run: grows, never preallocated
    n_decreases = np.zeros(R, dtype=int)
    max_decrease = np.zeros(R)
    final_nk = np.full((R, state.means.shape[1]), np.nan)
    active = np.ones(R, dtype=bool)
    n = X.shape[0]
    for it in range(settings.max_iter + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        current = state if idx.size == R else _take(state, idx)
        with np.errstate(all="ignore"):
            new, info = step(X, current, settings, data_variance, engine)
        obj = info.objective
        trace.append(np.full(R, np.nan))
        trace[-1][idx] = obj
        previous = objective[idx]
        decrease = previous - obj
        dec_flag = np.isfinite(previous) & (decrease > settings.decrease_tol * np.abs(obj))
        n_decreases[idx] += dec_flag
        max_decrease[idx] = np.maximum(max_decrease[idx], np.where(dec_flag, decrease, 0.0))
        loglik[idx], objective[idx] = info.loglik, obj
        final_nk[idx] = info.nk

        nan = ~np.isfinite(obj)
        done = ~nan & converged(obj - previous, n, settings.tol)
        w_bad = info.weight_collapsed.any(axis=1)
        c_bad = info.covariance_collapsed.any(axis=1)
        collapsed = ~nan & ~done & (w_bad | c_bad)
        at_limit = it == settings.max_iter
        stop = nan | done | collapsed | at_limit
        status[idx[done]] = "converged"
        status[idx[nan | collapsed]] = "degenerate"
        deg_kind[idx[nan]] = "nan"
        deg_kind[idx[collapsed & w_bad]] = "weight"
        deg_kind[idx[collapsed & ~w_bad]] = "covariance"
        which = np.where(w_bad[:, None], info.weight_collapsed, info.covariance_collapsed)
        deg_component[idx[collapsed]] = np.argmax(which[collapsed], axis=1)
        active[idx[stop]] = False

        go = ~stop
        if np.any(go):
            moving = idx[go]
            for field, new_values in zip(state, new, strict=True):
                field[moving] = new_values[go]
            n_iter[moving] += 1
    rows = np.array(trace).reshape(len(trace), R)
    traces = [rows[: n_iter[r] + 1, r].copy() for r in range(R)]
    return EMRun(
        state,
        loglik,
        objective,
        n_iter,
        status.astype(str),
        deg_component,
        deg_kind.astype(str),
        traces,
        n_decreases,
        max_decrease,
        0.0,
        final_nk,
    )

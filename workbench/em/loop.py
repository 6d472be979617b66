"""The EM loop, written once for every model: stopping, statuses, traces, SQUAREM, restarts.

:func:`_run_restart` is the loop of one restart. It knows nothing of Gaussians: it calls its
model's pieces (:class:`workbench.em.model.EMModel`) by name, ``e_step``, ``m_step``,
``log_prior``, ``copy_params``, ``copy_stats``, ``to_vector`` and ``from_vector``, which
:func:`workbench.em.specialise.specialise` binds to one model's functions and compiles (or leaves
interpreted for a model written in plain numpy). One iteration from a state theta_t whose E-step
is done (expected sufficient statistics, objective L_t = loglik + log prior):

1. record L_t in the trace; count a decrease L_{t-1} - L_t > decrease_tol |L_t|;
2. stop ``degenerate`` (kind ``nan``) if L_t is not finite; stop ``converged`` if
   |L_t - L_{t-1}| < tol * n (the mean objective per point changed by less than tol nats);
3. M-step to theta_{t+1} (with SQUAREM, one extrapolation cycle instead, below); the model may
   answer that theta_{t+1} is degenerate (a component collapsing): stop ``degenerate`` of the
   model's kind, theta_t kept;
4. stop ``max_iter`` once max_iter M-steps are applied; else E-step at theta_{t+1} and go on.

SQUAREM (Varadhan & Roland 2008, scheme SqS3), :func:`_squarem_cycle`: from theta0 (E-step
done), theta1 = F(theta0), theta2 = F(theta1), r = theta1 - theta0, v = theta2 - theta1 - r,
step a = ||r|| / ||v|| (each entry in the data's units, so no unit of the data changes a step)
clipped to [1, a_max], theta' = theta0 + 2 a r + a^2 v, then a stabilising EM step
theta_new = F(theta'). a_max starts at 1 and grows 4x each time it is reached (R package
SQUAREM). If theta' leaves the parameter space, or theta' or theta_new is degenerate, or
theta_new lowers the objective, the cycle takes theta2 (plain EM, monotone) and a_max shrinks
4x. ``n_iter`` then counts EM-map evaluations and the trace holds the objective at the start of
each cycle.

The loop runs in blocks of iterations: it returns when its trace buffer is full and the driver
(:func:`run`) hands it a new one, so a trace grows with the iterations run, never with max_iter.
Restarts run in threads (the compiled loop releases the GIL), or, for a few restarts on many
points, one after another with each data pass split over threads (the model's parallel E-step).
Both give bitwise the same numbers: no sum depends on which thread computes it.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from workbench.em.model import EMModel
from workbench.em.specialise import kernel, specialise
from workbench.status import EM_STATUS_CODES, DegenerateKind, EMStatus

STATUS_NAMES = EM_STATUS_CODES  # code -> EMStatus
MAX_ITER, CONVERGED, DEGENERATE = 0, 1, 2
KIND_NONE, KIND_NAN = 0, -1  # model kinds are 1, 2, ... (EMModel.degenerate_kinds)
# Slots of the loop's integer and real registers (so that a block can resume where it stopped).
IT, N_ITER, STATUS, KIND, COMPONENT, N_DEC, STARTED, DONE, WRITTEN, LIMIT, SQUAREM = range(11)
OBJ, PREV, MAX_DEC, LOGLIK, STEP_MAX, TOL, DECREASE_TOL = range(7)
STEP_MAX_START, STEP_FACTOR = 1.0, 4.0
FIRST_TRACE_BLOCK = 256
# Iterations per block are also bounded by work (pass_work x iterations), so that control comes
# back to Python about every 0.1 s: a timeout or Ctrl-C then stops every restart promptly.
BLOCK_WORK = 200_000_000
# Split each data pass over threads when one pass costs at least this much (the model's
# pass_work: points x statistics x components, about 0.1 ms; with the threads kept awake
# between passes, see specialise.py, 1.3x faster at 5,000 x 2, K = 5 full) and there are fewer
# restarts than this many per thread; otherwise whole restarts go to the threads.
MIN_PASS_WORK = 100_000
MAX_RESTARTS_PER_THREAD = 4


class LoopSettings(NamedTuple):
    """How the loop runs: at most ``max_iter`` M-steps; stop when |L_t - L_{t-1}| < tol * n;
    count decreases beyond decrease_tol * |L|; ``squarem`` accelerates."""

    max_iter: int = 1000
    tol: float = 1e-8
    decrease_tol: float = 1e-9
    squarem: bool = False


class LoopRun(NamedTuple):
    """Per-restart outcomes of :func:`run`; ``params`` and ``stats`` are the model's records
    batched over R (the final state and the statistics of its E-step)."""

    params: tuple
    stats: tuple
    loglik: np.ndarray  # (R,) log-likelihood of the final state
    objective: np.ndarray  # (R,) loglik + log prior
    n_iter: np.ndarray  # (R,) M-steps applied (SQUAREM: EM-map evaluations)
    status: np.ndarray  # (R,) str, one of STATUS_NAMES
    degenerate_kind: np.ndarray  # (R,) str: "", "nan" or one of the model's kinds
    degenerate_component: np.ndarray  # (R,) int, -1 when none
    traces: list[np.ndarray]  # R arrays: the objective per evaluated state (per SQUAREM cycle)
    n_decreases: np.ndarray  # (R,)
    max_decrease: np.ndarray  # (R,)
    wall_time: float


# ---------------------------------------------------------------------------------------------
# The loop (templates: the model's pieces are bound by name in compile_loop)
# ---------------------------------------------------------------------------------------------
def _run_restart(X, theta, theta_next, stats, stats_next, cfg, work, sq, ints, reals, trace):
    """Run one restart's EM from the registers ``ints``/``reals`` until it stops or ``trace``
    is full; theta and stats hold the current state and its E-step statistics throughout."""
    if ints[STARTED] == 0:
        ll = e_step(X, theta, cfg, stats, work)  # noqa: F821 (bound by specialise)
        reals[LOGLIK] = ll
        reals[OBJ] = ll + log_prior(theta, cfg)  # noqa: F821
        reals[PREV] = np.nan
        reals[STEP_MAX] = STEP_MAX_START
        ints[STARTED] = 1
    written = 0
    while written < trace.shape[0]:
        obj = reals[OBJ]
        prev = reals[PREV]
        trace[written] = obj
        written += 1
        decrease = prev - obj
        if math.isfinite(prev) and decrease > reals[DECREASE_TOL] * abs(obj):
            ints[N_DEC] += 1
            reals[MAX_DEC] = max(reals[MAX_DEC], decrease)
        if not math.isfinite(obj):
            ints[STATUS], ints[KIND], ints[DONE] = DEGENERATE, KIND_NAN, 1
            break
        if math.isfinite(prev) and abs(obj - prev) < reals[TOL]:
            ints[STATUS], ints[DONE] = CONVERGED, 1
            break
        at_limit = ints[N_ITER] >= ints[LIMIT]
        if ints[SQUAREM] == 1 and not at_limit:
            kind, component, evals, ll_next = squarem_cycle(  # noqa: F821
                X, theta, stats, obj, theta_next, stats_next, cfg, work, sq, reals
            )
        elif ints[SQUAREM] == 1:
            kind, component, evals, ll_next = KIND_NONE, -1, 0, 0.0
        else:  # the M-step is taken even at the limit: a degenerate next state is reported
            kind, component = m_step(stats, theta, cfg, theta_next)  # noqa: F821
            evals, ll_next = 1, 0.0
            if kind == KIND_NONE and not at_limit:
                ll_next = e_step(X, theta_next, cfg, stats_next, work)  # noqa: F821
        if kind != KIND_NONE:
            ints[STATUS], ints[KIND], ints[COMPONENT], ints[DONE] = DEGENERATE, kind, component, 1
            break
        if at_limit:
            ints[DONE] = 1  # status stays max_iter
            break
        copy_params(theta_next, theta)  # noqa: F821
        copy_stats(stats_next, stats)  # noqa: F821
        reals[PREV] = obj
        reals[LOGLIK] = ll_next
        reals[OBJ] = ll_next + log_prior(theta, cfg)  # noqa: F821
        ints[N_ITER] += evals
        ints[IT] += 1
    ints[WRITTEN] = written


def _squarem_cycle(X, theta0, stats0, obj0, theta_new, stats_new, cfg, work, sq, reals):
    """One SQUAREM cycle from theta0 (objective obj0, E-step statistics stats0): writes the
    accepted state into theta_new and its E-step into stats_new. Returns (degenerate kind,
    component, EM-map evaluations, log-likelihood at theta_new)."""
    theta1, theta2, theta_c, stats_c, vectors, units = sq
    kind, component = m_step(stats0, theta0, cfg, theta1)  # noqa: F821
    if kind != KIND_NONE:
        return kind, component, 1, np.nan
    e_step(X, theta1, cfg, stats_c, work)  # noqa: F821
    kind, component = m_step(stats_c, theta1, cfg, theta2)  # noqa: F821
    if kind != KIND_NONE:
        return kind, component, 2, np.nan
    evals = 2
    v0, v1, v2, vc = vectors[0], vectors[1], vectors[2], vectors[3]
    to_vector(theta0, cfg, v0)  # noqa: F821
    to_vector(theta1, cfg, v1)  # noqa: F821
    to_vector(theta2, cfg, v2)  # noqa: F821
    norm_r, norm_v = 0.0, 0.0
    for j in range(v0.shape[0]):
        r = v1[j] - v0[j]
        v = v2[j] - v1[j] - r
        norm_r += (r / units[j]) ** 2
        norm_v += (v / units[j]) ** 2
    ratio = math.sqrt(norm_r / norm_v) if norm_v > 0.0 else 1.0
    step_max = reals[STEP_MAX]
    step = min(max(ratio, 1.0), step_max)
    accepted = False
    ll_new = np.nan
    if step > 1.0:
        for j in range(v0.shape[0]):
            r = v1[j] - v0[j]
            vc[j] = v0[j] + 2.0 * step * r + step * step * (v2[j] - v1[j] - r)
        if from_vector(vc, theta0, cfg, theta_c):  # noqa: F821
            e_step(X, theta_c, cfg, stats_c, work)  # noqa: F821
            kind, _ = m_step(stats_c, theta_c, cfg, theta_new)  # noqa: F821
            evals += 1
            if kind == KIND_NONE:
                ll_new = e_step(X, theta_new, cfg, stats_new, work)  # noqa: F821
                obj_new = ll_new + log_prior(theta_new, cfg)  # noqa: F821
                accepted = obj_new >= obj0 - reals[DECREASE_TOL] * abs(obj0)
    if step == step_max:
        step_max *= STEP_FACTOR
    if step > 1.0 and not accepted:
        step_max = max(STEP_MAX_START, step_max / STEP_FACTOR)
    reals[STEP_MAX] = step_max
    if not accepted:
        copy_params(theta2, theta_new)  # noqa: F821
        ll_new = e_step(X, theta_new, cfg, stats_new, work)  # noqa: F821
    return KIND_NONE, -1, evals, ll_new


# ---------------------------------------------------------------------------------------------
# Compilation and the driver
# ---------------------------------------------------------------------------------------------
class CompiledLoop(NamedTuple):
    serial: object  # the loop with the model's serial pieces
    parallel: object  # the loop with the model's parallel E-step (the serial loop if none)


_LOOPS: dict[str, CompiledLoop] = {}


def compile_loop(model: EMModel) -> CompiledLoop:
    """The loop specialised to ``model`` (compiled once per process; numba caches it on disk)."""
    if model.name in _LOOPS:
        return _LOOPS[model.name]

    def build(e_step, parallel_tag: bool):
        pieces = {
            "e_step": e_step,
            "m_step": model.m_step,
            "log_prior": model.log_prior,
            "copy_params": model.copy_params,
            "copy_stats": model.copy_stats,
            "to_vector": model.to_vector,
            "from_vector": model.from_vector,
        }
        cycle = specialise(_squarem_cycle, model.name + ("_p" if parallel_tag else ""), pieces)
        return specialise(
            _run_restart,
            model.name + ("_p" if parallel_tag else ""),
            {**pieces, "squarem_cycle": cycle},
        )

    serial = build(model.e_step, False)
    parallel = serial if model.e_step_parallel is None else build(model.e_step_parallel, True)
    _LOOPS[model.name] = CompiledLoop(serial, parallel)
    return _LOOPS[model.name]


def threads() -> int:
    """Threads to use: numba's setting (NUMBA_NUM_THREADS, numba.set_num_threads)."""
    return numba.get_num_threads()


_POOL: dict[int, ThreadPoolExecutor] = {}
os.register_at_fork(after_in_child=_POOL.clear)
_BLAS: list[ThreadpoolController] = []  # found once per process (the search takes ms)


def one_blas_thread():
    """A context that limits BLAS to one thread (the loop's own threads split the work)."""
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


def _pool(size: int) -> ThreadPoolExecutor:
    if size not in _POOL:
        _POOL[size] = ThreadPoolExecutor(size, thread_name_prefix="em-restart")
    return _POOL[size]


class _Restart:
    """One restart's buffers and registers."""

    def __init__(self, model: EMModel, X, theta, cfg, settings: LoopSettings, parallel: bool):
        self.theta = model.copy_new(theta)
        self.theta_next = model.copy_new(theta)
        self.stats = model.new_stats(X, theta, cfg)
        self.stats_next = model.new_stats(X, theta, cfg)
        self.work = model.new_work(X, theta, cfg, parallel)
        if settings.squarem:
            self.sq = (
                model.copy_new(theta),
                model.copy_new(theta),
                model.copy_new(theta),
                model.new_stats(X, theta, cfg),
                np.zeros((4, model.vector_size(theta, cfg))),
                model.vector_units(X, theta, cfg),
            )
        else:  # empty buffers of the same types: one compiled loop serves both
            empty = tuple(np.zeros((0,) * np.ndim(a)) for a in theta)
            stats = tuple(np.zeros((0,) * np.ndim(a)) for a in self.stats)
            self.sq = (empty, empty, empty, stats, np.zeros((4, 0)), np.ones(0))
        self.ints = np.zeros(11, dtype=np.int64)
        self.ints[STATUS], self.ints[COMPONENT] = MAX_ITER, -1
        self.ints[LIMIT], self.ints[SQUAREM] = settings.max_iter, int(settings.squarem)
        self.reals = np.zeros(7)
        self.reals[TOL] = settings.tol * model.n_points(X)  # the stopping rule, in nats
        self.reals[DECREASE_TOL] = settings.decrease_tol
        self.trace: list[np.ndarray] = []
        self.max_block = int(max(1, BLOCK_WORK // max(model.pass_work(X, theta, cfg), 1.0)))
        self.cancelled = False

    def run(self, loop, X, cfg) -> None:
        block = min(FIRST_TRACE_BLOCK, self.max_block)
        while self.ints[DONE] == 0 and not self.cancelled:
            buffer = np.empty(block)
            loop(
                X, self.theta, self.theta_next, self.stats, self.stats_next, cfg, self.work,
                self.sq, self.ints, self.reals, buffer,
            )  # fmt: skip
            self.trace.append(buffer[: self.ints[WRITTEN]])
            block = min(2 * block, self.max_block, 1 << 20)


def run(
    model: EMModel,
    X: np.ndarray,
    params: tuple,
    cfg,
    settings: LoopSettings,
    split_passes: bool | None = None,
) -> LoopRun:
    """Run EM from every restart of ``params`` (the model's parameter record with a leading
    restart axis R) on data X with the model's settings ``cfg``. BLAS runs on one thread inside
    (the loop's own threads split the work), so results never depend on the thread count.
    split_passes: run restarts one after another with each data pass split over threads (None:
    when a pass is large and restarts are few)."""
    t0 = time.perf_counter()
    loops = compile_loop(model)
    R = model.n_restarts(params)
    n_threads = threads()
    if split_passes is None:
        split_passes = (
            model.pass_work(X, params, cfg) >= MIN_PASS_WORK
            and R < MAX_RESTARTS_PER_THREAD * n_threads
            and n_threads > 1
        )
    split_passes = split_passes and model.e_step_parallel is not None
    restarts = [
        _Restart(model, X, model.take(params, r), cfg, settings, split_passes) for r in range(R)
    ]
    with one_blas_thread():
        try:
            if split_passes:
                for restart in restarts:
                    restart.run(loops.parallel, X, cfg)
            elif n_threads == 1 or R == 1:
                for restart in restarts:
                    restart.run(loops.serial, X, cfg)
            else:
                jobs = [_pool(n_threads).submit(r.run, loops.serial, X, cfg) for r in restarts]
                for job in jobs:
                    job.result()
        except BaseException:  # a timeout or Ctrl-C: stop the restarts running in threads too
            for restart in restarts:
                restart.cancelled = True
            raise
    kinds = (DegenerateKind.NAN, DegenerateKind.NONE, *model.degenerate_kinds)  # index kind + 1
    return LoopRun(
        params=model.stack([r.theta for r in restarts]),
        stats=model.stack([r.stats for r in restarts]),
        loglik=np.array([r.reals[LOGLIK] for r in restarts]),
        objective=np.array([r.reals[OBJ] for r in restarts]),
        n_iter=np.array([r.ints[N_ITER] for r in restarts]),
        status=np.array([STATUS_NAMES[r.ints[STATUS]] for r in restarts]),
        degenerate_kind=np.array([kinds[r.ints[KIND] + 1] for r in restarts]),
        degenerate_component=np.array([r.ints[COMPONENT] for r in restarts]),
        traces=[np.concatenate(r.trace) for r in restarts],
        n_decreases=np.array([r.ints[N_DEC] for r in restarts]),
        max_decrease=np.array([r.reals[MAX_DEC] for r in restarts]),
        wall_time=time.perf_counter() - t0,
    )


@kernel
def copy_array(src, dst) -> None:
    """dst[...] = src (same shape); a helper for models' copy_params/copy_stats."""
    dst[...] = src


def restart_scores(status: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` (a log-likelihood or objective per restart) with degenerate restarts and NaN
    at -inf: what restarts are ranked by."""
    return np.nan_to_num(np.where(status == EMStatus.DEGENERATE, -np.inf, values), nan=-np.inf)


def best_restart(status: np.ndarray, objective: np.ndarray) -> int:
    """The restart returned as the fit: the highest objective among those not degenerate, or
    the highest finite one when every restart is degenerate (0 when none is finite)."""
    score = restart_scores(status, objective)
    if not np.isfinite(score).any():
        score = np.nan_to_num(objective, nan=-np.inf)
    return int(np.argmax(score))


def restart_counts(status: np.ndarray) -> dict[str, int]:
    """How many restarts ran, converged and degenerated (the fit's diagnostics)."""
    return {
        "n_restarts": len(status),
        "n_converged": int(np.sum(status == EMStatus.CONVERGED)),
        "n_degenerate": int(np.sum(status == EMStatus.DEGENERATE)),
    }

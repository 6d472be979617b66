"""The fast EM engine's Python side: ``FAST_ENGINE = Engine(e_step, centred_scatter,
run_block)``, built on the compiled kernels of :mod:`workbench.em.fast` (the data passes) and
:mod:`workbench.em.fast_loop` (the fused loop).

- :func:`e_step` and :func:`centred_scatter` have the signatures and, to round-off, the results
  of :func:`workbench.em.steps.e_step` and :func:`~workbench.em.steps.centred_scatter`:
  batched over R restarts, all four covariance types. The generic loop uses them for the
  settings the fused loop leaves to it (MAP-EM with a prior, symmetric means).
- :func:`run_block` runs the whole loop of ``fit._run_block`` compiled, for the settings
  :func:`supports` accepts, and returns None for the others.

Threads: the kernels release the GIL and run in plain Python threads (:func:`run_tasks`), split
so that every chunk's partial sums are the same whoever computes them (bitwise-identical results,
serial or threaded). Layouts: :func:`unify` and :func:`ununify` convert between each covariance
type's shapes and the kernels' unified (R, K, d, d) layout.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from workbench.em.fast import TIED, TYPE_CODES, chunk_size, chunked, e_pass, s_pass
from workbench.em.fast_loop import (
    FIXABLE,
    FUSED_SETTINGS,
    KIND_NAMES,
    MAX_RESTARTS_PER_THREAD,
    MIN_PASS_WORK,
    SCATTER,
    STATUS_NAMES,
    STOP,
    buffers,
    em_restarts,
    step_e,
    step_m,
)
from workbench.em.fit import EMRun, EMSettings, EMState, Engine
from workbench.em.steps import EStats, variance_floor, variance_scale
from workbench.gaussian import check_covariance_type, log_det_precision_cholesky

# ---------------------------------------------------------------------------------------------
# Threads: the kernels release the GIL, so plain Python threads run them on every core
# ---------------------------------------------------------------------------------------------
_POOL: dict[int, ThreadPoolExecutor] = {}  # by size; a forked child starts with none
os.register_at_fork(after_in_child=_POOL.clear)


def threads() -> int:
    """Threads to use: numba's setting (NUMBA_NUM_THREADS, numba.set_num_threads)."""
    return numba.get_num_threads()


def run_tasks(tasks: list[tuple]) -> None:
    """Run the (function, *args) tasks on up to :func:`threads` threads (this one and a shared
    pool), each thread taking the next task as it comes free; return when all are done."""
    workers = min(threads(), len(tasks))
    if workers <= 1:
        for task in tasks:
            task[0](*task[1:])
        return
    pending = iter(tasks)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                task = next(pending, None)
            if task is None:
                return
            task[0](*task[1:])

    if workers - 1 not in _POOL:
        _POOL[workers - 1] = ThreadPoolExecutor(workers - 1, thread_name_prefix="workbench-em")
    helpers = [_POOL[workers - 1].submit(work) for _ in range(workers - 1)]
    work()
    for helper in helpers:
        helper.result()


def split(total: int, parts: int) -> list[tuple[int, int]]:
    """total items in at most ``parts`` contiguous (lo, hi) ranges of near-equal size."""
    parts = max(1, min(parts, total))
    bounds = [total * i // parts for i in range(parts + 1)]
    return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]


def _pass_tasks(kernel_fn, R: int, nc: int, make_args) -> list[tuple]:
    """Tasks of one pass over R restarts x nc chunks: by restarts when there are enough of them,
    else by chunks (each chunk's partial sums are the same either way)."""
    if R >= threads():
        return [(kernel_fn, *make_args(lo, hi, 0, nc)) for lo, hi in split(R, 4 * threads())]
    return [(kernel_fn, *make_args(0, R, lo, hi)) for lo, hi in split(nc, threads())]


# ---------------------------------------------------------------------------------------------
# Layout conversions and the engine functions
# ---------------------------------------------------------------------------------------------
def unify(a: np.ndarray, covariance_type: str, K: int, d: int) -> np.ndarray:
    """Covariances or precision factors in the covariance type's shape (leading R) -> the unified
    (R, K, d, d) layout."""
    a = np.asarray(a, dtype=float)
    if covariance_type == "full":
        return np.array(a, dtype=float, order="C")
    out = np.zeros((a.shape[0], K, d, d))
    if covariance_type == "tied":
        out[:] = a[:, None]
    else:
        j = np.arange(d)
        out[:, :, j, j] = a if covariance_type == "diag" else a[:, :, None]
    return out


def ununify(a: np.ndarray, covariance_type: str) -> np.ndarray:
    """Inverse of :func:`unify`."""
    if covariance_type == "full":
        return a
    if covariance_type == "tied":
        return a[:, 0].copy()
    if covariance_type == "diag":
        return np.diagonal(a, axis1=-2, axis2=-1).copy()
    return a[:, :, 0, 0].copy()


def log_det(prec_chol: np.ndarray, covariance_type: str, K: int, d: int) -> np.ndarray:
    """log|P| per restart and component, (R, K), computed as the reference does."""
    value = log_det_precision_cholesky(np.asarray(prec_chol, float), covariance_type, d)
    if covariance_type == "tied":
        value = np.repeat(value[:, None], K, axis=1)
    return np.ascontiguousarray(value, dtype=float)


def e_step(X, log_weights, means, prec_chol, covariance_type) -> EStats:
    """As :func:`workbench.em.steps.e_step`: X (n, d), log_weights (R, K), means (R, K, d),
    prec_chol (R, ...). Returns resp (R, n, K), loglik (R,), nk (R, K), sum_x (R, K, d)."""
    check_covariance_type(covariance_type)
    X = np.asarray(X, dtype=float)
    n, d = X.shape
    means = np.ascontiguousarray(means, dtype=float)
    R, K, _ = means.shape
    B = chunk_size(n)
    Xc = chunked(X, B)
    nc = Xc.shape[0]
    resp = np.empty((R, nc, K, B))
    ll, nk, sx = np.empty((R, nc)), np.empty((R, nc, K)), np.empty((R, nc, K, d))
    logw = np.ascontiguousarray(log_weights, dtype=float)
    P = unify(prec_chol, covariance_type, K, d)
    logdet = log_det(prec_chol, covariance_type, K, d)
    tri = covariance_type in ("full", "tied")

    def args(r_lo, r_hi, c_lo, c_hi):
        parts = (resp[r_lo:r_hi], ll[r_lo:r_hi], nk[r_lo:r_hi], sx[r_lo:r_hi])
        return (Xc, n, B, r_lo, r_hi, c_lo, c_hi, logw, means, P, logdet, tri, *parts)

    run_tasks(_pass_tasks(e_pass, R, nc, args))
    resp_out = np.ascontiguousarray(resp.transpose(0, 1, 3, 2).reshape(R, nc * B, K)[:, :n])
    return EStats(resp_out, ll.sum(axis=1), nk.sum(axis=1), sx.sum(axis=1))


def centred_scatter(X, resp, centres, covariance_type) -> np.ndarray:
    """As :func:`workbench.em.steps.centred_scatter`: sum_i r_ik (x_i - c_k)(x_i - c_k)^T for
    X (n, d), resp (R, n, K), centres (R, K, d). Returns (R, K, d, d) for full and tied,
    (R, K, d) (the diagonal) for diag and spherical."""
    check_covariance_type(covariance_type)
    X = np.asarray(X, dtype=float)
    n, d = X.shape
    centres = np.ascontiguousarray(centres, dtype=float)
    R, K, _ = centres.shape
    B = chunk_size(n)
    Xc = chunked(X, B)
    nc = Xc.shape[0]
    padded = np.zeros((R, nc * B, K))
    padded[:, :n] = resp
    respc = np.ascontiguousarray(padded.reshape(R, nc, B, K).transpose(0, 1, 3, 2))
    parts = np.zeros((R, nc, K, d, d))
    full = covariance_type in ("full", "tied")

    def args(r_lo, r_hi, c_lo, c_hi):
        rows = slice(r_lo, r_hi)
        return (Xc, B, r_lo, r_hi, c_lo, c_hi, respc[rows], centres[rows], full, parts[rows])

    run_tasks(_pass_tasks(s_pass, R, nc, args))
    S = parts.sum(axis=1)
    return S if full else np.diagonal(S, axis1=-2, axis2=-1).copy()


# ---------------------------------------------------------------------------------------------
# Python entry point
# ---------------------------------------------------------------------------------------------
def supports(settings: EMSettings) -> bool:
    """Whether :func:`run_block` runs these settings: maximum likelihood (no prior), fixed
    parameters allowed; any other setting away from its default (e.g. symmetric means) is left
    to the generic loop."""
    if settings.prior is not None:
        return False
    defaults = EMSettings._field_defaults
    for name in settings._fields:
        if name in FUSED_SETTINGS:
            continue
        value, default = getattr(settings, name), defaults.get(name)
        try:
            if not (value is default or bool(value == default)):
                return False
        except (TypeError, ValueError):
            return False
    return True


def _chunks_in_threads(X, n, B, restarts, state, outs, codes, reals, limits) -> None:
    """The loop of :func:`em_restarts` driven from Python, restart after restart, with every
    data pass split over threads by chunks (few restarts on many points). The same kernels in
    the same order: bitwise the same results."""
    nc, d = X.shape[0], X.shape[1]
    _, mu, _, P, logdet, logw = state
    K = mu.shape[1]
    tri = bool(codes[0] <= TIED)
    resp = np.zeros((1, nc, K, B))
    ranges = split(nc, threads())
    for r in restarts:
        parts, new, totals = buffers(K, d, nc)
        for it in range(int(codes[4]) + 1):
            run_tasks([
                (e_pass, X, n, B, r, r + 1, lo, hi, logw, mu, P, logdet, tri, resp, *parts[:3])
                for lo, hi in ranges
            ])  # fmt: skip
            code = step_e(r, it, parts, state, new, totals, outs, codes, reals)
            if code == STOP:
                break
            if code == SCATTER:
                run_tasks([
                    (s_pass, X, B, r, r + 1, lo, hi, resp, new[1], tri, parts[3])
                    for lo, hi in ranges
                ])  # fmt: skip
            if not step_m(
                r, it, code == SCATTER, parts, state, new, totals, outs, codes, reals, limits
            ):
                break


def run_block(X, state: EMState, settings: EMSettings, data_variance) -> EMRun | None:
    """``fit._run_block`` (same contract) fused and compiled; None for settings it does not
    implement (see :func:`supports`), which then run the generic loop."""
    if not supports(settings):
        return None
    cov_type = settings.covariance_type
    X = np.asarray(X, dtype=float)
    n, d = X.shape
    R, K = np.shape(state.means)[:2]
    B = chunk_size(n)
    Xc = chunked(X, B)
    w = np.array(state.weights, dtype=float, order="C")
    with np.errstate(divide="ignore", invalid="ignore"):
        logw = np.log(w)
    unified = (
        w, np.array(state.means, dtype=float, order="C"), unify(state.covariances, cov_type, K, d),
        unify(state.prec_chol, cov_type, K, d), log_det(state.prec_chol, cov_type, K, d), logw,
    )  # fmt: skip
    max_iter = int(settings.max_iter)
    fixed = [getattr(settings, f"fixed_{name}") is not None for name in FIXABLE]
    codes = np.array([TYPE_CODES[cov_type], *fixed, 0], dtype=np.int64)  # [4]: set per block
    scale = variance_scale(data_variance)
    limits = np.ascontiguousarray([
        settings.collapse_tol * scale, variance_floor(settings.reg_covar, data_variance, cov_type),
        np.zeros(d),
    ])  # fmt: skip
    min_count = settings.min_count if settings.fixed_weights is None else -np.inf
    reals = np.array([
        settings.tol * n, settings.reg_covar, min_count, settings.decrease_tol,
        settings.collapse_tol * scale.mean(),
    ])  # fmt: skip
    out_f = np.full((R, 3), np.nan)
    out_f[:, 2] = 0.0
    out_i = np.zeros((R, 5), dtype=np.int64)
    out_i[:, 2] = -1
    out_nk = np.full((R, K), np.nan)
    n_threads = threads()
    n_chunks = Xc.shape[0]
    split_passes = (
        n_threads > 1 and n * K * (d * d + 20) >= MIN_PASS_WORK and n_chunks >= 2 * n_threads
        and R < MAX_RESTARTS_PER_THREAD * n_threads
    )  # fmt: skip
    traces = _run_in_blocks(
        Xc, n, B, unified, out_f, out_i, out_nk, codes, reals, limits, max_iter, split_passes
    )
    n_iter = out_i[:, 0].copy()
    return EMRun(
        state=EMState(w, unified[1], ununify(unified[2], cov_type), ununify(unified[3], cov_type)),
        loglik=out_f[:, 0].copy(),
        objective=out_f[:, 1].copy(),
        n_iter=n_iter,
        status=STATUS_NAMES[out_i[:, 1]].astype(str),
        degenerate_component=out_i[:, 2].copy(),
        degenerate_kind=KIND_NAMES[out_i[:, 3]].astype(str),
        traces=traces,
        n_decreases=out_i[:, 4].copy(),
        max_decrease=out_f[:, 2].copy(),
        wall_time=0.0,
        nk=out_nk,
    )


# ---- iteration blocks (issue 11) -------------------------------------------------------------
# The compiled loop runs at most a block of iterations per call and returns to Python in between,
# so a cell's timeout (a signal, or Dask's asynchronous exception) lands between blocks, and the
# trace grows with the iterations actually run instead of being allocated for max_iter. A block
# starts at FIRST_BLOCK iterations and doubles while a block's work (points x components x
# (d^2 + 20) x restarts still running) stays below BLOCK_WORK, roughly 0.2 s of one core.
FIRST_BLOCK = 64
BLOCK_WORK = 1_000_000_000


def _run_in_blocks(
    Xc, n, B, unified, out_f, out_i, out_nk, codes, reals, limits, max_iter, split_passes
):
    """Run the fused loop of every restart to its end, a block of iterations per call; returns
    each restart's trace, (n_iter + 1,).

    A restart that reaches a block's end (status max_iter, its last M-step computed but not
    applied) resumes from the same state: its first E-step of the next block repeats the last
    one of this block with the previous objective set to NaN, so no decrease is counted twice
    and no convergence is declared on a zero change; every decision and number is bitwise that
    of one uninterrupted loop (:func:`workbench.em.fast_loop.em_restarts`)."""
    R, K = out_f.shape[0], unified[1].shape[1]
    d = unified[1].shape[2]
    per_iteration = n * K * (d * d + 20)
    pieces: list[list[np.ndarray]] = [[] for _ in range(R)]
    active, done, block = np.arange(R), 0, FIRST_BLOCK
    while True:
        limit = min(block, max_iter - done)
        codes[4] = limit
        trace = np.full((limit + 1, R), np.nan)
        before = out_i[active, 0].copy()
        args = (unified, (out_f, out_i, trace, out_nk), codes, reals, limits)
        if split_passes:
            _chunks_in_threads(Xc, n, B, active, *args)
        else:  # restarts in small groups, handed out to the threads as they come free
            groups = [(lo, hi) for a, b in _runs(active) for lo, hi in _split_range(a, b)]
            run_tasks([(em_restarts, Xc, n, B, lo, hi, *args) for lo, hi in groups])
        first = 0 if done == 0 else 1  # a resumed block repeats the previous block's last row
        for r, b in zip(active, before, strict=True):
            pieces[r].append(trace[first : out_i[r, 0] - b + 1, r].copy())
        done += limit
        if done >= max_iter:
            break
        active = active[out_i[active, 1] == STATUS_MAX_ITER]
        if active.size == 0:
            break
        out_f[active, 1] = np.nan
        if per_iteration * active.size * 2 * block <= BLOCK_WORK:
            block *= 2
    return [np.concatenate(p) for p in pieces]


STATUS_MAX_ITER = int(np.flatnonzero(STATUS_NAMES == "max_iter")[0])


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Sorted indices as (lo, hi) ranges of consecutive values."""
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    return [(int(p[0]), int(p[-1]) + 1) for p in np.split(indices, breaks) if p.size]


def _split_range(lo: int, hi: int) -> list[tuple[int, int]]:
    return [(lo + a, lo + b) for a, b in split(hi - lo, 16 * threads())]


FAST_ENGINE = Engine(e_step, centred_scatter, run_block)

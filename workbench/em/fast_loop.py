"""The fused EM loop of the fast engine: ``fit._run_block`` compiled.

Each iteration of a restart is the E-step pass of :mod:`workbench.em.fast` (chunk partial sums),
:func:`step_e` (add them up, record the iteration, apply the stopping rules, new weights and
means), the scatter pass about the new means, and :func:`step_m` (covariances, the variance
floor of :func:`workbench.em.steps.apply_variance_floor`, precision Cholesky factors, the
collapse rule of ``fit.safe_precision_cholesky``, then the new state). Statuses, iteration
counts, traces, decrease counts and final states are those of the generic loop, to round-off.

Covariances come from that second pass over the data, centred at the new means, as
:func:`workbench.em.steps.centred_scatter` computes them: neither E[x^2] - mu^2 nor a scatter
about the old means corrected by the shift of the mean, which would save the pass but cancel
catastrophically when a component collapses onto a point, just when the collapse rule must see
the variance.

Threads: many restarts (or few points) run whole restarts on each thread
(:func:`em_restarts`, handed out in small groups as threads come free); a few restarts on many
points run one after the other with each pass split over the threads by chunks
(:func:`workbench.em.fast_engine.run_block` chooses; its ``_chunks_in_threads`` drives that
case from Python). The same kernels in the same order: bitwise the same results.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from workbench.em.fast import DIAG, FULL, TIED, e_pass, kernel, s_pass
from workbench.em.fit import EMPTY_COUNT  # the generic loop's empty-component count

MAX_ITER, CONVERGED, DEGENERATE = 0, 1, 2  # status codes
STOP, SCATTER, FINISH = 0, 1, 2  # what an iteration needs after its E-step
FIXABLE = ("weights", "means", "covariances")
KIND_NONE, KIND_NAN, KIND_WEIGHT, KIND_COVARIANCE = 0, 1, 2, 3  # degenerate kinds
STATUS_NAMES = np.array(["max_iter", "converged", "degenerate"], dtype=object)
KIND_NAMES = np.array(["", "nan", "weight", "covariance"], dtype=object)
# EMSettings fields the fused loop implements (with a prior it declines).
FUSED_SETTINGS = frozenset(
    ("covariance_type", "tol", "max_iter", "reg_covar", "prior", "fixed_weights", "fixed_means",
     "fixed_covariances", "min_count", "collapse_tol", "decrease_tol")
)  # fmt: skip
# Split each data pass over threads when a pass costs at least this much (points x components x
# (d^2 + 20), roughly a millisecond) and there are fewer restarts than MAX_RESTARTS_PER_THREAD
# per thread; otherwise whole restarts go to the threads. Below it, the two synchronisations per
# iteration cost more than they save, above all on a loaded machine.
MIN_PASS_WORK = 5_000_000
MAX_RESTARTS_PER_THREAD = 4
# Rows of the ``limits`` array (3, d): collapse thresholds, variance floors, zeros.
COLLAPSE, FLOOR, ZERO = 0, 1, 2


# ---------------------------------------------------------------------------------------------
# M-step pieces (one restart, unified layout)
# ---------------------------------------------------------------------------------------------
@kernel
def new_weights_means(nk, sx, w_old, mu_old, fix_w, fix_mu, w_new, mu_new) -> None:
    """Weights nk / n and means sum_x / nk (or the fixed values); a mean stays where nk
    underflowed (nk < EMPTY_COUNT), as in fit.step."""
    K, d = mu_old.shape
    total = 0.0
    for k in range(K):
        total += nk[k]
    for k in range(K):
        w_new[k] = w_old[k] if fix_w else nk[k] / total
        keep = fix_mu or not nk[k] >= EMPTY_COUNT
        for l in range(d):
            mu_new[k, l] = mu_old[k, l] if keep else sx[k, l] / nk[k]


@kernel
def covariances(S, nk, cov_type, cov) -> None:
    """Covariances from the centred scatter S (K, d, d) into cov (K, d, d), as
    steps.raw_covariances without a prior, before the variance floor. A component whose nk
    underflowed keeps the covariance already in cov (the previous one), as in fit.step."""
    K, d = S.shape[0], S.shape[1]
    if cov_type == FULL:
        for k in range(K):
            if not nk[k] >= EMPTY_COUNT:
                continue
            for l in range(d):
                for m in range(d):
                    cov[k, l, m] = S[k, l, m] / nk[k]
    elif cov_type == TIED:
        total = 0.0
        for k in range(K):
            total += nk[k]
        for l in range(d):
            for m in range(d):
                t = S[0, l, m]
                for k in range(1, K):
                    t += S[k, l, m]
                cov[0, l, m] = t / total
    elif cov_type == DIAG:
        for k in range(K):
            if not nk[k] >= EMPTY_COUNT:
                continue
            for j in range(d):
                cov[k, j, j] = S[k, j, j] / nk[k]
    else:
        for k in range(K):
            if not nk[k] >= EMPTY_COUNT:
                continue
            t = S[k, 0, 0]
            for j in range(1, d):
                t += S[k, j, j]
            v = (t / d) / nk[k]
            for j in range(d):
                cov[k, j, j] = v


@kernel
def _finite(A) -> bool:
    """True when every entry of the matrix A is finite."""
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            if not math.isfinite(A[i, j]):
                return False
    return True


@kernel
def _cholesky(A, shift, L) -> bool:
    """The Cholesky factor of A - diag(shift) (A symmetric, finite; shift (d,)) into the lower
    triangle of L; False as soon as a pivot is not positive (L then partly written)."""
    d = A.shape[0]
    for j in range(d):
        s = A[j, j] - shift[j]
        for p in range(j):
            s -= L[j, p] * L[j, p]
        if not s > 0.0:
            return False
        ljj = math.sqrt(s)
        L[j, j] = ljj
        for i in range(j + 1, d):
            t = A[i, j]
            for p in range(j):
                t -= L[i, p] * L[j, p]
            L[i, j] = t / ljj
    return True


@kernel
def _floor_matrix(A, floor, L) -> None:
    """steps.apply_variance_floor on one finite symmetric matrix (d, d), in place: unchanged when
    A - diag(floor) has a Cholesky factor, else the eigenvalues of F^-1/2 A F^-1/2 below 1
    raised to 1 (F = diag(floor), floor (d,))."""
    if not _finite(A) or _cholesky(A, floor, L):
        return
    d = A.shape[0]
    root = np.sqrt(floor)
    W = np.empty((d, d))
    for i in range(d):
        for j in range(d):
            W[i, j] = A[i, j] / (root[i] * root[j])
    values, vectors = np.linalg.eigh(W)
    if values[0] < 1.0:
        for i in range(d):
            for j in range(d):
                t = 0.0
                for p in range(d):
                    t += vectors[i, p] * max(values[p], 1.0) * vectors[j, p]
                A[i, j] = t * (root[i] * root[j])


@kernel
def variance_floor(cov, cov_type, floor, L) -> None:
    """steps.apply_variance_floor in the unified layout, in place, with the floors (d,) of
    steps.variance_floor (spherical: all equal); nothing when they are 0. L: (d, d) scratch."""
    if not floor[0] > 0.0:
        return
    K, d = cov.shape[0], cov.shape[1]
    if cov_type == FULL or cov_type == TIED:
        for k in range(K if cov_type == FULL else 1):
            _floor_matrix(cov[k], floor, L)
    else:
        for k in range(K):
            for j in range(d):
                if cov[k, j, j] < floor[j]:
                    cov[k, j, j] = floor[j]


@kernel
def _chol_precision(A, thr, zero, P, L) -> bool:
    """Cholesky A = L L^T and P = L^-T (upper); False (P untouched) when A is not finite, not
    positive definite, or a conditional variance L_jj^2 falls below thr[j]. zero: (d,) zeros."""
    if not _finite(A) or not _cholesky(A, zero, L):
        return False
    d = A.shape[0]
    for j in range(d):
        if not L[j, j] * L[j, j] >= thr[j]:
            return False
    # columns of L^-1 by forward substitution, stored transposed: P[c, i] = (L^-1)[i, c]
    for c in range(d):
        for i in range(c):
            P[c, i] = 0.0
        P[c, c] = 1.0 / L[c, c]
        for i in range(c + 1, d):
            t = 0.0
            for p in range(c, i):
                t -= L[i, p] * P[c, p]
            P[c, i] = t / L[i, i]
    return True


@kernel
def precisions(cov, cov_type, limits, thr_spherical, P, logdet, bad, L) -> bool:
    """Precision factors and log|P| of cov (unified layout), with fit.safe_precision_cholesky's
    collapse rule (thresholds limits[COLLAPSE]); bad[k] marks collapsed components, which get an
    identity factor (diag: unit entries where the variance is bad). Returns whether any
    collapsed. L: (d, d) scratch."""
    K, d = cov.shape[0], cov.shape[1]
    thr = limits[COLLAPSE]
    if cov_type == FULL or cov_type == TIED:
        n_mats = K if cov_type == FULL else 1
        for k in range(n_mats):
            ok = _chol_precision(cov[k], thr, limits[ZERO], P[k], L)
            bad[k] = not ok
            if not ok:
                for i in range(d):
                    for j in range(d):
                        P[k, i, j] = 1.0 if i == j else 0.0
            t = 0.0
            for j in range(d):
                t += math.log(P[k, j, j])
            logdet[k] = t
        if cov_type == TIED:
            for k in range(1, K):
                _copy2(P[0], P[k])
                logdet[k] = logdet[0]
                bad[k] = bad[0]
    else:
        for k in range(K):
            bad[k] = False
            for j in range(d):
                v = cov[k, j, j]
                limit = thr[j] if cov_type == DIAG else thr_spherical
                if not (math.isfinite(v) and v >= limit):
                    bad[k] = True
                    v = 1.0
                P[k, j, j] = 1.0 / math.sqrt(v)
            if cov_type == DIAG:
                t = 0.0
                for j in range(d):
                    t += math.log(P[k, j, j])
                logdet[k] = t
            else:
                logdet[k] = d * math.log(P[k, 0, 0])
    for k in range(K):
        if bad[k]:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# The loop (fit._run_block's rules for one restart)
# ---------------------------------------------------------------------------------------------
@kernel
def _copy2(src, dst) -> None:
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@kernel
def _after_e_step(r, it, ll, nk, reals, outs) -> bool:
    """Record iteration ``it`` of restart r (E-step done: log-likelihood ll, counts nk) and say
    whether its M-step is needed. outs: out_f (R, 3) loglik, objective, max decrease; out_i
    (R, 5) n_iter, status, degenerate component, degenerate kind, n_decreases; trace; out_nk
    (R, K) the counts of the last E-step. reals[0] is tol * n (fit.converged), reals[2] the
    min_count of a weight collapse (-inf with fixed weights)."""
    out_f, out_i, trace, out_nk = outs
    tol, min_count, decrease_tol = reals[0], reals[2], reals[3]
    for k in range(nk.shape[0]):
        out_nk[r, k] = nk[k]
    trace[it, r] = ll
    previous = out_f[r, 1]
    decrease = previous - ll
    if math.isfinite(previous) and decrease > decrease_tol * abs(ll):
        out_i[r, 4] += 1
        if decrease > out_f[r, 2]:
            out_f[r, 2] = decrease
    out_f[r, 0] = ll
    out_f[r, 1] = ll
    if not math.isfinite(ll):
        out_i[r, 1] = DEGENERATE
        out_i[r, 3] = KIND_NAN
        return False
    if abs(ll - previous) < tol:
        out_i[r, 1] = CONVERGED
        return False
    for k in range(nk.shape[0]):
        if not nk[k] >= min_count:
            out_i[r, 1] = DEGENERATE
            out_i[r, 2] = k
            out_i[r, 3] = KIND_WEIGHT
            return False
    return True


@kernel
def step_e(r, it, parts, state, new, totals, outs, codes, reals) -> int:
    """After the E-step pass of iteration ``it`` of restart r: add the per-chunk partials,
    record the iteration, and start the M-step (weights, means). Returns STOP, SCATTER (a
    scatter pass is needed) or FINISH (fixed covariances: no scatter)."""
    part_ll, part_nk, part_sx, _ = parts
    w, mu, cov, P, logdet, _ = state
    w_new, mu_new, cov_new, P_new, ld_new, bad = new
    nk, sx, _, _ = totals
    K, d = nk.shape[0], sx.shape[1]
    ll = 0.0
    for k in range(K):
        nk[k] = 0.0
        for l in range(d):
            sx[k, l] = 0.0
    for c in range(part_ll.shape[1]):  # chunk order
        ll += part_ll[0, c]
        for k in range(K):
            nk[k] += part_nk[0, c, k]
            for l in range(d):
                sx[k, l] += part_sx[0, c, k, l]
    if not _after_e_step(r, it, ll, nk, reals, outs):
        return STOP
    new_weights_means(nk, sx, w[r], mu[r], codes[1], codes[2], w_new, mu_new[0])
    for k in range(K):
        _copy2(cov[r, k], cov_new[k])
        _copy2(P[r, k], P_new[k])
        ld_new[k] = logdet[r, k]
        bad[k] = False
    return FINISH if codes[3] else SCATTER


@kernel
def step_m(r, it, scattered, parts, state, new, totals, outs, codes, reals, limits) -> bool:
    """Finish the M-step of iteration ``it`` of restart r (after the scatter pass when
    ``scattered``): covariances with the variance floor (limits[FLOOR]), precision factors,
    collapse rule (limits[COLLAPSE]). Returns whether the restart moves on; if so its state
    (and log weights) are updated."""
    part_S = parts[3]
    w, mu, cov, P, logdet, logw = state
    w_new, mu_new, cov_new, P_new, ld_new, bad = new
    nk, _, S, L = totals
    out_i = outs[1]
    K, d = nk.shape[0], S.shape[1]
    any_bad = False
    if scattered:
        for k in range(K):
            for l in range(d):
                for m in range(d):
                    t = 0.0
                    for c in range(part_S.shape[1]):  # chunk order
                        t += part_S[0, c, k, l, m]
                    S[k, l, m] = t
        covariances(S, nk, codes[0], cov_new)
        variance_floor(cov_new, codes[0], limits[FLOOR], L)
        any_bad = precisions(cov_new, codes[0], limits, reals[4], P_new, ld_new, bad, L)
    if any_bad:
        out_i[r, 1] = DEGENERATE
        out_i[r, 3] = KIND_COVARIANCE
        for k in range(K):
            if bad[k]:
                out_i[r, 2] = k
                break
        return False
    if it == codes[4]:
        return False
    for k in range(K):
        w[r, k] = w_new[k]
        logw[r, k] = math.log(w[r, k]) if w[r, k] > 0.0 else -math.inf
        for l in range(d):
            mu[r, k, l] = mu_new[0, k, l]
        _copy2(cov_new[k], cov[r, k])
        _copy2(P_new[k], P[r, k])
        logdet[r, k] = ld_new[k]
    out_i[r, 0] += 1
    return True


@kernel
def buffers(K, d, nc):
    """Per-restart buffers: partials (log-likelihood, nk, sx, scatter per chunk), the next
    state (w, mu, cov, P, logdet, bad), totals (nk, sx, S, L scratch), responsibilities are
    allocated apart."""
    parts = (
        np.zeros((1, nc)), np.zeros((1, nc, K)), np.zeros((1, nc, K, d)),
        np.zeros((1, nc, K, d, d)),
    )  # fmt: skip
    new = (
        np.empty(K), np.empty((1, K, d)), np.empty((K, d, d)), np.empty((K, d, d)),
        np.empty(K), np.zeros(K, dtype=np.bool_),
    )  # fmt: skip
    totals = (np.empty(K), np.empty((K, d)), np.empty((K, d, d)), np.zeros((d, d)))
    return parts, new, totals


@njit(cache=True, error_model="numpy", nogil=True)
def em_restarts(X, n, B, r_lo, r_hi, state, outs, codes, reals, limits) -> None:
    """The whole EM loop of restarts r_lo .. r_hi, one after the other, single-threaded
    (releases the GIL), updating the batched unified state (w, mu, cov, P, logdet, log w) in
    place. codes: [covariance type, fixed weights, fixed means, fixed covariances, max_iter];
    reals: [tol * n, reg_covar, min_count (-inf with fixed weights), decrease_tol, spherical
    collapse threshold]; limits (3, d): collapse threshold and variance floor per dimension, and
    zeros; outs as in :func:`_after_e_step`. X: chunked data (n_chunks, d, B)."""
    w, mu, cov, P, logdet, logw = state
    nc, d = X.shape[0], X.shape[1]
    K = mu.shape[1]
    tri = codes[0] <= TIED
    resp = np.zeros((1, nc, K, B))
    for r in range(r_lo, r_hi):
        parts, new, totals = buffers(K, d, nc)
        for it in range(codes[4] + 1):
            e_pass(X, n, B, r, r + 1, 0, nc, logw, mu, P, logdet, tri, resp, *parts[:3])
            code = step_e(r, it, parts, state, new, totals, outs, codes, reals)
            if code == STOP:
                break
            if code == SCATTER:
                s_pass(X, B, r, r + 1, 0, nc, resp, new[1], tri, parts[3])
            if not step_m(
                r, it, code == SCATTER, parts, state, new, totals, outs, codes, reals, limits
            ):
                break

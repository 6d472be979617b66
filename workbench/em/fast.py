"""Fast EM engine, compiled part: the data passes of an EM iteration as numba kernels.

:func:`e_pass` (the E-step: responsibilities, log-likelihood, weighted counts and sums per chunk)
and :func:`s_pass` (the scatter about given centres per chunk) are the two passes over the data;
:mod:`workbench.em.fast_loop` fuses them into the whole EM loop, and
:mod:`workbench.em.fast_engine` is the Python side (``FAST_ENGINE``, threads, layouts).

Layout. The data are stored in chunks of B points (:func:`chunk_size`), each chunk transposed,
zero-padded: (n_chunks, d, B) (:func:`chunked`), so that inner loops run over consecutive
points and vectorise. Responsibilities are (n_chunks, K, B) per restart, zero on the padding.
Parameters use one "unified" layout for every covariance type: means (K, d), covariance
matrices and upper-triangular precision Cholesky factors (K, d, d); ``diag`` and ``spherical``
use only the diagonals (spherical repeats its variance there); ``tied`` keeps its matrix in
covariance slot 0 and repeats its precision factor K times.

Arithmetic. ``fastmath=False``, numpy's error model (IEEE inf and nan, no ZeroDivisionError).
No sum is reassociated by the compiler: every sum over points runs over fixed chunks of B points,
inside a chunk in LANES interleaved partial sums added by a fixed pairwise tree, and the chunk
sums are added in chunk order. exp is fdlibm's algorithm written out so that it vectorises
(within 1 ulp, like libm's and numpy's). logsumexp sets the largest term aside, as scipy's
does; the log-likelihood takes one log per LANES points (of products of the 1 + sum terms)
instead of one log1p per point. From d = BLAS_MIN_D on, the small matrix products of a chunk
(x P_k - mu_k P_k for all k, the weighted sums, the scatters) go to BLAS, whose order of
operations is fixed as well (the reference's matmuls are BLAS too). Covariances come from a
second pass over the data centred at the new means, as in
:func:`~workbench.em.steps.centred_scatter` (see :mod:`workbench.em.fast_loop`).

Threads. The kernels release the GIL and run in plain Python threads,
:func:`workbench.em.fast_engine.threads` of them (numba's setting): whole restarts, or chunks of
one pass. numba's ``parallel=True`` was tried first: every parallel function re-optimises all
the code it calls, and compiling the engine took over a minute instead of about 20 s. The split
never changes a result: each chunk's partial sums are the same whoever computes them, so results
are bitwise identical run to run, serial or threaded, and for any number of restarts.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

LANES = 64  # interleaved partial sums per sum over a chunk (long enough to vectorise)
CHUNK = 512  # points per chunk (at most): the unit of work of a thread and of a partial sum
LOG_2PI = math.log(2.0 * math.pi)
# From this dimension on, the small matrix products of a chunk are BLAS calls; below it, loops
# are faster.
BLAS_MIN_D = 4
FULL, TIED, DIAG, SPHERICAL = 0, 1, 2, 3
TYPE_CODES = {"full": FULL, "tied": TIED, "diag": DIAG, "spherical": SPHERICAL}
# fdlibm's e_exp.c: ln2 split in two, and the remez coefficients of its rational approximation
_LN2_HI, _LN2_LO, _INV_LN2 = (
    6.93147180369123816490e-01,
    1.90821492927058770002e-10,
    1.4426950408889634,
)
_P1, _P2, _P3 = 1.66666666666666019037e-01, -2.77777777770155933842e-03, 6.61375632143793436117e-05
_P4, _P5 = -1.65339022054652515390e-06, 4.13813679705723846039e-08

kernel = njit(cache=True, error_model="numpy")


def chunk_size(n: int) -> int:
    """Points per chunk for n points, a multiple of LANES: CHUNK, or fewer when n is small (less
    padding). A fixed function of n, so that results never depend on threads."""
    return min(CHUNK, -(-n // LANES) * LANES)


def chunked(X: np.ndarray, B: int) -> np.ndarray:
    """(n, d) data -> (n_chunks, d, B): chunks of B points, each transposed, zero-padded."""
    n, d = X.shape
    nc = -(-n // B)
    padded = np.zeros((nc * B, d))
    padded[:n] = X
    return np.ascontiguousarray(padded.reshape(nc, B, d).transpose(0, 2, 1))


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------
@intrinsic
def _f64_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bit pattern is the int64 ``bits`` (a free bitcast)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@kernel
def _exp_nonpos(v: float) -> float:
    """exp(v) for v <= 0 (or nan), within 1 ulp: fdlibm's e_exp.c (reduction v = k ln2 + r,
    rational approximation of exp(r)), scaled by 2^k built from its bits as 2^k1 2^(k - k1),
    both normal numbers, so that results down to the smallest subnormal are right. v below
    -800 (where exp underflows to 0) is clamped there. Unlike libm's exp, it vectorises."""
    if v < -800.0:
        v = -800.0
    k = math.floor(v * _INV_LN2 + 0.5)
    hi = v - k * _LN2_HI
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    if not k == k:  # v is nan: so is y, keep the integer conversions defined
        k = 0.0
    k1 = max(k, -1020.0)
    scale1 = _f64_from_bits((np.int64(k1) + 1023) << 52)
    return (y * scale1) * _f64_from_bits((np.int64(k - k1) + 1023) << 52)


@kernel
def _tree(acc) -> float:
    """Fixed pairwise total of the LANES partial sums in acc (overwritten)."""
    h = LANES // 2
    while h >= 1:
        for w in range(h):
            acc[w] += acc[w + h]
        h //= 2
    return acc[0]


@kernel
def _lane_dot(a, b, B, acc) -> float:
    """sum_i a[i] b[i] over B points (a multiple of LANES) in LANES interleaved partial sums.
    (Blocks are sliced so that the compiler sees non-negative indices and vectorises.)"""
    a0, b0 = a[:LANES], b[:LANES]
    for w in range(LANES):
        acc[w] = a0[w] * b0[w]
    for j in range(LANES, B, LANES):
        aj, bj = a[j : j + LANES], b[j : j + LANES]
        for w in range(LANES):
            acc[w] += aj[w] * bj[w]
    return _tree(acc)


@kernel
def _lane_sum(a, B, acc) -> float:
    """sum_i a[i] over B points, as :func:`_lane_dot`."""
    for w in range(LANES):
        acc[w] = a[w]
    for j in range(LANES, B, LANES):
        aj = a[j : j + LANES]
        for w in range(LANES):
            acc[w] += aj[w]
    return _tree(acc)


@kernel
def work_size(d: int, K: int, B: int) -> int:
    """Length of the flat scratch array of the chunk passes."""
    return (3 + max(2 * d, K * d)) * B + LANES


@kernel
def _split(work, d, K, B):
    """Views of the flat scratch: (3 + max(2 d, K d), B) rows and LANES partial sums."""
    n_rows = 3 + max(2 * d, K * d)
    size = n_rows * B
    return work[:size].reshape((n_rows, B)), work[size : size + LANES]


# ---------------------------------------------------------------------------------------------
# The two chunk passes
# ---------------------------------------------------------------------------------------------
@kernel
def _add_square(src, p, q, acc, jk, first, last, const, ld, lw, B) -> None:
    """acc += (src p - q)^2 (acc = ... when ``first``); when ``last``, the joint log-density
    -0.5 (d log 2 pi + acc) + log|P| + log w goes into jk instead. One loop per case, so that
    each vectorises."""
    if first and last:
        for i in range(B):
            t = src[i] * p - q
            jk[i] = (-0.5 * (const + t * t) + ld) + lw
    elif first:
        for i in range(B):
            t = src[i] * p - q
            acc[i] = t * t
    elif last:
        for i in range(B):
            t = src[i] * p - q
            jk[i] = (-0.5 * (const + (acc[i] + t * t)) + ld) + lw
    else:
        for i in range(B):
            t = src[i] * p - q
            acc[i] += t * t


@kernel
def e_chunk(Xc, B, nv, mu, P, logdet, logw, tri, resp, nk, sx, work) -> float:
    """E-step on one chunk of one restart: B points, of which the first nv are real.

    Xc (d, B) the chunk's points; mu (K, d); P (K, d, d) unified precision factors, triangular
    when ``tri`` else diagonal; logdet, logw (K,). Writes the responsibilities into resp (K, B),
    the chunk's counts into nk (K,) and weighted sums into sx (K, d); returns its
    log-likelihood. work: flat scratch (:func:`work_size`).
    """
    d, K = Xc.shape[0], mu.shape[0]
    rows, lanes = _split(work, d, K, B)
    y, acc, arg, dif = rows[0], rows[1], rows[2], rows[3 : 3 + d]
    const = d * LOG_2PI
    blas = tri and d >= BLAS_MIN_D
    if blas:  # y = x P_k - mu_k P_k for all k (as the reference): one (K d, d) x (d, B) product
        PT, shift = np.empty((K * d, d)), np.empty((K, d))
        for k in range(K):
            for j in range(d):
                t = 0.0
                for l in range(d):
                    PT[k * d + j, l] = P[k, l, j]
                    t += mu[k, l] * P[k, l, j]
                shift[k, j] = t
        Y = rows[3 : 3 + K * d]
        np.dot(PT, Xc, Y)
    for k in range(K):  # joint log-density log w_k + log N(x_i | mu_k, S_k), into resp[k]
        jk, ld, lw = resp[k], logdet[k], logw[k]
        # Mahalanobis distance sum_j y_j^2 in acc, y_j = sum_{l <= j} (x - mu)_l P_lj (P upper
        # triangular; diagonal: only l = j); the last term goes straight into the joint
        if blas:
            for j in range(d):
                src, q = Y[k * d + j], shift[k, j]
                _add_square(src, 1.0, q, acc, jk, j == 0, j == d - 1, const, ld, lw, B)
            continue
        if d <= 2:  # the loops below fused into one, the same operations in the same order
            x0, m0, p00 = Xc[0], mu[k, 0], P[k, 0, 0]
            if d == 1:
                for i in range(B):
                    t = (x0[i] - m0) * p00
                    jk[i] = (-0.5 * (const + t * t) + ld) + lw
                continue
            x1, m1, p01, p11 = Xc[1], mu[k, 1], P[k, 0, 1] if tri else 0.0, P[k, 1, 1]
            for i in range(B):
                u0 = x0[i] - m0
                t0, t1 = u0 * p00, u0 * p01 + (x1[i] - m1) * p11
                jk[i] = (-0.5 * (const + (t0 * t0 + t1 * t1)) + ld) + lw
            continue
        for l in range(d):
            x, dl, m = Xc[l], dif[l], mu[k, l]
            for i in range(B):
                dl[i] = x[i] - m
        for j in range(d):
            src, p = dif[j], P[k, j, j]
            if tri and j > 0:
                p, src = 1.0, y
                d0, p0 = dif[0], P[k, 0, j]
                for i in range(B):
                    y[i] = d0[i] * p0
                for l in range(1, j + 1):
                    dl, pl = dif[l], P[k, l, j]
                    for i in range(B):
                        y[i] += dl[i] * pl
            _add_square(src, p, 0.0, acc, jk, j == 0, j == d - 1, const, ld, lw, B)
    # logsumexp over k as scipy's: y = the max, arg = its first index, acc = sum of the others
    for i in range(B):
        y[i] = resp[0, i]
        arg[i] = 0.0
        acc[i] = 0.0
    for k in range(1, K):
        jk = resp[k]
        for i in range(B):
            if jk[i] > y[i]:
                y[i] = jk[i]
                arg[i] = k
    for k in range(K):
        jk = resp[k]
        for i in range(B):
            v = _exp_nonpos(jk[i] - y[i])
            jk[i] = v
            if arg[i] != k:
                acc[i] += v
    for k in range(K):
        jk = resp[k]
        for i in range(B):
            jk[i] = jk[i] / (1.0 + acc[i])
        for i in range(nv, B):
            jk[i] = 0.0
    for k in range(K):
        nk[k] = _lane_sum(resp[k], B, lanes)
    if blas:  # sx = resp x^T: one (K, B) x (B, d) product
        np.dot(resp, Xc.T, sx)
    else:
        for k in range(K):
            for l in range(d):
                sx[k, l] = _lane_dot(resp[k], Xc[l], B, lanes)
    # log-likelihood sum_i (max_i + log1p(acc_i)); the logs as those of LANES products of
    # B / LANES factors 1 + acc_i in [1, K] each (no overflow for K < 2^(1024 LANES / B)):
    # one log per LANES points, as accurate as summing the log1p of every point
    for i in range(nv, B):
        y[i] = 0.0
        acc[i] = 0.0
    prod = lanes
    for w in range(LANES):
        prod[w] = 1.0
    for j in range(0, B, LANES):
        aj = acc[j : j + LANES]
        for w in range(LANES):
            prod[w] *= 1.0 + aj[w]
    log_terms = 0.0
    for w in range(LANES):
        log_terms += math.log(prod[w])
    return _lane_sum(y, B, lanes) + log_terms


@kernel
def _small_scatter(Xc, B, r, mu, full, S, rows) -> None:
    """Scatter of one chunk about mu (d,) for one component, d = 1 or 2, into S (d, d): the
    operations and partial sums of the general case, in one loop. rows: scratch (>= 3, B)."""
    d = Xc.shape[0]
    x0, m0, a00, a01, a11 = Xc[0], mu[0], rows[0, :LANES], rows[1, :LANES], rows[2, :LANES]
    x1, m1 = Xc[d - 1], mu[d - 1]
    for w in range(LANES):
        a00[w] = 0.0
        a01[w] = 0.0
        a11[w] = 0.0
    for j in range(0, B, LANES):
        xj0, xj1, rj = x0[j : j + LANES], x1[j : j + LANES], r[j : j + LANES]
        if d == 1:
            for w in range(LANES):
                u0 = xj0[w] - m0
                a00[w] += (rj[w] * u0) * u0
        else:
            for w in range(LANES):
                u0, u1 = xj0[w] - m0, xj1[w] - m1
                v0 = rj[w] * u0
                a00[w] += v0 * u0
                a01[w] += v0 * u1
                a11[w] += (rj[w] * u1) * u1
    S[0, 0] = _tree(a00)
    if d == 2:
        S[1, 1] = _tree(a11)
        if full:
            S[0, 1] = S[1, 0] = _tree(a01)


@kernel
def scatter_chunk(Xc, B, resp, mu, full, S, work) -> None:
    """Weighted scatter of one chunk, Xc (d, B), about the centres mu (K, d), with
    responsibilities resp (K, B): S (K, d, d) gets sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T, the
    whole symmetric matrix when ``full``, else only its diagonal. work: flat scratch."""
    d, K = Xc.shape[0], mu.shape[0]
    rows, lanes = _split(work, d, K, B)
    dif, wd = rows[:d], rows[d : 2 * d]
    for k in range(K):
        rk = resp[k]
        if d <= 2:  # as below (sum_i (r_i u_il) u_im, LANES partial sums), fused in one loop
            _small_scatter(Xc, B, rk, mu[k], full, S[k], rows)
            continue
        for l in range(d):
            x, dl, wl, m = Xc[l], dif[l], wd[l], mu[k, l]
            for i in range(B):
                t = x[i] - m
                dl[i] = t
                wl[i] = rk[i] * t
        if full and d >= BLAS_MIN_D:  # (d, B) x (B, d), one BLAS call; mirrored: symmetric
            Sk = S[k]
            np.dot(wd, dif.T, Sk)
            for l in range(d):
                for m2 in range(l + 1, d):
                    Sk[m2, l] = Sk[l, m2]
            continue
        for l in range(d):
            for m2 in range(l, d if full else l + 1):
                v = _lane_dot(wd[l], dif[m2], B, lanes)
                S[k, l, m2] = v
                S[k, m2, l] = v


@njit(cache=True, error_model="numpy", nogil=True)
def e_pass(X, n, B, r_lo, r_hi, c_lo, c_hi, logw, mu, P, logdet, tri, resp, ll, nk, sx) -> None:
    """E-step on chunks c_lo .. c_hi of restarts r_lo .. r_hi (releases the GIL).

    X (n_chunks, d, B) chunked data (:func:`chunked`); logw (R, K), mu (R, K, d),
    P (R, K, d, d), logdet (R, K) are indexed by restart r; responsibilities go to
    resp[r - r_lo, c] (K, B), the chunk sums to ll[r - r_lo, c], nk[r - r_lo, c] (K,) and
    sx[r - r_lo, c] (K, d).
    """
    work = np.empty(work_size(X.shape[1], mu.shape[1], B))
    for r in range(r_lo, r_hi):
        j = r - r_lo
        for c in range(c_lo, c_hi):
            ll[j, c] = e_chunk(
                X[c], B, min(B, n - c * B), mu[r], P[r], logdet[r], logw[r], tri, resp[j, c],
                nk[j, c], sx[j, c], work,
            )  # fmt: skip


@njit(cache=True, error_model="numpy", nogil=True)
def s_pass(X, B, r_lo, r_hi, c_lo, c_hi, resp, centres, full, S) -> None:
    """Scatter of chunks c_lo .. c_hi of restarts r_lo .. r_hi about centres[r - r_lo] (K, d),
    with resp[r - r_lo, c] (K, B), into S[r - r_lo, c] (K, d, d) (releases the GIL)."""
    work = np.empty(work_size(X.shape[1], centres.shape[1], B))
    for r in range(r_lo, r_hi):
        j = r - r_lo
        for c in range(c_lo, c_hi):
            scatter_chunk(X[c], B, resp[j, c], centres[j], full, S[j, c], work)

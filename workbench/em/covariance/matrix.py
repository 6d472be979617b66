"""Compiled helpers for one d x d covariance matrix, shared by the full and tied strategies."""

from __future__ import annotations

import math

import numpy as np

from workbench.em.specialise import kernel


@kernel
def finite(A) -> bool:
    """True when every entry of the matrix A is finite."""
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            if not math.isfinite(A[i, j]):
                return False
    return True


@kernel
def cholesky(A, shift, L) -> bool:
    """The lower Cholesky factor of A - diag(shift) into L; False as soon as a pivot is not
    positive (L then partly written)."""
    d = A.shape[0]
    L[:] = 0.0
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
def precision_factor(cov, collapse, U) -> bool:
    """The upper-triangular precision factor U = L^-T of cov = L L^T (so cov^-1 = U U^T, as
    scikit-learn's ``precisions_cholesky_``) into U. Returns True (and U = I) when cov has
    collapsed: not finite, not positive definite, or a conditional variance L_jj^2 below
    collapse[j]."""
    d = cov.shape[0]
    L = np.zeros((d, d))
    bad = not finite(cov) or not cholesky(cov, np.zeros(d), L)
    if not bad:
        for j in range(d):
            if not L[j, j] * L[j, j] >= collapse[j]:
                bad = True
    U[:] = 0.0
    if bad:
        for j in range(d):
            U[j, j] = 1.0
        return True
    for c in range(d):  # column c of L^-1 by forward substitution, stored as row c of U
        for i in range(c, d):
            t = 1.0 if i == c else 0.0
            for p in range(c, i):
                t -= L[i, p] * U[c, p]
            U[c, i] = t / L[i, i]
    return False


@kernel
def apply_floor(cov, floor) -> None:
    """Raise cov (in place) to the floor F = diag(floor): every eigenvalue of F^-1/2 cov F^-1/2
    below 1 raised to 1 (the exact maximiser of the M-step objective over {S : S - F positive
    semi-definite}, Ingrassia 2004). Unchanged when cov - F is positive definite (the common
    case), when cov is not finite, or without a floor (some floor <= 0)."""
    d = cov.shape[0]
    for j in range(d):
        if not floor[j] > 0.0:
            return
    if not finite(cov):
        return
    L = np.empty((d, d))
    if cholesky(cov, floor, L):
        return
    root = np.sqrt(floor)
    whitened = np.empty((d, d))
    for i in range(d):
        for j in range(d):
            whitened[i, j] = cov[i, j] / (root[i] * root[j])
    values, vectors = np.linalg.eigh(whitened)
    if values[0] >= 1.0:
        return
    for i in range(d):
        for j in range(d):
            t = 0.0
            for p in range(d):
                t += vectors[i, p] * max(values[p], 1.0) * vectors[j, p]
            cov[i, j] = t * root[i] * root[j]


@kernel
def precision_matrix(U, P) -> None:
    """P = U U^T."""
    d = U.shape[0]
    for i in range(d):
        for j in range(d):
            t = 0.0
            for p in range(max(i, j), d):
                t += U[i, p] * U[j, p]
            P[i, j] = t


@kernel
def log_det_factor(U) -> float:
    """sum_j log U_jj = 1/2 log det(cov^-1)."""
    t = 0.0
    for j in range(U.shape[0]):
        t += math.log(U[j, j])
    return t


@kernel
def centred_scatter(second, sx, nk, mu, S) -> None:
    """S = sum_i r_i (x_i - mu)(x_i - mu)^T from the raw moments: second = sum_i r_i x_i x_i^T
    (d, d), sx = sum_i r_i x_i, nk = sum_i r_i. The data are centred beforehand, so the
    cancellation is at the level of round-off times (|mu| / sd)^2."""
    d = mu.shape[0]
    for i in range(d):
        for j in range(d):
            S[i, j] = second[i, j] - sx[i] * mu[j] - mu[i] * sx[j] + nk * mu[i] * mu[j]


@kernel
def quadratic(P, v) -> float:
    """v^T P v."""
    t = 0.0
    for i in range(v.shape[0]):
        for j in range(v.shape[0]):
            t += v[i] * P[i, j] * v[j]
    return t


@kernel
def trace_product(A, P) -> float:
    """trace(A P) for symmetric A, P."""
    t = 0.0
    for i in range(A.shape[0]):
        for j in range(A.shape[0]):
            t += A[i, j] * P[j, i]
    return t


@kernel
def positive_definite(A) -> bool:
    d = A.shape[0]
    return finite(A) and cholesky(A, np.zeros(d), np.empty((d, d)))


@kernel
def variances_to_vector(cov, out, offset) -> int:
    """Every entry of an array of variances (diag (K, d), spherical (K,)) into out from
    ``offset``, in C order; returns the next offset."""
    flat = cov.reshape(cov.size)
    for e in range(flat.size):
        out[offset + e] = flat[e]
    return offset + flat.size


@kernel
def variances_from_vector(v, offset, cov):
    """The inverse of :func:`variances_to_vector`: (next offset, whether every variance is
    positive)."""
    flat = cov.reshape(cov.size)
    ok = True
    for e in range(flat.size):
        flat[e] = v[offset + e]
        ok = ok and v[offset + e] > 0.0
    return offset + flat.size, ok

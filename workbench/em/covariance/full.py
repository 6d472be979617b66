"""Full covariance: one d x d matrix per component.

Sufficient statistics per component: the weighted counts, sums and second moments
sum_i r_ik x_i x_i^T (its upper triangle, d(d+1)/2 entries). The E-step writes log N(x | mu, S)
as a linear function of the features [x_j x_l (j <= l), x, 1], so that one matrix product per
chunk gives every component's log density and one more gives every statistic.
"""

from __future__ import annotations

import math

import numpy as np

from workbench.em.covariance import matrix
from workbench.em.products import log_joint_product
from workbench.em.specialise import kernel

NAME = "full"
POOLED_SECOND_MOMENT = False  # the second moment is pooled over components (cfg.second_total)
LOG_2PI = math.log(2.0 * math.pi)


def n_second(d: int) -> int:
    return d * (d + 1) // 2


def cov_shape(K: int, d: int) -> tuple[int, ...]:
    return (K, d, d)


def n_cov_params(K: int, d: int) -> int:
    return K * d * (d + 1) // 2


def min_support(d: int) -> float:
    """Expected points a component needs for its covariance: d + 1 (a scatter of m points
    about their mean has rank at most m - 1)."""
    return d + 1.0


def cov_units(sd: np.ndarray, K: int) -> np.ndarray:
    d = sd.size
    rows, cols = np.tril_indices(d)
    return np.tile((sd[:, None] * sd[None, :])[rows, cols], K)


@kernel
def features(XT, FT) -> None:
    """FT (m, b): rows x_j x_l (j <= l), x_j, 1 of the b points in the columns of XT (d, b)."""
    d, b = XT.shape
    c = 0
    for j in range(d):
        for l in range(j, d):
            for i in range(b):
                FT[c, i] = XT[j, i] * XT[l, i]
            c += 1
    for j in range(d):
        for i in range(b):
            FT[c + j, i] = XT[j, i]
    for i in range(b):
        FT[c + d, i] = 1.0


@kernel
def log_joint(XT, FT, params, JT) -> None:
    log_joint_product(params[4], FT, JT)


@kernel
def second_moments(T, k, d, M) -> None:
    c = 0
    for j in range(d):
        for l in range(j, d):
            M[j, l] = T[k, c]
            M[l, j] = T[k, c]
            c += 1


@kernel
def covariances(T, nk, mu, cfg, cov_old, empty, cov) -> None:
    """Covariance of each component about its new mean mu_k: scatter / n_k, or with the prior
    the posterior mode [scale + scatter + shrinkage (mu - m)(mu - m)^T] / (dof + n_k + d + 2)
    (Fraley & Raftery 2007). Components in ``empty`` keep their previous covariance."""
    K, d = mu.shape
    q = d * (d + 1) // 2
    M = np.empty((d, d))
    for k in range(K):
        if empty[k]:
            cov[k] = cov_old[k]
            continue
        second_moments(T, k, d, M)
        matrix.centred_scatter(M, T[k, q : q + d], nk[k], mu[k], cov[k])
        if cfg.has_prior:
            denom = cfg.dof + nk[k] + d + 2.0
            for i in range(d):
                for j in range(d):
                    dev = (
                        cfg.shrinkage
                        * (mu[k, i] - cfg.prior_mean[i])
                        * (mu[k, j] - cfg.prior_mean[j])
                    )
                    cov[k, i, j] = (cfg.prior_scale[i, j] + cov[k, i, j] + dev) / denom
        else:
            for i in range(d):
                for j in range(d):
                    cov[k, i, j] = cov[k, i, j] / nk[k]


@kernel
def floor(cov, cfg) -> None:
    for k in range(cov.shape[0]):
        matrix.apply_floor(cov[k], cfg.floor)


@kernel
def precision(cov, cfg, pc, bad) -> None:
    for k in range(cov.shape[0]):
        bad[k] = matrix.precision_factor(cov[k], cfg.collapse, pc[k])


@kernel
def natural(w, mu, pc, nat) -> None:
    """nat (K, m): the coefficients of the features in log w_k + log N(x | mu_k, S_k)."""
    K, d = mu.shape
    P = np.empty((d, d))
    for k in range(K):
        matrix.precision_matrix(pc[k], P)
        c = 0
        for j in range(d):
            for l in range(j, d):
                nat[k, c] = -0.5 * P[j, j] if j == l else -P[j, l]
                c += 1
        b = P @ mu[k]
        for j in range(d):
            nat[k, c + j] = b[j]
        const = np.log(w[k]) + matrix.log_det_factor(pc[k]) - 0.5 * d * LOG_2PI
        nat[k, c + d] = const - 0.5 * (b @ mu[k])


@kernel
def precision_of(pc, k, P) -> None:
    matrix.precision_matrix(pc[k], P)


@kernel
def log_prior(mu, cov, pc, cfg) -> float:
    """Unnormalised log density of the normal-inverse-Wishart prior (constants dropped)."""
    K, d = mu.shape
    P = np.empty((d, d))
    total = 0.0
    for k in range(K):
        matrix.precision_matrix(pc[k], P)
        log_det_cov = -2.0 * matrix.log_det_factor(pc[k])
        dev = mu[k] - cfg.prior_mean
        terms = matrix.trace_product(cfg.prior_scale, P) + cfg.shrinkage * matrix.quadratic(P, dev)
        total += -0.5 * (cfg.dof + d + 2.0) * log_det_cov - 0.5 * terms
    return total


@kernel
def cov_to_vector(cov, out, offset) -> int:
    K, d = cov.shape[0], cov.shape[1]
    for k in range(K):
        for i in range(d):
            for j in range(i + 1):
                out[offset] = cov[k, i, j]
                offset += 1
    return offset


@kernel
def cov_from_vector(v, offset, cov):
    K, d = cov.shape[0], cov.shape[1]
    ok = True
    for k in range(K):
        for i in range(d):
            for j in range(i + 1):
                cov[k, i, j] = v[offset]
                cov[k, j, i] = v[offset]
                offset += 1
        ok = ok and matrix.positive_definite(cov[k])
    return offset, ok


def held_at_floor(cov: np.ndarray, floor: np.ndarray, rtol: float) -> np.ndarray:
    """(R, K): an eigenvalue of F^-1/2 S_k F^-1/2 at most 1 + rtol."""
    return lowest_whitened(cov, floor) <= 1.0 + rtol


def lowest_whitened(cov: np.ndarray, floor: np.ndarray) -> np.ndarray:
    whitened = cov / np.sqrt(np.outer(floor, floor))
    finite = np.all(np.isfinite(whitened), axis=(-1, -2))
    lowest = np.full(cov.shape[:-2], np.inf)
    lowest[finite] = np.linalg.eigvalsh(whitened[finite])[..., 0]
    return lowest


def from_full(full: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Full covariances (..., K, d, d) as this type's."""
    return full


def variance_unit(var: np.ndarray) -> np.ndarray:
    """Each feature's unit of variance (d,): its variance in the data."""
    return var


def variance_se(se: np.ndarray, K: int, d: int) -> np.ndarray:
    """Standard errors of the variances (K, d) from those of the covariance entries."""
    rows, cols = np.tril_indices(d)
    return se.reshape(K, len(rows))[:, rows == cols]


def gemm_flops(n: int, d: int, K: int) -> float:
    """Floating-point operations of the matrix products of one iteration: the log joint
    (n, m) @ (m, K) and the statistics (K, n) @ (n, m), m features."""
    return 4.0 * n * (n_second(d) + d + 1) * K


@kernel
def component_matrix(cov, k, out) -> None:
    """out (d, d) = the covariance matrix of component k."""
    out[...] = cov[k]


@kernel
def pack_statistics(second, sums, count, row) -> None:
    """A component's statistics row (m,) from its second moment (d, d), sums (d,) and count."""
    d = sums.shape[0]
    c = 0
    for j in range(d):
        for l in range(j, d):
            row[c] = second[j, l]
            c += 1
    for j in range(d):
        row[c + j] = sums[j]
    row[c + d] = count

"""Tied covariance: one d x d matrix shared by every component.

Sufficient statistics per component: counts and sums only. The pooled second moment
sum_i x_i x_i^T does not depend on the responsibilities and is computed once per fit
(``cfg.second_total``). The E-step: x^T P x is the same for every component (one product with
the precision factor per chunk), the rest is linear in the features [x, 1].
"""

from __future__ import annotations

import math

import numpy as np

from workbench.em.covariance import full, matrix
from workbench.em.products import log_joint_product
from workbench.em.specialise import kernel

NAME = "tied"
POOLED_SECOND_MOMENT = True  # the second moment is pooled over components (cfg.second_total)
LOG_2PI = math.log(2.0 * math.pi)


def n_second(d: int) -> int:
    return 0


def cov_shape(K: int, d: int) -> tuple[int, ...]:
    return (d, d)


def n_cov_params(K: int, d: int) -> int:
    return d * (d + 1) // 2


def min_support(d: int) -> float:
    """The covariance is pooled over all points; one point fixes a component's mean."""
    return 1.0


def cov_units(sd: np.ndarray, K: int) -> np.ndarray:
    rows, cols = np.tril_indices(sd.size)
    return (sd[:, None] * sd[None, :])[rows, cols]


@kernel
def features(XT, FT) -> None:
    """FT (d + 1, b): rows x_j, 1 of the points in the columns of XT (d, b)."""
    d, b = XT.shape
    for j in range(d):
        for i in range(b):
            FT[j, i] = XT[j, i]
    for i in range(b):
        FT[d, i] = 1.0


@kernel
def log_joint(XT, FT, params, JT) -> None:
    """The linear terms, then - x^T P x / 2 (the same for every component) from Y = U^T x."""
    d = FT.shape[0] - 1
    log_joint_product(params[4], FT, JT)
    K, b = JT.shape
    Y = np.empty((d, b))
    log_joint_product(np.ascontiguousarray(params[3].T), FT[:d], Y)
    quad = np.zeros(b)
    for j in range(d):
        for i in range(b):
            quad[i] += Y[j, i] * Y[j, i]
    for k in range(K):
        for i in range(b):
            JT[k, i] -= 0.5 * quad[i]


@kernel
def covariances(T, nk, mu, cfg, cov_old, empty, cov) -> None:
    """The pooled scatter about each component's new mean over n, or with the prior
    [scale + scatter + shrinkage sum_k (mu_k - m)(mu_k - m)^T] / (dof + n + K + d + 1)."""
    K, d = mu.shape
    n = 0.0
    for k in range(K):
        n += nk[k]
    for i in range(d):
        for j in range(d):
            t = cfg.second_total[i, j]
            for k in range(K):
                t += -T[k, i] * mu[k, j] - mu[k, i] * T[k, j] + nk[k] * mu[k, i] * mu[k, j]
            if cfg.has_prior:
                dev = 0.0
                for k in range(K):
                    dev += (mu[k, i] - cfg.prior_mean[i]) * (mu[k, j] - cfg.prior_mean[j])
                t = (cfg.prior_scale[i, j] + t + cfg.shrinkage * dev) / (cfg.dof + n + K + d + 1.0)
            else:
                t = t / n
            cov[i, j] = t


@kernel
def floor(cov, cfg) -> None:
    matrix.apply_floor(cov, cfg.floor)


@kernel
def precision(cov, cfg, pc, bad) -> None:
    collapsed = matrix.precision_factor(cov, cfg.collapse, pc)
    for k in range(bad.shape[0]):
        bad[k] = collapsed  # one shared matrix: every component collapses with it


@kernel
def natural(w, mu, pc, nat) -> None:
    """nat (K, d + 1): the coefficients of [x, 1] in log w_k + log N(x | mu_k, S) + x^T P x / 2."""
    K, d = mu.shape
    P = np.empty((d, d))
    matrix.precision_matrix(pc, P)
    log_det = matrix.log_det_factor(pc)
    for k in range(K):
        b = P @ mu[k]
        for j in range(d):
            nat[k, j] = b[j]
        nat[k, d] = np.log(w[k]) + log_det - 0.5 * d * LOG_2PI - 0.5 * (b @ mu[k])


@kernel
def precision_of(pc, k, P) -> None:
    matrix.precision_matrix(pc, P)


@kernel
def log_prior(mu, cov, pc, cfg) -> float:
    K, d = mu.shape
    P = np.empty((d, d))
    matrix.precision_matrix(pc, P)
    log_det_cov = -2.0 * matrix.log_det_factor(pc)
    quad = 0.0
    for k in range(K):
        quad += matrix.quadratic(P, mu[k] - cfg.prior_mean)
    power = cfg.dof + d + 1.0 + K
    return -0.5 * power * log_det_cov - 0.5 * (
        matrix.trace_product(cfg.prior_scale, P) + cfg.shrinkage * quad
    )


@kernel
def cov_to_vector(cov, out, offset) -> int:
    d = cov.shape[0]
    for i in range(d):
        for j in range(i + 1):
            out[offset] = cov[i, j]
            offset += 1
    return offset


@kernel
def cov_from_vector(v, offset, cov):
    d = cov.shape[0]
    for i in range(d):
        for j in range(i + 1):
            cov[i, j] = v[offset]
            cov[j, i] = v[offset]
            offset += 1
    return offset, matrix.positive_definite(cov)


def held_at_floor(cov: np.ndarray, floor: np.ndarray, rtol: float) -> np.ndarray:
    """(R, K): the shared matrix held (every component)."""
    return full.lowest_whitened(cov, floor)[:, None] <= 1.0 + rtol


def from_full(full: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weight-averaged matrix."""
    total = np.sum(weights, axis=-1)[..., None, None]
    return np.sum(weights[..., :, None, None] * full, axis=-3) / total


def variance_unit(var: np.ndarray) -> np.ndarray:
    """Each feature's unit of variance (d,): its variance in the data."""
    return var


def variance_se(se: np.ndarray, K: int, d: int) -> np.ndarray:
    rows, cols = np.tril_indices(d)
    return np.broadcast_to(se.reshape(1, len(rows))[:, rows == cols], (K, d))


def gemm_flops(n: int, d: int, K: int) -> float:
    """Floating-point operations of the matrix products of one iteration: x U (n, d) @ (d, d),
    the linear terms (n, d + 1) @ (d + 1, K) and the statistics (K, n) @ (n, d + 1)."""
    return 2.0 * n * d * d + 4.0 * n * (d + 1) * K

"""Diagonal covariance: d variances per component.

Sufficient statistics per component: counts, sums and sums of squares per feature; the E-step
is linear in the features [x_j^2, x, 1].
"""

from __future__ import annotations

import math

import numpy as np

from workbench.em.covariance.matrix import variances_from_vector, variances_to_vector
from workbench.em.products import log_joint_product
from workbench.em.specialise import kernel

NAME = "diag"
POOLED_SECOND_MOMENT = False  # the second moment is pooled over components (cfg.second_total)
LOG_2PI = math.log(2.0 * math.pi)


def n_second(d: int) -> int:
    return d


def cov_shape(K: int, d: int) -> tuple[int, ...]:
    return (K, d)


def n_cov_params(K: int, d: int) -> int:
    return K * d


def min_support(d: int) -> float:
    """One variance per feature is zero from a single point: 2."""
    return 2.0


def cov_units(sd: np.ndarray, K: int) -> np.ndarray:
    return np.tile(sd**2, K)


@kernel
def features(XT, FT) -> None:
    """FT (2d + 1, b): rows x_j^2, x_j, 1 of the points in the columns of XT (d, b)."""
    d, b = XT.shape
    for j in range(d):
        for i in range(b):
            FT[j, i] = XT[j, i] * XT[j, i]
            FT[d + j, i] = XT[j, i]
    for i in range(b):
        FT[2 * d, i] = 1.0


@kernel
def log_joint(XT, FT, params, JT) -> None:
    """JT (K, b) = natural (K, 2d + 1) @ FT, the product every covariance type uses. (A Horner
    form from the points, sum_j x_j (a_kj x_j + b_kj), was 2x faster than a BLAS product; with
    the blocked product of products.py the two measured alike at n = 1e5, d = 16, K = 8: 2.00
    to 2.02 ms per EM iteration, against 1.96 to 2.39 for Horner's form.)"""
    log_joint_product(params[4], FT, JT)


@kernel
def covariances(T, nk, mu, cfg, cov_old, empty, cov) -> None:
    """Per feature: scatter / n_k, or with the prior
    (scale_j + scatter + shrinkage (mu_j - m_j)^2) / (dof + n_k + 3)."""
    K, d = mu.shape
    for k in range(K):
        if empty[k]:
            cov[k] = cov_old[k]
            continue
        for j in range(d):
            s = T[k, j] - 2.0 * T[k, d + j] * mu[k, j] + nk[k] * mu[k, j] * mu[k, j]
            if cfg.has_prior:
                dev = mu[k, j] - cfg.prior_mean[j]
                s = (cfg.prior_scale[j, j] + s + cfg.shrinkage * dev * dev) / (
                    cfg.dof + nk[k] + 3.0
                )
            else:
                s = s / nk[k]
            cov[k, j] = s


@kernel
def floor(cov, cfg) -> None:
    for j in range(cov.shape[1]):
        if not cfg.floor[j] > 0.0:
            return
    for k in range(cov.shape[0]):
        for j in range(cov.shape[1]):
            if cov[k, j] < cfg.floor[j]:
                cov[k, j] = cfg.floor[j]


@kernel
def precision(cov, cfg, pc, bad) -> None:
    for k in range(cov.shape[0]):
        bad[k] = False
        for j in range(cov.shape[1]):
            v = cov[k, j]
            if math.isfinite(v) and v >= cfg.collapse[j]:
                pc[k, j] = 1.0 / math.sqrt(v)
            else:
                pc[k, j] = 1.0
                bad[k] = True


@kernel
def natural(w, mu, pc, nat) -> None:
    K, d = mu.shape
    for k in range(K):
        const = np.log(w[k]) - 0.5 * d * LOG_2PI
        for j in range(d):
            p = pc[k, j] * pc[k, j]
            nat[k, j] = -0.5 * p
            nat[k, d + j] = p * mu[k, j]
            const += math.log(pc[k, j]) - 0.5 * p * mu[k, j] * mu[k, j]
        nat[k, 2 * d] = const


@kernel
def precision_of(pc, k, P) -> None:
    P[:] = 0.0
    for j in range(P.shape[0]):
        P[j, j] = pc[k, j] * pc[k, j]


@kernel
def log_prior(mu, cov, pc, cfg) -> float:
    K, d = mu.shape
    total = 0.0
    for k in range(K):
        for j in range(d):
            dev = mu[k, j] - cfg.prior_mean[j]
            terms = (cfg.prior_scale[j, j] + cfg.shrinkage * dev * dev) / cov[k, j]
            total += -0.5 * (cfg.dof + 3.0) * math.log(cov[k, j]) - 0.5 * terms
    return total


cov_to_vector = variances_to_vector
cov_from_vector = variances_from_vector


def held_at_floor(cov: np.ndarray, floor: np.ndarray, rtol: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.any(cov <= floor * (1.0 + rtol), axis=-1)


def from_full(full: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.diagonal(full, axis1=-2, axis2=-1).copy()


def variance_unit(var: np.ndarray) -> np.ndarray:
    """Each feature's unit of variance (d,): its variance in the data."""
    return var


def variance_se(se: np.ndarray, K: int, d: int) -> np.ndarray:
    return se.reshape(K, d)


def gemm_flops(n: int, d: int, K: int) -> float:
    """Floating-point operations of the matrix products of one iteration: the log joint
    (n, m) @ (m, K) and the statistics (K, n) @ (n, m), m features."""
    return 4.0 * n * (n_second(d) + d + 1) * K


@kernel
def component_matrix(cov, k, out) -> None:
    """out (d, d) = the (diagonal) covariance matrix of component k."""
    out[...] = 0.0
    for j in range(out.shape[0]):
        out[j, j] = cov[k, j]


@kernel
def pack_statistics(second, sums, count, row) -> None:
    """A component's statistics row (2d + 1,) from its second moment (d, d), sums and count."""
    d = sums.shape[0]
    for j in range(d):
        row[j] = second[j, j]
        row[d + j] = sums[j]
    row[2 * d] = count

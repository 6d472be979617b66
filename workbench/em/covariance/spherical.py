"""Spherical covariance: one variance per component, the same for every feature.

Sufficient statistics per component: counts, sums and the sum of squared norms; the E-step is
linear in the features [|x|^2, x, 1].
"""

from __future__ import annotations

import math

import numpy as np

from workbench.em.covariance.matrix import variances_from_vector, variances_to_vector
from workbench.em.products import log_joint_product
from workbench.em.specialise import kernel

NAME = "spherical"
POOLED_SECOND_MOMENT = False  # the second moment is pooled over components (cfg.second_total)
LOG_2PI = math.log(2.0 * math.pi)


def n_second(d: int) -> int:
    return 1


def cov_shape(K: int, d: int) -> tuple[int, ...]:
    return (K,)


def n_cov_params(K: int, d: int) -> int:
    return K


def min_support(d: int) -> float:
    """One shared variance is zero from a single point: 2."""
    return 2.0


def cov_units(sd: np.ndarray, K: int) -> np.ndarray:
    return np.full(K, np.mean(sd**2))


@kernel
def features(XT, FT) -> None:
    """FT (d + 2, b): rows |x|^2, x_j, 1 of the points in the columns of XT (d, b)."""
    d, b = XT.shape
    for i in range(b):
        FT[0, i] = 0.0
        FT[d + 1, i] = 1.0
    for j in range(d):
        for i in range(b):
            FT[0, i] += XT[j, i] * XT[j, i]
            FT[1 + j, i] = XT[j, i]


@kernel
def log_joint(XT, FT, params, JT) -> None:
    log_joint_product(params[4], FT, JT)


@kernel
def covariances(T, nk, mu, cfg, cov_old, empty, cov) -> None:
    """scatter / (d n_k), or with the prior
    (scale + scatter + shrinkage |mu - m|^2) / (dof + (n_k + 1) d + 2)."""
    K, d = mu.shape
    for k in range(K):
        if empty[k]:
            cov[k] = cov_old[k]
            continue
        s = T[k, 0]
        dev = 0.0
        for j in range(d):
            s += -2.0 * T[k, 1 + j] * mu[k, j] + nk[k] * mu[k, j] * mu[k, j]
            dev += (mu[k, j] - cfg.prior_mean[j]) ** 2
        if cfg.has_prior:
            s = (cfg.prior_scale[0, 0] + s + cfg.shrinkage * dev) / (
                cfg.dof + (nk[k] + 1.0) * d + 2.0
            )
        else:
            s = s / d / nk[k]
        cov[k] = s


@kernel
def floor(cov, cfg) -> None:
    lowest = cfg.floor[0]
    if not lowest > 0.0:
        return
    for k in range(cov.shape[0]):
        if cov[k] < lowest:
            cov[k] = lowest


@kernel
def precision(cov, cfg, pc, bad) -> None:
    for k in range(cov.shape[0]):
        v = cov[k]
        bad[k] = not (math.isfinite(v) and v >= cfg.collapse[0])
        pc[k] = 1.0 if bad[k] else 1.0 / math.sqrt(v)


@kernel
def natural(w, mu, pc, nat) -> None:
    K, d = mu.shape
    for k in range(K):
        p = pc[k] * pc[k]
        nat[k, 0] = -0.5 * p
        norm2 = 0.0
        for j in range(d):
            nat[k, 1 + j] = p * mu[k, j]
            norm2 += mu[k, j] * mu[k, j]
        nat[k, d + 1] = np.log(w[k]) + d * math.log(pc[k]) - 0.5 * d * LOG_2PI - 0.5 * p * norm2


@kernel
def precision_of(pc, k, P) -> None:
    P[:] = 0.0
    for j in range(P.shape[0]):
        P[j, j] = pc[k] * pc[k]


@kernel
def log_prior(mu, cov, pc, cfg) -> float:
    K, d = mu.shape
    total = 0.0
    for k in range(K):
        dev = 0.0
        for j in range(d):
            dev += (mu[k, j] - cfg.prior_mean[j]) ** 2
        terms = (cfg.prior_scale[0, 0] + cfg.shrinkage * dev) / cov[k]
        total += -0.5 * (cfg.dof + 2.0 + d) * math.log(cov[k]) - 0.5 * terms
    return total


cov_to_vector = variances_to_vector
cov_from_vector = variances_from_vector


def held_at_floor(cov: np.ndarray, floor: np.ndarray, rtol: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return cov <= floor[0] * (1.0 + rtol)


def from_full(full: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.diagonal(full, axis1=-2, axis2=-1).mean(axis=-1)


def variance_unit(var: np.ndarray) -> np.ndarray:
    """The unit of the one variance: the mean of the features' variances, repeated (d,)."""
    return np.full_like(var, var.mean())


def variance_se(se: np.ndarray, K: int, d: int) -> np.ndarray:
    return np.repeat(se[:, None], d, axis=1)


def gemm_flops(n: int, d: int, K: int) -> float:
    """Floating-point operations of the matrix products of one iteration: the log joint
    (n, m) @ (m, K) and the statistics (K, n) @ (n, m), m features."""
    return 4.0 * n * (n_second(d) + d + 1) * K

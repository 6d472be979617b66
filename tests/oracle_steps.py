"""EM for Gaussian mixtures as pure step functions: the reference implementation.

Everything is batched over a leading restart axis R, so that many restarts on one data set run
as arrays. Shapes: X (n, d); weights (R, K); means (R, K, d); covariances and precision Cholesky
factors as in :mod:`workbench.densities` with a leading R; responsibilities (R, n, K).

The E-step works in log space (logsumexp). The M-step is split into weighted sufficient
statistics (counts ``nk`` and weighted sums), and scatter matrices computed from data centred at
the new means, never as E[x^2] - mu^2. The fused kernels in :mod:`workbench.em.fast` compute the
same two quantities and are held to these functions by tests.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from workbench.densities import log_gaussian_prob


class Prior(NamedTuple):
    """Conjugate normal-inverse-Wishart prior of Fraley & Raftery (2007) for MAP-EM.

    mean_{k} | S_k ~ N(mean, S_k / shrinkage); S_k ~ inverse-Wishart(dof, scale).
    mean: (d,). scale: (d, d) for full/tied, (d,) for diag, () for spherical.
    """

    shrinkage: float
    mean: np.ndarray
    dof: float
    scale: np.ndarray


def default_prior(X: np.ndarray, n_components: int, covariance_type: str) -> Prior:
    """mclust's ``priorControl()`` defaults: shrinkage 0.01, mean = data mean, dof = d + 2,
    scale = var(data) / K^(2/d) (the covariance matrix for full/tied, its diagonal for diag, its
    mean diagonal for spherical)."""
    d = X.shape[1]
    cov = np.atleast_2d(np.cov(X, rowvar=False))
    scale = cov / n_components ** (2.0 / d)
    if covariance_type == "diag":
        scale = np.diag(scale).copy()
    elif covariance_type == "spherical":
        scale = np.asarray(np.trace(scale) / d)
    return Prior(0.01, X.mean(axis=0), d + 2.0, scale)


# ---------------------------------------------------------------------------------------------
# E-step
# ---------------------------------------------------------------------------------------------
class EStats(NamedTuple):
    """Output of the E-step: responsibilities, log-likelihood and weighted sums."""

    resp: np.ndarray  # (R, n, K)
    loglik: np.ndarray  # (R,) total log-likelihood of the parameters that were evaluated
    nk: np.ndarray  # (R, K) sum_i r_ik
    sum_x: np.ndarray  # (R, K, d) sum_i r_ik x_i


def log_joint(X, log_weights, means, prec_chol, covariance_type) -> np.ndarray:
    """log w_k + log N(x_i | mu_k, S_k), shape (R, n, K)."""
    return log_gaussian_prob(X, means, prec_chol, covariance_type) + log_weights[:, None, :]


def e_step(X, log_weights, means, prec_chol, covariance_type) -> EStats:
    """Responsibilities r_ik = p(z_i = k | x_i) by Bayes' rule in log space, and their sums."""
    joint = log_joint(X, log_weights, means, prec_chol, covariance_type)
    log_norm = logsumexp(joint, axis=2, keepdims=True)  # (R, n, 1)
    resp = np.exp(joint - log_norm)
    nk = resp.sum(axis=1)
    sum_x = np.swapaxes(resp, 1, 2) @ X
    return EStats(resp, log_norm[..., 0].sum(axis=1), nk, sum_x)


# ---------------------------------------------------------------------------------------------
# M-step
# ---------------------------------------------------------------------------------------------
def estimate_weights(nk: np.ndarray) -> np.ndarray:
    """Maximum-likelihood weights nk / n, (R, K)."""
    return nk / nk.sum(axis=1, keepdims=True)


def estimate_means(nk: np.ndarray, sum_x: np.ndarray, prior: Prior | None) -> np.ndarray:
    """Weighted means sum_i r_ik x_i / n_k, or their posterior mode under the prior. (R, K, d)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if prior is None:
            return sum_x / nk[..., None]
        return (sum_x + prior.shrinkage * prior.mean) / (nk[..., None] + prior.shrinkage)


def centred_scatter(X, resp, centres, covariance_type) -> np.ndarray:
    """Weighted scatter about the given centres, sum_i r_ik (x_i - c_k)(x_i - c_k)^T.

    Returns (R, K, d, d) for full and tied, (R, K, d) (the diagonal) for diag and spherical.
    """
    diff = X[None, None, :, :] - centres[:, :, None, :]  # (R, K, n, d)
    weighted = np.swapaxes(resp, 1, 2)[..., None] * diff  # (R, K, n, d)
    if covariance_type in ("full", "tied"):
        return np.swapaxes(weighted, -1, -2) @ diff
    return np.einsum("rknd,rknd->rkd", weighted, diff)


def estimate_covariances(
    scatter: np.ndarray,
    nk: np.ndarray,
    means: np.ndarray,
    covariance_type: str,
    floor: np.ndarray | float,
    prior: Prior | None,
) -> np.ndarray:
    """Covariances from centred scatter (see :func:`centred_scatter`), with the variance floor
    (:func:`apply_variance_floor`; ``floor`` from :func:`variance_floor`). Without a prior,
    scatter_k / n_k (tied: sum_k scatter_k / n; diag: its diagonal; spherical: the mean of the
    diagonal). With a prior, the posterior mode of Fraley & Raftery (2007):
    S_k = [scale + scatter_k + shrinkage (mu_k - m)(mu_k - m)^T] / (dof + n_k + d + 2) (full),
    with the matching denominators (dof + n_k + 3) per variance (diag),
    (dof + (n_k + 1) d + 2) (spherical) and (dof + n + K + d + 1) (tied).
    """
    cov = raw_covariances(scatter, nk, means, covariance_type, prior)
    return apply_variance_floor(cov, covariance_type, floor)


def raw_covariances(scatter, nk, means, covariance_type: str, prior: Prior | None) -> np.ndarray:
    """The covariances of :func:`estimate_covariances` before the variance floor."""
    d = means.shape[-1]
    n_components = means.shape[-2]
    with np.errstate(invalid="ignore", divide="ignore"):
        if prior is not None:
            dev = means - prior.mean  # (R, K, d)
            if covariance_type in ("full", "tied"):
                numer = scatter + prior.shrinkage * dev[..., :, None] * dev[..., None, :]
            else:
                numer = scatter + prior.shrinkage * dev**2
        if covariance_type == "full":
            if prior is None:
                return scatter / nk[..., None, None]
            return (prior.scale + numer) / (prior.dof + nk + d + 2.0)[..., None, None]
        if covariance_type == "tied":
            n = nk.sum(axis=-1)
            if prior is None:
                return scatter.sum(axis=-3) / n[..., None, None]
            denom = prior.dof + n + n_components + d + 1.0
            return (prior.scale + numer.sum(axis=-3)) / denom[..., None, None]
        if covariance_type == "diag":
            if prior is None:
                return scatter / nk[..., None]
            return (prior.scale + numer) / (prior.dof + nk + 3.0)[..., None]
        if prior is None:  # spherical
            return scatter.mean(axis=-1) / nk
        denom = prior.dof + (nk + 1.0) * d + 2.0
        return (prior.scale + numer.sum(axis=-1)) / denom


# ---------------------------------------------------------------------------------------------
# The variance floor, relative to the data's scale
# ---------------------------------------------------------------------------------------------
def variance_scale(data_variance: np.ndarray) -> np.ndarray:
    """Each feature's unit of variance, (d,): its variance in the data; a constant feature
    (variance 0) takes the mean of the others' (1 when every feature is constant)."""
    var = np.asarray(data_variance, dtype=float).reshape(-1)
    positive = var > 0
    if positive.all():
        return var
    fallback = var[positive].mean() if positive.any() else 1.0
    return np.where(positive, var, fallback)


def variance_floor(reg_covar: float, data_variance: np.ndarray, covariance_type: str):
    """The variance floor per feature, (d,): ``reg_covar`` times the feature's variance
    (:func:`variance_scale`); for ``spherical`` (one variance, the mean over the features of
    each feature's variance) ``reg_covar`` times the mean of the features' variances, repeated.
    Relative floors make EM equivariant under any rescaling of each feature: the same data in
    other units give the same iterations, statuses and verdicts."""
    scale = variance_scale(data_variance)
    if covariance_type == "spherical":
        scale = np.full_like(scale, scale.mean())
    return reg_covar * scale


def apply_variance_floor(cov: np.ndarray, covariance_type: str, floor) -> np.ndarray:
    """Raise the covariances to the floor F = diag(floor) ((d,) or a scalar): full and tied,
    every eigenvalue of F^-1/2 S F^-1/2 below 1 raised to 1 (S - F stays positive
    semi-definite); diag, every variance below its floor raised to it; spherical, the variance
    to floor[0].

    This is the exact maximiser of the M-step objective over {S : S - F positive semi-definite}
    (Ingrassia 2004, in the coordinates x F^-1/2; Hathaway 1985's constraint for variances), so
    EM stays monotone, and it changes nothing while the floor is inactive. scikit-learn's
    ``reg_covar`` instead adds the floor to every diagonal, which biases all covariances and can
    make the log-likelihood fall by O(n reg^2 ||S^-1||^2).
    """
    d = cov.shape[-1] if covariance_type != "spherical" else None
    floor = np.asarray(floor, dtype=float)
    if not np.all(floor > 0):
        return cov
    if covariance_type == "spherical":
        lowest = floor.reshape(-1)[0]
        return np.where(cov < lowest, lowest, cov)  # NaN stays NaN
    floor = np.broadcast_to(floor, (d,))
    if covariance_type == "diag":
        return np.where(cov < floor, floor, cov)
    try:
        np.linalg.cholesky(cov - np.diag(floor))  # all above the floor: the common case
        return cov
    except np.linalg.LinAlgError:
        pass
    root = np.sqrt(floor)
    out = cov.copy()
    for idx in np.ndindex(cov.shape[:-2]):
        matrix = cov[idx]
        if not np.all(np.isfinite(matrix)):
            continue
        values, vectors = np.linalg.eigh(matrix / np.outer(root, root))
        if values[0] < 1.0:
            out[idx] = (vectors * np.maximum(values, 1.0)) @ vectors.T * np.outer(root, root)
    return out


def at_floor(cov: np.ndarray, covariance_type: str, floor, rtol: float = 1e-9) -> np.ndarray:
    """Which covariances are held at the variance floor: a variance (diag, spherical) or an
    eigenvalue of F^-1/2 S F^-1/2 (full, tied) at most (1 + rtol) times its floor. Shape
    (R, K), or (R,) for tied. All False without a floor."""
    floor = np.asarray(floor, dtype=float).reshape(-1)
    trailing = {"full": 2, "tied": 2, "diag": 1, "spherical": 0}[covariance_type]
    lead = cov.shape[: cov.ndim - trailing]
    if not np.all(floor > 0):
        return np.zeros(lead, dtype=bool)
    limit = 1.0 + rtol
    with np.errstate(invalid="ignore"):
        if covariance_type == "spherical":
            return cov <= floor[0] * limit
        if covariance_type == "diag":
            return np.any(cov <= floor * limit, axis=-1)
        whitened = cov / np.sqrt(np.outer(floor, floor))
    finite = np.all(np.isfinite(whitened), axis=(-1, -2))
    lowest = np.full(lead, np.inf)
    lowest[finite] = np.linalg.eigvalsh(whitened[finite])[..., 0]
    return lowest <= limit


def log_prior_density(
    means: np.ndarray,
    covariances: np.ndarray,
    prec_chol: np.ndarray,
    covariance_type: str,
    prior: Prior,
) -> np.ndarray:
    """Unnormalised log prior density of the parameters, (R,). MAP-EM increases
    loglik + log prior at every step; constants are dropped."""
    d = means.shape[-1]
    dev = means - prior.mean  # (R, K, d)
    if covariance_type == "full":
        log_det_cov = -2.0 * np.sum(np.log(np.diagonal(prec_chol, axis1=-2, axis2=-1)), axis=-1)
        scale_p = np.swapaxes(prec_chol, -1, -2) @ prior.scale @ prec_chol  # P^T L P
        quad = np.einsum("rkd,rkde->rke", dev, prec_chol)
        terms = np.trace(scale_p, axis1=-2, axis2=-1) + prior.shrinkage * np.sum(quad**2, -1)
        return np.sum(-0.5 * (prior.dof + d + 2.0) * log_det_cov - 0.5 * terms, axis=-1)
    if covariance_type == "tied":
        log_det_cov = -2.0 * np.sum(np.log(np.diagonal(prec_chol, axis1=-2, axis2=-1)), axis=-1)
        scale_p = np.trace(np.swapaxes(prec_chol, -1, -2) @ prior.scale @ prec_chol, 0, -2, -1)
        quad = np.sum((dev @ prec_chol) ** 2, axis=(-1, -2))
        n_components = means.shape[-2]
        power = prior.dof + d + 1.0 + n_components
        return -0.5 * power * log_det_cov - 0.5 * (scale_p + prior.shrinkage * quad)
    if covariance_type == "diag":
        terms = (prior.scale + prior.shrinkage * dev**2) / covariances
        return np.sum(-0.5 * (prior.dof + 3.0) * np.log(covariances) - 0.5 * terms, axis=(-1, -2))
    terms = (prior.scale + prior.shrinkage * np.sum(dev**2, axis=-1)) / covariances
    power = prior.dof + 2.0 + d
    return np.sum(-0.5 * power * np.log(covariances) - 0.5 * terms, axis=-1)


def convert_covariances(full: np.ndarray, weights: np.ndarray, covariance_type: str) -> np.ndarray:
    """Project full covariances (..., K, d, d) onto another covariance type: the diagonal (diag),
    its mean (spherical) or the weight-averaged matrix (tied)."""
    if covariance_type == "full":
        return full
    diag = np.diagonal(full, axis1=-2, axis2=-1)
    if covariance_type == "diag":
        return diag.copy()
    if covariance_type == "spherical":
        return diag.mean(axis=-1)
    total = np.sum(weights, axis=-1)[..., None, None]
    return np.sum(weights[..., :, None, None] * full, axis=-3) / total


def estimate_symmetric_means(nk, sum_x, prec_chol, covariance_type) -> np.ndarray:
    """Means of a two-component mixture constrained to mu_2 = -mu_1 = -theta (Dwivedi et al.
    2020's over-specified model), maximising the M-step objective given the current precisions:
    (n_1 S_1^-1 + n_2 S_2^-1) theta = S_1^-1 s_1 - S_2^-1 s_2, s_k = sum_i r_ik x_i. (R, 2, d)."""
    d = sum_x.shape[-1]
    if covariance_type in ("full", "tied"):
        chol = prec_chol if covariance_type == "full" else prec_chol[:, None]
        prec = chol @ np.swapaxes(chol, -1, -2)
        prec = np.broadcast_to(prec, (*nk.shape, d, d))
    else:
        diag = prec_chol**2 if covariance_type == "diag" else (prec_chol**2)[..., None] * np.ones(d)
        prec = diag[..., :, None] * np.eye(d)
    lhs = nk[:, 0, None, None] * prec[:, 0] + nk[:, 1, None, None] * prec[:, 1]
    rhs = (prec[:, 0] @ sum_x[:, 0, :, None] - prec[:, 1] @ sum_x[:, 1, :, None])[..., 0]
    theta = np.linalg.solve(lhs, rhs[..., None])[..., 0]
    return np.stack([theta, -theta], axis=1)

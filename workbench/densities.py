"""Gaussian log-densities and precision Cholesky factors for the four covariance types.

Pure functions, batched over any leading dimensions (``...``), e.g. a leading ``(R,)`` for
restarts. Shapes, with K components in d dimensions:

=============  ===================  ==========================================
type           covariances          precision Cholesky ``P`` (``P P^T = S^-1``)
=============  ===================  ==========================================
``full``       ``(..., K, d, d)``   ``(..., K, d, d)`` upper triangular
``diag``       ``(..., K, d)``      ``(..., K, d)``  = 1 / sqrt(variances)
``spherical``  ``(..., K)``         ``(..., K)``     = 1 / sqrt(variance)
``tied``       ``(..., d, d)``      ``(..., d, d)`` upper triangular
=============  ===================  ==========================================

The log-density is ``-d/2 log(2 pi) + log|P| - ||(x - mu) P||^2 / 2``, as in scikit-learn.
"""

from __future__ import annotations

import numpy as np

COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")
LOG_2PI = float(np.log(2.0 * np.pi))


def check_covariance_type(covariance_type: str) -> str:
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type={covariance_type!r}: expected one of {', '.join(COVARIANCE_TYPES)}"
        )
    return covariance_type


def precision_cholesky(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """Cholesky factor of the precision matrices (shapes in the module docstring).

    Raises ``np.linalg.LinAlgError`` when a covariance is not positive definite.
    """
    covariances = np.asarray(covariances, dtype=float)
    if covariance_type in ("full", "tied"):
        chol = np.linalg.cholesky(covariances)  # lower, S = L L^T
        eye = np.broadcast_to(np.eye(covariances.shape[-1]), covariances.shape)
        # P = L^{-T} so that P P^T = L^{-T} L^{-1} = S^{-1}
        return np.swapaxes(np.linalg.solve(chol, eye), -1, -2)
    if np.any(~(covariances > 0.0)):
        raise np.linalg.LinAlgError("variance is not positive")
    return 1.0 / np.sqrt(covariances)


def log_det_precision_cholesky(
    prec_chol: np.ndarray, covariance_type: str, n_features: int
) -> np.ndarray:
    """log|P| per component, shape ``(..., K)`` (``(...,)`` for tied)."""
    if covariance_type in ("full", "tied"):
        return np.sum(np.log(np.diagonal(prec_chol, axis1=-2, axis2=-1)), axis=-1)
    if covariance_type == "diag":
        return np.sum(np.log(prec_chol), axis=-1)
    return n_features * np.log(prec_chol)


def log_gaussian_prob(
    X: np.ndarray, means: np.ndarray, prec_chol: np.ndarray, covariance_type: str
) -> np.ndarray:
    """Component log-densities log N(x_i | mu_k, S_k).

    X: (n, d); means: (..., K, d); prec_chol as in the module docstring.
    Returns (..., n, K).
    """
    n_features = X.shape[1]
    log_det = log_det_precision_cholesky(prec_chol, covariance_type, n_features)
    if covariance_type == "full":
        # (..., K, n, d) = X P_k - mu_k P_k
        y = X @ prec_chol - (means[..., :, None, :] @ prec_chol)
        maha = np.swapaxes(np.einsum("...knd,...knd->...kn", y, y), -1, -2)
    elif covariance_type == "tied":
        y = (X - means[..., :, None, :]) @ prec_chol[..., None, :, :]
        maha = np.swapaxes(np.einsum("...knd,...knd->...kn", y, y), -1, -2)
        log_det = log_det[..., None]
    elif covariance_type == "diag":
        y = (X - means[..., :, None, :]) * prec_chol[..., :, None, :]
        maha = np.swapaxes(np.einsum("...knd,...knd->...kn", y, y), -1, -2)
    else:  # spherical
        sq = np.sum((X - means[..., :, None, :]) ** 2, axis=-1)  # (..., K, n)
        maha = np.swapaxes(sq * (prec_chol**2)[..., :, None], -1, -2)
    return -0.5 * (n_features * LOG_2PI + maha) + log_det[..., None, :]


def full_covariances(covariances: np.ndarray, covariance_type: str, n_components: int, d: int):
    """Expand any covariance type to full matrices, shape (..., K, d, d)."""
    covariances = np.asarray(covariances, dtype=float)
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.repeat(covariances[..., None, :, :], n_components, axis=-3)
    if covariance_type == "diag":
        return covariances[..., :, :, None] * np.eye(d)
    return covariances[..., :, None, None] * np.eye(d)


def n_covariance_parameters(covariance_type: str, n_components: int, d: int) -> int:
    """Number of free covariance parameters."""
    per_matrix = d * (d + 1) // 2
    return {
        "full": n_components * per_matrix,
        "tied": per_matrix,
        "diag": n_components * d,
        "spherical": n_components,
    }[covariance_type]

"""Standard errors and Wald intervals for an EM fit, from the observed information.

The observed information is minus the Hessian of the total log-likelihood in the free-parameter
space of :mod:`workbench.em.vector` (first K-1 weights, means, distinct covariance entries),
by central differences. Intervals for the last weight and the standard deviations come from the
delta method: var(w_K) = 1' V_w 1, se(sd) = se(var) / (2 sd).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri  # the normal quantile; scipy.stats loads slowly

from workbench.em.fit import EMSettings, EMState
from workbench.em.vector import from_vector, to_vector
from workbench.params import MixtureParams


def _loglik(X, theta, template: EMState, settings: EMSettings, data_variance) -> float:
    state = from_vector(theta, template, settings, data_variance)
    if state is None:
        return np.nan
    params = MixtureParams(
        state.weights[0], state.means[0], state.covariances[0], settings.covariance_type
    )
    return params.log_likelihood(X)


def observed_information(X, state: EMState, settings: EMSettings, rel_step: float = 1e-4):
    """Minus the Hessian of the log-likelihood at ``state`` (restart 0), shape (p, p)."""
    theta = to_vector(state, settings)
    data_variance = X.var(axis=0)
    steps = rel_step * np.maximum(1.0, np.abs(theta))
    p = theta.size
    hessian = np.empty((p, p))

    def f(shift):
        return _loglik(X, theta + shift, state, settings, data_variance)

    for i in range(p):
        for j in range(i, p):
            ei, ej = np.zeros(p), np.zeros(p)
            ei[i], ej[j] = steps[i], steps[j]
            value = (f(ei + ej) - f(ei - ej) - f(ej - ei) + f(-ei - ej)) / (4 * steps[i] * steps[j])
            hessian[i, j] = hessian[j, i] = value
    return -hessian


def wald_intervals(X, state: EMState, settings: EMSettings, level: float = 0.9):
    """Intervals estimate +- z se for the free ``weights``, ``means`` and ``scales`` of
    restart 0, shapes (K,), (K, d), (K, d); an empty dict when the information is singular."""
    information = observed_information(X, state, settings)
    try:
        covariance = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        return {}
    se = np.sqrt(np.where(np.diag(covariance) > 0, np.diag(covariance), np.nan))
    z = ndtri(0.5 + level / 2)
    K, d = state.means.shape[1:]
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    offset = 0
    if settings.fixed_weights is None and K > 1:
        block = covariance[: K - 1, : K - 1]
        w_se = np.append(se[: K - 1], np.sqrt(max(block.sum(), 0.0)))
        out["weights"] = _interval(state.weights[0], w_se, z)
        offset += K - 1
    if settings.fixed_means is None:
        out["means"] = _interval(state.means[0], se[offset : offset + K * d].reshape(K, d), z)
        offset += K * d
    if settings.fixed_covariances is None:
        var_se = _variance_se(se[offset:], settings.covariance_type, K, d)
        params = MixtureParams(
            state.weights[0], state.means[0], state.covariances[0], settings.covariance_type
        )
        sd = params.scales()
        out["scales"] = _interval(sd, var_se / (2 * sd), z)
    return out


def _variance_se(se: np.ndarray, covariance_type: str, K: int, d: int) -> np.ndarray:
    """Standard errors of the variances (K, d) from those of the covariance block."""
    if covariance_type == "diag":
        return se.reshape(K, d)
    if covariance_type == "spherical":
        return np.repeat(se[:, None], d, axis=1)
    rows, cols = np.tril_indices(d)
    diagonal = rows == cols
    per_matrix = se.reshape(-1, len(rows))[:, diagonal]  # (K or 1, d)
    return np.broadcast_to(per_matrix, (K, d))


def _interval(estimate, se, z):
    return estimate - z * se, estimate + z * se

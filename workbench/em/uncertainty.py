"""Standard errors and Wald intervals for an EM fit, from the observed information.

The observed information is minus the Hessian of the total log-likelihood in the free-parameter
space of :mod:`workbench.em.vector` (first K-1 weights, means, distinct covariance entries),
by the central difference of :mod:`workbench.em.derivatives`. Intervals for the last weight
and the standard deviations come from the delta method: var(w_K) = 1' V_w 1,
se(sd) = se(var) / (2 sd).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri  # the normal quantile; scipy.stats loads slowly

from workbench.em.covariance.registry import strategy
from workbench.em.run import EMSettings, EMState
from workbench.em.vector import observed_information
from workbench.params import MixtureParams


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
        var_se = strategy(settings.covariance_type).variance_se(se[offset:], K, d)
        params = MixtureParams(
            state.weights[0], state.means[0], state.covariances[0], settings.covariance_type
        )
        sd = params.scales()
        out["scales"] = _interval(sd, var_se / (2 * sd), z)
    return out


def _interval(estimate, se, z):
    return estimate - z * se, estimate + z * se

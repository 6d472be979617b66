"""EM's linear convergence rate, in theory and as measured.

EM converges linearly; near a fixed point the error shrinks by the spectral radius of the
Jacobian of the EM map (Meng & Rubin's DM matrix), which equals the largest eigenvalue of
I - I_complete^{-1} I_observed, the fraction of missing information (Dempster, Laird & Rubin
1977). Three views:

- :func:`population_rate` (from :mod:`workbench.population_theory`): two univariate Gaussians at
  population level, from the Fisher informations by quadrature (independent of the EM code).
- :func:`dm_rate`: the spectral radius of the numerical Jacobian of the workbench's own EM map at
  given parameters, on given data (every perturbed state one restart of one loop call).
- :func:`measured_rate`: the ratio of successive parameter steps of an actual EM run.
"""

from __future__ import annotations

import numpy as np

from workbench.em.run import EMSettings, EMState, em_map, init_state
from workbench.em.vector import jacobian, to_vector
from workbench.population_theory import population_rate

__all__ = ["dm_jacobian", "dm_rate", "measured_rate", "population_rate", "trace_rate"]


def single_state(weights, means, covariances, settings: EMSettings, X) -> EMState:
    """An EMState for one fit (a batch of one)."""
    return init_state(
        np.asarray(weights, float)[None],
        np.asarray(means, float)[None],
        np.asarray(covariances, float)[None],
        settings,
        np.nanvar(X, axis=0),
    )


def dm_jacobian(X, state: EMState, settings: EMSettings) -> np.ndarray:
    """Jacobian of the EM map at ``state`` (restart 0), in the free-parameter space of
    :mod:`workbench.em.vector` (central differences). Shape (p, p)."""
    return jacobian(X, state, settings)


def dm_rate(X, state: EMState, settings: EMSettings) -> float:
    """Spectral radius of the EM map's Jacobian at ``state``: the theoretical linear rate."""
    jac = dm_jacobian(X, state, settings)
    if jac.size == 0 or not np.all(np.isfinite(jac)):
        return np.nan
    return float(np.max(np.abs(np.linalg.eigvals(jac))))


def measured_rate(
    X,
    start: EMState,
    settings: EMSettings,
    max_iter: int = 5000,
    window: tuple[float, float] = (1e-4, 1e-9),
) -> float:
    """Median ratio ||theta_{t+1} - theta_t|| / ||theta_t - theta_{t-1}|| of an EM run (one
    iteration of the loop at a time), over the iterations whose step size lies in ``window``
    (past the start-up, before round-off)."""
    state, previous = start, to_vector(start, settings)
    sizes = []
    for _ in range(max_iter):
        state, _, degenerate = em_map(X, state, settings)
        if degenerate[0]:
            break
        theta = to_vector(state, settings)
        sizes.append(np.linalg.norm(theta - previous))
        previous = theta
        if sizes[-1] < window[1]:
            break
    sizes = np.asarray(sizes)
    in_window = (sizes[:-1] <= window[0]) & (sizes[1:] >= window[1])
    ratios = sizes[1:][in_window] / sizes[:-1][in_window]
    return float(np.median(ratios)) if ratios.size else np.nan


def trace_rate(trace: np.ndarray, window: tuple[float, float] = (1e-5, 1e-13)) -> float:
    """Linear rate measured from a log-likelihood trace alone.

    Near the optimum the gap L* - L_t shrinks by rate^2 per iteration (it is quadratic in the
    parameter error), so rate = median sqrt(dL_{t+1} / dL_t) over the increments whose relative
    size lies in ``window`` (past the start-up, before round-off). NaN when too few.
    """
    trace = np.asarray(trace, dtype=float)
    increments = np.diff(trace)
    relative = increments / np.abs(trace[1:])
    ok = (relative[:-1] < window[0]) & (relative[1:] > window[1])
    ok &= (increments[:-1] > 0) & (increments[1:] > 0)
    ratios = np.sqrt(increments[1:][ok] / increments[:-1][ok])
    return float(np.median(ratios)) if ratios.size else np.nan

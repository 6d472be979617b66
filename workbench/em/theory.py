"""EM's linear convergence rate, in theory and as measured.

EM converges linearly; near a fixed point the error shrinks by the spectral radius of the
Jacobian of the EM map (Meng & Rubin's DM matrix), which equals the largest eigenvalue of
I - I_complete^{-1} I_observed, the fraction of missing information (Dempster, Laird & Rubin
1977). Three views:

- :func:`population_rate`: two univariate Gaussians at population level, from the observed and
  complete Fisher informations by quadrature (independent of the EM code).
- :func:`dm_rate`: the spectral radius of the numerical Jacobian of the workbench's own EM map at
  given parameters, on given data.
- :func:`measured_rate`: the ratio of successive parameter steps of an actual EM run.
"""

from __future__ import annotations

import numpy as np

from workbench.em.fit import NUMPY_ENGINE, EMSettings, EMState, init_state, step
from workbench.em.vector import em_map, to_vector

GRID_POINTS = 200_001
GRID_HALF_WIDTH = 15.0  # standard deviations beyond the outer means


def population_rate(
    delta: float,
    weight: float = 0.5,
    sds: tuple[float, float] = (1.0, 1.0),
    free: str = "all",
) -> float:
    """Fraction of missing information for w N(-delta/2, sd1^2) + (1-w) N(delta/2, sd2^2).

    free: ``"all"`` (weight, both means, both variances) or ``"means"`` (the rest known).
    """
    v1, v2 = sds[0] ** 2, sds[1] ** 2
    m1, m2 = -delta / 2.0, delta / 2.0
    width = GRID_HALF_WIDTH * max(sds)
    x = np.linspace(m1 - width, m2 + width, GRID_POINTS)

    def density(m, v):
        return np.exp(-((x - m) ** 2) / (2 * v)) / np.sqrt(2 * np.pi * v)

    a, b = weight * density(m1, v1), (1 - weight) * density(m2, v2)
    p = a + b
    t1, t2 = a / p, b / p
    score = np.stack(
        [
            t1 / weight - t2 / (1 - weight),
            t1 * (x - m1) / v1,
            t2 * (x - m2) / v2,
            t1 * (-1 / (2 * v1) + (x - m1) ** 2 / (2 * v1**2)),
            t2 * (-1 / (2 * v2) + (x - m2) ** 2 / (2 * v2**2)),
        ]
    )
    observed = np.trapezoid(score[:, None, :] * score[None, :, :] * p, x, axis=-1)
    complete = np.diag(
        [
            1 / (weight * (1 - weight)),
            weight / v1,
            (1 - weight) / v2,
            weight / (2 * v1**2),
            (1 - weight) / (2 * v2**2),
        ]
    )
    idx = np.arange(5) if free == "all" else np.array([1, 2])
    missing = np.eye(len(idx)) - np.linalg.solve(
        complete[np.ix_(idx, idx)], observed[np.ix_(idx, idx)]
    )
    return float(np.max(np.abs(np.linalg.eigvals(missing))))


def single_state(weights, means, covariances, settings: EMSettings, X) -> EMState:
    """An EMState for one fit (a batch of one)."""
    return init_state(
        np.asarray(weights, float)[None],
        np.asarray(means, float)[None],
        np.asarray(covariances, float)[None],
        settings,
        X.var(axis=0),
    )


def dm_jacobian(X, state: EMState, settings: EMSettings, rel_step: float = 1e-6) -> np.ndarray:
    """Central-difference Jacobian of the EM map at ``state`` (restart 0), in the free-parameter
    space of :mod:`workbench.em.vector`. Shape (p, p)."""
    theta = to_vector(state, settings)
    jac = np.empty((theta.size, theta.size))
    for j in range(theta.size):
        h = rel_step * max(1.0, abs(theta[j]))
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        f_up, _ = em_map(X, up, state, settings)
        f_down, _ = em_map(X, down, state, settings)
        jac[:, j] = (f_up - f_down) / (2 * h)
    return jac


def dm_rate(X, state: EMState, settings: EMSettings) -> float:
    """Spectral radius of the EM map's Jacobian at ``state``: the theoretical linear rate."""
    return float(np.max(np.abs(np.linalg.eigvals(dm_jacobian(X, state, settings)))))


def measured_rate(
    X,
    start: EMState,
    settings: EMSettings,
    max_iter: int = 5000,
    window: tuple[float, float] = (1e-4, 1e-9),
) -> float:
    """Median ratio ||theta_{t+1} - theta_t|| / ||theta_t - theta_{t-1}|| of an EM run, over the
    iterations whose step size lies in ``window`` (past the start-up, before round-off)."""
    data_variance = X.var(axis=0)
    state, previous = start, to_vector(start, settings)
    sizes = []
    for _ in range(max_iter):
        state, _ = step(X, state, settings, data_variance, NUMPY_ENGINE)
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

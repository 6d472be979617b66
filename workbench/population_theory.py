"""Closed-form theory of EM for mixtures, independent of the EM code.

:func:`population_rate`: the fraction of missing information, the largest eigenvalue of
I - I_complete^{-1} I_observed (Dempster, Laird & Rubin 1977), for two univariate Gaussians at
population level, from the observed and complete Fisher informations by quadrature. EM's linear
convergence rate tends to it as n grows; :mod:`workbench.em.theory` computes the same quantity
from the workbench's own EM map on a sample.
"""

from __future__ import annotations

import numpy as np

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

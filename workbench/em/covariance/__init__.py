"""Covariance strategies of the Gaussian mixture: each type's shapes, sufficient statistics,
M-step, variance floor, precision factor, parameter count and vectorisation, one module each.

A strategy is the module itself (:data:`STRATEGIES` maps the type's name to it). Compiled
pieces (numba): ``features``, ``log_joint``, ``covariances``, ``floor``, ``precision``,
``natural``, ``precision_of``, ``log_prior``, ``cov_to_vector``, ``cov_from_vector``. Python
pieces: ``n_second``, ``cov_shape``, ``n_cov_params``, ``min_support``, ``cov_units``,
``held_at_floor``, ``from_full``. These are the only places in ``workbench/em`` that know a
covariance type by name.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from workbench.em.covariance import diag, full, spherical, tied

STRATEGIES: dict[str, ModuleType] = {m.NAME: m for m in (full, diag, spherical, tied)}
COVARIANCE_TYPES = tuple(STRATEGIES)
DEFAULT = full.NAME


def strategy(covariance_type: str) -> ModuleType:
    """The strategy of ``covariance_type`` (ValueError naming it when unknown)."""
    if covariance_type not in STRATEGIES:
        raise ValueError(
            f"covariance_type={covariance_type!r}: expected one of {', '.join(STRATEGIES)}"
        )
    return STRATEGIES[covariance_type]


def variance_scale(data_variance: np.ndarray) -> np.ndarray:
    """Each feature's unit of variance, (d,): its variance in the data; a constant feature
    (variance 0) takes the mean of the others' (1 when every feature is constant)."""
    var = np.asarray(data_variance, dtype=float).reshape(-1)
    positive = var > 0
    if positive.all():
        return var
    fallback = var[positive].mean() if positive.any() else 1.0
    return np.where(positive, var, fallback)

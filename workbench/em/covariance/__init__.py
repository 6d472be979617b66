"""Covariance strategies of the Gaussian mixture: each type's shapes, sufficient statistics,
M-step, variance floor, precision factor, parameter count and vectorisation, one module each.

A strategy is the module itself; :mod:`workbench.em.covariance.registry` maps the type's name to
it. This package's ``__init__`` holds only the names and the data's scales, and imports nothing
compiled. Compiled pieces (numba): ``features``, ``log_joint``, ``covariances``, ``floor``,
``precision``, ``natural``, ``precision_of``, ``log_prior``, ``cov_to_vector``,
``cov_from_vector``, ``component_matrix``, ``pack_statistics``. Python pieces: ``n_second``,
``cov_shape``, ``n_cov_params``, ``min_support``, ``cov_units``, ``held_at_floor``,
``from_full``, ``variance_unit``, ``variance_se``, ``gemm_flops``. These are the only places in
``workbench/em`` that know a covariance type by name.
"""

from __future__ import annotations

import numpy as np

from workbench.densities import COVARIANCE_TYPES  # noqa: F401 (one strategy per type)

DEFAULT = "full"
MISSING_TYPES = ("full", "diag")  # whose M-step takes expected statistics as they are


def variance_scale(data_variance: np.ndarray) -> np.ndarray:
    """Each feature's unit of variance, (d,): its variance in the data; a constant feature
    (variance 0) takes the mean of the others' (1 when every feature is constant)."""
    var = np.asarray(data_variance, dtype=float).reshape(-1)
    positive = var > 0
    if positive.all():
        return var
    fallback = var[positive].mean() if positive.any() else 1.0
    return np.where(positive, var, fallback)

"""Label matching: which fitted component is which true component.

A fitted mixture's component labels are arbitrary, so every comparison with the truth first
matches fitted to true components with the Hungarian algorithm (scipy's
``linear_sum_assignment``). Used by the evaluation stage and by the Bayesian fitter's own
diagnostics, so both match the same way.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from workbench.params import MixtureParams


def matching_cost(fitted: MixtureParams, truth: MixtureParams) -> np.ndarray:
    """(K_fit, K_true) cost: squared distance between means in units of the true pooled
    standard deviation per dimension, plus the squared difference of log scales."""
    true_var = np.diagonal(truth.full_covariances(), axis1=1, axis2=2)
    pooled_sd = np.sqrt(np.mean(true_var, axis=0))
    mean_cost = (((fitted.means[:, None, :] - truth.means[None, :, :]) / pooled_sd) ** 2).sum(-1)
    log_scale = np.log(fitted.scales())[:, None, :] - np.log(truth.scales())[None, :, :]
    return mean_cost + (log_scale**2).sum(-1)


def matched_truth_index(fitted: MixtureParams, truth: MixtureParams) -> tuple[np.ndarray, ...]:
    """(fitted_index, true_index) of the optimal matching, sorted by true index. With different
    K on the two sides, min(K_fit, K_true) pairs are matched and the rest left out."""
    rows, cols = linear_sum_assignment(matching_cost(fitted, truth))
    by_truth = np.argsort(cols)
    return rows[by_truth], cols[by_truth]


def match_components(fitted: MixtureParams, truth: MixtureParams) -> np.ndarray:
    """Order of fitted components matched to the true ones: fitted ``order[j]`` is true ``j``
    (for K_fit >= K_true; see :func:`matched_truth_index` otherwise)."""
    return matched_truth_index(fitted, truth)[0]

"""The EM map as a function of a flat vector of the free parameters.

Free parameters of one fit: the first K-1 weights (the last is 1 minus their sum), the means
(K*d), and the distinct covariance entries (lower triangle per matrix for full/tied, every
variance for diag/spherical); parameters held fixed are left out. Used by the theory of the
convergence rate (Jacobian of the map) and by SQUAREM (extrapolation in this space).
"""

from __future__ import annotations

import numpy as np

from workbench.em.fit import NUMPY_ENGINE, EMSettings, EMState, init_state, step
from workbench.em.steps import variance_scale


def _blocks(state: EMState, settings: EMSettings) -> list[str]:
    names = []
    if settings.fixed_weights is None and state.weights.shape[-1] > 1:
        names.append("weights")
    if settings.fixed_means is None:
        names.append("means")
    if settings.fixed_covariances is None:
        names.append("covariances")
    return names


def _tril(d: int):
    return np.tril_indices(d)


def to_vector(state: EMState, settings: EMSettings) -> np.ndarray:
    """Free parameters of restart 0 of ``state`` as a 1-D vector."""
    parts = []
    for name in _blocks(state, settings):
        value = getattr(state, name)[0]
        if name == "weights":
            value = value[:-1]
        elif name == "covariances" and settings.covariance_type in ("full", "tied"):
            value = value[..., _tril(value.shape[-1])[0], _tril(value.shape[-1])[1]]
        parts.append(np.ravel(value))
    return np.concatenate(parts) if parts else np.zeros(0)


def vector_units(state: EMState, settings: EMSettings, data_variance) -> np.ndarray:
    """The data's unit of every entry of :func:`to_vector`: 1 for weights, the feature's
    standard deviation for means, sd_i sd_j for covariance entries (spherical: the mean
    variance), from :func:`workbench.em.steps.variance_scale`. Dividing by it makes norms of
    parameter vectors independent of the data's units."""
    var = variance_scale(data_variance)
    sd = np.sqrt(var)
    K, d = state.means.shape[1:]
    covariances = {
        "full": np.broadcast_to(np.outer(sd, sd), (K, d, d)),
        "tied": np.outer(sd, sd),
        "diag": np.broadcast_to(var, (K, d)),
        "spherical": np.full(K, var.mean()),
    }[settings.covariance_type]
    units = EMState(np.ones((1, K)), np.broadcast_to(sd, (1, K, d)), covariances[None], None)
    return to_vector(units, settings)


def from_vector(vector: np.ndarray, template: EMState, settings: EMSettings, data_variance):
    """The EMState (batch of one) with the free parameters taken from ``vector``.

    Returns None when the vector is outside the parameter space (weights not in the simplex,
    a covariance not positive definite).
    """
    values = {name: np.array(getattr(template, name)[0]) for name in EMState._fields[:3]}
    offset = 0
    for name in _blocks(template, settings):
        current = values[name]
        if name == "weights":
            size = current.size - 1
            head = vector[offset : offset + size]
            current = np.append(head, 1.0 - head.sum())
        elif name == "covariances" and settings.covariance_type in ("full", "tied"):
            d = current.shape[-1]
            rows, cols = _tril(d)
            size = current.size // d * len(rows) // d
            lower = vector[offset : offset + size].reshape(*current.shape[:-2], len(rows))
            current = np.zeros_like(current)
            current[..., rows, cols] = lower
            current[..., cols, rows] = lower
        else:
            size = current.size
            current = vector[offset : offset + size].reshape(current.shape)
        values[name] = current
        offset += size
    if np.any(values["weights"] <= 0) or not np.all(np.isfinite(vector)):
        return None
    try:
        if settings.covariance_type in ("full", "tied"):
            np.linalg.cholesky(values["covariances"])
        elif np.any(values["covariances"] <= 0):
            return None
    except np.linalg.LinAlgError:
        return None
    return init_state(
        values["weights"][None],
        values["means"][None],
        values["covariances"][None],
        settings,
        data_variance,
    )


def em_map(
    X, vector, template: EMState, settings: EMSettings, engine=NUMPY_ENGINE, data_variance=None
):
    """One EM iteration on the vector: returns (F(vector), loglik objective at vector), or
    (None, -inf) outside the parameter space. data_variance: X.var(axis=0), if already known
    (callers that evaluate the map many times pass it, to save a pass over the data)."""
    if data_variance is None:
        data_variance = X.var(axis=0)
    state = from_vector(vector, template, settings, data_variance)
    if state is None:
        return None, -np.inf
    new, info = step(X, state, settings, data_variance, engine)
    return to_vector(new, settings), float(info.objective[0])

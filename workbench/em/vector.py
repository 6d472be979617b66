"""The EM map as a function of a flat vector of the free parameters.

The vector is the model's own (``to_vector``/``from_vector`` of the Gaussian model, compiled
from the covariance strategy: the first K-1 weights, the means, the distinct covariance entries;
fixed parameters left out), the same one SQUAREM extrapolates in. Used by the theory of the
convergence rate (Jacobian of the map), the stability check of the reference bank and the
standard errors (Hessian of the log-likelihood). Every batch of evaluations goes through the one
loop at once, as restarts.
"""

from __future__ import annotations

import numpy as np

from workbench.em.fit import EMSettings, EMState, em_map, model_config, objective_at, to_params
from workbench.em.gaussian_model import gaussian_model


def _model_and_params(state: EMState, settings: EMSettings, data_variance):
    K, d = state.means.shape[1:]
    cfg = model_config(settings, 1, K, data_variance, np.zeros(d))
    return gaussian_model(settings.covariance_type), cfg, to_params(state, settings, cfg, 0.0)


def to_vector(state: EMState, settings: EMSettings) -> np.ndarray:
    """Free parameters of restart 0 of ``state`` as a 1-D vector."""
    model, cfg, params = _model_and_params(state, settings, np.ones(state.means.shape[-1]))
    one = model.take(params, 0)
    out = np.zeros(model.vector_size(one, cfg))
    model.to_vector(one, cfg, out)
    return out


def vector_units(X: np.ndarray, state: EMState, settings: EMSettings) -> np.ndarray:
    """The data's unit of every entry of :func:`to_vector`: 1 for weights, the feature's
    standard deviation for means, sd_i sd_j for covariance entries. Dividing by it makes norms
    of parameter vectors independent of the data's units."""
    model, cfg, params = _model_and_params(state, settings, X.var(axis=0))
    return model.vector_units(X, model.take(params, 0), cfg)


def from_vectors(vectors: np.ndarray, template: EMState, settings: EMSettings, data_variance):
    """(EMState batch of the vectors (V, p) that lie in the parameter space, which ones (V,)
    bool): weights in the simplex, covariances positive definite, values finite."""
    model, cfg, params = _model_and_params(template, settings, data_variance)
    one = model.take(params, 0)
    out = [model.copy_new(one) for _ in vectors]
    ok = np.array([model.from_vector(v, one, cfg, o) for v, o in zip(vectors, out, strict=True)])
    if not ok.any():
        return None, ok
    batch = model.stack([o for o, good in zip(out, ok, strict=True) if good])
    return EMState(*batch[:4]), ok


def from_vector(vector: np.ndarray, template: EMState, settings: EMSettings, data_variance):
    """The EMState (batch of one) of ``vector``, or None outside the parameter space."""
    return from_vectors(np.asarray(vector)[None], template, settings, data_variance)[0]


def map_vectors(X, vectors: np.ndarray, template: EMState, settings: EMSettings):
    """One EM iteration from each vector (V, p), all as restarts of one loop call: (F(v) (V, p),
    objective at v (V,)); rows of NaN (and -inf) where v is outside the parameter space or its
    next state is degenerate."""
    V = len(vectors)
    mapped, objective = np.full(np.shape(vectors), np.nan), np.full(V, -np.inf)
    states, ok = from_vectors(vectors, template, settings, X.var(axis=0))
    if states is None:
        return mapped, objective
    new, first, degenerate = em_map(X, states, settings)
    rows = np.flatnonzero(ok)
    for i, r in enumerate(rows):
        if not degenerate[i]:
            mapped[r] = to_vector(EMState(*(a[i : i + 1] for a in new)), settings)
            objective[r] = first[i]
    return mapped, objective


def objectives(X, vectors: np.ndarray, template: EMState, settings: EMSettings) -> np.ndarray:
    """Log-likelihood at each vector (V,), NaN outside the parameter space; one loop call."""
    values = np.full(len(vectors), np.nan)
    states, ok = from_vectors(vectors, template, settings, X.var(axis=0))
    if states is not None:
        values[ok] = objective_at(X, states, settings)[0]
    return values


def jacobian(X, state: EMState, settings: EMSettings, rel_step: float = 1e-6) -> np.ndarray:
    """Central-difference Jacobian of the EM map at restart 0 of ``state`` in the free-parameter
    space, (p, p); NaN entries where a step leaves the parameter space."""
    theta = to_vector(state, settings)
    p = theta.size
    h = rel_step * np.maximum(1.0, np.abs(theta))
    steps = np.concatenate([np.diag(h), -np.diag(h)])
    mapped, _ = map_vectors(X, theta + steps, state, settings)
    return ((mapped[:p] - mapped[p:]) / (2 * h)[:, None]).T

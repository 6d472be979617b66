"""The EM map as a function of a flat vector of the free parameters.

The vector is the model's own (``to_vector``/``from_vector`` of the Gaussian model, compiled
from the covariance strategy: the first K-1 weights, the means, the distinct covariance entries;
fixed parameters left out), the same one SQUAREM extrapolates in. Used by the theory of the
convergence rate (Jacobian of the map), the stability check of the reference bank and the
standard errors (Hessian of the log-likelihood). Every batch of evaluations goes through the one
loop at once, as restarts (:mod:`workbench.em.derivatives`).
"""

from __future__ import annotations

import numpy as np

from workbench.em import derivatives
from workbench.em.gaussian_model import gaussian_model
from workbench.em.run import EMSettings, EMState, loop_inputs, model_config, to_params


def _model_and_params(state: EMState, settings: EMSettings, data_variance):
    K, d = state.means.shape[1:]
    cfg = model_config(settings, 1, K, data_variance, np.zeros(d))
    return gaussian_model(settings.covariance_type), cfg, to_params(state, settings, cfg, 0.0)


def to_vector(state: EMState, settings: EMSettings) -> np.ndarray:
    """Free parameters of restart 0 of ``state`` as a 1-D vector."""
    model, cfg, params = _model_and_params(state, settings, np.ones(state.means.shape[-1]))
    return derivatives.vector_of(model, model.take(params, 0), cfg)


def _loop_inputs(X, state: EMState, settings: EMSettings):
    """(model, centred data, config, restart 0's parameter record) for the derivatives."""
    model, XT, cfg, params, _ = loop_inputs(X, EMState(*(a[:1] for a in state)), settings)
    return model, XT, cfg, model.take(params, 0)


def jacobian(X, state: EMState, settings: EMSettings) -> np.ndarray:
    """Jacobian of the EM map at restart 0 of ``state`` in the free-parameter space, (p, p)
    (:func:`workbench.em.derivatives.map_jacobian`)."""
    return derivatives.map_jacobian(*_loop_inputs(X, state, settings))


def observed_information(X, state: EMState, settings: EMSettings) -> np.ndarray:
    """Minus the Hessian of the log-likelihood at restart 0 of ``state``, (p, p)."""
    return derivatives.observed_information(*_loop_inputs(X, state, settings))

"""The Gaussian mixture registered as a model family (``model = "gaussian"`` of the generic
fitter, :mod:`workbench.em.model_fitter`): the family's pieces over :mod:`workbench.em.run`."""

from __future__ import annotations

from workbench.em.covariance import DEFAULT
from workbench.em.covariance.registry import strategy
from workbench.em.gaussian_model import gaussian_model
from workbench.em.init import INITS
from workbench.em.model import EMModel, register
from workbench.em.run import EMSettings, EMState, data_and_config, init_state, prepare
from workbench.params import MixtureParams


def gaussian_family(covariance_type: str = DEFAULT) -> EMModel:
    """The Gaussian-mixture EMModel of ``covariance_type`` with the fitter's pieces."""
    s = strategy(covariance_type)
    settings = EMSettings(covariance_type=covariance_type)

    def start(X, K, R, rng, how):
        weights, means, full = INITS[how](X, K, R, rng)
        covariances = s.from_full(full, weights)
        return init_state(weights, means, covariances, settings, X.var(axis=0))

    def prepare_data(X, K):
        return data_and_config(X, K, settings)[:2]

    def init(X, K, R, rng, how):
        return prepare(X, start(X, K, R, rng, how), settings)[2]

    def to_mixture(one, cfg):
        return MixtureParams(one[0], one[1] + cfg.shift, one[2], covariance_type)

    def n_free(K, d):
        return (K - 1) + K * d + s.n_cov_params(K, d)

    return gaussian_model(covariance_type)._replace(
        prepare=prepare_data, init=init, to_mixture=to_mixture, n_free=n_free
    )


register("gaussian", gaussian_family)
__all__ = ["EMState", "gaussian_family"]

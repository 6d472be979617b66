"""A second EM model for the seam: a mixture of K univariate Poisson distributions.

Written only against workbench.em.model (the pieces of one EM iteration, compiled with numba)
and registered by name the way a real model family is (:func:`register_all`:
``register("poisson_mixture", ...)``, with a data generator registered in
workbench.data.registry). Everything else (restarts,
statuses, traces, SQUAREM, rate theory, standard errors, the runner, the store and the report)
comes from the workbench.

Parameters of one restart: (weights (K,), rates (K,)); statistics: T (K, 2) = [sum_i r_ik,
sum_i r_ik x_i]. E-step: r_ik proportional to w_k lambda_k^x e^-lambda_k / x!; M-step:
w_k = n_k / n, lambda_k = sum_i r_ik x_i / n_k.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from workbench.data.dataset import Dataset
from workbench.data.registry import register_generator
from workbench.em.model import EMModel, register
from workbench.em.specialise import kernel
from workbench.params import MixtureParams

EMPTY = 1  # the model's one degenerate kind: a component lost its points (or its rate)


class PoissonConfig(NamedTuple):
    min_count: float


@kernel
def e_step(x, params, cfg, stats, work):
    w, lam = params
    T = stats[0]
    K = w.shape[0]
    T[:] = 0.0
    log_w = np.log(w)
    log_lam = np.log(lam)
    joint = np.empty(K)
    total = 0.0
    for i in range(x.shape[0]):
        top = -np.inf
        for k in range(K):
            joint[k] = log_w[k] + x[i] * log_lam[k] - lam[k] - math.lgamma(x[i] + 1.0)
            top = max(top, joint[k])
        s = 0.0
        for k in range(K):
            joint[k] = math.exp(joint[k] - top)
            s += joint[k]
        for k in range(K):
            r = joint[k] / s
            T[k, 0] += r
            T[k, 1] += r * x[i]
        total += top + math.log(s)
    return total


@kernel
def m_step(stats, params, cfg, out):
    T = stats[0]
    w, lam = out
    n = T[:, 0].sum()
    for k in range(w.shape[0]):
        if not T[k, 0] >= cfg.min_count or not T[k, 1] > 0.0:
            return EMPTY, k
        w[k] = T[k, 0] / n
        lam[k] = T[k, 1] / T[k, 0]
    return 0, -1


@kernel
def log_prior(params, cfg):
    return 0.0


@kernel
def copy_params(src, dst):
    dst[0][:] = src[0]
    dst[1][:] = src[1]


@kernel
def copy_stats(src, dst):
    dst[0][...] = src[0]


@kernel
def to_vector(params, cfg, out):
    w, lam = params
    K = w.shape[0]
    for k in range(K - 1):
        out[k] = w[k]
    for k in range(K):
        out[K - 1 + k] = lam[k]


@kernel
def from_vector(v, template, cfg, out):
    w, lam = out
    K = w.shape[0]
    rest = 1.0
    for k in range(K - 1):
        w[k] = v[k]
        rest -= v[k]
    w[K - 1] = rest
    for k in range(K):
        lam[k] = v[K - 1 + k]
        if not (w[k] > 0.0 and lam[k] > 0.0 and math.isfinite(lam[k])):
            return False
    return True


def poisson_mixture() -> EMModel:
    def prepare(X, K):
        return np.ascontiguousarray(X[:, 0], dtype=float), PoissonConfig(1e-8)

    def init(X, K, R, rng, how):
        """random_from_data: rates at K distinct-ish data points (+ 1/2), equal weights."""
        x = X[:, 0]
        rates = np.stack([x[rng.choice(len(x), K, replace=False)] + 0.5 for _ in range(R)])
        return np.full((R, K), 1.0 / K), rates

    def to_mixture(one, cfg):
        w, lam = one
        return MixtureParams(w, lam[:, None], lam.copy(), "spherical")  # Poisson: var = mean

    def intervals(one, se, z, cfg):
        w, lam = one
        K = len(w)
        w_se = np.append(se[: K - 1], np.nan)
        rate_se = se[K - 1 :]
        return {"weights": (w - z * w_se, w + z * w_se),
                "means": ((lam - z * rate_se)[:, None], (lam + z * rate_se)[:, None])}  # fmt: skip

    return EMModel(
        name="poisson_mixture",
        e_step=e_step,
        m_step=m_step,
        log_prior=log_prior,
        copy_params=copy_params,
        copy_stats=copy_stats,
        to_vector=to_vector,
        from_vector=from_vector,
        new_stats=lambda x, params, cfg: (np.zeros((len(params[0]), 2)),),
        new_work=lambda x, params, cfg, parallel: (np.zeros(1),),
        vector_size=lambda params, cfg: 2 * params[0].shape[-1] - 1,
        vector_units=lambda x, params, cfg: np.concatenate(
            [np.ones(len(params[0]) - 1), np.full(len(params[0]), max(x.std(), 1.0))]
        ),
        pass_work=lambda x, params, cfg: float(x.shape[0]) * params[0].shape[-1],
        degenerate_kinds=("empty",),
        prepare=prepare,
        init=init,
        to_mixture=to_mixture,
        n_free=lambda K, d: 2 * K - 1,
        intervals=intervals,
    )


def poisson_counts(rng: np.random.Generator, *, n: int = 500, rates: list[float] = (2.0, 9.0),
                   weights: list[float] | None = None) -> Dataset:  # fmt: skip
    """Counts from a Poisson mixture; the truth as a mixture of means (rates) and variances."""
    rates = np.asarray(rates, dtype=float)
    weights = np.full(len(rates), 1 / len(rates)) if weights is None else np.asarray(weights)
    labels = rng.choice(len(rates), size=n, p=weights)
    X = rng.poisson(rates[labels]).astype(float)[:, None]
    truth = MixtureParams(weights, rates[:, None], rates.copy(), "spherical")
    info = {"generator": "poisson_counts", "n": n, "rates": rates.tolist()}
    return Dataset(X=X, labels=labels, truth=truth, n_components_to_fit=len(rates), info=info)


def register_all(on: bool = True) -> None:
    """Register the model and its generator by name, the way a model family does (or remove
    them again, so that other tests see only the workbench's own)."""
    register("poisson_mixture", poisson_mixture if on else None)
    register_generator("poisson_counts", poisson_counts if on else None)

"""The model seam: what a latent-variable model supplies to get EM, and the registry of models.

A model is an :class:`EMModel`: the pieces of one EM iteration on ONE restart (numba-compiled
functions, or plain Python for a model written in numpy; the loop is compiled exactly when they
are), and a few Python helpers that allocate buffers and move restarts in and out of batches.
Everything else, restarts, statuses, traces, SQUAREM, the rate theory, standard errors, the
fitter, the runner, the store and the report, comes from :mod:`workbench.em.loop`,
:mod:`workbench.em.derivatives`, :mod:`workbench.em.model_fitter` (method ``em_model``) and the
stages after them. A family registers a factory (:func:`register`); its EMModel also carries
the fitter's pieces (``prepare``, ``init``, ``to_mixture``, ``n_free``, ``intervals``).
Records are tuples of arrays: ``params`` (the model's parameters), ``stats``
(the expected sufficient statistics an E-step leaves for the M-step), ``work`` (scratch) and
``cfg`` (the model's settings; any tuple, NamedTuple allowed).

Pieces (one restart; shapes are the model's own):

- ``e_step(X, params, cfg, stats, work) -> loglik``: fill ``stats`` with the expected
  sufficient statistics under ``params``; return the observed-data log-likelihood.
- ``m_step(stats, params, cfg, params_out) -> (kind, component)``: the new parameters into
  ``params_out``; kind 0, or k >= 1 when the new state is degenerate (``degenerate_kinds[k-1]``,
  at ``component``).
- ``log_prior(params, cfg) -> float``: log prior density for MAP-EM (0.0 for ML).
- ``copy_params(src, dst)``, ``copy_stats(src, dst)``.
- ``to_vector(params, cfg, out)`` and ``from_vector(vector, template, cfg, params_out) -> bool``:
  the free parameters as a flat vector of ``vector_size`` entries (False: outside the parameter
  space); SQUAREM extrapolates, the rate theory differentiates and the standard errors
  take second derivatives in this space.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import NamedTuple

import numpy as np


class EMModel(NamedTuple):
    """A latent-variable model as the EM loop sees it (see the module docstring)."""

    name: str
    e_step: Callable
    m_step: Callable
    log_prior: Callable
    copy_params: Callable
    copy_stats: Callable
    to_vector: Callable
    from_vector: Callable
    # Python helpers (never compiled)
    new_stats: Callable  # (X, params, cfg) -> stats buffers for one restart
    new_work: Callable  # (X, params, cfg, parallel) -> scratch for one restart
    vector_size: Callable  # (params, cfg) -> int
    vector_units: Callable  # (X, params, cfg) -> (vector_size,) the data's unit of each entry
    pass_work: Callable  # (X, params, cfg) -> float, cost of one data pass (picks the threading)
    degenerate_kinds: tuple[str, ...] = ()
    n_points: Callable = len  # (data) -> n, the points (the stopping rule is tol * n)
    e_step_parallel: Callable | None = None  # the E-step with its pass split over threads
    # The family's side, for the fitter (workbench.em.model_fitter); Python:
    prepare: Callable | None = None  # (X (n, d), K) -> (data for the loop, cfg)
    init: Callable | None = None  # (X, K, R, rng, how) -> params batched over R restarts
    to_mixture: Callable | None = None  # (params_one, cfg) -> workbench.params.MixtureParams
    n_free: Callable | None = None  # (K, d) -> number of free parameters (BIC)
    intervals: Callable | None = None  # (params_one, se (p,), z, cfg) -> {name: (lo, hi)}

    # batches: params records with a leading restart axis R
    def n_restarts(self, params: tuple) -> int:
        return int(params[0].shape[0])

    def take(self, params: tuple, r: int) -> tuple:
        return tuple(a[r] for a in params)

    def stack(self, records: list[tuple]) -> tuple:
        return tuple(np.stack(parts) for parts in zip(*records, strict=True))

    def copy_new(self, params: tuple) -> tuple:
        return tuple(np.array(a, dtype=float, copy=True) for a in params)


_REGISTRY: dict[str, Callable[..., EMModel]] = {}


def register(name: str, factory: Callable[..., EMModel] | None) -> None:
    """Make a model family available by name (``factory(**options) -> EMModel``); None
    removes the name."""
    if factory is None:
        _REGISTRY.pop(name, None)
    else:
        _REGISTRY[name] = factory


def registered() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def get_model(name: str, **options) -> EMModel:
    """The model ``name`` with its options (for the Gaussian mixture: covariance_type)."""
    if name not in _REGISTRY:
        raise ValueError(f"model={name!r}: expected one of {', '.join(registered())}")
    factory = _REGISTRY[name]
    try:
        inspect.signature(factory).bind(**options)
    except TypeError as err:  # an option the model does not take
        raise ValueError(f"model={name!r}: options={options!r}: {err}") from None
    return factory(**options)

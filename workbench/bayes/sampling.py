"""Compile once per model structure, sample many data sets.

The compiled model is cached at module level by ``(ModelSpec, sampler)``: K, d, constraints,
priors and identifiability. The data size n is *not* part of the key: nutpie's
``CompiledModel.with_data(x=...)`` swaps the ``pm.Data`` arrays (of any length) into the compiled
numba functions without recompiling (checked by
``test_cache_reuses_the_compiled_model_for_another_n`` in ``tests/bayes/test_fitter.py``).

- ``sampler="nutpie"``: ``nutpie.compile_pymc_model`` once (numba, seconds to tens of seconds),
  then ``with_data`` + ``nutpie.sample`` per data set.
- ``sampler="pymc"``: the ``pm.Model`` is built once and its data swapped with ``pm.set_data``,
  but ``pm.sample`` compiles its logp/gradient functions again on every call (pymc #7815), so
  its compile cost is inside ``sample_seconds``.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from workbench.bayes.missing import build_marginal_model
from workbench.bayes.models import ModelSpec, build_model
from workbench.settings.fitters import SAMPLERS

if TYPE_CHECKING:  # loaded only when sampling (fast `workbench --help` and `validate`)
    import arviz as az
    import pymc as pm


@dataclass
class CompiledMixture:
    """A cached model: the PyMC model, nutpie's compiled model (or None for ``pymc``)."""

    spec: ModelSpec
    sampler: str
    model: pm.Model
    compiled: Any
    compile_seconds: float
    var_names: tuple[str, ...] = ()  # the variables the trace keeps (default: the spec's free)

    def kept(self) -> list[str]:
        return list(self.var_names) or self.spec.free_names()


_CACHE: dict[tuple[ModelSpec, str], CompiledMixture] = {}
_LOCK = threading.Lock()


def model_of(spec: ModelSpec) -> pm.Model:
    """The PyMC model of ``spec`` (placeholder data): the marginalised model
    (:func:`workbench.bayes.missing.build_marginal_model`) for a spec with missingness patterns
    or diagonal covariances, else :func:`workbench.bayes.models.build_model`."""
    if spec.patterns is not None or spec.diagonal:
        return build_marginal_model(spec)
    return build_model(spec)


def get_compiled(spec: ModelSpec, sampler: str = "nutpie") -> tuple[CompiledMixture, bool]:
    """The cached compiled model for ``(spec, sampler)``, compiling it on first use.

    Returns (entry, was_cached).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler={sampler!r}: expected one of {', '.join(SAMPLERS)}")
    key = (spec, sampler)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key], True
        start = time.perf_counter()
        model = model_of(spec)
        entry = compile_model(spec, sampler, model)
        entry.compile_seconds = time.perf_counter() - start  # building the graph included
        _CACHE[key] = entry
        return entry, False


def compile_model(
    spec: ModelSpec, sampler: str, model: pm.Model, var_names: list[str] | None = None
) -> CompiledMixture:
    """Compile ``model`` for ``sampler`` (nutpie: now; pymc: at each ``pm.sample``), not cached.
    var_names: the variables the trace keeps (default ``spec.free_names()``)."""
    start = time.perf_counter()
    names = var_names or spec.free_names()
    compiled = None
    if sampler == "nutpie":
        import nutpie

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = nutpie.compile_pymc_model(model, var_names=names)
    elapsed = time.perf_counter() - start
    return CompiledMixture(spec, sampler, model, compiled, elapsed, tuple(var_names or ()))


def clear_cache(spec: ModelSpec | None = None, sampler: str = "nutpie") -> None:
    """Forget every compiled model, or only ``(spec, sampler)``'s (the next fit of a forgotten
    structure compiles again)."""
    with _LOCK:
        if spec is None:
            _CACHE.clear()
        else:
            _CACHE.pop((spec, sampler), None)


def cached_structures() -> list[tuple[ModelSpec, str]]:
    """Keys of the compiled models held now."""
    with _LOCK:
        return list(_CACHE)


def sample(
    entry: CompiledMixture,
    data: dict[str, np.ndarray],
    *,
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    target_accept: float = 0.9,
    max_treedepth: int = 10,
    seed: int = 0,
    cores: int | None = None,
) -> tuple[az.InferenceData, float]:
    """Sample the posterior of ``entry``'s model for one data set.

    data: the ``pm.Data`` arrays by name (see ``models.build_model``). Returns (InferenceData
    with ``posterior`` and ``sample_stats``, wall seconds). Same seed -> identical draws.
    """
    cores = min(chains, os.cpu_count() or 1) if cores is None else cores
    start = time.perf_counter()
    if entry.sampler == "nutpie":
        import nutpie

        compiled = entry.compiled.with_data(**data) if data else entry.compiled
        # chains run in parallel threads: one BLAS thread each, else OpenBLAS threads spin
        # against them (d > 1 models call LAPACK; measured 10-40x slower on 2 cores)
        with threadpool_limits(limits=1, user_api="blas"):
            idata = nutpie.sample(
                compiled,
                draws=draws,
                tune=tune,
                chains=chains,
                cores=cores,
                seed=seed,
                save_warmup=False,
                progress_bar=False,
                target_accept=target_accept,
                maxdepth=max_treedepth,
            )
    else:
        import pymc as pm

        with entry.model, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm.set_data(data)
            idata = pm.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                cores=cores,
                random_seed=seed,
                target_accept=target_accept,
                max_treedepth=max_treedepth,
                var_names=entry.kept(),
                progressbar=False,
                compute_convergence_checks=False,
                idata_kwargs={"log_likelihood": False},
            )
    return idata, time.perf_counter() - start

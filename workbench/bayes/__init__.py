"""The Bayesian side: PyMC mixture models sampled with NUTS (nutpie or PyMC).

``BayesFitter(**settings).fit(dataset, rng) -> FitResult`` (also ``build_fitter("bayes", ...)``).
Compiled models are cached per structure in :mod:`workbench.bayes.sampling`; diagnostics as
numbers, relabelling and mode classification are in :mod:`workbench.bayes.diagnostics`.
"""

from workbench.bayes.fitter import BayesFitter, save_netcdf
from workbench.bayes.models import ModelSpec, build_model
from workbench.bayes.sampling import cached_structures, clear_cache, get_compiled

__all__ = [
    "BayesFitter",
    "ModelSpec",
    "build_model",
    "cached_structures",
    "clear_cache",
    "get_compiled",
    "save_netcdf",
]

"""One fitter interface for EM and Bayes: ``fitter.fit(dataset, rng) -> FitResult``.

The runner builds fitters by name with :func:`build_fitter` and never asks which method it holds.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from workbench.data.dataset import Dataset
from workbench.params import MixtureParams
from workbench.settings.fitters import FITTERS


class RestartSummary(NamedTuple):
    """Every restart's outcome, in restart order. Arrays of shape (R,)."""

    loglik: np.ndarray
    status: np.ndarray  # str
    n_iter: np.ndarray
    best: int  # index of the restart returned as the fit
    traces: list[np.ndarray] | None = None  # per restart: objective per iteration
    polished: PolishedRestarts | None = None  # each restart continued to a tight tolerance


class PolishedRestarts(NamedTuple):
    """Every restart continued by EM to a tight tolerance before it is judged (arrays (R,)).

    status: ``converged`` (at the tight tolerance), ``max_iter`` (still moving: unresolved) or
    ``degenerate`` (degenerate in the run, or while polishing). params: the polished mixture per
    restart (None where degenerate). max_eigenvalue: largest real eigenvalue of the EM map's
    Jacobian at the polished fit, computed for restarts below the best known optimum (NaN
    elsewhere): above 1 the fixed point is a saddle EM slowly leaves, not a local maximum.
    """

    loglik: np.ndarray
    status: np.ndarray  # str
    n_iter: np.ndarray  # further iterations
    params: list[MixtureParams | None]
    max_eigenvalue: np.ndarray | None = None


class BestKnown(NamedTuple):
    """The best known optimum of a data set and model: log-likelihood (nats), the polished
    parameters, where it came from (``truth``, an init name of the reference bank, or
    ``restart <r>``) and the number of bank starts behind it."""

    loglik: float
    params: MixtureParams | None
    source: str
    n_starts: int


@dataclass(frozen=True, eq=False)
class FitResult:
    """What any fitter returns.

    params: the fitted mixture (EM: the estimate; Bayes: posterior means after relabelling), or
    None when nothing could be fitted. status: EM ``converged``/``max_iter``/``degenerate``;
    Bayes ``ok``/``not_converged``/``label_switching``/``multimodal``/``divergent`` (the list and
    the order of the checks: ``workbench.bayes.diagnostics``); ``error`` for either.
    loglik: total log-likelihood of the data at ``params`` (nats). wall_time: seconds of fitting
    (EM) or sampling and summaries (Bayes), compile excluded: the one-time compile or warm-up is
    ``diagnostics["compile_time"]`` (seconds; 0 or a cache look-up when already compiled).
    diagnostics: small dict of numbers (and short strings) specific to the method.
    trace: EM objective per iteration, (n_iter + 1,), or None.
    intervals: per parameter name ("weights", "means", "scales"), (lower, upper) arrays in the
    same component order as ``params``, or None.
    posterior: an ArviZ InferenceData for Bayes fits, else None.
    best_known: the optimum a failure verdict is measured against (EM with a reference), or None.
    imputed: for data with missing values, (n, d) the data with each missing value replaced by
    the method's point imputation (Bayes: its posterior predictive mean; mean imputation: the
    column mean; MICE: the mean over the imputed data sets), or None.
    """

    method: str
    status: str
    params: MixtureParams | None
    loglik: float
    n_iter: int
    wall_time: float
    diagnostics: dict[str, Any] = field(default_factory=dict)
    trace: np.ndarray | None = None
    restarts: RestartSummary | None = None
    intervals: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    posterior: Any = None
    best_known: BestKnown | None = None
    imputed: np.ndarray | None = None


class Fitter(Protocol):
    """Anything with ``fit(dataset, rng) -> FitResult``."""

    method: str

    def fit(self, dataset: Dataset, rng: np.random.Generator) -> FitResult: ...


def build_fitter(method: str, settings: dict[str, Any] | None = None) -> Fitter:
    """Construct the fitter registered under ``method`` (``FITTERS``, "module:factory", of
    :mod:`workbench.settings.fitters`; the factory is imported here, so that EM users never
    import PyMC) with keyword ``settings``."""
    if method not in FITTERS:
        raise ValueError(f"method={method!r}: expected one of {', '.join(sorted(FITTERS))}")
    return build_from_factory(FITTERS[method], settings)


def build_from_factory(factory: str, settings: dict[str, Any] | None = None) -> Fitter:
    """Construct a fitter from its factory, "module:callable" (imported here), with keyword
    ``settings``."""
    module_name, factory_name = factory.split(":")
    return getattr(importlib.import_module(module_name), factory_name)(**(settings or {}))

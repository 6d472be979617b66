"""The settings of the Gaussian EM fitter, declared and checked apart from the engine.

:class:`EMOptions` holds every setting of :class:`workbench.em.fitter.EMFitter` (which adds the
fitting to it) with its one-line errors, and imports nothing compiled: ``workbench validate``
checks configs against it in well under a second (``workbench.fitters.SETTINGS_SCHEMAS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.em.covariance import COVARIANCE_TYPES, DEFAULT

PRIOR_KEYS = ("shrinkage", "mean", "dof", "scale")
ACCELERATIONS = (None, "squarem")
# Start strategies of workbench.em.init (INITS is built in this order), plus the truth.
START_NAMES = ("random_params", "random_from_data", "spikes", "kmeans++", "kmeans", "small_em")
INIT_NAMES = (*START_NAMES, "truth")


def check_starts(starts: dict) -> None:
    """Raise ValueError unless ``starts`` maps known initialisation names to counts >= 0."""
    for name, count in starts.items():
        if name not in START_NAMES:
            raise ValueError(
                f"reference_starts={starts!r}: unknown init {name!r}; expected among "
                f"{', '.join(START_NAMES)}"
            )
        ok = isinstance(count, int | np.integer) and not isinstance(count, bool) and count >= 0
        if not ok:
            raise ValueError(f"reference_starts[{name!r}]={count!r}: must be an integer >= 0")


@dataclass(frozen=True)
class EMOptions:
    """The settings of maximum-likelihood (or MAP) EM for a Gaussian mixture, with R batched
    restarts (:class:`workbench.em.fitter.EMFitter` fits with them).

    n_components: K (default: the data set's ``n_components_to_fit``). init: a strategy name
    (see :mod:`workbench.em.init`, plus ``truth``) or a dict of starting ``weights``, ``means``,
    ``covariances`` (covariance-type shapes). fixed_weights / fixed_means / fixed_covariances:
    values held fixed in every iteration, or ``"truth"`` for the generating values.
    prior: None (maximum likelihood), ``"default"`` (Fraley & Raftery 2007 / mclust defaults), or
    a dict overriding some of shrinkage, mean, dof, scale. reference: find the best known optimum
    (``best_known`` of the result, ``reference_loglik`` of the diagnostics) with a bank of EM
    runs, from the truth and from ``reference_starts`` (init name -> number of starts; None: the
    default bank of :mod:`workbench.em.reference`), seeded from the data so that every cell on one
    data set shares it; every restart and the bank's best are then polished (EM to a tight
    tolerance) so that a verdict judges fixed points. The truth start needs a truth with the
    fitted K and d; without a reference no verdict is given (``failure_kind`` unjudged).
    acceleration: None (plain EM) or ``"squarem"`` (Varadhan & Roland 2008; ``n_iter`` then
    counts EM-map evaluations).
    interval_level: when given (e.g. 0.9), Wald intervals from the observed information for the
    free weights, means and scales (:mod:`workbench.em.uncertainty`).
    rate_diagnostics: add ``rate_measured`` (from the trace) and ``rate_theory`` (spectral radius
    of the EM map's Jacobian at the fit, :mod:`workbench.em.theory`) to the diagnostics.
    symmetric_means: K = 2 with mu_2 = -mu_1 (the over-specified model of Dwivedi et al. 2020;
    starting means are symmetrised as (mu_1 - mu_2) / 2).
    select_k: fit every K in the list and return the fit with the lowest BIC
    (-2 loglik + p log n) among those that are not ``degenerate`` (a fit on a spike or a
    spurious component is never chosen); diagnostics gain ``chosen_k``, ``bic_k<K>`` and
    ``status_k<K>`` per K, and ``select_k_all_degenerate`` (1 when every K's fit was degenerate:
    the lowest finite BIC among them is returned, with its ``degenerate`` status).
    """

    method: str = field(default="em", init=False)
    n_components: int | None = None
    covariance_type: str = DEFAULT
    init: str | dict = "kmeans++"
    n_restarts: int = 1
    tol: float = 1e-8
    max_iter: int = 1000
    reg_covar: float = 1e-6
    prior: str | dict | None = None
    fixed_weights: Any = None
    fixed_means: Any = None
    fixed_covariances: Any = None
    reference: bool = True
    reference_starts: dict[str, int] | None = None
    acceleration: str | None = None
    interval_level: float | None = None
    rate_diagnostics: bool = False
    symmetric_means: bool = False
    select_k: list[int] | None = None

    def __post_init__(self) -> None:
        _check(
            self.n_components is None or _is_int(self.n_components, 1),
            "n_components",
            self.n_components,
            "must be an integer >= 1",
        )
        _check(
            self.covariance_type in COVARIANCE_TYPES,
            "covariance_type",
            self.covariance_type,
            f"expected one of {', '.join(COVARIANCE_TYPES)}",
        )
        _check(
            isinstance(self.init, dict) or self.init in INIT_NAMES,
            "init",
            self.init,
            f"expected one of {', '.join(INIT_NAMES)} or a dict of parameters",
        )
        _check(
            _is_int(self.n_restarts, 1), "n_restarts", self.n_restarts, "must be an integer >= 1"
        )
        _check(_is_int(self.max_iter, 0), "max_iter", self.max_iter, "must be an integer >= 0")
        _check(_is_number(self.tol) and self.tol >= 0, "tol", self.tol, "must be >= 0")
        _check(
            _is_number(self.reg_covar) and self.reg_covar >= 0,
            "reg_covar",
            self.reg_covar,
            "must be >= 0",
        )
        _check(
            self.prior in (None, "default")
            or (isinstance(self.prior, dict) and set(self.prior) <= set(PRIOR_KEYS)),
            "prior",
            self.prior,
            f"expected none, 'default' or a dict with keys among {', '.join(PRIOR_KEYS)}",
        )
        _check(
            self.acceleration in ACCELERATIONS,
            "acceleration",
            self.acceleration,
            "expected none or 'squarem'",
        )
        if self.reference_starts is not None:
            _check(
                isinstance(self.reference_starts, dict),
                "reference_starts",
                self.reference_starts,
                "expected a table of init name -> number of starts",
            )
            check_starts(self.reference_starts)
        for name in ("fixed_weights", "fixed_means", "fixed_covariances"):
            value = getattr(self, name)
            is_truth = isinstance(value, str) and value == "truth"
            allowed = value is None or is_truth or isinstance(value, list | tuple | np.ndarray)
            _check(allowed, name, value, "expected a list of values or 'truth'")


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= minimum


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def _check(ok: bool, key: str, value, message: str) -> None:
    if not ok:
        raise ValueError(f"{key}={value!r}: {message}")

"""The settings of every fitter, declared once, and the registry of methods.

Each fitter class is built from (and is) its settings model: :class:`EMOptions` for
``workbench.em.fitter.EMFitter`` (method ``em``) and the missing-data baselines,
:class:`ModelEMOptions` for ``em_model``, :class:`BayesOptions` for ``bayes``. A model says what
the config checks before anything runs: ``min_components`` (the smallest K the method fits, and
why) and ``fits_missing`` (whether it takes data with missing values). :data:`FITTERS` maps a
method to the ``"module:factory"`` that builds it; a method registered there without a settings
model (a test's fake, say) takes its settings as written, checked when its cell builds it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from workbench.densities import COVARIANCE_TYPES
from workbench.settings.base import RULE, Settings, short
from workbench.settings.data import Count

PRIOR_KEYS = ("shrinkage", "mean", "dof", "scale")
SAMPLERS = ("nutpie", "pymc")
# Start strategies of workbench.em.init (INITS is built in this order), plus the truth.
START_NAMES = ("random_params", "random_from_data", "spikes", "kmeans++", "kmeans", "small_em")
INIT_NAMES = (*START_NAMES, "truth")
# Convergence thresholds of a Bayesian fit (Vehtari et al. 2021), the defaults of BayesOptions.
RHAT_MAX = 1.01
ESS_PER_CHAIN_MIN = 100.0
UNIT_INTERVAL = {RULE: "a number strictly between 0 and 1"}


class FitterSettings(Settings):
    """Base of a fitter's settings (module docstring)."""

    method: ClassVar[str] = ""
    min_components: ClassVar[tuple[int, str]] = (1, "")
    fits_missing: ClassVar[bool] = False

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.unknown = f"unknown setting for method {cls.method!r}"


# ---- EM ------------------------------------------------------------------------------------------
class EMOptions(FitterSettings):
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

    method: ClassVar[str] = "em"
    fits_missing: ClassVar[bool] = True

    n_components: Count | None = None
    covariance_type: Literal[COVARIANCE_TYPES] = "full"
    init: str | dict = "kmeans++"
    n_restarts: Count = 1
    tol: float = Field(1e-8, ge=0)
    max_iter: int = Field(1000, ge=0)
    reg_covar: float = Field(1e-6, ge=0)
    prior: str | dict | None = None
    fixed_weights: Any = None
    fixed_means: Any = None
    fixed_covariances: Any = None
    reference: bool = True
    reference_starts: dict[str, int] | None = None
    acceleration: Literal["squarem"] | None = None
    interval_level: float | None = Field(None, gt=0, lt=1, json_schema_extra=UNIT_INTERVAL)
    rate_diagnostics: bool = False
    symmetric_means: bool = False
    select_k: list[Count] | None = None

    @field_validator("init")
    @classmethod
    def _check_init(cls, value: str | dict) -> str | dict:
        if not isinstance(value, dict) and value not in INIT_NAMES:
            raise ValueError(
                f"init={short(value)}: expected one of {', '.join(INIT_NAMES)} or a dict of "
                "parameters"
            )
        return value

    @field_validator("prior")
    @classmethod
    def _check_prior(cls, value: str | dict | None) -> str | dict | None:
        known = value in (None, "default") or (
            isinstance(value, dict) and set(value) <= set(PRIOR_KEYS)
        )
        if not known:
            raise ValueError(
                f"prior={short(value)}: expected none, 'default' or a dict with keys among "
                f"{', '.join(PRIOR_KEYS)}"
            )
        return value

    @field_validator("fixed_weights", "fixed_means", "fixed_covariances")
    @classmethod
    def _check_fixed(cls, value: Any, info: Any) -> Any:
        truth = isinstance(value, str) and value == "truth"
        if not (value is None or truth or isinstance(value, list | tuple | np.ndarray)):
            raise ValueError(
                f"{info.field_name}={short(value)}: expected a list of values or 'truth'"
            )
        return value

    @field_validator("reference_starts")
    @classmethod
    def _check_reference_starts(cls, starts: dict[str, int] | None) -> dict[str, int] | None:
        for name, count in (starts or {}).items():
            if name not in START_NAMES:
                raise ValueError(
                    f"reference_starts={short(starts)}: unknown init {name!r}; expected among "
                    f"{', '.join(START_NAMES)}"
                )
            if count < 0:
                raise ValueError(f"reference_starts[{name!r}]={count!r}: must be an integer >= 0")
        return starts

    @model_validator(mode="after")
    def _check_symmetric_means(self) -> EMOptions:
        if self.symmetric_means:
            for K in [self.n_components, *(self.select_k or [])]:
                if K is not None and K != 2:
                    raise ValueError(f"symmetric_means=True: needs n_components=2, not {K}")
        return self


class ModelEMOptions(FitterSettings):
    """EM for a registered model (:mod:`workbench.em.model`; method ``em_model``): ``model``
    names it, ``options`` are the family's (e.g. covariance_type). init: the family's start
    strategy name. acceleration: None or ``"squarem"``. rate_diagnostics: add
    ``rate_measured`` (from the trace) and ``rate_theory`` (the EM map's Jacobian at the fit).
    interval_level: Wald intervals from the observed information. Whether ``model`` is
    registered, and takes ``options``, is checked when the fitter is built."""

    method: ClassVar[str] = "em_model"

    model: str = "gaussian"
    options: dict[str, Any] = Field(default_factory=dict)
    n_components: Count | None = None
    init: str = "random_from_data"
    n_restarts: Count = 1
    tol: float = Field(1e-8, ge=0)
    max_iter: int = Field(1000, ge=0)
    acceleration: Literal["squarem"] | None = None
    rate_diagnostics: bool = False
    interval_level: float | None = Field(None, gt=0, lt=1, json_schema_extra=UNIT_INTERVAL)


# ---- the missing-data baselines (workbench.baselines): EM's settings, and MICE's own -----------
class CompleteCaseOptions(EMOptions):
    method: ClassVar[str] = "complete_case"


class MeanImputeOptions(EMOptions):
    method: ClassVar[str] = "mean_impute"


class MiceOptions(EMOptions):
    """m: imputed data sets (>= 2). mice_max_iter: rounds of chained equations per imputation
    (IterativeImputer's ``max_iter``); every other setting is EM's."""

    method: ClassVar[str] = "mice"
    m: int = Field(5, ge=2)
    mice_max_iter: Count = 10

    @model_validator(mode="after")
    def _check_one_k(self) -> MiceOptions:
        if self.select_k:
            raise ValueError(
                f"select_k={short(self.select_k)}: not with mice (each imputed data set could "
                "choose another K, and fits of different K do not pool)"
            )
        return self


# ---- Bayes ---------------------------------------------------------------------------------------
class BayesOptions(FitterSettings):
    """The settings of the PyMC Gaussian mixture sampled with NUTS (nutpie or PyMC); their
    meaning: :class:`workbench.bayes.fitter.BayesFitter`."""

    method: ClassVar[str] = "bayes"
    min_components: ClassVar[tuple[int, str]] = (
        2,
        "the Bayesian mixture model needs at least 2 components",
    )
    fits_missing: ClassVar[bool] = True

    n_components: Count | None = None
    identifiability: Literal["ordered", "none"] = "ordered"
    sampler: Literal[SAMPLERS] = "nutpie"
    chains: Count = 4
    draws: Count = 1000
    tune: int = Field(1000, ge=0)
    target_accept: float = Field(0.9, gt=0, lt=1, json_schema_extra=UNIT_INTERVAL)
    max_treedepth: Count = 10
    cores: Count | None = None
    interval_level: float = Field(0.9, gt=0, lt=1, json_schema_extra=UNIT_INTERVAL)
    standardize: bool = True
    prior_weights_alpha: float = Field(1.0, gt=0)
    prior_mean_loc: float = 0.0
    prior_mean_scale: float = Field(2.0, gt=0)
    prior_scale_scale: float = Field(1.0, gt=0)
    prior_lkj_eta: float = Field(2.0, gt=0)
    # a list is one value (as EM's ``fixed_*``, typed Any, are not: they need {value = [...]})
    fixed_weights: str | list | tuple | np.ndarray | None = None
    fixed_covariances: str | list | tuple | np.ndarray | None = None
    mode_tolerance: float = Field(1.0, gt=0)
    divergence_tolerance: float = Field(0.0, ge=0, lt=1, json_schema_extra={RULE: "in [0, 1)"})
    rhat_max: float = Field(RHAT_MAX, ge=1)
    ess_per_chain_min: float = Field(ESS_PER_CHAIN_MIN, ge=0)
    keep_posterior: bool = True
    covariance_type: Literal["full", "diag"] = "full"
    missing: Literal["marginalise", "impute"] = "marginalise"
    missing_patterns: Literal["present", "all"] = "present"
    imputation_draws: Count = 200

    @field_validator("fixed_weights", "fixed_covariances")
    @classmethod
    def _check_fixed(cls, value: Any, info: Any) -> Any:
        key = info.field_name
        if value is None or (isinstance(value, str) and value == "truth"):
            return value
        if not isinstance(value, list | tuple | np.ndarray):
            raise ValueError(f"{key}={short(value)}: expected a list of values or 'truth'")
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{key}={short(value)}: must be numbers") from None
        if array.size == 0 or not np.all(np.isfinite(array)):
            raise ValueError(f"{key}={short(value)}: must be finite numbers")
        if key == "fixed_weights":
            if array.ndim != 1 or np.any(array <= 0) or abs(array.sum() - 1) > 1e-6:
                raise ValueError(f"{key}={short(value)}: must be positive and sum to 1")
        return value


# method -> "module:factory"; imported when a cell builds its fitter
# (workbench.fitter_interface), so that neither the config nor EM users import PyMC.
FITTERS: dict[str, str] = {
    "em": "workbench.em.fitter:EMFitter",
    "em_model": "workbench.em.model_fitter:ModelEMFitter",
    "bayes": "workbench.bayes.fitter:BayesFitter",
    "complete_case": "workbench.baselines:CompleteCaseEM",
    "mean_impute": "workbench.baselines:MeanImputeEM",
    "mice": "workbench.baselines:MiceEM",
}
FITTER_SETTINGS: dict[str, type[FitterSettings]] = {
    "em": EMOptions,
    "em_model": ModelEMOptions,
    "bayes": BayesOptions,
    "complete_case": CompleteCaseOptions,
    "mean_impute": MeanImputeOptions,
    "mice": MiceOptions,
}

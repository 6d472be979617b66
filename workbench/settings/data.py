"""The settings of every data generator, declared once (the generators build them; a config is
validated against them), and the ``missing`` table any data block may add.

A generator's settings model is registered by name in :data:`DATA_SETTINGS`
(:func:`workbench.data.registry.register_generator` adds one). Besides its fields, a model tells
the config what a data set of those settings looks like before any is drawn:
``points`` (n), ``dimension`` (d) and ``components_to_fit`` (the K a fitter uses by default),
each None when the settings do not say. ``magnitude`` bounds the size of the values the
settings give (means plus ten standard deviations): settings beyond what float64 carries
(:data:`MAX_ABS_DATA`) are refused before anything is drawn.
"""

from __future__ import annotations

import functools
import math
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, create_model, field_validator, model_validator

from workbench.settings.base import RULE, SettingError, Settings, is_real, short

# Largest |value| a data set may hold: squared distances and scatter sums of larger values
# overflow float64 (and k-means++ seeding then crashes the interpreter inside scipy).
MAX_ABS_DATA = 1e100
WEIGHT_SUM_TOL = 1e-8
COVARIANCE_MODES = ("identity", "spherical", "diag", "full")
PLACEMENTS = ("compact", "random_box")
MECHANISMS = ("mcar", "mar", "mnar")

Count = Annotated[int, Field(ge=1)]
Variances = list[float] | list[list[float]] | list[list[list[float]]] | None


def _rule(text: str, **bounds: Any) -> Any:
    return Field(json_schema_extra={RULE: text}, **bounds)


# ---- the missing table ---------------------------------------------------------------------------
class MissingSettings(Settings):
    """Values to remove after the data are drawn (:mod:`workbench.data.missing`)."""

    unknown: ClassVar[str] = "unknown key"
    table_hint: ClassVar[str] = "a table, e.g. { mechanism = 'mcar', fraction = 0.3 }"

    mechanism: Literal[MECHANISMS]
    fraction: float = _rule("a number in [0, 1)", ge=0, lt=1)
    strength: float = _rule("a finite number (logit per data sd)", default=2.0)


class DataSettings(Settings):
    """Base of a generator's settings (module docstring)."""

    generator: ClassVar[str] = ""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.unknown = f"unknown setting for generator {cls.generator!r}"

    @property
    def points(self) -> int | None:
        return getattr(self, "n", None)

    @property
    def dimension(self) -> int | None:
        return getattr(self, "d", None)

    @property
    def components_to_fit(self) -> int | None:
        return getattr(self, "K", None)

    def magnitude(self) -> float:
        """An upper estimate of |x| for data of these settings (0: unknown)."""
        return 0.0

    @model_validator(mode="after")
    def _check_carried_by_float64(self) -> DataSettings:
        scale = self.magnitude()
        if not scale <= MAX_ABS_DATA:
            numbers = {
                k: v
                for k, v in self.model_dump().items()
                if is_real(v) and k not in ("n", "d") and not k.startswith("K")
            }
            key = max(numbers, key=lambda k: abs(numbers[k]))
            raise ValueError(
                f"generator {self.generator!r}: {key}={short(numbers[key])}: the settings give "
                f"values of about {scale:.3g}, which overflows float64 arithmetic (|x| must "
                f"stay below {MAX_ABS_DATA:g}); rescale means and scales"
            )
        return self


class WithMissing(Settings):
    """What a data block adds to its generator's settings: ``missing``."""

    missing: MissingSettings | None = None

    @model_validator(mode="after")
    def _check_mar(self) -> WithMissing:
        d = getattr(self, "dimension", None)
        if self.missing is not None and d is not None:
            check_mar(self.missing, d)
        return self


def check_mar(missing: MissingSettings, d: int) -> None:
    """``mar`` keeps feature 0 observed, so it needs d >= 2 (checked where d is known: by the
    settings, else by the data)."""
    if missing.mechanism == "mar" and d < 2:
        raise ValueError(
            f"missing.mechanism='mar': needs d >= 2 (feature 0 stays observed), not d={d}"
        )


# ---- the Gaussian family -------------------------------------------------------------------------
class MixtureSettings(DataSettings):
    """What every mixture generator shares: weights, covariances and c-separated means
    (:mod:`workbench.data.gaussian`)."""

    n: Count = 500
    d: Count = 1
    separation: float = Field(3.0, ge=0)
    weights: str | list[float] = "equal"
    dirichlet_alpha: float = Field(1.0, gt=0)
    covariance: Literal[COVARIANCE_MODES] = "spherical"
    variances: Variances = None
    max_condition: float = Field(10.0, ge=1)
    min_variance: float = Field(0.5, gt=0)
    max_variance: float = 2.0

    @property
    def true_components(self) -> int:
        return self.K

    @field_validator("weights")
    @classmethod
    def _check_weight_names(cls, value: str | list[float]) -> str | list[float]:
        if isinstance(value, str) and value not in ("equal", "dirichlet"):
            raise ValueError(
                f"weights={value!r}: expected 'equal', 'dirichlet' or a list of K floats"
            )
        return value

    @model_validator(mode="after")
    def _check_consistent(self) -> MixtureSettings:
        K = self.true_components
        for key in [k for k in type(self).model_fields if k.startswith("K")]:
            if getattr(self, key) > self.n:
                raise SettingError(key, getattr(self, key), f"more components than points "
                                   f"(n = {self.n})")  # fmt: skip
        if self.max_variance < self.min_variance:
            raise SettingError(
                "max_variance", self.max_variance, f"must be >= min_variance = {self.min_variance}"
            )
        if not isinstance(self.weights, str):
            check_weights(self.weights, K)
        given_covariances(K, self.d, self.covariance, self.variances)
        return self

    def largest_variance(self) -> float:
        """The largest eigenvalue any component covariance may have (squared data units)."""
        covs = given_covariances(self.true_components, self.d, self.covariance, self.variances)
        if covs is not None:
            return float(np.max(np.linalg.eigvalsh(covs)))
        return 1.0 if self.covariance == "identity" else self.max_variance

    def magnitude(self) -> float:
        spread = self.separation * math.sqrt(self.d) * self.true_components + 10.0
        return math.sqrt(self.largest_variance()) * spread


def check_weights(weights: Any, K: int) -> np.ndarray:
    """K given weights (K,), positive and summing to 1 (within WEIGHT_SUM_TOL), or ValueError."""
    w = _float_array("weights", weights, (K,), f"{K} weights, one per component")
    if np.any(w <= 0.0):
        raise ValueError(f"weights={short(weights)}: must all be positive")
    if abs(w.sum() - 1.0) > WEIGHT_SUM_TOL:
        raise ValueError(f"weights={short(weights)}: must sum to 1 (sum is {w.sum():.10g})")
    return w / w.sum()


def given_covariances(K: int, d: int, covariance: str, variances: Any) -> np.ndarray | None:
    """Covariances (K, d, d) from given ``variances`` (K variances for spherical, K lists of d
    for diag, K d x d matrices for full), checked; None when none are given."""
    if covariance == "identity":
        if variances is not None:
            raise ValueError(
                f"variances={short(variances)}: must be None when covariance='identity'"
            )
        return None
    if variances is None:
        return None
    if covariance == "spherical":
        v = _float_array("variances", variances, (K,), f"{K} variances (spherical)")
        covs = v[:, None, None] * np.eye(d)
    elif covariance == "diag":
        v = _float_array("variances", variances, (K, d), f"{K} lists of {d} variances (diag)")
        covs = v[:, :, None] * np.eye(d)
    else:
        covs = _float_array("variances", variances, (K, d, d), f"{K} {d}x{d} matrices (full)")
        asym = np.max(np.abs(covs - np.swapaxes(covs, -1, -2)), initial=0.0)
        if asym > 1e-10 * np.max(np.abs(covs)):
            raise ValueError(f"variances={short(variances)}: covariance matrices must be symmetric")
        covs = 0.5 * (covs + np.swapaxes(covs, -1, -2))
    if np.any(np.linalg.eigvalsh(covs) <= 0.0):
        raise ValueError(f"variances={short(variances)}: must be positive (definite)")
    return covs


def _float_array(name: str, value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={short(value)}: expected {what}") from None
    if array.shape != shape or not np.all(np.isfinite(array)):
        raise ValueError(f"{name}={short(value)}: expected {what} (finite numbers), shape {shape}")
    return array


class GaussianMixtureSettings(MixtureSettings):
    """``gaussian_mixture``: placement ``compact`` or ``random_box`` (Jin et al.'s spread-out
    centres)."""

    generator: ClassVar[str] = "gaussian_mixture"
    K: Count = 2
    placement: Literal[PLACEMENTS] = "compact"


class StudentTSettings(MixtureSettings):
    """``student_t``: multivariate Student-t components with ``df`` > 0."""

    generator: ClassVar[str] = "student_t"
    K: Count = 2
    df: float = Field(3.0, gt=0)


class SkewNormalSettings(MixtureSettings):
    """``skew_normal``: skew-normal coordinates of shape ``skew_alpha`` (any real)."""

    generator: ClassVar[str] = "skew_normal"
    K: Count = 2
    skew_alpha: float = 4.0


class UniformSettings(MixtureSettings):
    """``uniform``: uniform components on boxes."""

    generator: ClassVar[str] = "uniform"
    K: Count = 2


class WrongKSettings(MixtureSettings):
    """``wrong_k``: K_true Gaussian components, fitted with K_fit."""

    generator: ClassVar[str] = "wrong_k"
    K_true: Count = 3
    K_fit: Count = 2

    @property
    def true_components(self) -> int:
        return self.K_true

    @property
    def components_to_fit(self) -> int:
        return self.K_fit


class FoundingSettings(DataSettings):
    """``founding``: the founding document's red and green points on a line."""

    generator: ClassVar[str] = "founding"
    n: int = Field(9, ge=2)
    mu1: float = -2.0
    sigma1: float = Field(1.0, gt=0)
    mu2: float = 2.0
    sigma2: float = Field(1.0, gt=0)
    weight1: float = _rule("a number strictly between 0 and 1", default=0.5, gt=0, lt=1)

    @property
    def dimension(self) -> int:
        return 1

    @property
    def components_to_fit(self) -> int:
        return 2

    def magnitude(self) -> float:
        return max(abs(self.mu1), abs(self.mu2)) + 10.0 * max(self.sigma1, self.sigma2)


DATA_SETTINGS: dict[str, type[DataSettings]] = {
    "gaussian_mixture": GaussianMixtureSettings,
    "founding": FoundingSettings,
    "student_t": StudentTSettings,
    "skew_normal": SkewNormalSettings,
    "uniform": UniformSettings,
    "wrong_k": WrongKSettings,
}


@functools.cache
def _block(model: type[DataSettings]) -> type[DataSettings]:
    return create_model(f"{model.__name__}Block", __base__=(model, WithMissing))


def block_model(generator: str) -> type[DataSettings]:
    """What a data block of ``generator`` may set: its settings and ``missing``."""
    return _block(DATA_SETTINGS[generator])


def settings_from_signature(name: str, parameters: dict[str, Any]) -> type[DataSettings]:
    """A settings model for a generator registered without one: its keyword-only parameters
    (``inspect.Parameter``, annotations evaluated) as fields with their defaults."""
    base = type(
        f"{name}_base",
        (DataSettings,),
        {"generator": name},
    )
    fields = {k: (p.annotation, p.default) for k, p in parameters.items()}
    return create_model(f"{name}_settings", __base__=base, **fields)

"""Generators by name, so experiment configs can name them; their settings are declared in
:mod:`workbench.settings.data` (``DATA_SETTINGS``, the same names)."""

import inspect
from collections.abc import Callable
from typing import Any, Literal, get_origin

import numpy as np

from workbench.data.dataset import Dataset, check_carried
from workbench.data.founding import founding_example
from workbench.data.gaussian import gaussian_mixture
from workbench.data.missing import apply_missing
from workbench.data.misspecified import (
    skew_normal_mixture,
    student_t_mixture,
    uniform_mixture,
    wrong_k_mixture,
)
from workbench.settings.base import build
from workbench.settings.data import (
    DATA_SETTINGS,
    DataSettings,
    block_model,
    settings_from_signature,
)

GENERATORS: dict[str, Callable[..., Dataset]] = {
    "gaussian_mixture": gaussian_mixture,
    "founding": founding_example,
    "student_t": student_t_mixture,
    "skew_normal": skew_normal_mixture,
    "uniform": uniform_mixture,
    "wrong_k": wrong_k_mixture,
}
assert set(GENERATORS) == set(DATA_SETTINGS)


def register_generator(
    name: str,
    generator: Callable[..., Dataset] | None,
    settings: type[DataSettings] | None = None,
) -> None:
    """Make a data generator available to experiment configs by name, with its settings model
    (default: one made from the generator's keyword-only arguments); None removes the name."""
    if generator is None:
        GENERATORS.pop(name, None)
        DATA_SETTINGS.pop(name, None)
        return
    if settings is None:
        params = inspect.signature(generator, eval_str=True).parameters
        keywords = {k: p for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        settings = settings_from_signature(name, keywords)
    GENERATORS[name] = generator
    DATA_SETTINGS[name] = settings


def _generator(name: str) -> Callable[..., Dataset]:
    if not isinstance(name, str) or name not in GENERATORS:
        raise ValueError(f"generator={name!r}: unknown; expected one of {', '.join(GENERATORS)}")
    return GENERATORS[name]


def generator_settings(name: str) -> dict[str, inspect.Parameter]:
    """The settings of generator ``name``, in order, as keyword-only parameters with their
    type annotations (a choice among names as ``str``) and defaults."""
    _generator(name)
    return {
        key: inspect.Parameter(
            key,
            inspect.Parameter.KEYWORD_ONLY,
            default=field.get_default(call_default_factory=True),
            annotation=str if get_origin(field.annotation) is Literal else field.annotation,
        )
        for key, field in DATA_SETTINGS[name].model_fields.items()
    }


def generate(name: str, rng: np.random.Generator, **settings: Any) -> Dataset:
    """Run generator ``name`` with ``settings``; unknown names, bad settings (one-line errors of
    :mod:`workbench.settings.data`) and data float64 cannot carry (overflow, |x| >=
    MAX_ABS_DATA) raise ValueError.

    ``missing`` (a table, or None) removes values after the generator has drawn the data, with
    the same rng (:mod:`workbench.data.missing`); absent or None, nothing more is drawn."""
    generator = _generator(name)
    checked = build(block_model(name), settings)
    settings = {k: v for k, v in settings.items() if k != "missing"}
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng={rng!r}: must be a numpy.random.Generator")
    what = f"generator {name!r}" + _largest_setting(settings)
    try:
        with np.errstate(over="raise"):
            dataset = generator(rng, **settings)
    except (OverflowError, FloatingPointError) as err:
        why = err.args[-1] if err.args else type(err).__name__
        raise ValueError(f"{what}: the settings overflow float64 ({why})") from None
    check_carried(dataset.X, dataset.truth, what)
    if checked.missing is not None:
        dataset = apply_missing(dataset, rng, checked.missing)
    return dataset


def _largest_setting(settings: dict[str, Any]) -> str:
    """`` (largest setting: key=value)`` naming the numeric setting of largest magnitude."""
    numbers = {
        k: v
        for k, v in settings.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k not in ("n", "K", "d")
    }
    if not numbers:
        return ""
    key = max(numbers, key=lambda k: abs(numbers[k]))
    return f" (largest setting: {key}={numbers[key]!r})"

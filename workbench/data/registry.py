"""Generators by name, so experiment configs can name them, and settings validation."""

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from workbench.data.dataset import Dataset, check_carried
from workbench.data.founding import founding_example
from workbench.data.gaussian import gaussian_mixture
from workbench.data.missing import apply_missing, check_missing
from workbench.data.misspecified import (
    skew_normal_mixture,
    student_t_mixture,
    uniform_mixture,
    wrong_k_mixture,
)

GENERATORS: dict[str, Callable[..., Dataset]] = {
    "gaussian_mixture": gaussian_mixture,
    "founding": founding_example,
    "student_t": student_t_mixture,
    "skew_normal": skew_normal_mixture,
    "uniform": uniform_mixture,
    "wrong_k": wrong_k_mixture,
}


def register_generator(name: str, generator: Callable[..., Dataset] | None) -> None:
    """Make a data generator available to experiment configs by name (its keyword-only
    arguments are its settings); None removes the name."""
    if generator is None:
        GENERATORS.pop(name, None)
    else:
        GENERATORS[name] = generator


def _generator(name: str) -> Callable[..., Dataset]:
    if not isinstance(name, str) or name not in GENERATORS:
        raise ValueError(f"generator={name!r}: unknown; expected one of {', '.join(GENERATORS)}")
    return GENERATORS[name]


def generator_settings(name: str) -> dict[str, inspect.Parameter]:
    """The keyword settings of generator ``name``, in order, with evaluated type annotations
    and defaults (everything after ``rng``)."""
    params = inspect.signature(_generator(name), eval_str=True).parameters
    return {k: p for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


# The setting every generator takes besides its own: values to remove (workbench.data.missing).
MISSING_SETTING = inspect.Parameter(
    "missing", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=dict | None
)


def data_settings(name: str) -> dict[str, inspect.Parameter]:
    """What a data block may set for generator ``name``: its own settings and ``missing``."""
    return {**generator_settings(name), "missing": MISSING_SETTING}


def generate(name: str, rng: np.random.Generator, **settings: Any) -> Dataset:
    """Run generator ``name`` with ``settings``; unknown names or setting keys, and settings
    whose data float64 cannot carry (overflow, |x| >= MAX_ABS_DATA), raise ValueError.

    ``missing`` (a table, or None) removes values after the generator has drawn the data, with
    the same rng (:mod:`workbench.data.missing`); absent or None, nothing more is drawn."""
    missing = settings.pop("missing", None)
    if missing is not None:
        check_missing(missing)
    known = generator_settings(name)
    for key, value in settings.items():
        if key not in known:
            text = repr(value)
            text = text if len(text) <= 60 else text[:57] + "..."
            raise ValueError(
                f"{key}={text}: unknown setting for generator {name!r}; "
                f"expected one of {', '.join(data_settings(name))}"
            )
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng={rng!r}: must be a numpy.random.Generator")
    what = f"generator {name!r}" + _largest_setting(settings)
    try:
        with np.errstate(over="raise"):
            dataset = _generator(name)(rng, **settings)
    except (OverflowError, FloatingPointError) as err:
        why = err.args[-1] if err.args else type(err).__name__
        raise ValueError(f"{what}: the settings overflow float64 ({why})") from None
    check_carried(dataset.X, dataset.truth, what)
    if missing is not None:
        dataset = apply_missing(dataset, rng, missing)
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

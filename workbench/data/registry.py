"""Generators by name, so experiment configs can name them, and settings validation."""

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from workbench.data.dataset import Dataset
from workbench.data.founding import founding_example
from workbench.data.gaussian import gaussian_mixture
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


def _generator(name: str) -> Callable[..., Dataset]:
    if not isinstance(name, str) or name not in GENERATORS:
        raise ValueError(f"generator={name!r}: unknown; expected one of {', '.join(GENERATORS)}")
    return GENERATORS[name]


def generator_settings(name: str) -> dict[str, inspect.Parameter]:
    """The keyword settings of generator ``name``, in order, with evaluated type annotations
    and defaults (everything after ``rng``)."""
    params = inspect.signature(_generator(name), eval_str=True).parameters
    return {k: p for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def generate(name: str, rng: np.random.Generator, **settings: Any) -> Dataset:
    """Run generator ``name`` with ``settings``; unknown names or setting keys raise ValueError."""
    known = generator_settings(name)
    for key, value in settings.items():
        if key not in known:
            text = repr(value)
            text = text if len(text) <= 60 else text[:57] + "..."
            raise ValueError(
                f"{key}={text}: unknown setting for generator {name!r}; "
                f"expected one of {', '.join(known)}"
            )
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng={rng!r}: must be a numpy.random.Generator")
    return _generator(name)(rng, **settings)

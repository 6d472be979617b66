"""Synthetic data sets with known truth.

Every generator is a function ``generator(rng, **settings) -> Dataset`` and is deterministic given
the ``numpy.random.Generator`` it receives. Generators are registered by name in ``GENERATORS`` so
that experiment configs can name them; their settings are declared in
:mod:`workbench.settings.data`.
"""

from workbench.data.dataset import Dataset
from workbench.data.registry import GENERATORS, generate, generator_settings

__all__ = ["Dataset", "GENERATORS", "generate", "generator_settings"]

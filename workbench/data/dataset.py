"""The Dataset record shared by every generator and every fitter."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench.params import MixtureParams


@dataclass(frozen=True, eq=False)
class Dataset:
    """A synthetic data set and the truth that generated it.

    X: (n, d) data. labels: (n,) true component of each point. truth: the generating mixture, or
    for non-Gaussian components its Gaussian summary (component means, covariances and weights;
    see ``info['family']`` and the generator's docstring). n_components_to_fit: the K a fitter
    should use unless told otherwise (differs from ``truth.n_components`` for wrong-K data).
    info: the generator's name and settings, plain JSON-able values.
    """

    X: np.ndarray
    labels: np.ndarray
    truth: MixtureParams
    n_components_to_fit: int
    info: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

"""The Dataset record shared by every generator and every fitter."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench.params import MixtureParams
from workbench.settings.data import MAX_ABS_DATA


def check_carried(X: np.ndarray, truth: MixtureParams, what: str) -> None:
    """ValueError (one line) unless the data and the truth's means and covariances are finite
    and the data stay below MAX_ABS_DATA in magnitude."""
    for name, values in (
        ("data", X),
        ("means", truth.means),
        ("covariances", truth.covariances),
    ):
        values = np.asarray(values, dtype=float)
        if values.size and not np.all(np.isfinite(values)):
            raise ValueError(f"{what}: the settings overflow float64 (non-finite {name})")
    largest = float(np.max(np.abs(X))) if X.size else 0.0
    if largest > MAX_ABS_DATA:
        raise ValueError(
            f"{what}: the settings give data values as large as {largest:.3g}, beyond what "
            f"float64 arithmetic can carry (|x| < {MAX_ABS_DATA:g}); rescale means and scales"
        )


@dataclass(frozen=True, eq=False)
class Dataset:
    """A synthetic data set and the truth that generated it.

    X: (n, d) data. labels: (n,) true component of each point. truth: the generating mixture, or
    for non-Gaussian components its Gaussian summary (component means, covariances and weights;
    see ``info['family']`` and the generator's docstring). n_components_to_fit: the K a fitter
    should use unless told otherwise (differs from ``truth.n_components`` for wrong-K data).
    info: the generator's name and settings, plain JSON-able values.

    Only when the data block asks for missing values (``missing = {...}``; see
    :mod:`workbench.data.missing`): X holds NaN where a value is missing, mask is bool (n, d)
    (True = missing), X_complete (n, d) the true values (for evaluation; never for fitting), and
    n_rows_excluded counts the rows dropped because every coordinate was missing. Otherwise
    mask and X_complete are None and X has no NaN.
    """

    X: np.ndarray
    labels: np.ndarray
    truth: MixtureParams
    n_components_to_fit: int
    info: dict = field(default_factory=dict)
    mask: np.ndarray | None = None
    X_complete: np.ndarray | None = None
    n_rows_excluded: int = 0

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

    @property
    def has_missing(self) -> bool:
        """Whether any value of X is missing (NaN)."""
        return self.mask is not None and bool(self.mask.any())

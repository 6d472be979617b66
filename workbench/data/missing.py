"""Missing values on any generator's data: MCAR, MAR and MNAR masks.

A data block's ``missing = { mechanism = "mar", fraction = 0.3, strength = 2.0 }`` is applied by
``registry.generate`` after the generator has drawn the complete data, with the same rng (so a
block without ``missing`` draws nothing more and its data are unchanged, bit for bit). One
uniform (n, d) matrix ``U`` is drawn; coordinate (i, j) is missing when ``U[i, j] < p[i, j]``:

- ``mcar``: ``p[i, j] = fraction`` (every coordinate, independently).
- ``mar``: feature 0 is always observed; for j >= 1, ``p[i, j] = sigmoid(a + strength * z_i0)``
  with ``z_i0`` feature 0 standardised (sample mean and sd), so rows with large x_0 lose more
  values (strength < 0: fewer). ``a`` solves ``mean_i p[i, j] = fraction``: the expected missing
  fraction of features 1..d-1 is ``fraction`` exactly, given the data.
- ``mnar``: ``p[i, j] = sigmoid(a_j + strength * z_ij)``, z_ij feature j's own value
  standardised; each ``a_j`` solves ``mean_i p[i, j] = fraction``. Large values go missing more
  often: missingness depends on what is not seen (a deliberate misspecification for any method
  that assumes MAR).

``strength`` (logit change per data standard deviation, default 2) is not used by ``mcar``.
The table's keys and values are checked by :class:`workbench.settings.data.MissingSettings`.
Rows with every coordinate missing are removed (their number is ``Dataset.n_rows_excluded``;
an MAR mask never makes one). The Dataset then carries ``X`` with NaN where missing, ``mask``
(bool (n, d), True = missing) and ``X_complete`` (the true values, for evaluation only).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

from workbench.data.dataset import Dataset
from workbench.settings.data import MissingSettings, check_mar


def calibrated_probabilities(score: np.ndarray, fraction: float, strength: float) -> np.ndarray:
    """``sigmoid(a + strength * score)`` with ``a`` chosen so that the mean is ``fraction``.

    score: (n,) standardised values. Returns (n,) probabilities (all 0 when fraction is 0).
    """
    if fraction == 0:
        return np.zeros_like(score)
    slope = strength * score

    def excess(a: float) -> float:
        return float(np.mean(expit(a + slope))) - fraction

    span = 50.0 + float(np.max(np.abs(slope), initial=0.0))  # mean(expit) spans (0, 1) here
    a = brentq(excess, -span, span, xtol=1e-12, rtol=1e-15)
    return expit(a + slope)


def _standardised(x: np.ndarray) -> np.ndarray:
    """(n,) values in units of their sample sd about their mean (0 for a constant column)."""
    sd = float(np.std(x))
    return (x - np.mean(x)) / sd if sd > 0 else np.zeros_like(x)


def missing_probabilities(X: np.ndarray, mechanism: str, fraction: float, strength: float):
    """(n, d) probability that each coordinate of complete data ``X`` is missing."""
    n, d = X.shape
    if mechanism == "mcar":
        return np.full((n, d), fraction)
    p = np.zeros((n, d))
    if mechanism == "mar":
        p[:, 1:] = calibrated_probabilities(_standardised(X[:, 0]), fraction, strength)[:, None]
        return p
    for j in range(d):
        p[:, j] = calibrated_probabilities(_standardised(X[:, j]), fraction, strength)
    return p


def draw_mask(
    X: np.ndarray, rng: np.random.Generator, mechanism: str, fraction: float, strength: float
) -> np.ndarray:
    """Bool (n, d) mask, True = missing, from one uniform (n, d) draw of ``rng``."""
    u = rng.random(X.shape)
    return u < missing_probabilities(X, mechanism, fraction, strength)


def apply_missing(dataset: Dataset, rng: np.random.Generator, missing: MissingSettings) -> Dataset:
    """``dataset`` with values removed as ``missing`` (checked settings) says (module docstring).

    Rows with every coordinate missing are excluded (X, labels, mask, X_complete lose them);
    the returned Dataset has X with NaN where missing, ``mask``, ``X_complete`` and
    ``n_rows_excluded``; ``info["missing"]`` records the settings, ``rows_excluded``,
    ``fraction_drawn`` (missing coordinates among all drawn, before exclusion) and
    ``fraction_achieved`` (among the rows kept).
    """
    check_mar(missing, dataset.d)
    settings = missing.model_dump()
    complete = np.asarray(dataset.X, dtype=float)
    drawn = draw_mask(complete, rng, **settings)
    keep = ~drawn.all(axis=1)
    mask, complete = drawn[keep], complete[keep]
    X = np.where(mask, np.nan, complete)
    excluded = int(np.sum(~keep))
    info = dict(dataset.info)
    info["missing"] = {
        **settings,
        "rows_excluded": excluded,
        "fraction_drawn": float(np.mean(drawn)),
        "fraction_achieved": float(mask.mean()) if mask.size else 0.0,
    }
    return dataclasses.replace(
        dataset,
        X=X,
        labels=np.asarray(dataset.labels)[keep],
        info=info,
        mask=mask,
        X_complete=complete,
        n_rows_excluded=excluded,
    )

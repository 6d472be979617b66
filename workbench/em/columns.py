"""Column summaries of data X (n, d) and the loop's transposed, centred copy, compiled.

Both read X along its rows, as it lies in memory: a row's d values update d running sums side
by side (vectorised across the columns, no reassociation). numpy reduces the strided columns
of an (n, d) array, or transposes it, 2-4x slower (at n = 1e5, d = 32: a transposed copy 4.8
ms, its centring 1.3 ms, mean and variance 4.6 ms; here the summaries take 2.4 ms and the
centred copy 2.7 ms). Sums run in row order: the same numbers whatever the threads.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from workbench.em.specialise import kernel


class ColumnStats(NamedTuple):
    """Per-column summaries of complete data (n, d): mean, variance (maximum likelihood),
    smallest and largest value, each (d,). A NaN or inf in a column makes its mean and
    variance non-finite."""

    mean: np.ndarray
    var: np.ndarray
    low: np.ndarray
    high: np.ndarray


@kernel
def _column_means(X) -> np.ndarray:
    n, d = X.shape
    total = np.zeros(d)
    for i in range(n):
        for j in range(d):
            total[j] += X[i, j]
    return total / n


@kernel
def _column_summaries(X):
    """(mean, variance, low, high), each (d,): the mean in a first pass, then the squared
    deviations from it (two passes: no cancellation) and the extremes."""
    n, d = X.shape
    mean = _column_means(X)
    squares = np.zeros(d)
    low = X[0].copy()
    high = X[0].copy()
    for i in range(n):
        for j in range(d):
            x = X[i, j]
            dev = x - mean[j]
            squares[j] += dev * dev
            low[j] = min(low[j], x)
            high[j] = max(high[j], x)
    return mean, squares / n, low, high


@kernel
def _centred_transpose(X, shift, XT) -> None:
    n, d = X.shape
    for i in range(n):
        for j in range(d):
            XT[j, i] = X[i, j] - shift[j]


def _rows(X: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(X, dtype=float)


def column_stats(X: np.ndarray) -> ColumnStats:
    """The :class:`ColumnStats` of X (n, d), n >= 1."""
    if len(X) == 0:
        raise ValueError(f"data: shape {np.shape(X)} holds no values")
    return ColumnStats(*_column_summaries(_rows(X)))


def column_means(X: np.ndarray) -> np.ndarray:
    """(d,) the mean of each column of X (n, d), summed in row order as :func:`column_stats`."""
    return _column_means(_rows(X))


def centred_transpose(X: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """(d, n) a new array: X (n, d) minus ``shift`` (d,), a point per column (X untouched).
    numpy allocates it: for large arrays it asks the kernel for huge pages, and first touching
    4 KiB pages cost 3x the copy itself at n = 1e5, d = 64."""
    X = _rows(X)
    XT = np.empty(X.shape[::-1])
    _centred_transpose(X, np.ascontiguousarray(shift, dtype=float), XT)
    return XT

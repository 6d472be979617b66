"""Shared by the EM benchmarks: timing a scikit-learn fit, and the header every script prints."""

from __future__ import annotations

import os
import time
import warnings

from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits


def timed_sklearn_fit(model, X, threads: int | None):
    """(seconds, model) of ``model.fit(X)`` with BLAS/OpenMP pools limited to ``threads``
    (None: their default) and sklearn's ConvergenceWarning (expected with tol = 0) silenced."""
    with warnings.catch_warnings(), threadpool_limits(limits=threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        model.fit(X)
        return time.perf_counter() - t0, model


def print_header(doc: str) -> None:
    """The script docstring's first paragraph, numba's thread count and the load average."""
    import numba

    print(doc.split("\n\n")[0])
    print(
        f"numba threads: {numba.get_num_threads()}, load average before: {os.getloadavg()[0]:.2f}"
    )

"""Workbench EM vs scikit-learn GaussianMixture: time per iteration, same start, same iterations.

Setup (issue 2): full covariance, exactly 100 EM iterations from the same starting parameters, at
(n=500, d=1, K=2), (n=1e4, d=2, K=5) and (n=1e5, d=10, K=5). Data: a Gaussian mixture with
overlapping components (separation 1.5), so that EM is still moving after 100 iterations.
Start: K distinct random data points as means, the data covariance for every component, equal
weights; sklearn gets them as ``weights_init``, ``means_init`` and ``precisions_init``.

- Workbench: ``EMFitter(init=<start>, max_iter=100, tol=0, reg_covar=0, reference=False)``
  with the default engine ("auto": the fused numba loop), timed around ``fit_array``.
- sklearn: ``GaussianMixture(max_iter=100, tol=0, n_init=1, reg_covar=0,
  init_params="random_from_data", <start>)``, timed around ``fit``. With tol=0 it never stops
  early. Its ``_initialize`` still makes one M-step from the (cheapest) init_params before the
  given parameters override it, and ``fit`` ends with one extra E-step: about 1% of its time.
- ``reg_covar=0`` on both sides: sklearn adds reg_covar to every variance, the workbench uses it
  as an eigenvalue floor, so only without it do both run the same EM and reach the same
  log-likelihood (printed: the difference of the total log-likelihoods of the final parameters).

Timings are the best of a few repeats, the fitters alternating, after warming up numba's
compilation (cached on disk). ms/iteration = fit time / 100. Threads: the workbench splits each
data pass over every core (numba's thread count) when a pass is large enough to gain from it
(here n=1e5), else it runs on one core. sklearn is timed twice, with its BLAS/OpenMP thread
pools at their default (every core) and limited to one thread (threadpoolctl), and the faster of
the two is the baseline: on a machine shared with other jobs, the default thread pools spin and
can make sklearn several times slower, which would flatter the workbench. The machine's load
average is printed.

Run: ``python benchmarks/em_vs_sklearn.py``. Last line: ``min speedup vs sklearn: <x>x``.
"""

from __future__ import annotations

import os
import time

import numpy as np
from sklearn.mixture import GaussianMixture
from timing import print_header, timed_sklearn_fit

from workbench.data import generate
from workbench.em import EMFitter
from workbench.em.init import data_covariance

SIZES = ((500, 1, 2), (10_000, 2, 5), (100_000, 10, 5))
ITERATIONS = 100
REPEATS = {500: 7, 10_000: 5, 100_000: 2}


def start(X: np.ndarray, K: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Means at K distinct data points, the data covariance, equal weights."""
    n, d = X.shape
    cov = data_covariance(X)
    return {
        "weights": np.full(K, 1.0 / K),
        "means": X[rng.choice(n, size=K, replace=False)],
        "covariances": np.broadcast_to(cov, (K, d, d)).copy(),
    }


def ours(X: np.ndarray, init: dict, max_iter: int = ITERATIONS):
    fitter = EMFitter(
        n_components=len(init["weights"]), covariance_type="full", init=init,
        max_iter=max_iter, tol=0.0, reg_covar=0.0, reference=False,
    )  # fmt: skip
    t0 = time.perf_counter()
    result = fitter.fit_array(X, np.random.default_rng(0))
    return time.perf_counter() - t0, result


def theirs(X: np.ndarray, init: dict, threads: int | None):
    model = GaussianMixture(
        n_components=len(init["weights"]), covariance_type="full", tol=0.0,
        max_iter=ITERATIONS, n_init=1, reg_covar=0.0, init_params="random_from_data",
        weights_init=init["weights"], means_init=init["means"],
        precisions_init=np.linalg.inv(init["covariances"]), random_state=0,
    )  # fmt: skip
    return timed_sklearn_fit(model, X, threads)


def main() -> None:
    print_header(__doc__)
    header = (
        f"{'n':>7} {'d':>3} {'K':>2} | {'workbench ms/it':>15} {'sklearn ms/it':>13} "
        f"{'(all thr / 1 thr)':>19} {'speedup':>8} | {'loglik workbench':>17} "
        f"{'loglik diff':>11} {'rel diff':>8} | {'iters':>7}"
    )
    print(header)
    print("-" * len(header))
    speedups = []
    for n, d, K in SIZES:
        rng = np.random.default_rng(20260 + n + d + K)
        data = generate("gaussian_mixture", rng, n=n, K=K, d=d, separation=1.5, covariance="full")
        X = data.X
        init = start(X, K, rng)
        ours(X, init, max_iter=2)  # warm-up: numba compilation (or loading its disk cache)
        best_ours, best_all, best_one = np.inf, np.inf, np.inf
        for _ in range(REPEATS[n]):
            t, result = ours(X, init)
            best_ours = min(best_ours, t)
            t, model = theirs(X, init, threads=None)
            best_all = min(best_all, t)
            t, model = theirs(X, init, threads=1)
            best_one = min(best_one, t)
        assert result.n_iter == ITERATIONS and model.n_iter_ == ITERATIONS, "iteration counts"
        ll_ours = result.loglik
        ll_theirs = float(model.score(X) * n)
        ms_ours, ms_all, ms_one = (t / ITERATIONS * 1e3 for t in (best_ours, best_all, best_one))
        ms_theirs = min(ms_all, ms_one)
        speedups.append(ms_theirs / ms_ours)
        diff = ll_ours - ll_theirs
        print(
            f"{n:>7} {d:>3} {K:>2} | {ms_ours:>15.4f} {ms_theirs:>13.4f} "
            f"{f'({ms_all:.3f} / {ms_one:.3f})':>19} {speedups[-1]:>7.1f}x | {ll_ours:>17.6f} "
            f"{diff:>11.2e} {abs(diff) / abs(ll_theirs):>8.1e} | "
            f"{result.n_iter:>3}/{model.n_iter_:<3}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"min speedup vs sklearn: {min(speedups):.1f}x")


if __name__ == "__main__":
    main()

"""Workbench EM vs scikit-learn GaussianMixture: time per iteration, same start, same iterations,
on a grid of sizes and every covariance type, with the machine's matmul speed as the yardstick.

Sizes (n, d, K, covariance type): the three of issue 2, (500, 1, 2), (1e4, 2, 5) and
(1e5, 10, 5) full, and the ones issue 13 added because the engine was tuned to the first three:
(1e5, 32, 16) full, (1e5, 16, 8) diag, (2e4, 2, 20) spherical and (1e5, 64, 8) tied. Data: a
Gaussian mixture with overlapping components (separation 1.5), so that EM is still moving.
Start: K distinct random data points as means, the data covariance (in the type's shape) for
every component, equal weights; sklearn gets them as ``weights_init``, ``means_init`` and
``precisions_init``.

- Workbench: ``EMFitter(init=<start>, max_iter=T, tol=0, reg_covar=0, reference=False)``,
  timed around ``fit_array`` (T = 100 iterations up to n = 2e4, 20 above).
- sklearn: ``GaussianMixture(max_iter=T, tol=0, n_init=1, reg_covar=0,
  init_params="random_from_data", <start>)``, timed around ``fit``. With tol=0 it never stops
  early. Its ``_initialize`` still makes one M-step from the (cheapest) init_params before the
  given parameters override it, and ``fit`` ends with one extra E-step (1% to 5% of its time).
- ``reg_covar=0`` on both sides: only without it do both run the same EM and reach the same
  log-likelihood (printed: the relative difference of the final log-likelihoods).

Timings are the best of a few repeats, the fitters alternating, after warming up the compiled
loop. sklearn is timed with its BLAS/OpenMP pools at their default (every core) and limited to
one thread (threadpoolctl); the faster of the two is the baseline (on a shared machine the
default pools can make sklearn several times slower, which would flatter the workbench).

GFLOP/s: the floating-point operations of the workbench's matrix products per iteration (the
covariance strategy's ``gemm_flops``: for full, diag and spherical 4 n m K, m the features per
point; for tied 2 n d^2 + 4 n (d + 1) K) over its time per iteration, and that as a percentage
of the machine's peak measured in the same run: the best of 3 numpy matmuls of two 4000 x 4000
matrices on every core. That yardstick is numpy's BLAS as installed, whose kernel family is
printed beside it: on the AMD Zen 5 machine of issue 13 OpenBLAS runs its Haswell (AVX2)
kernels, while the workbench's compiled loops use the CPU's AVX-512, so a share above 100% is
possible there.

Run: ``python benchmarks/em_vs_sklearn.py``. Last lines: ``min share of matmul peak at d >= 16:
<p>%`` and ``min speedup vs sklearn: <x>x``.
"""

from __future__ import annotations

import os
import time

import numpy as np
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_info
from timing import print_header, timed_sklearn_fit

from workbench.data import generate
from workbench.em.covariance.registry import strategy
from workbench.em.fitter import EMFitter
from workbench.em.init import data_covariance

SIZES = (
    (500, 1, 2, "full"),
    (10_000, 2, 5, "full"),
    (100_000, 10, 5, "full"),
    (100_000, 32, 16, "full"),
    (100_000, 16, 8, "diag"),
    (20_000, 2, 20, "spherical"),
    (100_000, 64, 8, "tied"),
)


def iterations(n: int) -> int:
    return 100 if n <= 20_000 else 20


def repeats(n: int, d: int, K: int) -> int:
    """Best of this many: at least 3, as the machine's noise moved a best of 2 by 10-20%."""
    return 7 if n * d * K < 1e5 else 5 if n * d * K < 1e7 else 3


def matmul_peak() -> float:
    """GFLOP/s of numpy's matmul of two 4000 x 4000 matrices (best of 3, every core)."""
    A = np.random.default_rng(0).standard_normal((4000, 4000))
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        A @ A
        best = min(best, time.perf_counter() - t0)
    return 2 * 4000**3 / best / 1e9


def numpy_blas() -> str:
    """numpy's BLAS library, version and kernel family, as threadpoolctl reports them."""
    for pool in threadpool_info():
        if pool.get("user_api") == "blas" and "numpy" in pool.get("filepath", ""):
            return f"{pool['internal_api']} {pool['version']}, {pool.get('architecture')} kernels"
    return "numpy's BLAS not identified"


def start(X: np.ndarray, K: int, cov_type: str, rng: np.random.Generator) -> dict:
    """Means at K distinct data points, the data covariance, equal weights."""
    n, d = X.shape
    weights = np.full(K, 1.0 / K)
    full = np.broadcast_to(data_covariance(X), (K, d, d))
    return {
        "weights": weights,
        "means": X[rng.choice(n, size=K, replace=False)],
        "covariances": strategy(cov_type).from_full(full, weights).copy(),
    }


def sklearn_precisions(covariances: np.ndarray, cov_type: str) -> np.ndarray:
    return (
        1.0 / covariances
        if covariances.ndim < 3 - (cov_type == "tied")
        else np.linalg.inv(covariances)
    )


def ours(X: np.ndarray, init: dict, cov_type: str, max_iter: int):
    fitter = EMFitter(
        n_components=len(init["weights"]), covariance_type=cov_type, init=init,
        max_iter=max_iter, tol=0.0, reg_covar=0.0, reference=False,
    )  # fmt: skip
    t0 = time.perf_counter()
    result = fitter.fit_array(X, np.random.default_rng(0))
    return time.perf_counter() - t0, result


def theirs(X: np.ndarray, init: dict, cov_type: str, max_iter: int, threads: int | None):
    model = GaussianMixture(
        n_components=len(init["weights"]), covariance_type=cov_type, tol=0.0,
        max_iter=max_iter, n_init=1, reg_covar=0.0, init_params="random_from_data",
        weights_init=init["weights"], means_init=init["means"],
        precisions_init=sklearn_precisions(init["covariances"], cov_type), random_state=0,
    )  # fmt: skip
    return timed_sklearn_fit(model, X, threads)


def main() -> None:
    print_header(__doc__)
    peak = matmul_peak()
    print(f"matmul peak (4000 x 4000, every core): {peak:.1f} GFLOP/s ({numpy_blas()})")
    header = (
        f"{'n':>7} {'d':>3} {'K':>3} {'type':>9} | {'ours ms/it':>10} {'sklearn ms/it':>13} "
        f"{'(all thr / 1 thr)':>21} {'speedup':>8} | {'GFLOP/s':>7} {'% peak':>6} | "
        f"{'loglik rel diff':>15} | {'iters':>7}"
    )
    print(header)
    print("-" * len(header))
    speedups, shares = [], []
    for n, d, K, cov_type in SIZES:
        T = iterations(n)
        rng = np.random.default_rng(20260 + n + d + K)
        data = generate("gaussian_mixture", rng, n=n, K=K, d=d, separation=1.5, covariance="full")
        X = data.X
        init = start(X, K, cov_type, rng)
        ours(X, init, cov_type, max_iter=2)  # warm-up: loads the compiled loop
        best_ours, best_all, best_one = np.inf, np.inf, np.inf
        for _ in range(repeats(n, d, K)):
            t, result = ours(X, init, cov_type, T)
            best_ours = min(best_ours, t)
            t, model = theirs(X, init, cov_type, T, threads=None)
            best_all = min(best_all, t)
            t, model = theirs(X, init, cov_type, T, threads=1)
            best_one = min(best_one, t)
        assert result.n_iter == T and model.n_iter_ == T, "iteration counts"
        ll_theirs = float(model.score(X) * n)
        ms_ours, ms_all, ms_one = (t / T * 1e3 for t in (best_ours, best_all, best_one))
        speedups.append(min(ms_all, ms_one) / ms_ours)
        gflops = strategy(cov_type).gemm_flops(n, d, K) / (ms_ours / 1e3) / 1e9
        share = 100 * gflops / peak
        if d >= 16:
            shares.append(share)
        rel = abs(result.loglik - ll_theirs) / abs(ll_theirs)
        print(
            f"{n:>7} {d:>3} {K:>3} {cov_type:>9} | {ms_ours:>10.3f} {min(ms_all, ms_one):>13.3f} "
            f"{f'({ms_all:.2f} / {ms_one:.2f})':>21} {speedups[-1]:>7.1f}x | {gflops:>7.1f} "
            f"{share:>5.0f}% | {rel:>15.1e} | {result.n_iter:>3}/{model.n_iter_:<3}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"min share of matmul peak at d >= 16: {min(shares):.0f}%")
    print(f"min speedup vs sklearn: {min(speedups):.1f}x")


if __name__ == "__main__":
    main()

"""SQUAREM against plain EM at Delta = 2: EM-map evaluations and wall time at equal accuracy.

Setup (issue 6, item 2): two unit Gaussians, weights 1/2, means +-1 (Delta = 2, where plain EM's
rate is about 0.995), n = 2000 in 1-D, all five parameters free. For each of ``DATA_SETS`` data
sets both schemes start from the same k-means++ start and run to tol = 1e-13 (change of the
log-likelihood in nats per point), both through the one compiled EM loop (SQUAREM is a mode of
that loop: ``EMSettings(squarem=True)``, what ``EMFitter(acceleration="squarem")`` runs), so
that wall times compare the algorithms and nothing else.

Accuracy: the best known optimum of a data set is the larger final log-likelihood of the two.
Plain EM's evaluations to come within 1e-6 nats of it are read from its trace (one evaluation
per iteration); SQUAREM's from its per-cycle trace (1 evaluation, at most 3 per cycle: F twice
and the stabilising step; an upper bound). Counts to convergence are printed
too. Timings are the best of 3 repeats. The machine's load average is printed.

Run: ``python benchmarks/squarem.py``. Last line: ``SQUAREM evaluations saved at Delta=2: <x>x``.
"""

from __future__ import annotations

import os
import time

import numpy as np

from workbench.data import generate
from workbench.em.init import kmeans_plusplus
from workbench.em.run import EMSettings, init_state, run_em

N, DELTA, DATA_SETS, EPSILON, REPEATS = 2000, 2.0, 10, 1e-6, 3
SETTINGS = EMSettings(covariance_type="full", tol=1e-13, max_iter=200_000)


def best_of(run, *args) -> tuple[float, object]:
    """Best wall time of REPEATS calls, and the last result."""
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        result = run(*args)
        times.append(time.perf_counter() - t0)
    return min(times), result


def first_within(trace: np.ndarray, best: float) -> int | None:
    hits = np.flatnonzero(best - np.asarray(trace) <= EPSILON)
    return int(hits[0]) if hits.size else None


def main() -> None:
    squarem = SETTINGS._replace(squarem=True)
    rows = []
    for seed in range(DATA_SETS):
        rng = np.random.default_rng(seed)
        data = generate(
            "gaussian_mixture", rng, n=N, K=2, d=1, separation=DELTA, covariance="identity"
        )
        X = data.X
        start = init_state(*kmeans_plusplus(X, 2, 1, rng), SETTINGS, X.var(axis=0))
        run_em(X, start, squarem._replace(max_iter=2))  # load the compiled loop first
        t_em, em = best_of(run_em, X, start, SETTINGS)
        t_sq, sq = best_of(run_em, X, start, squarem)
        best = max(float(em.loglik[0]), float(sq.loglik[0]))
        em_within = first_within(em.traces[0], best)
        cycle = first_within(sq.traces[0], best)
        extra = max(0, int(sq.n_iter[0]) - 1 - 3 * (len(sq.traces[0]) - 1))
        sq_within = None if cycle is None else min(1 + 3 * cycle + extra, int(sq.n_iter[0]))
        rows.append((em_within, sq_within, int(em.n_iter[0]), int(sq.n_iter[0]), t_em, t_sq))
        print(
            f"data set {seed}: within {EPSILON:g} nats after {em_within} (EM) / {sq_within} "
            f"(SQUAREM) evaluations; to tol {em.n_iter[0]} / {sq.n_iter[0]}; wall time EM "
            f"{t_em * 1e3:.1f} ms, SQUAREM {t_sq * 1e3:.1f} ms; "
            f"final gaps {best - em.loglik[0]:.1e} / "
            f"{best - sq.loglik[0]:.1e} nats"
        )
    table = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
    ratio = table[:, 0] / table[:, 1]
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"evaluations to convergence, EM / SQUAREM: {np.nanmean(table[:, 2] / table[:, 3]):.2f}x")
    print(f"wall time, EM / SQUAREM: {np.mean(table[:, 4] / table[:, 5]):.2f}x")
    se = np.nanstd(ratio, ddof=1) / np.sqrt(np.isfinite(ratio).sum())
    print(f"SQUAREM evaluations saved at Delta=2: {np.nanmean(ratio):.2f}x (± {se:.2f})")


if __name__ == "__main__":
    main()

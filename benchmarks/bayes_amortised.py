"""Compile once, fit many: amortised nutpie sampling against a naive ``pm.sample`` per data set.

Ten data sets (N=500, K=2, 1-D, means +-2.75, sd 1, weight 0.4), 4 chains x 1000 draws, the
same model (``workbench.bayes.models.build_model``, ordered means, standardised data) both ways:

- naive: build the PyMC model and call ``pm.sample`` (1000 tuning steps) for every data set; a
  warm-up fit first, untimed, so that PyTensor's compile cache is warm as in the reference.
- amortised: ``BayesFitter(sampler="nutpie")``: one nutpie compilation (reported separately),
  then ``with_data`` + ``nutpie.sample`` per data set, with 300 and with 1000 tuning steps. Its
  time per data set is the whole ``fit`` (sampling, relabelling, diagnostics).

ESS/s is the minimum bulk ESS over the weights, means and scales, per second of wall time of
that data set's fit, averaged over data sets. Prints per data set times, then the ratios; the
last line is ``amortised speedup per data set: <x>x`` (naive / amortised at tune=300, both per
data set with warm caches).

Usage: python benchmarks/bayes_amortised.py
"""

from __future__ import annotations

import logging
import time
import warnings

import arviz as az
import numpy as np
import pymc as pm

from workbench.bayes import BayesFitter, clear_cache
from workbench.bayes.models import build_model
from workbench.data.dataset import Dataset
from workbench.params import MixtureParams

TRUTH = MixtureParams([0.4, 0.6], [-2.75, 2.75], [1.0, 1.0])
N, N_DATASETS, CHAINS, DRAWS = 500, 10, 4, 1000


def datasets() -> list[Dataset]:
    out = []
    for ss in np.random.SeedSequence(2024).spawn(N_DATASETS):
        X, labels = TRUTH.sample(N, np.random.default_rng(ss))
        out.append(Dataset(X, labels, TRUTH, 2))
    return out


def naive_fit(data: Dataset, seed: int) -> tuple[float, float]:
    """Build the model and pm.sample it. Returns (wall seconds, min bulk ESS)."""
    fitter = BayesFitter()
    spec = fitter.spec(2, 1)
    X = data.X[:, 0]
    start = time.perf_counter()
    model = build_model(spec, {"x": (X - X.mean()) / X.std()})
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = pm.sample(
            draws=DRAWS,
            tune=1000,
            chains=CHAINS,
            cores=2,
            random_seed=seed,
            target_accept=0.9,
            progressbar=False,
            compute_convergence_checks=False,
        )
    seconds = time.perf_counter() - start
    ess = az.ess(idata.posterior[["w", "mu", "sigma"]], method="bulk")
    return seconds, float(min(ess[v].values.min() for v in ess.data_vars))


def report(name: str, rows: list[tuple[float, float]]) -> tuple[float, float]:
    seconds = np.array([r[0] for r in rows])
    ess_per_s = np.array([r[1] / r[0] for r in rows])
    print(f"{name}: wall s per data set " + " ".join(f"{s:.2f}" for s in seconds))
    print(
        f"{name}: mean {seconds.mean():.2f} s per data set, min ESS_bulk/s "
        f"{ess_per_s.mean():.0f} (range {ess_per_s.min():.0f}-{ess_per_s.max():.0f}), "
        f"min ESS_bulk {min(r[1] for r in rows):.0f}"
    )
    return float(seconds.mean()), float(ess_per_s.mean())


def main() -> None:
    logging.getLogger("pymc").setLevel(logging.ERROR)
    data = datasets()
    print(f"{N_DATASETS} data sets, N={N}, K=2, 1-D; {CHAINS} chains x {DRAWS} draws")

    start = time.perf_counter()
    naive_fit(data[0], seed=999)
    print(f"naive warm-up fit (PyTensor compile cache): {time.perf_counter() - start:.1f} s")
    naive = report("naive pm.sample", [naive_fit(d, seed=i) for i, d in enumerate(data)])

    results = {}
    for tune in (1000, 300):
        clear_cache()
        fitter = BayesFitter(sampler="nutpie", chains=CHAINS, draws=DRAWS, tune=tune)
        rows, compile_s, statuses = [], 0.0, []
        for i, d in enumerate(data):
            fit = fitter.fit(d, np.random.default_rng(i))
            compile_s += fit.diagnostics["compile_time"]
            seconds = fit.wall_time  # compile excluded
            rows.append((seconds, fit.diagnostics["ess_bulk_min"]))
            statuses.append(fit.status)
        print(f"amortised nutpie tune={tune}: one compilation {compile_s:.1f} s")
        results[tune] = report(f"amortised nutpie tune={tune}", rows)
        with_compile = (sum(r[0] for r in rows) + compile_s) / len(rows)
        print(
            f"amortised nutpie tune={tune}: {with_compile:.2f} s per data set including the "
            f"compilation spread over {len(rows)} data sets; statuses "
            f"{ {s: statuses.count(s) for s in sorted(set(statuses))} }"
        )

    for tune, (seconds, ess_rate) in results.items():
        print(
            f"ratio naive / amortised (tune={tune}): wall time per data set "
            f"{naive[0] / seconds:.1f}x, ESS_bulk per second {ess_rate / naive[1]:.1f}x"
        )
    print(f"amortised speedup per data set: {naive[0] / results[300][0]:.1f}x")


if __name__ == "__main__":
    main()

"""Simulation-based calibration (Talts et al. 2018) of the 1-D Bayesian mixture fitter.

For each simulation: draw (weights, means, sds) from the model's prior (K=2, ordered means,
raw units: ``standardize=False`` so that the prior does not depend on the data), draw N points,
fit with ``BayesFitter``, and record the rank of each true parameter among L thinned posterior
draws. If the fitter samples the right posterior the ranks are uniform on 0..L; tested per
parameter by chi-square (10 bins) and KS, with a Bonferroni threshold over the parameters.

Usage: python benchmarks/bayes_sbc.py [n_sims]   (default 200; the issue asks for >= 100)
"""

from __future__ import annotations

import sys
import time

import numpy as np

from workbench.bayes import BayesFitter
from workbench.bayes.diagnostics import sbc_rank, sbc_uniformity
from workbench.bayes.models import sample_prior
from workbench.data.dataset import Dataset
from workbench.params import MixtureParams

N_OBS = 100
THINNED = 99  # L: ranks in 0..99, 100 values, 10 bins of 10
SETTINGS = {
    "n_components": 2,
    "standardize": False,
    "chains": 2,
    "draws": 500,
    "tune": 500,
    "prior_mean_scale": 2.0,
    "prior_scale_scale": 1.0,
    "prior_weights_alpha": 1.0,
}
PARAMETERS = ("w[0]", "mu[0]", "mu[1]", "sigma[0]", "sigma[1]")


def run_sbc(n_sims: int = 200, seed: int = 0, verbose: bool = False) -> dict:
    """Run the SBC loop. Returns ranks (n_sims, 5), p-values per parameter, statuses, seconds."""
    fitter = BayesFitter(**SETTINGS)
    spec = fitter.spec(2, 1)
    seeds = np.random.SeedSequence(seed).spawn(n_sims)
    ranks, statuses = [], []
    start = time.perf_counter()
    for i, ss in enumerate(seeds):
        data_rng, fit_rng = (np.random.default_rng(s) for s in ss.spawn(2))
        w, mu, cov = sample_prior(spec, data_rng)
        truth = MixtureParams(w, mu, cov)
        X, labels = truth.sample(N_OBS, data_rng)
        fit = fitter.fit(Dataset(X, labels, truth, 2), fit_rng)
        statuses.append(fit.status)
        post = fit.posterior.posterior
        flat = {
            "w[0]": post["w"].values[..., 0],
            "mu[0]": post["mu"].values[..., 0, 0],
            "mu[1]": post["mu"].values[..., 1, 0],
            "sigma[0]": post["sigma"].values[..., 0, 0],
            "sigma[1]": post["sigma"].values[..., 1, 0],
        }
        true = {
            "w[0]": w[0],
            "mu[0]": mu[0, 0],
            "mu[1]": mu[1, 0],
            "sigma[0]": np.sqrt(cov[0, 0, 0]),
            "sigma[1]": np.sqrt(cov[1, 0, 0]),
        }
        keep = np.linspace(0, flat["w[0]"].size - 1, THINNED).round().astype(int)
        ranks.append([sbc_rank(flat[k].reshape(-1)[keep], true[k]) for k in PARAMETERS])
        if verbose and (i + 1) % 25 == 0:
            print(
                f"  {i + 1}/{n_sims} simulations, {time.perf_counter() - start:.0f} s", flush=True
            )
    ranks = np.array(ranks)
    p_values = {k: sbc_uniformity(ranks[:, j], THINNED) for j, k in enumerate(PARAMETERS)}
    return {
        "ranks": ranks,
        "p_values": p_values,
        "statuses": statuses,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    n_sims = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    print(f"SBC: 1-D K=2 ordered model, N={N_OBS} points, {n_sims} prior draws, L={THINNED}")
    result = run_sbc(n_sims, seed=0, verbose=True)
    alpha = 0.01 / len(PARAMETERS)
    counts = {s: result["statuses"].count(s) for s in sorted(set(result["statuses"]))}
    print(f"fit statuses: {counts}; {result['seconds']:.0f} s")
    print(f"{'parameter':<10} {'chi2 p':>8} {'KS p':>8}  rank histogram (10 bins)")
    passed = True
    for j, name in enumerate(PARAMETERS):
        p = result["p_values"][name]
        hist = np.bincount(result["ranks"][:, j] * 10 // (THINNED + 1), minlength=10)
        passed &= min(p.values()) > alpha
        print(f"{name:<10} {p['chi2_p']:8.3f} {p['ks_p']:8.3f}  {' '.join(map(str, hist))}")
    verdict = "uniform" if passed else "NOT uniform"
    print(f"SBC ranks {verdict} (every p > {alpha:.4f}, Bonferroni 0.01 over 5 parameters)")


if __name__ == "__main__":
    main()

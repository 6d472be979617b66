"""Session fixtures: each model structure is compiled once (the module-level cache in
``workbench.bayes.sampling``) and each expensive fit runs once for all tests that read it."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from workbench.bayes import BayesFitter, clear_cache
from workbench.data.dataset import Dataset
from workbench.fitter_interface import FitResult
from workbench.params import MixtureParams

# Betancourt, "Identifying Bayesian Mixture Models": N=1000, means +-2.75, sd 1, weight 0.4.
BETANCOURT = MixtureParams([0.4, 0.6], [-2.75, 2.75], [1.0, 1.0])
TRUTH_2D = MixtureParams(
    [0.35, 0.65],
    [[-2.0, 0.0], [2.0, 1.5]],
    [[[1.0, 0.3], [0.3, 0.5]], [[0.6, -0.2], [-0.2, 1.2]]],
)
FAST = {"chains": 4, "draws": 300, "tune": 300}
# Three unit-sd components, two of them half an sd apart: the ordered model mixes slowly
# (issue 10: R-hat about 1.03-1.05 and bulk ESS 100-170 of 2000-4000 draws, once called ok).
CLOSE_MEANS = MixtureParams(np.ones(3) / 3, [-3.0, 0.0, 0.5], [1.0, 1.0, 1.0])


def make_dataset(truth: MixtureParams, n: int, seed: int) -> Dataset:
    """A data set drawn from ``truth`` (no dependence on the generators module)."""
    X, labels = truth.sample(n, np.random.default_rng(seed))
    return Dataset(X, labels, truth, truth.n_components, {"generator": "test", "seed": seed})


@pytest.fixture(scope="session")
def betancourt() -> Dataset:
    return make_dataset(BETANCOURT, 1000, seed=20180101)


@pytest.fixture(scope="session")
def betancourt_fits(betancourt: Dataset) -> dict[str, FitResult]:
    """The acceptance design, 4 chains of 1000 draws after 1000 tuning steps, both ways."""
    return {
        ident: BayesFitter(identifiability=ident, chains=4).fit(
            betancourt, np.random.default_rng(7)
        )
        for ident in ("ordered", "none")
    }


@pytest.fixture(scope="session")
def data_2d() -> Dataset:
    return make_dataset(TRUTH_2D, 400, seed=5)


@pytest.fixture(scope="session")
def fit_2d(data_2d: Dataset) -> FitResult:
    """Free 2-D model: Mixture of MvNormal with LKJCholeskyCov priors, relabelled post hoc."""
    return BayesFitter(**FAST).fit(data_2d, np.random.default_rng(11))


@pytest.fixture(scope="session")
def close_means_fits() -> dict[str, Any]:
    """K = 3 close means, n = 1000, ordered, 4 chains of 500 draws after 500 tuning steps, its
    structure compiled fresh (forgotten first); then a small second fit of the same structure.
    Each fit is timed from outside. {"data", "first", "first_elapsed", "second",
    "second_elapsed"}."""
    data = make_dataset(CLOSE_MEANS, 1000, seed=1)
    fitter = BayesFitter(chains=4, draws=500, tune=500)
    clear_cache(fitter.spec(3, 1), fitter.sampler)
    out: dict[str, Any] = {"data": data}
    for key, fit in (("first", fitter), ("second", BayesFitter(chains=1, draws=50, tune=50))):
        start = time.perf_counter()
        out[key] = fit.fit(data, np.random.default_rng(1))
        out[f"{key}_elapsed"] = time.perf_counter() - start
    return out

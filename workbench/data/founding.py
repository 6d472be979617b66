"""The founding document's example: a handful of 1-D points from two Gaussians, red and green.

The founding document (``../shared/000_7d46a376a7c78034.txt``) walks EM through nine points on a
line drawn from two Gaussians, (mu1, sigma1) "red" and (mu2, sigma2) "green". The defaults,
means -2 and 2 with unit standard deviations and equal weights, give two clearly visible groups
whose densities still overlap: the c-separation is 4, the Delta = 4 row of the reference's
convergence-rate table (EM rate 0.725 with all five parameters free).
"""

from typing import Any

import numpy as np

from workbench.data.dataset import Dataset
from workbench.data.gaussian import generator_info
from workbench.params import MixtureParams
from workbench.settings.base import build
from workbench.settings.data import FoundingSettings

COLOURS = ("red", "green")


def founding_example(rng: np.random.Generator, **settings: Any) -> Dataset:
    """n >= 2 points on a line from N(mu1, sigma1^2) (label 0, red) and N(mu2, sigma2^2) (label 1,
    green), with weight1 in (0, 1) on the red component (settings:
    :class:`workbench.settings.data.FoundingSettings`; defaults n = 9, means -2 and 2, unit
    standard deviations, weight1 = 0.5).

    Stratified so a small set always shows both groups: exactly round(weight1 * n) points (half
    rounded up, clipped to 1 .. n - 1) are red, the rest green. X (n, 1) is sorted ascending, so
    points read z1 .. zn left to right. Truth: weights (weight1, 1 - weight1), means (mu1, mu2),
    full covariances (2, 1, 1) of sigma^2 (data units squared).
    """
    s = build(FoundingSettings, settings)
    n, mu1, mu2, sigma1, sigma2, weight1 = s.n, s.mu1, s.mu2, s.sigma1, s.sigma2, s.weight1
    n_red = int(np.clip(np.floor(weight1 * n + 0.5), 1, n - 1))
    z = rng.standard_normal(n)
    labels = np.repeat([0, 1], [n_red, n - n_red])
    x = np.where(labels == 0, mu1 + sigma1 * z, mu2 + sigma2 * z)
    order = np.argsort(x, kind="stable")
    truth = MixtureParams(
        weights=np.array([weight1, 1.0 - weight1]),
        means=np.array([[mu1], [mu2]]),
        covariances=np.array([[[sigma1**2]], [[sigma2**2]]]),
        covariance_type="full",
    )
    info = generator_info(
        "founding",
        s.model_dump(),
        family="gaussian",
        colours=list(COLOURS),
        n_per_component=[n_red, n - n_red],
    )
    return Dataset(
        X=x[order, None], labels=labels[order], truth=truth, n_components_to_fit=2, info=info
    )

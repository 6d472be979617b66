"""The founding document's example: a handful of 1-D points from two Gaussians, red and green.

The founding document (``../shared/000_7d46a376a7c78034.txt``) walks EM through nine points on a
line drawn from two Gaussians, (mu1, sigma1) "red" and (mu2, sigma2) "green". The defaults,
means -2 and 2 with unit standard deviations and equal weights, give two clearly visible groups
whose densities still overlap: the c-separation is 4, the Delta = 4 row of the reference's
convergence-rate table (EM rate 0.725 with all five parameters free).
"""

import numpy as np

from workbench.data.dataset import Dataset
from workbench.data.gaussian import bad_setting, check_int, check_number, generator_info
from workbench.params import MixtureParams

COLOURS = ("red", "green")


def founding_example(
    rng: np.random.Generator,
    *,
    n: int = 9,
    mu1: float = -2.0,
    sigma1: float = 1.0,
    mu2: float = 2.0,
    sigma2: float = 1.0,
    weight1: float = 0.5,
) -> Dataset:
    """n >= 2 points on a line from N(mu1, sigma1^2) (label 0, red) and N(mu2, sigma2^2) (label 1,
    green), with weight1 in (0, 1) on the red component.

    Stratified so a small set always shows both groups: exactly round(weight1 * n) points (half
    rounded up, clipped to 1 .. n - 1) are red, the rest green. X (n, 1) is sorted ascending, so
    points read z1 .. zn left to right. Truth: weights (weight1, 1 - weight1), means (mu1, mu2),
    full covariances (2, 1, 1) of sigma^2 (data units squared).
    """
    settings = {k: v for k, v in locals().items() if k != "rng"}
    n = check_int("n", n, minimum=2)
    mu1 = check_number("mu1", mu1)
    mu2 = check_number("mu2", mu2)
    sigma1 = check_number("sigma1", sigma1, minimum=0.0, strict=True)
    sigma2 = check_number("sigma2", sigma2, minimum=0.0, strict=True)
    weight1 = check_number("weight1", weight1, minimum=0.0, strict=True)
    if weight1 >= 1.0:
        raise bad_setting("weight1", weight1, "must lie strictly between 0 and 1")
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
        settings,
        family="gaussian",
        colours=list(COLOURS),
        n_per_component=[n_red, n - n_red],
    )
    return Dataset(
        X=x[order, None], labels=labels[order], truth=truth, n_components_to_fit=2, info=info
    )

"""The compiled exp and column normalisation against numpy and scipy."""

import numpy as np
from numba import njit
from scipy.special import logsumexp, softmax

from workbench.em.logsumexp import exp_nonpositive, normalise_columns


@njit
def _apply(x, out):
    for i in range(x.size):
        out[i] = exp_nonpositive(x[i])


def test_exp_is_within_one_ulp_of_numpy():
    """The docstring's claim: within 1 ulp of libm (numpy), down to the subnormals and the
    clamp at -800 (where exp is 0)."""
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [-rng.exponential(5.0, 500_000), -rng.uniform(0.0, 800.0, 200_000)]
        + [np.array([0.0, -0.0, -1e-300, -708.39, -745.1, -744.4, -800.0, -1e4])]
    )
    out = np.empty_like(x)
    _apply(x, out)
    ref = np.exp(x)
    assert np.all(np.abs(out - ref) <= np.spacing(ref))
    assert np.isnan(exp_nonpositive(np.nan))


def test_normalise_columns_matches_scipy():
    rng = np.random.default_rng(1)
    JT = rng.normal(scale=30.0, size=(7, 1000)) - 400.0
    expected_total = logsumexp(JT, axis=0).sum()
    expected = softmax(JT, axis=0)
    work = JT.copy()
    total = normalise_columns(work, np.empty(1000), np.empty(1000))
    np.testing.assert_allclose(total, expected_total, rtol=1e-13)
    np.testing.assert_allclose(work, expected, rtol=1e-12, atol=1e-300)

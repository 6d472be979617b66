"""The compiled pieces under the EM loop against numpy: the chunk products on every path and
their scratch, the diagonal features and log joint, the column summaries and centred copy, the
k-means++ partition moments, and the cache key of a specialisation."""

import numpy as np
import pytest

from workbench.em import specialise
from workbench.em.columns import centred_transpose, column_means, column_stats
from workbench.em.covariance import diag
from workbench.em.init import params_from_partition
from workbench.em.products import add_statistics, aligned_zeros, log_joint_product

# (features m, components K): whole 4 x 4 blocks, and every kind of remainder of m and K by 4
# (features, components or both left over; no whole block at all)
SHAPES = [
    (3, 2), (4, 20), (6, 5), (12, 8), (6, 16), (45, 5), (66, 5), (33, 8), (10, 16), (9, 3),
    (7, 7),
]  # fmt: skip


@pytest.mark.parametrize(("m", "K"), SHAPES)
def test_chunk_products_match_numpy_on_every_path(m, K):
    rng = np.random.default_rng(m * 100 + K)
    b = 777
    FT, natural = rng.normal(size=(m, b)), rng.normal(size=(K, m))
    JT = np.empty((K, b))
    log_joint_product(natural, FT, JT)
    np.testing.assert_allclose(JT, natural @ FT, rtol=1e-12, atol=1e-12)
    T = rng.normal(size=(K, m))
    expected = T + JT @ FT.T
    add_statistics(JT, FT, T)
    np.testing.assert_allclose(T, expected, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("shape", [(3, 561 * 232), (5,), (2, 7, 3)])
def test_chunk_scratch_starts_on_a_cache_line(shape):
    scratch = aligned_zeros(shape)
    assert scratch.shape == shape and scratch.flags.c_contiguous
    assert scratch.ctypes.data % 64 == 0 and not scratch.any()


def test_diag_log_joint_is_natural_times_squares_values_and_one():
    """diag's features are the rows x^2, x, 1 of the points, and its log joint the product of
    the natural coefficients with them (numpy builds the features independently)."""
    rng = np.random.default_rng(2)
    d, K, b = 5, 3, 301
    XT, natural = rng.normal(size=(d, b)), rng.normal(size=(K, 2 * d + 1))
    FT = np.empty((2 * d + 1, b))
    diag.features(XT, FT)
    expected_features = np.vstack([XT**2, XT, np.ones((1, b))])
    np.testing.assert_allclose(FT, expected_features, rtol=1e-15)
    JT = np.empty((K, b))
    diag.log_joint(XT, FT, (None, None, None, None, natural), JT)
    np.testing.assert_allclose(JT, natural @ expected_features, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", [1, 3, 40])
def test_column_summaries_and_centred_copy_match_numpy(d):
    rng = np.random.default_rng(d)
    X = rng.normal(loc=1e4, size=(5000, d))[:, ::-1]  # not contiguous: a copy is taken
    stats = column_stats(X)
    np.testing.assert_allclose(stats.mean, X.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(stats.var, X.var(axis=0), rtol=1e-10)
    np.testing.assert_array_equal(stats.low, X.min(axis=0))
    np.testing.assert_array_equal(stats.high, X.max(axis=0))
    np.testing.assert_array_equal(column_means(X), stats.mean)
    given = X.copy()
    XT = centred_transpose(X, stats.mean)
    np.testing.assert_array_equal(XT, X.T - stats.mean[:, None])
    np.testing.assert_array_equal(X, given)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_makes_its_columns_mean_non_finite(bad):
    """What check_data relies on to find NaN and inf in one pass."""
    X = np.random.default_rng(0).normal(size=(100, 3))
    X[57, 1] = bad
    finite = np.isfinite(column_stats(X).mean)
    np.testing.assert_array_equal(finite, [True, False, True])


def test_partition_moments_of_a_batch_are_each_partitions_own():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 2))
    labels = rng.integers(0, 3, size=(4, 300))
    weights, means, covs = params_from_partition(X, labels, 3)
    for r in range(4):
        one = params_from_partition(X, labels[r], 3)
        for batch, single in zip((weights, means, covs), one, strict=True):
            np.testing.assert_allclose(batch[r], single[0], rtol=1e-14)
        for k in range(3):
            part = X[labels[r] == k]
            np.testing.assert_allclose(covs[r, k], np.cov(part.T, bias=True), rtol=1e-12)


# A template calling a compiled helper by global name, as the EM templates call products.py.
helper = specialise.kernel(lambda x: x + 1.0)


def _template(x):
    return helper(x)


def _other_helper(x):
    return x + 2.0


def test_a_specialisations_cache_key_names_the_code_it_calls(monkeypatch):
    """numba's disk cache checks only the defining file: the key must change when a compiled
    function the template calls changes, or the cached code would run the old one."""
    before = specialise._source_hash({"": _template})
    assert specialise._source_hash({"": _template}) == before
    monkeypatch.setitem(globals(), "helper", specialise.kernel(_other_helper))
    assert specialise._source_hash({"": _template}) != before


def test_bad_shapes_are_refused_before_compiled_code():
    """Compiled code runs without bounds checks: an empty array or a label outside 0..K-1 is a
    one-line error, not a read or write out of bounds."""
    with pytest.raises(ValueError, match="holds no values"):
        column_stats(np.empty((0, 3)))
    with pytest.raises(ValueError, match="numbered 0 to 2"):
        params_from_partition(np.zeros((4, 1)), np.array([0, 1, 3, 2]), 3)

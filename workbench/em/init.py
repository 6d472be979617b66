"""Initialisation strategies, selectable by name. Each returns R starting points as
(weights (R, K), means (R, K, d), full covariances (R, K, d, d)).

- ``random_params``: the founding document's random start. Means uniform over the data's range
  in each dimension, standard deviations uniform in [0.5, 1.5] x the data's standard deviation
  (independent dimensions), weights from a flat Dirichlet.
- ``random_from_data``: means at K distinct random data points, every covariance the data's
  covariance, equal weights.
- ``spikes``: as scikit-learn's ``random_from_data`` behaves: means at K distinct random data
  points (the same draws as ``random_from_data``), each component a narrow spike, variance
  SPIKE_FRACTION (1e-4) of the data's in each feature (standard deviations 1% of the data's, so
  scale-equivariant, and 100 times the default variance floor), equal weights. The first
  E-step then gives each point to its nearest spike, almost a hard partition (scikit-learn gets
  there by an M-step from one-hot responsibilities on the K points, whose variances are 0 plus
  its absolute ``reg_covar``).
- ``kmeans++``: scipy's k-means++ seeding; each point goes to its nearest seed and the Gaussian
  parameters are the (hard) M-step of that partition.
- ``kmeans``: the same partition after Lloyd's k-means (scipy ``kmeans2``, 30 iterations) from
  k-means++ seeds.
- ``small_em``: Biernacki, Celeux & Govaert (2003) with Rmixmod's defaults: 50 random_from_data
  tries, each run for at most 5 EM iterations (stopping early at a change of 1e-3 nats per
  point); the try with the highest log-likelihood is the start.
- ``truth`` and user-given parameters are handled by the fitter (no randomness).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy.cluster.vq import kmeans2

from workbench.densities import full_covariances
from workbench.em.covariance import variance_scale
from workbench.em.covariance.registry import strategy
from workbench.em.loop import restart_scores
from workbench.em.run import EMSettings, init_state, run_em
from workbench.em.specialise import kernel
from workbench.settings.fitters import START_NAMES

Start = tuple[np.ndarray, np.ndarray, np.ndarray]

SMALL_EM_TRIES = 50
SMALL_EM_ITERATIONS = 5
SMALL_EM_TOL = 1e-3
KMEANS_ITERATIONS = 30
SPIKE_FRACTION = 1e-4


def mean_imputed(X: np.ndarray) -> np.ndarray:
    """X with every missing value (NaN) replaced by its column's observed mean: what the
    starts are computed from (EM itself uses only the observed values)."""
    missing = np.isnan(X)
    if not missing.any():
        return X
    return np.where(missing, np.nanmean(X, axis=0), X)


def data_covariance(X: np.ndarray) -> np.ndarray:
    """Covariance of the data (d, d), maximum-likelihood normalisation, centred."""
    centred = X - X.mean(axis=0)
    return centred.T @ centred / X.shape[0]


def random_params(X, K, R, rng) -> Start:
    low, high = X.min(axis=0), X.max(axis=0)
    sd = X.std(axis=0)
    d = X.shape[1]
    means = rng.uniform(low, high, size=(R, K, d))
    scales = sd * rng.uniform(0.5, 1.5, size=(R, K, d))
    covs = scales[..., :, None] * np.eye(d) * scales[..., None, :]
    weights = rng.dirichlet(np.ones(K), size=R)
    return weights, means, covs


def random_from_data(X, K, R, rng) -> Start:
    n, d = X.shape
    idx = np.stack([rng.choice(n, size=K, replace=False) for _ in range(R)])
    means = X[idx]
    covs = np.broadcast_to(data_covariance(X), (R, K, d, d)).copy()
    weights = np.full((R, K), 1.0 / K)
    return weights, means, covs


def spikes(X, K, R, rng) -> Start:
    weights, means, _ = random_from_data(X, K, R, rng)
    variance = SPIKE_FRACTION * variance_scale(X.var(axis=0))
    covs = np.broadcast_to(np.diag(variance), (R, K, X.shape[1], X.shape[1])).copy()
    return weights, means, covs


@kernel
def _partition_moments(X, labels, K):
    """Counts (R, K), means (R, K, d) and scatter matrices (R, K, d, d) of the parts of R
    partitions of X (n, d), labels (R, n): two passes per partition (sums, then centred outer
    products), in row order."""
    n, d = X.shape
    R = labels.shape[0]
    counts = np.zeros((R, K))
    means = np.zeros((R, K, d))
    scatter = np.zeros((R, K, d, d))
    for r in range(R):
        for i in range(n):
            k = labels[r, i]
            counts[r, k] += 1.0
            for j in range(d):
                means[r, k, j] += X[i, j]
        for k in range(K):
            if counts[r, k] > 0:
                for j in range(d):
                    means[r, k, j] /= counts[r, k]
        for i in range(n):
            k = labels[r, i]
            for j in range(d):
                dj = X[i, j] - means[r, k, j]
                for l in range(j + 1):
                    scatter[r, k, j, l] += dj * (X[i, l] - means[r, k, l])
        for k in range(K):
            for j in range(d):
                for l in range(j):
                    scatter[r, k, l, j] = scatter[r, k, j, l]
    return counts, means, scatter


def params_from_partition(
    X: np.ndarray, labels: np.ndarray, K: int, fallback: np.ndarray | None = None
) -> Start:
    """Hard M-step: weights, means and covariances of R partitions (labels (R, n), or (n,) for
    a batch of one).

    A part whose own covariance is singular (fewer than d + 1 points, or repeated points) gets
    the data covariance (``fallback``, computed when not given). An empty part (possible only
    when data points repeat) sits at the data mean with weight 1/n.
    """
    X = np.ascontiguousarray(X, dtype=float)
    n, d = X.shape
    labels = np.ascontiguousarray(np.atleast_2d(labels), dtype=np.int64)
    if labels.size and not 0 <= labels.min() <= labels.max() < K:
        raise ValueError(f"labels: parts must be numbered 0 to {K - 1}")
    fallback = data_covariance(X) if fallback is None else fallback
    counts, means, scatter = _partition_moments(X, labels, K)
    means[counts == 0] = X.mean(axis=0)
    covs = scatter / np.maximum(counts, 1.0)[..., None, None]
    own = counts > d
    own[own] = np.linalg.eigvalsh(covs[own])[:, 0] > 0
    covs[~own] = fallback
    weights = np.maximum(counts, 1.0)
    return weights / weights.sum(axis=1, keepdims=True), means, covs


def _kmeans_start(X, K, R, rng, iterations: int) -> Start:
    labels = np.empty((R, X.shape[0]), dtype=np.int64)
    for r in range(R):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # empty clusters keep their previous centre
            _, labels[r] = kmeans2(X, K, iter=iterations, minit="++", rng=rng)
    return params_from_partition(X, labels, K)


def kmeans_plusplus(X, K, R, rng) -> Start:
    return _kmeans_start(X, K, R, rng, iterations=1)


def kmeans(X, K, R, rng) -> Start:
    return _kmeans_start(X, K, R, rng, iterations=KMEANS_ITERATIONS)


def small_em(X, K, R, rng, settings: EMSettings | None = None) -> Start:
    """Best of SMALL_EM_TRIES short EM runs per restart (R * 50 short runs, batched)."""
    settings = settings or EMSettings()
    short = settings._replace(max_iter=SMALL_EM_ITERATIONS, tol=SMALL_EM_TOL, squarem=False)
    weights, means, covs = random_from_data(X, K, R * SMALL_EM_TRIES, rng)
    covs = strategy(settings.covariance_type).from_full(covs, weights)
    start = init_state(weights, means, covs, short, X.var(axis=0))
    run = run_em(X, start, short)
    score = restart_scores(run.status, run.objective).reshape(R, SMALL_EM_TRIES)
    best = np.arange(R) * SMALL_EM_TRIES + np.argmax(score, axis=1)
    chosen = full_covariances(run.state.covariances[best], settings.covariance_type, K, X.shape[1])
    return run.state.weights[best], run.state.means[best], chosen


INITS: dict[str, Callable[..., Start]] = dict(
    zip(START_NAMES, (random_params, random_from_data, spikes, kmeans_plusplus, kmeans, small_em),
        strict=True)
)  # fmt: skip

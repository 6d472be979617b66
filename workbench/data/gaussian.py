"""The Gaussian-mixture generator, and the pieces every mixture generator shares.

**Separation** is Dasgupta's c-separation: a mixture is c-separated when
``min_{i != j} ||mu_i - mu_j|| = c * sqrt(d * max_k lambda_max(Sigma_k))``, the minimum distance
between two component means divided by the square root of d times the largest eigenvalue of any
component covariance. Generators place the means so that this holds *exactly* for the requested
``separation`` c. In one dimension c is the gap between neighbouring means in units of the largest
component standard deviation.

Random covariances: each component's largest eigenvalue is drawn uniformly from
``[min_variance, max_variance]`` and its other d - 1 eigenvalues are that value divided by factors
drawn log-uniformly from ``[1, max_condition]``, so every condition number is <= ``max_condition``.
``full`` rotates the eigenvalues by a Haar-random orthogonal matrix, ``diag`` puts them on the
diagonal in random order, ``spherical`` uses the largest eigenvalue alone (condition number 1) and
``identity`` gives Sigma_k = I (the setting of the theory papers).

The settings and their checks are declared in :mod:`workbench.settings.data`; a generator takes
keyword settings and builds its settings model from them, so a bad value is refused there.
"""

from typing import Any

import numpy as np

from workbench.data.dataset import Dataset
from workbench.params import MixtureParams
from workbench.settings.base import build
from workbench.settings.data import (
    GaussianMixtureSettings,
    MixtureSettings,
    check_weights,
    given_covariances,
)

# random_box: the box's side is BOX_SPREAD * K^(1/d) * min_distance, so the K centres fill a
# volume BOX_SPREAD^d times what they need; rejection sampling gives up after BOX_TRIES draws.
BOX_SPREAD = 2.0
BOX_TRIES = 100_000


def jsonable(value: Any) -> Any:
    """Settings as plain JSON-able values (lists, floats, ints, str, None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray | list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---- the pieces of a mixture ---------------------------------------------------------------------
def mixture_weights(
    rng: np.random.Generator, K: int, weights: str | list[float], dirichlet_alpha: float
) -> np.ndarray:
    """Weights (K,): 'equal', 'dirichlet' (symmetric, concentration dirichlet_alpha) or given."""
    if weights == "equal":
        return np.full(K, 1.0 / K)
    if weights == "dirichlet":
        return rng.dirichlet(np.full(K, dirichlet_alpha))
    return check_weights(weights, K)


def random_rotations(rng: np.random.Generator, K: int, d: int) -> np.ndarray:
    """K Haar-random orthogonal matrices, (K, d, d) (QR of Gaussian matrices, sign-fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((K, d, d)))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]


def component_covariances(rng: np.random.Generator, K: int, s: MixtureSettings) -> np.ndarray:
    """Covariance matrices (K, d, d) in squared data units, given or random (module docstring)."""
    d = s.d
    eye = np.eye(d)
    if s.covariance == "identity":
        return np.repeat(eye[None], K, axis=0)
    given = given_covariances(K, d, s.covariance, s.variances)
    if given is not None:
        return given
    lam_max = rng.uniform(s.min_variance, s.max_variance, size=K)
    if s.covariance == "spherical" or d == 1:
        return lam_max[:, None, None] * eye
    ratios = np.exp(rng.uniform(0.0, np.log(s.max_condition), size=(K, d - 1)))
    eig = np.concatenate([lam_max[:, None], lam_max[:, None] / ratios], axis=1)
    if s.covariance == "diag":
        return rng.permuted(eig, axis=1)[:, :, None] * eye
    rot = random_rotations(rng, K, d)
    covs = (rot * eig[:, None, :]) @ np.swapaxes(rot, -1, -2)
    return 0.5 * (covs + np.swapaxes(covs, -1, -2))


def separation_unit(covariances: np.ndarray) -> float:
    """sqrt(d * max_k lambda_max(Sigma_k)) for covariances (K, d, d): the unit of separation."""
    d = covariances.shape[-1]
    return float(np.sqrt(d * np.max(np.linalg.eigvalsh(covariances))))


def min_mean_distance(means: np.ndarray) -> float:
    """Minimum pairwise Euclidean distance between the rows of means (K, d); inf when K = 1."""
    if means.shape[0] < 2:
        return float("inf")
    diff = means[:, None, :] - means[None, :, :]
    dist = np.sqrt(np.sum(diff**2, axis=-1))
    return float(np.min(dist[np.triu_indices(means.shape[0], k=1)]))


def place_means(rng: np.random.Generator, K: int, d: int, min_distance: float) -> np.ndarray:
    """Means (K, d), centred at 0, whose minimum pairwise distance equals min_distance exactly.

    d = 1: equally spaced. d >= 2: greedy farthest-point choice of K out of 32 K points drawn
    uniformly in the unit ball (so no pair is accidentally much closer than the rest), then
    centred and rescaled. K = 1: the origin.
    """
    if K == 1:
        return np.zeros((1, d))
    if d == 1:
        return (min_distance * (np.arange(K) - (K - 1) / 2.0))[:, None]
    m = 32 * K
    directions = rng.standard_normal((m, d))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    candidates = directions * rng.uniform(size=(m, 1)) ** (1.0 / d)
    chosen = [0]
    nearest = np.linalg.norm(candidates - candidates[0], axis=1)
    for _ in range(K - 1):
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, np.linalg.norm(candidates - candidates[nxt], axis=1))
    points = candidates[chosen]
    points -= points.mean(axis=0)
    return points * (min_distance / min_mean_distance(points))


def place_means_in_box(rng: np.random.Generator, K: int, d: int, min_distance: float) -> np.ndarray:
    """Means (K, d) uniform at random in a box, no two closer than min_distance (Jin et al.'s
    well-separated, spread-out centres), then centred and rescaled so that the minimum pairwise
    distance equals min_distance exactly.

    Sequential rejection sampling: each candidate is drawn uniformly in the cube of side
    ``BOX_SPREAD * K^(1/d) * min_distance`` and kept when at least min_distance from every kept
    centre. Raises ValueError if BOX_TRIES candidates do not suffice (cannot happen for d >= 1 at
    this spread).
    """
    if K == 1:
        return np.zeros((1, d))
    if min_distance == 0:
        return np.zeros((K, d))
    side = BOX_SPREAD * K ** (1.0 / d) * min_distance
    kept: list[np.ndarray] = []
    for _ in range(BOX_TRIES):
        point = rng.uniform(0.0, side, size=d)
        if all(np.linalg.norm(point - other) >= min_distance for other in kept):
            kept.append(point)
            if len(kept) == K:
                break
    else:
        raise ValueError(f"placement='random_box': could not place {K} centres in d={d}")
    points = np.array(kept)
    points -= points.mean(axis=0)
    return points * (min_distance / min_mean_distance(points))


def mixture_truth(rng: np.random.Generator, s: MixtureSettings) -> MixtureParams:
    """Weights, covariances and c-separated means of ``s.true_components`` components, as a
    ``full`` MixtureParams. placement (gaussian_mixture only; default ``compact``):
    :func:`place_means` or ``random_box`` (:func:`place_means_in_box`).
    Draw order (fixed, for determinism): weights, covariances, means.
    """
    K = s.true_components
    w = mixture_weights(rng, K, s.weights, s.dirichlet_alpha)
    covs = component_covariances(rng, K, s)
    random_box = getattr(s, "placement", "compact") == "random_box"
    place = place_means_in_box if random_box else place_means
    means = place(rng, K, s.d, s.separation * separation_unit(covs))
    return MixtureParams(w, means, covs, "full")


def distance_info(truth: MixtureParams) -> dict[str, float | None]:
    """The achieved minimum mean distance (None for K = 1), for info."""
    dist = min_mean_distance(truth.means)
    return {"min_mean_distance": dist if np.isfinite(dist) else None}


def generator_info(generator: str, settings: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """info dict: generator name, every setting (JSON-able), then extra entries."""
    return jsonable({"generator": generator, **settings, **extra})


# ---- the generator -------------------------------------------------------------------------------
def gaussian_mixture(rng: np.random.Generator, **settings: Any) -> Dataset:
    """n points from a K-component Gaussian mixture in d dimensions, means c-separated.

    Settings (:class:`workbench.settings.data.GaussianMixtureSettings`): n, K, d;
    separation: Dasgupta's c (module docstring), >= 0; met exactly.
    weights: 'equal', 'dirichlet' (symmetric Dirichlet(dirichlet_alpha)) or K positive floats
    summing to 1 (within 1e-8).
    covariance: 'identity' (Sigma_k = I), 'spherical', 'diag' or 'full'.
    variances: None for random covariances, else given: K variances (spherical), K lists of d
    variances (diag) or K d x d matrices (full); squared data units. max_condition, min_variance
    and max_variance shape random covariances only (module docstring).
    placement: 'compact' (the default: greedy farthest points in a ball, rescaled, so the means
    are packed about as tightly as the separation allows) or 'random_box' (uniform in a box with
    a minimum distance, rejection-sampled: spread-out centres as in Jin et al. 2016).
    Returns X (n, d), labels (n,), truth as ``full`` MixtureParams, n_components_to_fit = K.
    """
    s = build(GaussianMixtureSettings, settings)
    truth = mixture_truth(rng, s)
    X, labels = truth.sample(s.n, rng)
    info = generator_info(
        "gaussian_mixture", s.model_dump(), family="gaussian", **distance_info(truth)
    )
    return Dataset(X=X, labels=labels, truth=truth, n_components_to_fit=s.K, info=info)

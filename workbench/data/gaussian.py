"""The Gaussian-mixture generator, and the helpers every synthetic generator shares.

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
"""

import numbers
from typing import Any

import numpy as np

from workbench.data.dataset import Dataset
from workbench.params import MixtureParams

PLACEMENTS = ("compact", "random_box")
# random_box: the box's side is BOX_SPREAD * K^(1/d) * min_distance, so the K centres fill a
# volume BOX_SPREAD^d times what they need; rejection sampling gives up after BOX_TRIES draws.
BOX_SPREAD = 2.0
BOX_TRIES = 100_000
COVARIANCE_MODES = ("identity", "spherical", "diag", "full")
WEIGHT_SUM_TOL = 1e-8

# Keyword settings of ``mixture_truth``; generators pass these through unchanged.
TRUTH_SETTINGS = (
    "K",
    "d",
    "separation",
    "weights",
    "dirichlet_alpha",
    "covariance",
    "variances",
    "max_condition",
    "min_variance",
    "max_variance",
)


# ---- validation ----------------------------------------------------------------------------------
def bad_setting(name: str, value: Any, why: str) -> ValueError:
    """A one-line ValueError naming the setting and its value."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return ValueError(f"{name}={text}: {why}")


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """An integer >= minimum (bools rejected)."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum
    if not ok:
        why = "must be a positive integer" if minimum == 1 else f"must be an integer >= {minimum}"
        raise bad_setting(name, value, why)
    return int(value)


def check_number(
    name: str, value: Any, minimum: float | None = None, strict: bool = False
) -> float:
    """A finite real number, >= minimum (> minimum when strict)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if strict else value >= minimum
    if not ok:
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
        raise bad_setting(name, value, f"must be a finite number{bound}")
    return float(value)


def _float_array(name: str, value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise bad_setting(name, value, f"expected {what}") from None
    if array.shape != shape or not np.all(np.isfinite(array)):
        raise bad_setting(name, value, f"expected {what} (finite numbers), shape {shape}")
    return array


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
    if isinstance(weights, str):
        if weights == "equal":
            return np.full(K, 1.0 / K)
        if weights == "dirichlet":
            return rng.dirichlet(np.full(K, dirichlet_alpha))
        raise bad_setting("weights", weights, "expected 'equal', 'dirichlet' or a list of K floats")
    w = _float_array("weights", weights, (K,), f"{K} weights, one per component")
    if np.any(w <= 0.0):
        raise bad_setting("weights", weights, "must all be positive")
    if abs(w.sum() - 1.0) > WEIGHT_SUM_TOL:
        raise bad_setting("weights", weights, f"must sum to 1 (sum is {w.sum():.10g})")
    return w / w.sum()


def random_rotations(rng: np.random.Generator, K: int, d: int) -> np.ndarray:
    """K Haar-random orthogonal matrices, (K, d, d) (QR of Gaussian matrices, sign-fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((K, d, d)))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]


def component_covariances(
    rng: np.random.Generator,
    K: int,
    d: int,
    covariance: str,
    variances: Any,
    max_condition: float,
    min_variance: float,
    max_variance: float,
) -> np.ndarray:
    """Covariance matrices (K, d, d) in squared data units, given or random (module docstring)."""
    if covariance not in COVARIANCE_MODES:
        raise bad_setting(
            "covariance", covariance, f"expected one of {', '.join(COVARIANCE_MODES)}"
        )
    max_condition = check_number("max_condition", max_condition, minimum=1.0)
    min_variance = check_number("min_variance", min_variance, minimum=0.0, strict=True)
    max_variance = check_number("max_variance", max_variance, minimum=min_variance)
    eye = np.eye(d)
    if covariance == "identity":
        if variances is not None:
            raise bad_setting("variances", variances, "must be None when covariance='identity'")
        return np.repeat(eye[None], K, axis=0)
    if variances is not None:
        return _given_covariances(K, d, covariance, variances)
    lam_max = rng.uniform(min_variance, max_variance, size=K)
    if covariance == "spherical" or d == 1:
        return lam_max[:, None, None] * eye
    ratios = np.exp(rng.uniform(0.0, np.log(max_condition), size=(K, d - 1)))
    eig = np.concatenate([lam_max[:, None], lam_max[:, None] / ratios], axis=1)
    if covariance == "diag":
        return rng.permuted(eig, axis=1)[:, :, None] * eye
    rot = random_rotations(rng, K, d)
    covs = (rot * eig[:, None, :]) @ np.swapaxes(rot, -1, -2)
    return 0.5 * (covs + np.swapaxes(covs, -1, -2))


def _given_covariances(K: int, d: int, covariance: str, variances: Any) -> np.ndarray:
    if covariance == "spherical":
        v = _float_array("variances", variances, (K,), f"{K} variances (spherical)")
        covs = v[:, None, None] * np.eye(d)
    elif covariance == "diag":
        v = _float_array("variances", variances, (K, d), f"{K} lists of {d} variances (diag)")
        covs = v[:, :, None] * np.eye(d)
    else:
        covs = _float_array("variances", variances, (K, d, d), f"{K} {d}x{d} matrices (full)")
        asym = np.max(np.abs(covs - np.swapaxes(covs, -1, -2)), initial=0.0)
        if asym > 1e-10 * np.max(np.abs(covs)):
            raise bad_setting("variances", variances, "covariance matrices must be symmetric")
        covs = 0.5 * (covs + np.swapaxes(covs, -1, -2))
    if np.any(np.linalg.eigvalsh(covs) <= 0.0):
        raise bad_setting("variances", variances, "must be positive (definite)")
    return covs


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
        raise bad_setting("placement", "random_box", f"could not place {K} centres in d={d}")
    points = np.array(kept)
    points -= points.mean(axis=0)
    return points * (min_distance / min_mean_distance(points))


def mixture_truth(
    rng: np.random.Generator,
    *,
    K: int,
    d: int,
    separation: float,
    weights: str | list[float],
    dirichlet_alpha: float,
    covariance: str,
    variances: Any,
    max_condition: float,
    min_variance: float,
    max_variance: float,
    placement: str = "compact",
) -> MixtureParams:
    """Validated weights, covariances and c-separated means, as a ``full`` MixtureParams.

    placement: ``compact`` (:func:`place_means`) or ``random_box`` (:func:`place_means_in_box`).
    Draw order (fixed, for determinism): weights, covariances, means.
    """
    if placement not in PLACEMENTS:
        raise bad_setting("placement", placement, f"expected one of {', '.join(PLACEMENTS)}")
    K = check_int("K", K)
    d = check_int("d", d)
    separation = check_number("separation", separation, minimum=0.0)
    dirichlet_alpha = check_number("dirichlet_alpha", dirichlet_alpha, minimum=0.0, strict=True)
    w = mixture_weights(rng, K, weights, dirichlet_alpha)
    covs = component_covariances(
        rng, K, d, covariance, variances, max_condition, min_variance, max_variance
    )
    place = place_means if placement == "compact" else place_means_in_box
    means = place(rng, K, d, separation * separation_unit(covs))
    return MixtureParams(w, means, covs, "full")


def check_n(n: Any, K: int, k_name: str = "K") -> int:
    """Validate n, and that the K components fit in n points."""
    n = check_int("n", n)
    if K > n:
        raise bad_setting(k_name, K, f"must not exceed n={n}")
    return n


def distance_info(truth: MixtureParams) -> dict[str, float | None]:
    """The achieved minimum mean distance (None for K = 1), for info."""
    dist = min_mean_distance(truth.means)
    return {"min_mean_distance": dist if np.isfinite(dist) else None}


def generator_info(generator: str, settings: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """info dict: generator name, every setting (JSON-able), then extra entries."""
    return jsonable({"generator": generator, **settings, **extra})


# ---- the generator -------------------------------------------------------------------------------
def gaussian_mixture(
    rng: np.random.Generator,
    *,
    n: int = 500,
    K: int = 2,
    d: int = 1,
    separation: float = 3.0,
    weights: str | list[float] = "equal",
    dirichlet_alpha: float = 1.0,
    covariance: str = "spherical",
    variances: list[float] | list[list[float]] | list[list[list[float]]] | None = None,
    max_condition: float = 10.0,
    min_variance: float = 0.5,
    max_variance: float = 2.0,
    placement: str = "compact",
) -> Dataset:
    """n points from a K-component Gaussian mixture in d dimensions, means c-separated.

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
    settings = {k: v for k, v in locals().items() if k != "rng"}
    K = check_int("K", K)
    n = check_n(n, K)
    truth = mixture_truth(rng, **{k: settings[k] for k in TRUTH_SETTINGS}, placement=placement)
    X, labels = truth.sample(n, rng)
    info = generator_info("gaussian_mixture", settings, family="gaussian", **distance_info(truth))
    return Dataset(X=X, labels=labels, truth=truth, n_components_to_fit=K, info=info)

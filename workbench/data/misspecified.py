"""Misspecified mixtures: Student-t, skew-normal and uniform components, and a wrong K.

Truth convention for the non-Gaussian families: ``truth`` is the mixture's Gaussian summary, a
``full`` MixtureParams whose weights are the mixing weights, whose means are the component MEANS
and whose covariances are the component COVARIANCE matrices (the moment-matched Gaussian, which is
the pseudo-true target of a Gaussian fit when the components are well separated). Only where a
covariance is infinite (Student-t with df <= 2) is the scale matrix used instead; then
``info['truth_covariances'] == 'scale'``. Weights, covariances and c-separated means are drawn
exactly as by ``gaussian_mixture`` (same settings, same meaning), and separation is measured on
the truth covariances.

Each family also records its own parameters in ``info``: ``locations`` (K, d) and
``scale_matrices`` (K, d, d) with ``x = location + scale_matrix @ u`` for the family's standard
variable u (named in ``info['standard_variable']``), plus its shape parameter.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from workbench.data.dataset import Dataset
from workbench.data.gaussian import distance_info, generator_info, mixture_truth
from workbench.params import MixtureParams
from workbench.settings.base import build
from workbench.settings.data import (
    GaussianMixtureSettings,
    MixtureSettings,
    SkewNormalSettings,
    StudentTSettings,
    UniformSettings,
    WrongKSettings,
)

SQRT3 = float(np.sqrt(3.0))


def _moment_matched(
    rng: np.random.Generator,
    s: MixtureSettings,
    draw: Callable[[np.random.Generator, MixtureParams, np.ndarray], tuple[np.ndarray, dict]],
) -> Dataset:
    """Draw the Gaussian summary and labels, then the family's points via ``draw``.

    draw(rng, truth, labels) returns X (n, d) and the family's info entries.
    """
    truth = mixture_truth(rng, s)
    labels = rng.choice(s.K, size=s.n, p=truth.weights)
    X, family_info = draw(rng, truth, labels)
    info = generator_info(s.generator, s.model_dump(), **family_info, **distance_info(truth))
    return Dataset(X=X, labels=labels, truth=truth, n_components_to_fit=s.K, info=info)


def _apply(scale_matrices: np.ndarray, labels: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Row i of the result is scale_matrices[labels[i]] @ u[i]; shapes (K,d,d), (n,), (n,d)."""
    return np.einsum("nij,nj->ni", scale_matrices[labels], u)


def student_t_mixture(rng: np.random.Generator, **settings: Any) -> Dataset:
    """Multivariate Student-t components with df > 0 degrees of freedom (heavy tails).

    x = mu_k + sqrt(df / W) L_k z, z ~ N(0, I_d), W ~ chi2(df), L_k L_k^T = S_k (scale matrix).
    For df > 2 the truth covariance is Sigma_k = S_k df / (df - 2) and S_k is chosen to match the
    drawn Sigma_k; for df <= 2 the covariance is infinite and the truth holds S_k itself
    (info['truth_covariances'] = 'scale'). Other settings as in ``gaussian_mixture``.
    info: family 'student_t', df, locations = means, scales = S (K, d, d).
    """
    s = build(StudentTSettings, settings)
    df = s.df

    def draw(rng: np.random.Generator, truth: MixtureParams, labels: np.ndarray):
        factor = (df - 2.0) / df if df > 2.0 else 1.0
        scales = truth.full_covariances() * factor
        chol = np.linalg.cholesky(scales)
        z = rng.standard_normal((labels.size, truth.n_features))
        mix = np.sqrt(df / rng.chisquare(df, size=labels.size))
        X = truth.means[labels] + _apply(chol, labels, z) * mix[:, None]
        return X, {
            "family": "student_t",
            "df": df,
            "truth_covariances": "covariance" if df > 2.0 else "scale",
            "standard_variable": "multivariate t(df), identity scale",
            "locations": truth.means,
            "scales": scales,
            "scale_matrices": chol,
        }

    return _moment_matched(rng, s, draw)


def skew_normal_moments(alpha: float) -> tuple[float, float]:
    """Mean and standard deviation of the standard skew-normal SN(0, 1, alpha)."""
    delta = alpha / np.sqrt(1.0 + alpha**2)
    mean = delta * np.sqrt(2.0 / np.pi)
    return float(mean), float(np.sqrt(1.0 - mean**2))


def skew_normal_mixture(rng: np.random.Generator, **settings: Any) -> Dataset:
    """Skew-normal components: independent SN(alpha) coordinates, moment-matched to the truth.

    skew_alpha: the skew-normal shape alpha (scipy.stats.skewnorm's ``a``), any real; 0 is
    Gaussian, positive skews right. u has iid SN(0, 1, alpha) coordinates (u = delta |e0| +
    sqrt(1 - delta^2) e1, delta = alpha / sqrt(1 + alpha^2)), standardised to mean 0, variance 1
    and mapped by mu_k + L_k (.), L_k the Cholesky factor of Sigma_k, so each component has mean
    mu_k and covariance Sigma_k exactly (per-dimension skew-normal for diagonal Sigma_k).
    info: family 'skew_normal', skew_alpha, locations (K, d) and scale_matrices (K, d, d) with
    x = location + scale_matrix @ u.
    """
    s = build(SkewNormalSettings, settings)
    alpha = s.skew_alpha

    def draw(rng: np.random.Generator, truth: MixtureParams, labels: np.ndarray):
        delta = alpha / np.sqrt(1.0 + alpha**2)
        mean, sd = skew_normal_moments(alpha)
        e = rng.standard_normal((2, labels.size, truth.n_features))
        u = delta * np.abs(e[0]) + np.sqrt(1.0 - delta**2) * e[1]
        chol = np.linalg.cholesky(truth.full_covariances())
        X = truth.means[labels] + _apply(chol, labels, (u - mean) / sd)
        locations = truth.means - chol.sum(axis=-1) * (mean / sd)
        return X, {
            "family": "skew_normal",
            "skew_alpha": alpha,
            "truth_covariances": "covariance",
            "standard_variable": "iid skew-normal SN(0, 1, skew_alpha) coordinates",
            "locations": locations,
            "scale_matrices": chol / sd,
        }

    return _moment_matched(rng, s, draw)


def uniform_mixture(rng: np.random.Generator, **settings: Any) -> Dataset:
    """Uniform components: each is uniform on a box with mean mu_k and covariance Sigma_k.

    The box is centred at mu_k, its axes are the eigenvectors of Sigma_k and its half-widths are
    sqrt(3 lambda) for the eigenvalues lambda (axis-aligned for diagonal Sigma_k).
    info: family 'uniform', locations = centres (K, d), half_widths (K, d), scale_matrices
    (K, d, d) with x = location + scale_matrix @ u, u ~ U[-1, 1]^d.
    """
    s = build(UniformSettings, settings)

    def draw(rng: np.random.Generator, truth: MixtureParams, labels: np.ndarray):
        eig, axes = np.linalg.eigh(truth.full_covariances())
        half_widths = SQRT3 * np.sqrt(eig)
        scale_matrices = axes * half_widths[:, None, :]
        u = rng.uniform(-1.0, 1.0, size=(labels.size, truth.n_features))
        X = truth.means[labels] + _apply(scale_matrices, labels, u)
        return X, {
            "family": "uniform",
            "truth_covariances": "covariance",
            "standard_variable": "uniform on [-1, 1]^d",
            "locations": truth.means,
            "half_widths": half_widths,
            "scale_matrices": scale_matrices,
        }

    return _moment_matched(rng, s, draw)


def wrong_k_mixture(rng: np.random.Generator, **settings: Any) -> Dataset:
    """A Gaussian mixture with K_true components, to be fitted with K_fit components.

    Exactly ``gaussian_mixture`` with K = K_true (truth has K_true components; weights and
    variances are per true component); n_components_to_fit = K_fit. K_fit = K_true is allowed
    (a control cell in a grid over K_fit).
    """
    s = build(WrongKSettings, settings)
    common = {k: v for k, v in s.model_dump().items() if k not in ("K_true", "K_fit")}
    truth = mixture_truth(rng, build(GaussianMixtureSettings, {"K": s.K_true, **common}))
    X, labels = truth.sample(s.n, rng)
    info = generator_info("wrong_k", s.model_dump(), family="gaussian", **distance_info(truth))
    return Dataset(X=X, labels=labels, truth=truth, n_components_to_fit=s.K_fit, info=info)

"""MixtureParams: the parameters of a Gaussian mixture, its density, and sampling from it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from workbench.densities import (
    check_covariance_type,
    full_covariances,
    log_gaussian_prob,
    n_covariance_parameters,
    precision_cholesky,
)


@dataclass(frozen=True, eq=False)
class MixtureParams:
    """A K-component Gaussian mixture in d dimensions.

    weights: (K,), summing to one. means: (K, d). covariances: (K, d, d) for ``full``,
    (K, d) for ``diag``, (K,) for ``spherical`` and (d, d) for ``tied``. Units are the data's
    units (variances in squared units).
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    covariance_type: str = "full"

    def __post_init__(self) -> None:
        check_covariance_type(self.covariance_type)
        weights = np.asarray(self.weights, dtype=float).reshape(-1)
        means = np.asarray(self.means, dtype=float)
        if means.ndim == 1:  # K univariate means
            means = means[:, None]
        covariances = np.asarray(self.covariances, dtype=float)
        K, d = means.shape
        expected = {
            "full": (K, d, d),
            "diag": (K, d),
            "spherical": (K,),
            "tied": (d, d),
        }[self.covariance_type]
        if self.covariance_type == "full" and d == 1 and covariances.shape == (K,):
            covariances = covariances.reshape(K, 1, 1)
        if weights.shape != (K,):
            raise ValueError(f"weights has shape {weights.shape}; expected ({K},)")
        if covariances.shape != expected:
            raise ValueError(
                f"covariances has shape {covariances.shape}; expected {expected} "
                f"for covariance_type={self.covariance_type!r}"
            )
        for name, value in (("weights", weights), ("means", means), ("covariances", covariances)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    # ---- shape -------------------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]

    def full_covariances(self) -> np.ndarray:
        """Covariance matrices, (K, d, d), whatever the covariance type."""
        return full_covariances(
            self.covariances, self.covariance_type, self.n_components, self.n_features
        )

    def scales(self) -> np.ndarray:
        """Per-component, per-dimension standard deviations, (K, d)."""
        return np.sqrt(np.diagonal(self.full_covariances(), axis1=-2, axis2=-1))

    def n_free_parameters(self) -> int:
        K, d = self.n_components, self.n_features
        return (K - 1) + K * d + n_covariance_parameters(self.covariance_type, K, d)

    def precision_cholesky(self) -> np.ndarray:
        return precision_cholesky(self.covariances, self.covariance_type)

    # ---- density -----------------------------------------------------------------------------
    def log_joint(self, X: np.ndarray) -> np.ndarray:
        """log(w_k) + log N(x_i | mu_k, S_k), shape (n, K)."""
        X = as_data_matrix(X)
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights)
        return log_gaussian_prob(X, self.means, self.precision_cholesky(), self.covariance_type) + (
            log_w
        )

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Per-point log-density log p(x_i), shape (n,)."""
        return logsumexp(self.log_joint(X), axis=1)

    def log_likelihood(self, X: np.ndarray) -> float:
        """Total log-likelihood sum_i log p(x_i)."""
        return float(np.sum(self.score_samples(X)))

    def responsibilities(self, X: np.ndarray) -> np.ndarray:
        """Posterior component probabilities p(z_i = k | x_i), shape (n, K)."""
        log_joint = self.log_joint(X)
        return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Hard assignments (most probable component), shape (n,)."""
        return np.argmax(self.log_joint(X), axis=1)

    def bic(self, X: np.ndarray) -> float:
        """Bayesian information criterion, -2 loglik + p log n (lower is better).

        mclust reports the negative of this (higher is better); the ranking is the same.
        """
        X = as_data_matrix(X)
        return -2.0 * self.log_likelihood(X) + self.n_free_parameters() * np.log(X.shape[0])

    def aic(self, X: np.ndarray) -> float:
        """Akaike information criterion, -2 loglik + 2 p (lower is better)."""
        return -2.0 * self.log_likelihood(X) + 2.0 * self.n_free_parameters()

    # ---- sampling ----------------------------------------------------------------------------
    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw n points. Returns (X (n, d), labels (n,))."""
        labels = rng.choice(self.n_components, size=n, p=self.weights)
        chol = np.linalg.cholesky(self.full_covariances())  # (K, d, d)
        z = rng.standard_normal((n, self.n_features))
        X = self.means[labels] + np.einsum("nij,nj->ni", chol[labels], z)
        return X, labels

    # ---- conversion --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain-list form, for JSON storage."""
        return {
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "covariances": self.covariances.tolist(),
            "covariance_type": self.covariance_type,
        }

    @classmethod
    def from_dict(cls, data: dict) -> MixtureParams:
        return cls(
            weights=np.asarray(data["weights"]),
            means=np.asarray(data["means"]),
            covariances=np.asarray(data["covariances"]),
            covariance_type=data.get("covariance_type", "full"),
        )

    def permuted(self, order: np.ndarray) -> MixtureParams:
        """Components reordered: new component j is old component order[j]."""
        order = np.asarray(order)
        covs = self.covariances if self.covariance_type == "tied" else self.covariances[order]
        return MixtureParams(self.weights[order], self.means[order], covs, self.covariance_type)


def as_data_matrix(X: np.ndarray) -> np.ndarray:
    """Data as a float (n, d) array; a 1-D array is n univariate points."""
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"data must be (n,) or (n, d); got shape {X.shape}")
    return X

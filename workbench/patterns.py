"""Gaussian mixtures on data with missing values (NaN): rows grouped by missingness pattern.

A row's observed-data density is the mixture density of its observed coordinates alone,
``sum_k w_k N(x_o | mu_k[o], Sigma_k[o, o])``: the missing coordinates are integrated out
exactly. Rows sharing a pattern (the same observed coordinates) share the sub-vectors and
sub-matrices, so each pattern costs one Cholesky factor per component.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from workbench.params import MixtureParams

LOG_2PI = float(np.log(2 * np.pi))


class Pattern(NamedTuple):
    """observed, missing: indices of the observed and of the missing coordinates (sorted).
    rows: the rows with exactly those coordinates observed, (n_p,) indices into X."""

    observed: tuple[int, ...]
    missing: tuple[int, ...]
    rows: np.ndarray


def missingness_patterns(X: np.ndarray) -> list[Pattern]:
    """The missingness patterns of (n, d) data X (NaN = missing), sorted by observed tuple
    (most observed first). A row with nothing observed is an error (ValueError)."""
    X = np.asarray(X, dtype=float)
    observed = ~np.isnan(X)
    if not observed.any(axis=1).all():
        bad = int(np.sum(~observed.any(axis=1)))
        raise ValueError(f"data: {bad} rows have every coordinate missing; drop them first")
    keys, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    patterns = [
        Pattern(
            tuple(int(j) for j in np.flatnonzero(key)),
            tuple(int(j) for j in np.flatnonzero(~key)),
            np.flatnonzero(inverse == i),
        )
        for i, key in enumerate(keys)
    ]
    return sorted(patterns, key=lambda p: (-len(p.observed), p.observed))


def observed_log_joint(params: MixtureParams, X: np.ndarray) -> np.ndarray:
    """(n, K) ``log w_k + log N(x_o | mu_k[o], Sigma_k[o, o])`` over each row's observed
    coordinates (units: nats)."""
    X = np.asarray(X, dtype=float)
    covs = params.full_covariances()
    out = np.empty((X.shape[0], params.n_components))
    log_w = np.log(params.weights)
    for pattern in missingness_patterns(X):
        o = list(pattern.observed)
        x = X[np.ix_(pattern.rows, o)]
        for k in range(params.n_components):
            chol = np.linalg.cholesky(covs[k][np.ix_(o, o)])
            z = np.linalg.solve(chol, (x - params.means[k, o]).T)  # (|o|, n_p)
            log_det = 2 * np.sum(np.log(np.diag(chol)))
            out[pattern.rows, k] = log_w[k] - 0.5 * (len(o) * LOG_2PI + log_det + (z**2).sum(0))
    return out


def observed_log_likelihood(params: MixtureParams, X: np.ndarray) -> float:
    """Observed-data log-likelihood of (n, d) X with NaN where missing (nats)."""
    return float(logsumexp(observed_log_joint(params, X), axis=1).sum())


def observed_responsibilities(params: MixtureParams, X: np.ndarray) -> np.ndarray:
    """(n, K) posterior component probabilities given each row's observed coordinates."""
    log_joint = observed_log_joint(params, X)
    return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))


def conditional_means(params: MixtureParams, X: np.ndarray) -> np.ndarray:
    """(K, n, d) E[x | x_o, component k]: observed coordinates as given, the missing ones
    ``mu_k[m] + Sigma_k[m, o] Sigma_k[o, o]^-1 (x_o - mu_k[o])``."""
    X = np.asarray(X, dtype=float)
    covs = params.full_covariances()
    out = np.broadcast_to(X, (params.n_components, *X.shape)).copy()
    for pattern in missingness_patterns(X):
        if not pattern.missing:
            continue
        o, m = list(pattern.observed), list(pattern.missing)
        x = X[np.ix_(pattern.rows, o)]
        for k in range(params.n_components):
            gain = np.linalg.solve(covs[k][np.ix_(o, o)], covs[k][np.ix_(o, m)])  # (|o|, |m|)
            out[k][np.ix_(pattern.rows, m)] = params.means[k, m] + (x - params.means[k, o]) @ gain
    return out


def impute_conditional_mean(params: MixtureParams, X: np.ndarray) -> np.ndarray:
    """(n, d) X with each missing value replaced by E[x_m | x_o] under the mixture (the
    responsibility-weighted conditional means)."""
    X = np.asarray(X, dtype=float)
    resp = observed_responsibilities(params, X)
    return np.where(np.isnan(X), np.einsum("nk,knd->nd", resp, conditional_means(params, X)), X)


def draw_missing(params: MixtureParams, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, d) X with each row's missing values drawn from the mixture's predictive given its
    observed ones: a component from the row's responsibilities, then the conditional normal
    ``N(mu_k[m] + S_mo S_oo^-1 (x_o - mu_k[o]), S_mm - S_mo S_oo^-1 S_om)``."""
    X = np.asarray(X, dtype=float)
    out = X.copy()
    resp = observed_responsibilities(params, X)
    u = rng.random(X.shape[0])
    component = np.minimum((resp.cumsum(axis=1) < u[:, None]).sum(axis=1), resp.shape[1] - 1)
    covs = params.full_covariances()
    for pattern in missingness_patterns(X):
        if not pattern.missing:
            continue
        o, m = list(pattern.observed), list(pattern.missing)
        noise = rng.standard_normal((len(pattern.rows), len(m)))
        for k in range(params.n_components):
            pick = component[pattern.rows] == k
            rows = pattern.rows[pick]
            if not len(rows):
                continue
            S = covs[k]
            gain = np.linalg.solve(S[np.ix_(o, o)], S[np.ix_(o, m)])  # (|o|, |m|)
            mean = params.means[k, m] + (X[np.ix_(rows, o)] - params.means[k, o]) @ gain
            cond = S[np.ix_(m, m)] - S[np.ix_(m, o)] @ gain
            chol = np.linalg.cholesky(cond + 1e-12 * np.trace(cond) * np.eye(len(m)))
            out[np.ix_(rows, m)] = mean + noise[pick] @ chol.T
    return out

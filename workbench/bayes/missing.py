"""Bayesian Gaussian mixtures of data with missing values: two ways (issue 14).

- **marginalise** (:func:`build_marginal_model`): the missing coordinates are integrated out
  analytically. Rows are grouped by missingness pattern (the tuple ``o`` of observed
  coordinates); pattern ``i``'s rows are the ``pm.Data`` array ``x_i`` (n_i, |o|) and their
  likelihood is ``sum_k w_k N(x_o | mu_k[o], Sigma_k[o, o])``, a ``pm.Mixture`` of ``MvNormal``
  components on the sub-vector of each mean and the sub-matrix of each covariance. Priors,
  weights and constraints are those of :mod:`workbench.bayes.models`; the model is compiled
  once per (K, d, set of patterns, priors) and any data set with that set of patterns (of any
  n) reuses it. The same builder serves diagonal covariances (``covariance_type = "diag"``,
  ``sigma[k, j] ~ HalfNormal``) on complete data (one pattern, every coordinate observed).
  Imputations: for each kept posterior draw, a row's component is drawn from its
  responsibilities given its observed coordinates, then its missing values from the
  conditional normal given the observed ones (:func:`workbench.patterns.draw_missing`); the
  imputation of a value is the mean over draws.
- **impute** (:func:`build_impute_model`): PyMC's automatic imputation. The data, NaN where
  missing, are passed as a masked array to the observed mixture, so PyMC makes the missing
  values a latent vector ``obs_unobserved`` (missing cells in row-major order) sampled with
  the parameters. Its size depends on the data set, so it is compiled for each fit.
  Imputations: the posterior mean of ``obs_unobserved``.

Cost (measured on a busy 2-core machine, nutpie): the marginalised graph has one term per
pattern, so compiling grows with the number of patterns: d = 3, K = 2 with 7 patterns 50-116 s
against 35 s for complete data; a d = 5, K = 3 fit with 31 patterns had not finished after 17
min (nutpie) or 25 min (pymc sampler). Sampling is then fast (n = 292, d = 3, 2 chains of
300 + 300: 2.0 s, bulk ESS 254 per second), while the impute model mixes slowly (same data:
1.4 s, bulk ESS 2.8 per second, chains disagreeing).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from workbench.bayes.models import ModelSpec, _cholesky_factors, _means, placeholder_data
from workbench.params import MixtureParams
from workbench.patterns import draw_missing, missingness_patterns

if TYPE_CHECKING:
    import pymc as pm
    import pytensor.tensor as pt

MAX_ALL_PATTERNS = 255  # "all" patterns up to d = 8
IMPUTED_NAME = "obs_unobserved"  # PyMC's name for the latent missing values of "obs"


def model_patterns(spec: ModelSpec) -> tuple[tuple[int, ...], ...]:
    """The patterns the marginal model is built for (every coordinate observed when None)."""
    if spec.patterns is not None:
        return spec.patterns
    return (tuple(range(spec.n_features)),)


def data_patterns(X: np.ndarray) -> tuple[tuple[tuple[int, ...], ...], list[np.ndarray]]:
    """(patterns, rows of each): the missingness patterns of (n, d) X, NaN = missing."""
    found = missingness_patterns(X)
    return tuple(p.observed for p in found), [p.rows for p in found]


def every_pattern(
    d: int, found: tuple[tuple[int, ...], ...], rows: list[np.ndarray]
) -> tuple[tuple[tuple[int, ...], ...], list[np.ndarray]]:
    """(patterns, rows of each) over all 2^d - 1 patterns, in :func:`data_patterns`' order;
    a pattern the data lack has no rows (its ``x_i`` is (0, |o|)). One compiled model then
    serves every data set of this d, whatever patterns it has."""
    subsets = [tuple(j for j in range(d) if bits >> j & 1) for bits in range(1, 2**d)]
    subsets.sort(key=lambda o: (-len(o), o))
    have = dict(zip(found, rows, strict=True))
    return tuple(subsets), [have.get(o, np.zeros(0, dtype=int)) for o in subsets]


def pattern_arrays(z: np.ndarray, patterns, rows) -> dict[str, np.ndarray]:
    """``pm.Data`` arrays of the marginal model: ``x_i`` = z's rows of pattern i, its observed
    columns, (n_i, |o_i|)."""
    pairs = enumerate(zip(patterns, rows, strict=True))
    return {f"x_{i}": z[np.ix_(r, list(o))] for i, (o, r) in pairs}


def _weights(spec: ModelSpec, data: dict[str, np.ndarray]) -> pt.TensorVariable:
    import pymc as pm

    if spec.weights_are_data:
        return pm.Data("w_fixed", np.asarray(data["w_fixed"], dtype=float))
    return pm.Dirichlet("w", a=np.full(spec.n_components, spec.prior_weights_alpha))


def _component_scales(spec: ModelSpec, data: dict[str, np.ndarray]):
    """(sigma (K, d) or None, K lower Cholesky factors (d, d)): diagonal covariances have free
    ``sigma``; full or known covariances their Cholesky factors."""
    import pymc as pm
    import pytensor.tensor as pt

    if spec.diagonal and not spec.fixed_covariances:
        K, d = spec.n_components, spec.n_features
        sigma = pm.HalfNormal("sigma", sigma=spec.prior_scale_scale, shape=(K, d))
        return sigma, [pt.diag(sigma[k]) for k in range(K)]
    return None, _cholesky_factors(spec, data)


def build_marginal_model(spec: ModelSpec, data: dict[str, np.ndarray] | None = None) -> pm.Model:
    """The mixture with missing coordinates marginalised (module docstring); data: ``x_i`` per
    pattern of ``model_patterns(spec)`` (standardised), plus "w_fixed" / "chol_fixed" as in
    ``models.build_model``. Placeholders when ``data`` is None."""
    import pymc as pm
    import pytensor.tensor as pt

    data = placeholder_data(spec) if data is None else data
    K, d = spec.n_components, spec.n_features
    with pm.Model() as model:
        w = _weights(spec, data)
        mu = _means(spec)
        sigma, chols = _component_scales(spec, data)
        for i, observed in enumerate(model_patterns(spec)):
            x = pm.Data(f"x_{i}", np.asarray(data[f"x_{i}"], dtype=float))
            o = np.asarray(observed)
            if len(o) == d:
                comps = [pm.MvNormal.dist(mu=mu[k], chol=chols[k]) for k in range(K)]
            elif sigma is not None:
                comps = [pm.MvNormal.dist(mu=mu[k][o], chol=pt.diag(sigma[k][o])) for k in range(K)]
            else:
                covs = [c @ c.T for c in chols]
                comps = [pm.MvNormal.dist(mu=mu[k][o], cov=covs[k][o][:, o]) for k in range(K)]
            pm.Mixture(f"obs_{i}", w=w, comp_dists=comps, observed=x)
    return model


def build_impute_model(spec: ModelSpec, z: np.ndarray, data: dict[str, np.ndarray]) -> pm.Model:
    """The complete-data mixture (full or diag, d > 1) with ``z`` (n, d), NaN where missing,
    as a masked observation: PyMC adds the latent ``obs_unobserved``. data: "w_fixed" /
    "chol_fixed" as in ``models.build_model`` (no "x": the data are constants here)."""
    import pymc as pm

    K = spec.n_components
    with pm.Model() as model, warnings.catch_warnings():
        warnings.simplefilter("ignore", pm.ImputationWarning)  # imputing is the point here
        w = _weights(spec, data)
        mu = _means(spec)
        _, chols = _component_scales(spec, data)
        comps = [pm.MvNormal.dist(mu=mu[k], chol=chols[k]) for k in range(K)]
        pm.Mixture("obs", w=w, comp_dists=comps, observed=np.ma.masked_invalid(z))
    return model


def predictive_imputations(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    X: np.ndarray,
    rng: np.random.Generator,
    max_draws: int = 200,
) -> np.ndarray:
    """(n, d) X with each missing value replaced by its posterior predictive mean, estimated
    from at most ``max_draws`` posterior draws spread evenly over all chains.

    weights (C, S, K), means (C, S, K, d), covariances (C, S, K, d, d): draws in X's units.
    Each kept draw imputes every missing value once (component, then conditional normal)."""
    flat_w = weights.reshape(-1, weights.shape[-1])
    flat_mu = means.reshape(-1, *means.shape[-2:])
    flat_cov = covariances.reshape(-1, *covariances.shape[-3:])
    keep = np.unique(np.linspace(0, len(flat_w) - 1, min(max_draws, len(flat_w))).astype(int))
    total = np.zeros_like(X, dtype=float)
    for s in keep:
        params = MixtureParams(flat_w[s], flat_mu[s], flat_cov[s])
        total += draw_missing(params, X, rng)
    return np.where(np.isnan(X), total / len(keep), X)

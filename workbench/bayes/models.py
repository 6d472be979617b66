"""PyMC mixture models whose data live in ``pm.Data``, so one compiled model fits many data sets.

Every model works on *standardised* data ``z = (x - loc) / scale`` (``loc``, ``scale``: (d,),
chosen by the caller; ``loc = 0, scale = 1`` means no standardisation). The priors below are
therefore stated in units of ``scale`` (the data's standard deviation by default), which is what
"weakly informative, scaled to the data" means here:

- ``weights ~ Dirichlet(prior_weights_alpha * ones(K))``. Default alpha = 1: uniform on the
  simplex, no pull towards equal or sparse weights.
- ``means[k, j] ~ Normal(prior_mean_loc, prior_mean_scale)``. Defaults 0 and 2: the component
  means lie within +-2 data standard deviations of the data mean with 68% prior mass and within
  +-4 with 95%, which covers every component that can matter for the data while excluding
  absurd values.
- 1-D ``sigma[k] ~ HalfNormal(prior_scale_scale)``. Default 1: a component's standard deviation
  cannot exceed the data's, and HalfNormal(1) puts 68% mass below it while allowing tiny scales.
- d > 1 ``chol[k] ~ LKJCholeskyCov(eta=prior_lkj_eta, sd_dist=HalfNormal(prior_scale_scale))``.
  Default eta = 2: mild shrinkage towards uncorrelated components, density zero at +-1
  correlations (degenerate ellipses).

Identifiability: in 1-D ``identifiability="ordered"`` puts the ``ordered`` transform on the
means (labels are then defined by the order of the means); ``"none"`` keeps the exchangeable
prior and its K! label modes. For d > 1 the model is always exchangeable; labels are identified
after sampling by relabelling each draw to a pivot (see ``diagnostics.relabel``).
Known weights or covariances (the EM fixed-parameter options) enter as ``pm.Data`` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pymc and pytensor load only when a model is built (fast `workbench --help`)
    import pymc as pm
    import pytensor.tensor as pt


@dataclass(frozen=True)
class ModelSpec:
    """Everything that changes the model graph; the key of the compile cache.

    n_components: K. n_features: d. The prior numbers are in standardised units (module doc).
    covariance_type: ``full`` (LKJ) or ``diag`` (``sigma[k, j] ~ HalfNormal(prior_scale_scale)``;
    d > 1 only, built by :mod:`workbench.bayes.missing`). patterns: None for the model of
    complete data, else the missingness patterns it is built for (each a sorted tuple of
    observed coordinates; :mod:`workbench.bayes.missing`), part of the compile key.
    """

    n_components: int
    n_features: int
    identifiability: str = "ordered"
    covariance_type: str = "full"
    patterns: tuple[tuple[int, ...], ...] | None = None
    fixed_weights: bool = False
    fixed_covariances: bool = False
    prior_weights_alpha: float = 1.0
    prior_mean_loc: float = 0.0
    prior_mean_scale: float = 2.0
    prior_scale_scale: float = 1.0
    prior_lkj_eta: float = 2.0

    @property
    def ordered(self) -> bool:
        """Whether the ordered transform is in the model (1-D, K > 1, ``ordered``)."""
        return self.identifiability == "ordered" and self.n_features == 1 and self.n_components > 1

    @property
    def diagonal(self) -> bool:
        """Free diagonal covariances in d > 1 (``sigma`` (K, d) in the trace)."""
        return self.covariance_type == "diag" and self.n_features > 1

    @property
    def weights_are_data(self) -> bool:
        """Weights enter as data: known weights, or K = 1 (weight 1)."""
        return self.fixed_weights or self.n_components == 1

    def free_names(self) -> list[str]:
        """Names of the free random variables that the trace keeps."""
        names = [] if self.weights_are_data else ["w"]
        names.append("mu")
        if not self.fixed_covariances:
            if self.n_features == 1 or self.diagonal:
                names.append("sigma")
            else:
                names += [f"chol_{k}" for k in range(self.n_components)]
        return names


def placeholder_data(spec: ModelSpec, n: int = 10) -> dict[str, np.ndarray]:
    """Data of the right ranks to build a model before any real data set is seen."""
    K, d = spec.n_components, spec.n_features
    if spec.patterns is not None or spec.diagonal:  # one array per missingness pattern
        patterns = spec.patterns if spec.patterns is not None else (tuple(range(d)),)
        data = {f"x_{i}": np.zeros((n, len(o))) for i, o in enumerate(patterns)}
    else:
        data = {"x": np.linspace(-1.0, 1.0, n) if d == 1 else np.zeros((n, d))}
    if spec.weights_are_data:
        data["w_fixed"] = np.full(K, 1.0 / K)
    if spec.fixed_covariances:
        if d == 1:
            data["sigma_fixed"] = np.ones(K)
        else:
            data["chol_fixed"] = np.broadcast_to(np.eye(d), (K, d, d)).copy()
    return data


def build_model(spec: ModelSpec, data: dict[str, np.ndarray] | None = None) -> pm.Model:
    """The PyMC model for ``spec`` with its data in ``pm.Data``.

    data: "x" (n,) for d = 1 or (n, d); "w_fixed" (K,) when weights are known (or K = 1);
    "sigma_fixed" (K,) (d = 1) or "chol_fixed" (K, d, d) lower Cholesky factors when covariances
    are known. All standardised. Placeholders are used when ``data`` is None. A spec with
    patterns or diagonal covariances is ``missing.build_marginal_model``'s (data "x_0", "x_1",
    ... per pattern instead of "x"; :func:`workbench.bayes.sampling.model_of` chooses).
    """
    import pymc as pm

    if spec.patterns is not None or spec.diagonal:
        raise ValueError(
            f"spec={spec!r}: patterns or diagonal covariances: build it with "
            "workbench.bayes.missing.build_marginal_model"
        )

    data = placeholder_data(spec) if data is None else data
    K, d = spec.n_components, spec.n_features
    with pm.Model() as model:
        x = pm.Data("x", np.asarray(data["x"], dtype=float))
        if spec.weights_are_data:
            w = pm.Data("w_fixed", np.asarray(data["w_fixed"], dtype=float))
        else:
            w = pm.Dirichlet("w", a=np.full(K, spec.prior_weights_alpha))
        mu = _means(spec)
        if d == 1:
            if spec.fixed_covariances:
                sigma = pm.Data("sigma_fixed", np.asarray(data["sigma_fixed"], dtype=float))
            else:
                sigma = pm.HalfNormal("sigma", sigma=spec.prior_scale_scale, shape=K)
            pm.NormalMixture("obs", w=w, mu=mu, sigma=sigma, observed=x)
        else:
            chols = _cholesky_factors(spec, data)
            comps = [pm.MvNormal.dist(mu=mu[k], chol=chols[k]) for k in range(K)]
            pm.Mixture("obs", w=w, comp_dists=comps, observed=x)
    return model


def _means(spec: ModelSpec) -> pt.TensorVariable:
    """Component means: (K,) in 1-D, (K, d) otherwise."""
    import pymc as pm

    K, d = spec.n_components, spec.n_features
    loc, scale = spec.prior_mean_loc, spec.prior_mean_scale
    if spec.ordered:
        init = loc + scale * np.linspace(-0.5, 0.5, K)
        return pm.Normal(
            "mu",
            mu=loc,
            sigma=scale,
            shape=K,
            transform=pm.distributions.transforms.ordered,
            initval=init,
        )
    return pm.Normal("mu", mu=loc, sigma=scale, shape=K if d == 1 else (K, d))


def _cholesky_factors(spec: ModelSpec, data: dict[str, np.ndarray]) -> list[pt.TensorVariable]:
    """K lower Cholesky factors of the component covariances, each (d, d)."""
    import pymc as pm

    K, d = spec.n_components, spec.n_features
    if spec.fixed_covariances:
        chol = pm.Data("chol_fixed", np.asarray(data["chol_fixed"], dtype=float))
        return [chol[k] for k in range(K)]
    chols = []
    for k in range(K):
        packed = pm.LKJCholeskyCov(
            f"chol_{k}",
            n=d,
            eta=spec.prior_lkj_eta,
            sd_dist=pm.HalfNormal.dist(sigma=spec.prior_scale_scale, shape=d),
            compute_corr=False,
        )
        chols.append(pm.expand_packed_triangular(d, packed, lower=True))
    return chols


def unpack_cholesky(packed: np.ndarray, d: int) -> np.ndarray:
    """Packed lower triangles (..., d(d+1)/2) in PyMC's row-major order -> (..., d, d)."""
    packed = np.asarray(packed)
    out = np.zeros(packed.shape[:-1] + (d, d))
    rows, cols = np.tril_indices(d)
    out[..., rows, cols] = packed
    return out


@dataclass(frozen=True)
class Draws:
    """Component parameters per posterior draw, in data units.

    weights: (C, S, K). means: (C, S, K, d). covariances: (C, S, K, d, d). C chains, S draws.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def scales(self) -> np.ndarray:
        """Per-component standard deviations, (C, S, K, d)."""
        return np.sqrt(np.diagonal(self.covariances, axis1=-2, axis2=-1))

    def permuted(self, perms: np.ndarray) -> Draws:
        """Relabelled draws: new component j of draw (c, s) is old component perms[c, s, j]."""
        return Draws(
            np.take_along_axis(self.weights, perms, axis=2),
            np.take_along_axis(self.means, perms[..., None], axis=2),
            np.take_along_axis(self.covariances, perms[..., None, None], axis=2),
        )


def posterior_draws(
    posterior: object,
    spec: ModelSpec,
    data: dict[str, np.ndarray],
    loc: np.ndarray,
    scale: np.ndarray,
) -> Draws:
    """Back-transform a sampled posterior (an xarray Dataset) to data units.

    data: the standardised ``pm.Data`` arrays used for the fit (for known weights or
    covariances). loc, scale: (d,), the standardisation ``x = loc + scale * z``.
    """
    K, d = spec.n_components, spec.n_features
    mu = np.asarray(posterior["mu"])
    C, S = mu.shape[:2]
    mu = mu.reshape(C, S, K, d)
    if spec.weights_are_data:
        w = np.broadcast_to(data["w_fixed"], (C, S, K)).copy()
    else:
        w = np.asarray(posterior["w"])
    if spec.fixed_covariances:
        if d == 1:
            chol = np.asarray(data["sigma_fixed"], dtype=float).reshape(K, 1, 1)
        else:
            chol = np.asarray(data["chol_fixed"], dtype=float)
        chol = np.broadcast_to(chol, (C, S, K, d, d))
    elif d == 1:
        chol = np.asarray(posterior["sigma"]).reshape(C, S, K, 1, 1)
    elif spec.diagonal:
        chol = np.asarray(posterior["sigma"]).reshape(C, S, K, d)[..., None] * np.eye(d)
    else:
        packed = np.stack([np.asarray(posterior[f"chol_{k}"]) for k in range(K)], axis=2)
        chol = unpack_cholesky(packed, d)
    cov_z = chol @ np.swapaxes(chol, -1, -2)
    scale = np.asarray(scale, dtype=float)
    cov = cov_z * scale[:, None] * scale[None, :]
    return Draws(w, np.asarray(loc, dtype=float) + scale * mu, cov)


def sample_prior(spec: ModelSpec, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """One draw of (weights (K,), means (K, d), covariances (K, d, d)) from the prior, in
    standardised units, labelled as the model labels them (ascending means when ordered).

    Known weights or covariances are not drawn (returned as None).
    """
    K, d = spec.n_components, spec.n_features
    w = None if spec.weights_are_data else rng.dirichlet(np.full(K, spec.prior_weights_alpha))
    mu = rng.normal(spec.prior_mean_loc, spec.prior_mean_scale, size=(K, d))
    cov = None
    if not spec.fixed_covariances:
        if d == 1:
            cov = (spec.prior_scale_scale * np.abs(rng.standard_normal(K)))[:, None, None] ** 2
        elif spec.diagonal:
            sd = spec.prior_scale_scale * np.abs(rng.standard_normal((K, d)))
            cov = sd[:, :, None] ** 2 * np.eye(d)
        else:
            cov = np.stack([_lkj_covariance(spec, rng) for _ in range(K)])
    if spec.ordered:  # the ordered prior is the iid prior sorted, components kept together
        order = np.argsort(mu[:, 0])
        mu = mu[order]
        w = None if w is None else w[order]
        cov = None if cov is None else cov[order]
    return w, mu, cov


def _lkj_covariance(spec: ModelSpec, rng: np.random.Generator) -> np.ndarray:
    """A (d, d) covariance with LKJ(eta) correlation (onion method) and HalfNormal sds."""
    d, eta = spec.n_features, spec.prior_lkj_eta
    beta = eta + (d - 2) / 2.0
    r = 2.0 * rng.beta(beta, beta) - 1.0
    corr = np.array([[1.0, r], [r, 1.0]])
    for k in range(2, d):
        beta -= 0.5
        y = rng.beta(k / 2.0, beta)
        u = rng.standard_normal(k)
        w = np.sqrt(y) * u / np.linalg.norm(u)
        a = np.linalg.cholesky(corr) @ w
        corr = np.block([[corr, a[:, None]], [a[None, :], np.ones((1, 1))]])
    sd = spec.prior_scale_scale * np.abs(rng.standard_normal(d))
    return corr * sd[:, None] * sd[None, :]

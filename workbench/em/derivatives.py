"""Derivatives of any model's EM map and log-likelihood in its free-parameter vector.

The Jacobian of the EM map (its spectral radius is EM's linear rate: the fraction of missing
information, Dempster, Laird & Rubin 1977) by ``scipy.differentiate.jacobian``, and the Hessian
of the log-likelihood (minus it is the observed information behind standard errors) by the
symmetric four-point central difference. Every batch of perturbed parameter vectors goes
through the one loop at once, as restarts: the map with max_iter = 1, the log-likelihood with
max_iter = 0.

Why the Hessian is not ``scipy.differentiate.hessian``: that nests two Jacobians and so
evaluates the log-likelihood at about (order + 1)^2 p^2 points where the symmetric stencil
needs 2 p (p + 1); measured at p = 5 and 11 (1-D K = 2, 2-D K = 2, full covariances) it took
9x and 8x longer at order 2 with the same accuracy (3e-8 relative against the closed-form
information of one Gaussian), 20x / 18x at order 4, and it would run inside every fit that
reports intervals.

The Jacobian's steps are fractions of each coordinate's own size (:func:`scales`), so its
spectral radius no longer depends on the data's units: the former steps of 1e-6 max(1, |theta|)
stepped a variance of 1e-6 (data in units 1000 times too large) out of the parameter space and
gave NaN. Its cost, measured (best of 7, full covariances, n = 300-500): 3.6 / 5.0 / 7.2 ms at
p = 5 / 11 / 17 against 0.8 / 2.9 / 2.5 ms for the former two-point central difference (scipy
evaluates the centre p times and 4 p points around it, the two-point formula 2 p); on
``experiments/local_optima_quick.toml`` (122 Jacobians for the saddle check of the reference
bank) about 2.4 s against 0.9 s in a run of ~9 s; the eighth-order stencil would cost 4.3 s.
Accuracy against the closed-form Jacobian of a means-only map (1-D, K = 2): 3.8e-12, against
9.5e-10 for the former formula. The Hessian keeps steps of 1e-4 max(1, |theta|) (so standard
errors of data in tiny units are still NaN, as before).

Generic over models: they need only the seam's ``to_vector``/``from_vector``
(:class:`workbench.em.model.EMModel`).
"""

from __future__ import annotations

import numpy as np
from scipy import differentiate

from workbench.em import loop
from workbench.em.model import EMModel

# scipy.differentiate.jacobian: one pass of its fourth-order central stencil (steps h and h/2
# each side, h = JACOBIAN_STEP * the coordinate's scale). Its refinement passes halve h until two
# estimates agree to rtol; on the EM map (round-off ~1e-13 relative) they only chase noise to
# smaller steps (measured at order 8: error 1e-12 after two passes, 8e-13 after one).
JACOBIAN_STEP, JACOBIAN_ORDER = 1e-3, 4
SCALE_FLOOR = 1e-3  # a coordinate's scale: at least this times the median nonzero |theta_j|
HESSIAN_STEP = 1e-4  # relative to max(1, |theta|)


def _params_of(model: EMModel, vectors: np.ndarray, template: tuple, cfg):
    """(batch of the vectors that lie in the parameter space, which ones (V,) bool)."""
    out = [model.copy_new(template) for _ in vectors]
    ok = np.array(
        [bool(model.from_vector(v, template, cfg, o)) for v, o in zip(vectors, out, strict=True)],
        dtype=bool,
    )
    if not ok.any():
        return None, ok
    return model.stack([o for o, good in zip(out, ok, strict=True) if good]), ok


def vector_of(model: EMModel, params_one: tuple, cfg) -> np.ndarray:
    """The free-parameter vector of one restart's parameters."""
    out = np.zeros(model.vector_size(params_one, cfg))
    model.to_vector(params_one, cfg, out)
    return out


def map_vectors(model: EMModel, X, cfg, template: tuple, vectors: np.ndarray):
    """One EM iteration from each vector (V, p) through the loop: (F(v) (V, p), objective at
    v (V,)); NaN rows (and -inf) where v is outside the parameter space or its next state is
    degenerate (the loop then keeps v)."""
    vectors = np.atleast_2d(vectors)
    mapped, objective = np.full(vectors.shape, np.nan), np.full(len(vectors), -np.inf)
    batch, ok = _params_of(model, vectors, template, cfg)
    if batch is None:
        return mapped, objective
    run = loop.run(model, X, batch, cfg, loop.LoopSettings(max_iter=1, tol=0.0))
    for i, r in enumerate(np.flatnonzero(ok)):
        if run.status[i] == "degenerate":
            continue
        mapped[r] = vector_of(model, model.take(run.params, i), cfg)
        objective[r] = run.traces[i][0]
    return mapped, objective


def logliks(model: EMModel, X, cfg, template: tuple, vectors: np.ndarray) -> np.ndarray:
    """The log-likelihood at each vector (V,), NaN outside the parameter space."""
    vectors = np.atleast_2d(vectors)
    values = np.full(len(vectors), np.nan)
    batch, ok = _params_of(model, vectors, template, cfg)
    if batch is not None:
        values[ok] = loop.run(model, X, batch, cfg, loop.LoopSettings(max_iter=0)).loglik
    return values


def scales(theta: np.ndarray) -> np.ndarray:
    """The scale of each coordinate (p,), which the steps are fractions of: its own size, so
    that steps follow the data's units (a variance of 1e-6 is stepped by a fraction of itself,
    a weight by a fraction of the weight), at least SCALE_FLOOR times the median nonzero size
    (a mean at 0 still gets a step of the vector's order)."""
    size = np.abs(theta)
    nonzero = size[size > 0]
    floor = SCALE_FLOOR * float(np.median(nonzero)) if nonzero.size else 1.0
    return np.maximum(size, floor)


def _scaled_batch(function, theta: np.ndarray):
    """(``function`` of a batch of vectors (V, p) -> (V, q) as scipy.differentiate.jacobian
    calls it, in scaled coordinates u = theta / scale: points u (p, *batch) -> values
    (q, *batch); the :func:`scales`), so that one relative step suits every coordinate."""
    scale = scales(theta)

    def over_points(points: np.ndarray) -> np.ndarray:
        batch = points.shape[1:]
        values = function(np.moveaxis(points, 0, -1).reshape(-1, theta.size) * scale)
        return np.moveaxis(values.reshape(*batch, -1), -1, 0)

    return over_points, scale


def map_jacobian(model: EMModel, X, cfg, params_one: tuple, rel_step: float = JACOBIAN_STEP):
    """Jacobian of the EM map at ``params_one``, (p, p), by scipy.differentiate.jacobian (its
    largest step ``rel_step`` times each coordinate's scale, :func:`_scaled_batch`); NaN
    entries where a step leaves the parameter space."""
    theta = vector_of(model, params_one, cfg)
    if theta.size == 0:
        return np.zeros((0, 0))

    def mapped(vectors: np.ndarray) -> np.ndarray:
        return map_vectors(model, X, cfg, params_one, vectors)[0]

    function, scale = _scaled_batch(mapped, theta)
    with np.errstate(invalid="ignore"):  # NaN rows outside the parameter space stay NaN
        result = differentiate.jacobian(
            function, theta / scale, initial_step=rel_step, order=JACOBIAN_ORDER, maxiter=1
        )
    return result.df / scale


def rate(model: EMModel, X, cfg, params_one: tuple) -> float:
    """Spectral radius of the EM map's Jacobian at ``params_one``: the theoretical linear rate
    (NaN when the Jacobian cannot be formed)."""
    jac = map_jacobian(model, X, cfg, params_one)
    if jac.size == 0 or not np.all(np.isfinite(jac)):
        return np.nan
    return float(np.max(np.abs(np.linalg.eigvals(jac))))


def observed_information(model: EMModel, X, cfg, params_one: tuple, rel_step: float = HESSIAN_STEP):
    """Minus the Hessian of the log-likelihood at ``params_one``, (p, p), by the symmetric
    four-point central difference (steps ``rel_step * max(1, |theta|)``: a second difference
    needs steps well above round-off, which the :func:`scales` of a mean near 0 are not)."""
    theta = vector_of(model, params_one, cfg)
    steps = rel_step * np.maximum(1.0, np.abs(theta))
    p = theta.size
    pairs = [(i, j) for i in range(p) for j in range(i, p)]
    points = []
    for i, j in pairs:
        ei, ej = np.zeros(p), np.zeros(p)
        ei[i], ej[j] = steps[i], steps[j]
        points += [theta + ei + ej, theta + ei - ej, theta - ei + ej, theta - ei - ej]
    if not points:
        return np.zeros((0, 0))
    values = logliks(model, X, cfg, params_one, np.array(points)).reshape(-1, 4)
    hessian = np.empty((p, p))
    for (i, j), (pp, pm, mp, mm) in zip(pairs, values, strict=True):
        hessian[i, j] = hessian[j, i] = (pp - pm - mp + mm) / (4 * steps[i] * steps[j])
    return -hessian


def standard_errors(model: EMModel, X, cfg, params_one: tuple) -> np.ndarray:
    """Standard errors of the free parameters (p,) from the inverse observed information (NaN
    where it is singular or a variance is not positive)."""
    information = observed_information(model, X, cfg, params_one)
    try:
        covariance = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        return np.full(len(information), np.nan)
    diagonal = np.diag(covariance)
    return np.sqrt(np.where(diagonal > 0, diagonal, np.nan))

"""Derivatives of any model's EM map and log-likelihood in its free-parameter vector.

The Jacobian of the EM map (its spectral radius is EM's linear rate: the fraction of missing
information, Dempster, Laird & Rubin 1977) and the Hessian of the log-likelihood (minus it is
the observed information behind standard errors) by central differences. Every batch of
perturbed parameter vectors goes through the one loop at once, as restarts: the map with
max_iter = 1, the log-likelihood with max_iter = 0. Steps are fractions of
max(unit, |theta|) per coordinate, the unit from the seam's ``vector_units`` (1 for a weight,
the data's sd for a mean, its variance for a covariance entry), so that they follow the data's
units (a fixed floor of 1 left the parameter space for data in units far below 1: NaN).

Why not ``scipy.differentiate`` (measured for issue 15): its Jacobian gains accuracy only
through larger steps (order 4, steps 1e-3 of each coordinate's size: 3.8e-12 against the
closed-form Jacobian of a means-only map, where the two-point formula gives 9.5e-10), and
steps that large are too large for a location coordinate far from 0: on
``experiments/local_optima_quick.toml`` (means near 150, unit variances) its largest
eigenvalue was off by 1e-5 where the two-point formula at 1e-6 and 1e-7 and an eighth-order
estimate at 3e-3 agree to 1e-8. At the two-point formula's small steps its higher orders gain
nothing, and it costs 3-7x as much (3.6 / 5.0 / 7.2 ms against 0.8 / 2.9 / 2.5 ms at p = 5 /
11 / 17: it evaluates the centre p times besides its 2 p or 4 p points; 2.4-3.5 s against
0.9-1.1 s in the 122 Jacobians of local_optima_quick's saddle checks, a run of ~9-14 s). Its
Hessian nests two Jacobians: about (order + 1)^2 p^2 evaluations where the symmetric stencil
needs 2 p (p + 1), 8-9x the time at order 2 with the same accuracy at p = 5 and 11.

Generic over models: they need only the seam's ``to_vector``/``from_vector``
(:class:`workbench.em.model.EMModel`).
"""

from __future__ import annotations

import numpy as np

from workbench.em import loop
from workbench.em.model import EMModel
from workbench.status import EMStatus

JACOBIAN_STEP = 1e-6  # relative to max(unit, |theta|), per coordinate (see the module doc)
HESSIAN_STEP = 1e-4


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
        if run.status[i] == EMStatus.DEGENERATE:
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


def steps_of(model: EMModel, X, cfg, params_one: tuple, theta, rel_step: float) -> np.ndarray:
    """Difference steps (p,): ``rel_step * max(unit, |theta|)`` per coordinate (units from
    the model's ``vector_units``; 1 where a unit is not a positive number)."""
    units = np.asarray(model.vector_units(X, params_one, cfg), dtype=float)
    units = np.where(np.isfinite(units) & (units > 0), units, 1.0)
    return rel_step * np.maximum(units, np.abs(theta))


def map_jacobian(model: EMModel, X, cfg, params_one: tuple, rel_step: float = JACOBIAN_STEP):
    """Central-difference Jacobian of the EM map at ``params_one``, (p, p), steps
    :func:`steps_of`; NaN entries where a step leaves the parameter space."""
    theta = vector_of(model, params_one, cfg)
    p = theta.size
    if p == 0:
        return np.zeros((0, 0))
    h = steps_of(model, X, cfg, params_one, theta, rel_step)
    steps = np.concatenate([np.diag(h), -np.diag(h)])
    mapped, _ = map_vectors(model, X, cfg, params_one, theta + steps)
    return ((mapped[:p] - mapped[p:]) / (2 * h)[:, None]).T


def rate(model: EMModel, X, cfg, params_one: tuple) -> float:
    """Spectral radius of the EM map's Jacobian at ``params_one``: the theoretical linear rate
    (NaN when the Jacobian cannot be formed)."""
    jac = map_jacobian(model, X, cfg, params_one)
    if jac.size == 0 or not np.all(np.isfinite(jac)):
        return np.nan
    return float(np.max(np.abs(np.linalg.eigvals(jac))))


def observed_information(model: EMModel, X, cfg, params_one: tuple, rel_step: float = HESSIAN_STEP):
    """Minus the Hessian of the log-likelihood at ``params_one``, (p, p), by the symmetric
    four-point central difference, steps :func:`steps_of`."""
    theta = vector_of(model, params_one, cfg)
    steps = steps_of(model, X, cfg, params_one, theta, rel_step)
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

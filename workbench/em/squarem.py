"""SQUAREM: squared extrapolation of the EM map (Varadhan & Roland 2008, scheme SqS3).

One cycle from theta0 with theta1 = F(theta0) known: theta2 = F(theta1), r = theta1 - theta0,
v = theta2 - theta1 - r, step a = ||r|| / ||v|| (each entry in the data's units,
:func:`workbench.em.vector.vector_units`, so that no unit of the data changes a step) clipped
to [1, a_max], theta' = theta0 + 2 a r + a^2 v, then a stabilising EM step
theta_new = F(theta'). a_max starts at 1 and grows 4x each
time it is reached, as in the R package SQUAREM. If theta' leaves the parameter space or
theta_new lowers the objective, the cycle falls back to plain EM (theta' = theta2, a = 1) and
a_max shrinks 4x, so every cycle is monotone. The F evaluation at theta_new that checks it also
starts the next cycle. Restarts run one after another (each has its own step lengths).
"""

from __future__ import annotations

import time

import numpy as np

from workbench.em.fit import (
    NUMPY_ENGINE,
    EMRun,
    EMSettings,
    EMState,
    Engine,
    converged,
    label_solutions,
    step,
)
from workbench.em.vector import em_map, from_vector, to_vector, vector_units

STEP_MAX_START = 1.0  # bound on the step length, grown x4 when reached (R package SQUAREM)
STEP_FACTOR = 4.0


def run_squarem(X, start: EMState, settings: EMSettings, engine: Engine = NUMPY_ENGINE) -> EMRun:
    """SQUAREM from every restart in ``start``. ``n_iter`` counts EM-map evaluations; the
    trace holds the objective at the start of every cycle."""
    t0 = time.perf_counter()
    runs = [
        _one(X, EMState(*(a[r : r + 1] for a in start)), settings, engine)
        for r in range(start.means.shape[0])
    ]
    states = [run[0] for run in runs]
    state = EMState(*(np.concatenate([s[j] for s in states]) for j in range(4)))
    col = list(zip(*[run[1:] for run in runs], strict=True))
    traces, n_evals, statuses = col[0], col[1], col[2]
    objective = np.array([t[-1] for t in traces])
    run = EMRun(
        state=state,
        loglik=np.array(col[3]),
        objective=objective,
        n_iter=np.array(n_evals),
        status=np.array(statuses),
        degenerate_component=np.full(len(runs), -1),
        degenerate_kind=np.array(["nan" if s == "degenerate" else "" for s in statuses]),
        traces=[np.asarray(t) for t in traces],
        n_decreases=np.zeros(len(runs), dtype=int),
        max_decrease=np.zeros(len(runs)),
        wall_time=0.0,
        nk=np.concatenate(col[4]),
    )
    run = label_solutions(run, settings, X.var(axis=0))
    return run._replace(wall_time=time.perf_counter() - t0)


def _one(X, state: EMState, settings: EMSettings, engine: Engine):
    data_variance = X.var(axis=0)

    def F(theta):
        return em_map(X, theta, state, settings, engine, data_variance)

    theta0 = to_vector(state, settings)
    unit = vector_units(state, settings, data_variance)  # step lengths in the data's units
    theta1, obj0 = F(theta0)
    evals, trace, status, step_max = 1, [obj0], "max_iter", STEP_MAX_START
    if theta1 is None or not np.isfinite(obj0):
        nk = np.full(state.weights.shape, np.nan)
        return state, [obj0], evals, "degenerate", obj0, nk
    while evals < settings.max_iter:
        theta2, _ = F(theta1)
        evals += 1
        if theta2 is None:
            status = "degenerate"
            break
        r = theta1 - theta0
        v = theta2 - theta1 - r
        norm_v = np.linalg.norm(v / unit)
        ratio = np.linalg.norm(r / unit) / norm_v if norm_v > 0 else 1.0
        step = float(np.clip(ratio, 1.0, step_max))
        candidate = theta2 if step == 1.0 else theta0 + 2 * step * r + step**2 * v
        accepted = _stabilise(F, candidate, obj0, settings)
        evals += accepted[3]
        step_max = step_max * STEP_FACTOR if step == step_max else step_max
        if accepted[0] is None and step > 1.0:  # fall back to plain EM: theta2 (monotone)
            step_max = max(STEP_MAX_START, step_max / STEP_FACTOR)
            accepted = _stabilise(F, theta2, -np.inf, settings)
            evals += accepted[3]
        if accepted[0] is None:
            status = "degenerate"
            break
        stabilised, next_theta1, obj_new, _ = accepted
        done = converged(obj_new - obj0, X.shape[0], settings.tol)
        theta0, theta1, obj0 = stabilised, next_theta1, obj_new
        trace.append(obj0)
        if done:
            status = "converged"
            break
    final = from_vector(theta0, state, settings, data_variance)
    loglik, nk = _loglik(X, theta0, state, settings, data_variance, engine)
    return final, trace, evals, status, loglik, nk


def _stabilise(F, candidate, obj0: float, settings: EMSettings):
    """theta_new = F(candidate) and F(theta_new) with its objective; (None, ...) when outside
    the parameter space or below obj0. Returns (theta_new, F(theta_new), objective, evals)."""
    stabilised, _ = F(candidate)
    if stabilised is None:
        return None, None, -np.inf, 1
    next_theta1, obj_new = F(stabilised)
    if next_theta1 is None or obj_new < obj0 - settings.decrease_tol * abs(obj0):
        return None, None, -np.inf, 2
    return stabilised, next_theta1, obj_new, 2


def _loglik(X, theta, template, settings, data_variance, engine):
    """Log-likelihood (float) and expected counts (1, K) at theta."""
    state = from_vector(theta, template, settings, data_variance)
    _, info = step(X, state, settings, data_variance, engine)
    return float(info.loglik[0]), info.nk

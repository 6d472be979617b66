"""What a verdict of "local optimum" is measured against: the best known optimum of a data set
and model, found by a bank of diverse EM starts, and polishing (EM continued to a tight tolerance
so that a fit is judged at its fixed point, not wherever its stopping rule left it).

The bank: EM from the truth (when the data set has a truth with the fitted K and d) and from
``starts`` (initialisation name -> number of starts). Its random starts are seeded from the data
themselves (a hash of X), so every cell fitting the same data set with the same settings gets the
same bank, whichever initialisation the cell itself uses. The best bank run is polished.
"""

from __future__ import annotations

import hashlib

import numpy as np

from workbench.em.covariance.registry import strategy
from workbench.em.init import INITS, mean_imputed, small_em
from workbench.em.loop import restart_scores
from workbench.em.run import EMRun, EMSettings, EMState, init_state, run_em
from workbench.em.theory import single_state
from workbench.em.vector import jacobian
from workbench.fitter_interface import BestKnown, PolishedRestarts
from workbench.params import MixtureParams
from workbench.status import EMStatus

# Polishing: stop when |L_t - L_{t-1}| < POLISH_TOL * n (the stopping rule of workbench.em.run, in
# nats per point). With a linear rate r <= 0.999 the distance left to the fixed point is below
# POLISH_TOL * n * r / (1 - r) <= 1e-9 n nats, of the order of a tenth of
# the verdict's relative log-likelihood tolerance (workbench.evaluate); 1e-12 is still ~100x above
# the round-off of an n-term log-likelihood sum. A run that needs more than POLISH_MAX_ITER further
# iterations is left "unresolved" rather than guessed.
POLISH_TOL = 1e-12
POLISH_MAX_ITER = 2000
# Stability is checked (EM-map Jacobian) for polished restarts more than this many nats below
# the best known optimum: the verdict's own tolerance is never smaller.
STABILITY_GAP = 1e-6
# spikes: K data points as narrow spike components (scikit-learn's random_from_data), which find
# optima with narrow components that broad starts miss.
DEFAULT_STARTS = {"kmeans++": 4, "random_from_data": 4, "spikes": 4}


def data_rng(X: np.ndarray) -> np.random.Generator:
    """A generator seeded by the bytes of X: the same data give the same bank in every cell."""
    digest = hashlib.sha256(np.ascontiguousarray(X, dtype=float).tobytes()).digest()
    return np.random.default_rng(np.frombuffer(digest, dtype=np.uint32))


def bank_starts(X, K, settings: EMSettings, starts: dict, truth_start) -> tuple:
    """Starting (weights, means, covariances) of the bank and a source label per start."""
    rng = data_rng(X)
    X = mean_imputed(X)  # the starts (EM itself uses the observed values only)
    parts, labels = [], []
    if truth_start is not None:
        parts.append(truth_start)
        labels.append("truth")
    for name, count in starts.items():
        if not count:
            continue
        if name == "small_em":
            w, m, full = small_em(X, K, count, rng, settings)
        else:
            w, m, full = INITS[name](X, K, count, rng)
        parts.append((w, m, strategy(settings.covariance_type).from_full(full, w)))
        labels += [name] * count
    if not parts:
        return None, []
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True)), labels


def polish(X: np.ndarray, state: EMState, settings: EMSettings) -> EMRun:
    """Plain EM continued from ``state`` (a batch) to POLISH_TOL, at most POLISH_MAX_ITER steps."""
    tight = settings._replace(
        tol=min(settings.tol, POLISH_TOL), max_iter=POLISH_MAX_ITER, squarem=False
    )
    start = init_state(state.weights, state.means, state.covariances, tight, np.nanvar(X, axis=0))
    return run_em(X, start, tight)


def _params(state: EMState, r: int, cov_type: str) -> MixtureParams:
    return MixtureParams(state.weights[r], state.means[r], state.covariances[r], cov_type)


def polish_restarts(X, run: EMRun, settings: EMSettings) -> PolishedRestarts:
    """Every non-degenerate restart of ``run`` polished; degenerate ones are left as they are."""
    R = len(run.status)
    ok = np.flatnonzero(run.status != EMStatus.DEGENERATE)
    loglik = np.full(R, np.nan)
    status = np.full(R, EMStatus.DEGENERATE, dtype=object)
    n_iter = np.zeros(R, dtype=int)
    params: list[MixtureParams | None] = [None] * R
    if ok.size:
        state = EMState(*(a[ok] for a in run.state))
        polished = polish(X, state, settings)
        loglik[ok], status[ok], n_iter[ok] = polished.loglik, polished.status, polished.n_iter
        for i, r in enumerate(ok):
            params[r] = _params(polished.state, i, settings.covariance_type)
    return PolishedRestarts(loglik, status.astype(str), n_iter, params)


def bank_optimum(
    X, K, settings: EMSettings, starts: dict, truth_start=None
) -> tuple[BestKnown | None, float]:
    """(the best polished fit of the bank, the log-likelihood EM reached from the truth (NaN
    without a truth start)). The bank: EM from the truth and the named starts."""
    begin, labels = bank_starts(X, K, settings, starts, truth_start)
    if begin is None:
        return None, np.nan
    fits = run_em(X, init_state(*begin, settings, np.nanvar(X, axis=0)), settings)
    truth_loglik = float(fits.loglik[0]) if truth_start is not None else np.nan
    score = restart_scores(fits.status, fits.loglik)
    if not np.isfinite(score).any():
        return None, truth_loglik
    best = int(np.argmax(score))
    polished = polish(X, EMState(*(a[best : best + 1] for a in fits.state)), settings)
    if polished.status[0] == EMStatus.DEGENERATE or not np.isfinite(polished.loglik[0]):
        polished, best_state = fits, best  # keep the unpolished best
    else:
        best_state = 0
    params = _params(polished.state, best_state, settings.covariance_type)
    optimum = BestKnown(float(polished.loglik[best_state]), params, labels[best], len(labels))
    return optimum, truth_loglik


def max_eigenvalue(X, params: MixtureParams, settings: EMSettings) -> float:
    """Largest real eigenvalue of the EM map's Jacobian (:func:`workbench.em.vector.jacobian`)
    at ``params``: below 1 at a local maximum, above 1 at a saddle. NaN when it cannot be
    formed."""
    state = single_state(params.weights, params.means, params.covariances, settings, X)
    with np.errstate(all="ignore"):
        jac = jacobian(X, state, settings)
        if jac.size == 0 or not np.all(np.isfinite(jac)):
            return np.nan
        eig = np.linalg.eigvals(jac)
    return float(np.max(eig.real))


def with_stability(
    X, polished: PolishedRestarts, reference: float, settings: EMSettings
) -> PolishedRestarts:
    """``polished`` with ``max_eigenvalue`` filled in for the restarts more than STABILITY_GAP
    nats below ``reference`` (the only ones a verdict could call a local optimum); restarts at
    the same polished log-likelihood (to 1e-10 relative: the same fixed point, up to labels)
    share one computation."""
    eig = np.full(len(polished.loglik), np.nan)
    below = np.isfinite(polished.loglik) & (polished.loglik < reference - STABILITY_GAP)
    done: list[tuple[float, float]] = []
    for r in np.flatnonzero(below):
        if polished.params[r] is None or polished.status[r] != EMStatus.CONVERGED:
            continue
        ll = polished.loglik[r]
        same = [e for value, e in done if abs(value - ll) <= 1e-10 * abs(ll)]
        eig[r] = same[0] if same else max_eigenvalue(X, polished.params[r], settings)
        done.append((ll, eig[r]))
    return polished._replace(max_eigenvalue=eig)


def best_known(bank: BestKnown | None, polished: PolishedRestarts | None, n_starts: int):
    """The higher of the bank's optimum and the best polished restart (source ``restart <r>``).
    A restart that ended degenerate, before or during polishing (a spike at the variance floor
    has an unboundedly high likelihood), is never the best known optimum: the bank's rule."""
    best = bank
    if polished is not None:
        usable = np.isfinite(polished.loglik) & (polished.status != EMStatus.DEGENERATE)
        finite = np.where(usable, polished.loglik, -np.inf)
        if finite.size and np.isfinite(finite.max()):
            r = int(np.argmax(finite))
            # ties within round-off keep the bank's source
            if best is None or finite[r] > best.loglik + 1e-10 * abs(best.loglik):
                best = BestKnown(float(finite[r]), polished.params[r], f"restart {r}", n_starts)
    return best

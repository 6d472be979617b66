"""EM for Gaussian mixtures on batches of restarts: the records users and the fitter see, over
the one loop (:mod:`workbench.em.loop`) and the Gaussian model (:mod:`workbench.em.gaussian_model`).

Shapes: X (n, d); weights (R, K); means (R, K, d); covariances and precision factors in the
covariance strategy's shapes with a leading R (:mod:`workbench.em.covariance`).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from workbench.em import loop
from workbench.em.columns import ColumnStats, centred_transpose, column_stats
from workbench.em.covariance import DEFAULT, variance_scale
from workbench.em.covariance.registry import strategy
from workbench.em.gaussian_model import (
    CHUNK_ELEMENTS,
    GaussianConfig,
    chunking,
    finisher,
    gaussian_model,
    n_features,
)
from workbench.em.gaussian_model import KINDS as LOOP_KINDS
from workbench.em.missing_model import MissingConfig, chunk_list, group_by_pattern, missing_model
from workbench.em.products import whole_lines
from workbench.status import DegenerateKind, EMStatus

# Degenerate kinds. Stops: "nan" (a non-finite log-likelihood), "weight" (an expected count fell
# below min_count, free weights only), "covariance" (a variance fell below collapse_tol times the
# data's). Verdicts on the final state of a run that converged or reached max_iter: "floor" (a
# covariance held at the variance floor) and "spurious" (a component with fewer expected points
# than its covariance needs, :func:`min_support`).
DEGENERATE_KINDS = (DegenerateKind.NAN, *LOOP_KINDS, DegenerateKind.FLOOR, DegenerateKind.SPURIOUS)
FLOOR_RTOL = 1e-9  # a covariance within this of its floor is held at it


class Prior(NamedTuple):
    """Conjugate normal-inverse-Wishart prior of Fraley & Raftery (2007) for MAP-EM.

    mean_{k} | S_k ~ N(mean, S_k / shrinkage); S_k ~ inverse-Wishart(dof, scale).
    mean: (d,). scale: (d, d) for full/tied, (d,) for diag, () for spherical.
    """

    shrinkage: float
    mean: np.ndarray
    dof: float
    scale: np.ndarray


def default_prior(X: np.ndarray, n_components: int, covariance_type: str) -> Prior:
    """mclust's ``priorControl()`` defaults: shrinkage 0.01, mean = data mean, dof = d + 2,
    scale = var(data) / K^(2/d) in the covariance type's shape (the matrix, its diagonal, or its
    mean diagonal)."""
    d = X.shape[1]
    cov = np.atleast_2d(np.cov(X, rowvar=False)) / n_components ** (2.0 / d)
    scale = strategy(covariance_type).from_full(cov[None], np.ones(1))[0]
    return Prior(0.01, X.mean(axis=0), d + 2.0, np.asarray(scale))


class EMSettings(NamedTuple):
    """How EM runs. ``fixed_*`` hold parameters at given values in every iteration (shapes as in
    :class:`workbench.params.MixtureParams`, without the restart axis); None leaves them free.

    tol: stop when |L_t - L_{t-1}| < tol * n, L the total log-likelihood (plus log prior for
    MAP-EM): the mean log-likelihood per point changed by less than tol nats. Changes of L do
    not depend on the data's units (L itself shifts by n log|A| under x -> A x).
    reg_covar: the variance floor relative to the data's scale: no variance of a feature below
    reg_covar times that feature's variance in the data (:func:`variance_floor`).
    min_count: with free weights, a component whose expected count n_k falls below this has
    collapsed in weight (with fixed weights its weight cannot collapse and EM goes on).
    collapse_tol: a variance below collapse_tol times the data variance (same dimension) is a
    collapsed covariance. decrease_tol: a decrease of L beyond decrease_tol * |L| is reported
    (EM never decreases L; smaller changes are round-off). symmetric_means: K = 2 with
    mu_2 = -mu_1. squarem: accelerate with SQUAREM (:mod:`workbench.em.loop`).
    """

    covariance_type: str = DEFAULT
    tol: float = 1e-8
    max_iter: int = 1000
    reg_covar: float = 1e-6
    prior: Prior | None = None
    fixed_weights: np.ndarray | None = None
    fixed_means: np.ndarray | None = None
    fixed_covariances: np.ndarray | None = None
    min_count: float = 1e-3
    collapse_tol: float = 1e-10
    decrease_tol: float = 1e-9
    symmetric_means: bool = False
    squarem: bool = False


class EMState(NamedTuple):
    """Batched mixture parameters: weights (R, K), means (R, K, d), covariances (R, ...) and the
    precision factors (R, ...), upper triangular with S^-1 = U U^T (scikit-learn's)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    prec_chol: np.ndarray


class EMRun(NamedTuple):
    """Final batched state and per-restart outcomes of :func:`run_em`."""

    state: EMState
    loglik: np.ndarray  # (R,)
    objective: np.ndarray  # (R,)
    n_iter: np.ndarray  # (R,) number of M-steps applied (SQUAREM: EM-map evaluations)
    status: np.ndarray  # (R,) str
    degenerate_component: np.ndarray  # (R,) int, -1 when none
    degenerate_kind: np.ndarray  # (R,) str: one of DEGENERATE_KINDS, or ""
    traces: list[np.ndarray]  # R arrays of objective per evaluated state (per SQUAREM cycle)
    n_decreases: np.ndarray  # (R,) decreases of L beyond round-off
    max_decrease: np.ndarray  # (R,) largest decrease of L (0 when monotone)
    wall_time: float  # seconds, all restarts
    nk: np.ndarray  # (R, K) expected counts sum_i r_ik under the final state


# ---------------------------------------------------------------------------------------------
# Scales of the data
# ---------------------------------------------------------------------------------------------
def variance_floor(reg_covar: float, data_variance: np.ndarray, covariance_type: str):
    """The variance floor per feature, (d,): ``reg_covar`` times the feature's unit of variance
    (:func:`variance_scale`; one variance per component, spherical, the mean unit). Relative
    floors make EM equivariant under any rescaling of each feature: the same data in other
    units give the same iterations, statuses and verdicts. The floor is applied as the exact
    maximiser of the M-step objective over {S : S - F positive semi-definite} (Ingrassia
    2004), so EM stays monotone, and it changes nothing while it is inactive; scikit-learn's
    ``reg_covar`` instead adds the floor to every diagonal."""
    unit = strategy(covariance_type).variance_unit(variance_scale(data_variance))
    return reg_covar * unit


def converged(change: np.ndarray, n: int, tol: float) -> np.ndarray:
    """The stopping rule: |L_t - L_{t-1}| < tol * n (the mean log-likelihood per point changed
    by less than tol nats; invariant under any change of the data's units)."""
    return np.abs(change) < tol * n


def min_support(settings: EMSettings, d: int) -> float:
    """The fewest expected points a component needs for its covariance to be estimated from
    its own points (the strategy's ``min_support``); one fewer with fixed means (the points need
    not also fix the mean); 0 (no check) with fixed covariances."""
    if settings.fixed_covariances is not None:
        return 0.0
    need = strategy(settings.covariance_type).min_support(d)
    return need - (settings.fixed_means is not None)


# ---------------------------------------------------------------------------------------------
# Between EMState and the model's parameter records
# ---------------------------------------------------------------------------------------------
def _scale_matrix(scale, d: int) -> np.ndarray:
    scale = np.asarray(scale, dtype=float)
    if scale.ndim == 2:
        return scale
    if scale.ndim == 1:
        return np.diag(scale)
    return np.eye(d) * float(scale)


def model_config(
    settings: EMSettings, n: int, K: int, data_variance, shift, second_total=None
) -> GaussianConfig:
    """The compiled model's settings for data of n points (centred by ``shift``)."""
    var = variance_scale(data_variance)
    d = var.size
    unit = strategy(settings.covariance_type).variance_unit(var)
    prior = settings.prior
    m = strategy(settings.covariance_type).n_second(d) + d + 1
    chunk, groups = chunking(n, m, K)
    return GaussianConfig(
        fix_weights=settings.fixed_weights is not None,
        fix_means=settings.fixed_means is not None,
        fix_covariances=settings.fixed_covariances is not None,
        symmetric=bool(settings.symmetric_means),
        min_count=float(settings.min_count),
        floor=np.ascontiguousarray(settings.reg_covar * unit, dtype=float),
        collapse=np.ascontiguousarray(settings.collapse_tol * unit, dtype=float),
        has_prior=prior is not None,
        shrinkage=float(prior.shrinkage) if prior else 0.0,
        prior_mean=(np.asarray(prior.mean, float) - shift) if prior else np.zeros(d),
        dof=float(prior.dof) if prior else 0.0,
        prior_scale=_scale_matrix(prior.scale, d) if prior else np.zeros((d, d)),
        second_total=np.zeros((d, d)) if second_total is None else second_total,
        chunk=chunk,
        groups=groups,
        shift=np.asarray(shift, dtype=float) * np.ones(d),
    )


def _impose_fixed(weights, means, covariances, settings: EMSettings):
    def fixed(value, current):
        if value is None:
            return np.array(current, dtype=float)
        return np.broadcast_to(np.asarray(value, dtype=float), np.shape(current)).copy()

    return (
        fixed(settings.fixed_weights, weights),
        fixed(settings.fixed_means, means),
        fixed(settings.fixed_covariances, covariances),
    )


def to_params(state: EMState | tuple, settings: EMSettings, cfg: GaussianConfig, shift):
    """The model's batched parameter record of (weights, means, covariances) (R-batched), the
    means moved by -shift, precision factors and natural coefficients computed (a collapsed
    covariance gets an identity factor)."""
    weights, means, covariances = (np.array(a, dtype=float) for a in tuple(state)[:3])
    R, K, d = means.shape
    s = strategy(settings.covariance_type)
    m = s.n_second(d) + d + 1
    means = np.ascontiguousarray(means - shift)
    prec = np.zeros((R, *s.cov_shape(K, d)))
    natural = np.zeros((R, K, m))
    finish = finisher(settings.covariance_type)
    bad = np.zeros(K, dtype=bool)
    with np.errstate(divide="ignore"):
        for r in range(R):
            finish(weights[r], means[r], covariances[r], cfg, prec[r], natural[r], bad)
    return (weights, means, np.ascontiguousarray(covariances), prec, natural)


def init_state(weights, means, covariances, settings: EMSettings, data_variance) -> EMState:
    """Batched starting state, with the fixed parameters imposed. Shapes with leading R."""
    weights, means, covariances = _impose_fixed(weights, means, covariances, settings)
    K = means.shape[1]
    cfg = model_config(settings, 1, K, data_variance, np.zeros(means.shape[-1]))
    params = to_params((weights, means, covariances), settings, cfg, 0.0)
    return EMState(weights, means, covariances, params[3])


# ---------------------------------------------------------------------------------------------
# Running EM
# ---------------------------------------------------------------------------------------------
def data_and_config(
    X: np.ndarray, K: int, settings: EMSettings, columns: ColumnStats | None = None
):
    """(centred data transposed XT (d, n), model config, shift) of complete data for K
    components; ``columns``: X's column summaries when known (the fitter's checks computed
    them), else computed here."""
    X = np.asarray(X, dtype=float)
    columns = column_stats(X) if columns is None else columns
    # the translation: the data mean (none for symmetric means: a constraint about the origin)
    shift = np.zeros(X.shape[1]) if settings.symmetric_means else columns.mean
    XT = centred_transpose(X, shift)  # a copy: X stays untouched
    second = None
    if strategy(settings.covariance_type).POOLED_SECOND_MOMENT:
        with loop.one_blas_thread():  # as the loop runs BLAS (changing the count costs ~0.1 s)
            second = XT @ XT.T
    return XT, model_config(settings, X.shape[0], K, columns.var, shift, second), shift


def prepare(
    X: np.ndarray, start: EMState, settings: EMSettings, columns: ColumnStats | None = None
):
    """(centred data transposed XT (d, n), model config, parameter record, shift) for a run
    from ``start`` on complete data (``columns``: as in :func:`data_and_config`)."""
    XT, cfg, shift = data_and_config(X, start.means.shape[1], settings, columns)
    start = EMState(*_impose_fixed(*tuple(start)[:3], settings), start.prec_chol)
    return XT, cfg, to_params(start, settings, cfg, shift), shift


def observed_column_stats(X: np.ndarray) -> ColumnStats:
    """The :class:`ColumnStats` of the observed (not NaN) values of each column of X (n, d)."""
    return ColumnStats(
        np.nanmean(X, axis=0), np.nanvar(X, axis=0), np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    )


def loop_inputs(
    X: np.ndarray,
    start: EMState,
    settings: EMSettings,
    columns: ColumnStats | None = None,
    missing: bool | None = None,
):
    """(model, data for the loop, config, parameter record, shift): the Gaussian model on
    complete data (``columns``: as in :func:`data_and_config`), the missing-data model
    (:mod:`workbench.em.missing_model`) when X holds NaN (values missing at random; rows sorted
    by missingness pattern, the means and variances of the observed values, ``columns`` when
    given, setting the shift and the scales). ``missing``: whether X holds NaN, when known or to
    force the choice."""
    X = np.asarray(X, dtype=float)
    if not (np.isnan(X).any() if missing is None else missing):
        XT, cfg, params, shift = prepare(X, start, settings, columns)
        return gaussian_model(settings.covariance_type), XT, cfg, params, shift
    model = missing_model(settings.covariance_type)
    columns = observed_column_stats(X) if columns is None else columns
    shift = np.zeros(X.shape[1]) if settings.symmetric_means else columns.mean
    XT, starts, order, n_observed, _ = group_by_pattern(X - shift)
    gaussian = model_config(settings, X.shape[0], start.means.shape[1], columns.var, shift)
    d = X.shape[1]
    rows = whole_lines(max(8, min(2048, CHUNK_ELEMENTS // (d * (d + 1) // 2 + d + 1))))
    cfg = MissingConfig(gaussian, starts, order, n_observed, *chunk_list(starts, rows))
    start = EMState(*_impose_fixed(*tuple(start)[:3], settings), start.prec_chol)
    return model, XT, cfg, to_params(start, settings, gaussian, shift), shift


def expected_counts(stats: tuple, cfg) -> np.ndarray:
    """(R, K) expected counts sum_i r_ik of the final E-step of each restart."""
    if not isinstance(cfg, MissingConfig):
        return stats[0][:, :, -1].copy()
    o = cfg.n_observed
    columns = o * (o + 1) // 2 + o  # each pattern's count column
    return sum(stats[0][:, p, :, c] for p, c in enumerate(columns))


_WARMED: set[tuple[str, bool]] = set()


def warm(covariance_type: str, split_passes: bool = False) -> float:
    """Load the compiled loop of a covariance type once per process (from numba's disk cache,
    or compile it the first time ever), plain and SQUAREM, with a tiny fit, so that no fit's
    wall time includes it; ``split_passes`` also the variant whose data passes are split over
    threads (large data sets only: compiling it costs as much again). Returns the seconds
    spent (0 when warm)."""
    variants = [False, True] if split_passes else [False]
    todo = [v for v in variants if (covariance_type, v) not in _WARMED]
    if not todo:
        return 0.0
    t0 = time.perf_counter()
    s = strategy(covariance_type)
    X = np.linspace(-1.0, 1.0, 16)[:, None]
    full = np.ones((1, 2, 1, 1))
    start = init_state(
        np.full((1, 2), 0.5), np.array([[[-0.5], [0.5]]]), s.from_full(full, np.ones((1, 2))),
        EMSettings(covariance_type), X.var(axis=0),
    )  # fmt: skip
    model = gaussian_model(covariance_type)
    XT, cfg, params, _ = prepare(X, start, EMSettings(covariance_type))
    for squarem in (False, True):
        for split in todo:
            settings = loop.LoopSettings(max_iter=2, squarem=squarem)
            loop.run(model, XT, params, cfg, settings, split_passes=split)
    _WARMED.update((covariance_type, v) for v in todo)
    return time.perf_counter() - t0


def splits_passes(X: np.ndarray, K: int, covariance_type: str) -> bool:
    """Whether a fit of X with K components may split its data passes over threads (then
    :func:`warm` loads that variant too)."""
    n, d = X.shape
    work = float(n) * n_features(covariance_type, d) * K
    return work >= loop.MIN_PASS_WORK and loop.threads() > 1


def run_em(X, start: EMState, settings: EMSettings, columns: ColumnStats | None = None) -> EMRun:
    """Run EM (SQUAREM when ``settings.squarem``) from every restart in ``start`` until each
    stops. ``columns``: X's column summaries (of its observed values, when some are missing)
    when known, else computed."""
    t0 = time.perf_counter()
    X = np.asarray(X, dtype=float)
    missing = bool(np.isnan(X).any())
    if columns is None:
        columns = observed_column_stats(X) if missing else column_stats(X)
    model, XT, cfg, params, shift = loop_inputs(X, start, settings, columns, missing)
    loop_settings = loop.LoopSettings(
        settings.max_iter, settings.tol, settings.decrease_tol, settings.squarem
    )
    out = loop.run(model, XT, params, cfg, loop_settings)
    weights, means, covariances, prec = out.params[:4]
    means = means + shift
    if settings.fixed_means is not None:  # exactly the given values, not a round trip
        means[...] = np.asarray(settings.fixed_means, dtype=float)
    run = EMRun(
        state=EMState(weights, means, covariances, prec),
        loglik=out.loglik,
        objective=out.objective,
        n_iter=out.n_iter,
        status=out.status,
        degenerate_component=out.degenerate_component,
        degenerate_kind=out.degenerate_kind,
        traces=out.traces,
        n_decreases=out.n_decreases,
        max_decrease=out.max_decrease,
        wall_time=0.0,
        nk=expected_counts(out.stats, cfg),
    )
    run = label_solutions(run, settings, columns.var)
    return run._replace(wall_time=time.perf_counter() - t0)


def em_map(X, state: EMState, settings: EMSettings):
    """One EM iteration from each restart of ``state``, through the loop: (F(state), objective
    at ``state`` (R,), degenerate (R,) bool: the next state collapsed or the objective is not
    finite, and F(state) holds the input state there)."""
    run = run_em(X, state, settings._replace(max_iter=1, tol=0.0, squarem=False))
    first = np.array([trace[0] for trace in run.traces])
    degenerate = np.isin(run.degenerate_kind, (DegenerateKind.NAN, *LOOP_KINDS))
    return run.state, first, degenerate


def label_solutions(run: EMRun, settings: EMSettings, data_variance) -> EMRun:
    """The verdict on each final state that converged or reached max_iter: ``degenerate`` of
    kind ``floor`` when a covariance is held at the variance floor (the strategy's
    ``held_at_floor``: a variance, or an eigenvalue of F^-1/2 S F^-1/2, within FLOOR_RTOL of
    the floor; tied: every component), else of kind ``spurious`` when a component's expected
    count under the final state is below :func:`min_support`. The component recorded is the
    first such one. EM itself ran to its end: the floor keeps it monotone and bounded."""
    R, K, d = run.state.means.shape
    held = np.zeros((R, K), dtype=bool)
    floor = variance_floor(settings.reg_covar, data_variance, settings.covariance_type)
    if settings.fixed_covariances is None and np.all(floor > 0):
        s = strategy(settings.covariance_type)
        held |= np.broadcast_to(s.held_at_floor(run.state.covariances, floor, FLOOR_RTOL), (R, K))
    thin = ~(run.nk >= min_support(settings, d))
    open_ = (run.status == EMStatus.CONVERGED) | (run.status == EMStatus.MAX_ITER)
    if not np.any(open_[:, None] & (held | thin)):
        return run
    status, kind = run.status.astype(object), run.degenerate_kind.astype(object)
    component = run.degenerate_component.copy()
    for name, mask in (
        (DegenerateKind.SPURIOUS, thin),
        (DegenerateKind.FLOOR, held),
    ):  # floor wins when both
        hit = open_ & mask.any(axis=1)
        status[hit], kind[hit] = EMStatus.DEGENERATE, name
        component[hit] = np.argmax(mask[hit], axis=1)
    return run._replace(
        status=status.astype(str), degenerate_kind=kind.astype(str), degenerate_component=component
    )

"""The Gaussian mixture as an EM model (:class:`workbench.em.model.EMModel`), one per covariance
strategy (:mod:`workbench.em.covariance`).

The data come transposed, XT (d, n): a point per column. Parameters of one restart:
``(weights (K,), means (K, d), covariances, precision factors, natural (K, m))``, covariances
and factors in the strategy's shapes, and ``natural`` the coefficients that make
log w_k + log N(x | mu_k, S_k) a linear function of the strategy's m features of x
(:func:`_e_step`). Statistics: ``(T,)``, T (K, m) = sum_i r_ik features(x_i): the second
moments, sums and (last column) counts of every component.

The data are centred (their mean subtracted) before EM, so that covariances from raw second
moments lose only round-off times (|mu| / sd)^2; EM is equivariant under translation, and
:mod:`workbench.em.run` moves the means back. Symmetric means (mu_2 = -mu_1) are a statement
about the origin, so those data are not centred.

E-step. Points go in chunks of B; chunk c of G interleaved groups (B and G fixed by n and the
shapes, never by the threads). Per chunk: features FT (m, b), log joint JT = natural @ FT (one
matrix product: BLAS), columns normalised in log space into responsibilities, and
T_g += JT FT^T (another). Each thread takes groups t, t + S, ... of S threads with chunk
scratch of its own (it stays in that core's cache); group sums are added in group order:
bitwise the same result serial or threaded.
"""

from __future__ import annotations

import math
from functools import cache
from typing import NamedTuple

import numba
import numpy as np
from numba import prange

from workbench.em.covariance import variance_scale
from workbench.em.covariance.registry import strategy
from workbench.em.logsumexp import normalise_columns
from workbench.em.loop import copy_array
from workbench.em.model import EMModel
from workbench.em.products import add_statistics, aligned_zeros, whole_lines
from workbench.em.specialise import kernel, specialise
from workbench.status import DegenerateKind

EMPTY_COUNT = float(np.finfo(float).tiny)  # expected counts below this: a component is empty
# the model's degenerate kinds (codes 1, 2)
KINDS = (DegenerateKind.WEIGHT, DegenerateKind.COVARIANCE)
WEIGHT, COVARIANCE = 1, 2
MAX_GROUPS = 16
CHUNK_ELEMENTS = 1 << 17  # features per chunk, about 1 MiB


class GaussianConfig(NamedTuple):
    """The Gaussian model's settings as the compiled pieces read them (data units: centred).
    Absent parts hold placeholders of the right type (numba compiles one signature)."""

    fix_weights: bool
    fix_means: bool
    fix_covariances: bool
    symmetric: bool
    min_count: float
    floor: np.ndarray  # (d,) variance floor per feature
    collapse: np.ndarray  # (d,) collapse threshold per feature
    has_prior: bool
    shrinkage: float
    prior_mean: np.ndarray  # (d,)
    dof: float
    prior_scale: np.ndarray  # (d, d); diag: its diagonal; spherical: [0, 0]
    second_total: np.ndarray  # (d, d) sum_i x_i x_i^T (tied)
    chunk: int  # points per chunk
    groups: int
    shift: np.ndarray  # (d,) the translation applied to the data (their mean, or 0)


# ---------------------------------------------------------------------------------------------
# Templates (the strategy's pieces are bound by name in gaussian_model())
# ---------------------------------------------------------------------------------------------
def _group_pass(XT, params, F, J, C, Tg, top, norm, g, G, B) -> float:
    """Chunks g, g + G, ... of the data XT (d, n): features FT (m, b), log joint JT (K, b),
    responsibilities, and their statistics added into Tg (K, m); returns the group's
    log-likelihood. F, J, C: flat scratch of at least m B, K B and d B entries (C holds the
    chunk's points contiguously: loops over a slice of XT of unknown stride vectorise worse)."""
    d, n = XT.shape
    K, m = Tg.shape
    Tg[:] = 0.0
    total = 0.0
    for c in range(g, (n + B - 1) // B, G):
        lo = c * B
        hi = min(n, lo + B)
        b = hi - lo
        FT = F[: m * b].reshape((m, b))
        JT = J[: K * b].reshape((K, b))
        XC = C[: d * b].reshape((d, b))
        XC[:] = XT[:, lo:hi]
        features(XC, FT)  # noqa: F821 (bound by specialise)
        log_joint(XC, FT, params, JT)  # noqa: F821
        total += normalise_columns(JT, top, norm)
        add_statistics(JT, FT, Tg)
    return total


def _e_step(XT, params, cfg, stats, work):
    """Fill stats[0] = T (K, m) under params; return the log-likelihood (see module doc)."""
    F_all, J_all, C_all, T_all, ll_all, scratch = work
    G = cfg.groups
    S = F_all.shape[0]  # scratch slots: one per thread, so that a chunk stays in its cache
    for t in prange(S):
        for g in range(t, G, S):  # each group's sums depend on the group alone, not on t
            ll_all[g] = group_pass(  # noqa: F821
                XT, params, F_all[t], J_all[t], C_all[t], T_all[g], scratch[t, 0], scratch[t, 1],
                g, G, cfg.chunk,
            )  # fmt: skip
    T = stats[0]
    T[:] = T_all[0]
    loglik = ll_all[0]
    for g in range(1, G):
        T += T_all[g]
        loglik += ll_all[g]
    return loglik


def _finish(weights, means, cov, cfg, pc, nat, bad) -> None:
    """Precision factors (collapse check into bad) and natural coefficients of a state."""
    precision(cov, cfg, pc, bad)  # noqa: F821
    natural(weights, means, pc, nat)  # noqa: F821


def _m_step(stats, params, cfg, out):
    """The M-step from T: weights n_k / n; means sum_k / n_k (posterior mode under the prior,
    mu_2 = -mu_1 when symmetric, old values when fixed); the strategy's covariances, floor and
    precision factors. A component whose expected count fell below min_count (free weights)
    is degenerate of kind ``weight``; one whose covariance collapsed, of kind ``covariance``.
    Components with (nearly) no points (n_k < EMPTY_COUNT, no prior) keep mean and
    covariance: the M-step objective does not depend on them, so EM stays monotone."""
    T = stats[0]
    w0, mu0, cov0, pc0, nat0 = params
    w, mu, cov, pc, nat = out
    K, d = mu0.shape
    m = T.shape[1]
    q = m - d - 1
    nk = np.empty(K)
    total = 0.0
    for k in range(K):
        nk[k] = T[k, m - 1]
        total += nk[k]
    w_bad = np.zeros(K, dtype=np.bool_)
    empty = np.zeros(K, dtype=np.bool_)
    for k in range(K):
        if cfg.fix_weights:
            w[k] = w0[k]
        else:
            w[k] = nk[k] / total
            w_bad[k] = not nk[k] >= cfg.min_count
        empty[k] = w_bad[k] or (not cfg.has_prior and not nk[k] >= EMPTY_COUNT)
    for k in range(K):
        for j in range(d):
            if cfg.has_prior:
                mu[k, j] = (T[k, q + j] + cfg.shrinkage * cfg.prior_mean[j]) / (
                    nk[k] + cfg.shrinkage
                )
            else:
                mu[k, j] = T[k, q + j] / nk[k]
    if cfg.symmetric:
        _symmetric_means(T, nk, pc0, q, mu)
    for k in range(K):
        if cfg.fix_means or empty[k]:
            mu[k] = mu0[k]
    bad = np.zeros(K, dtype=np.bool_)
    if cfg.fix_covariances:
        cov[...] = cov0
        pc[...] = pc0
        natural(w, mu, pc, nat)  # noqa: F821
    else:
        covariances(T, nk, mu, cfg, cov0, empty, cov)  # noqa: F821
        floor(cov, cfg)  # noqa: F821
        finish(w, mu, cov, cfg, pc, nat, bad)  # noqa: F821
    for k in range(K):
        if w_bad[k]:
            return WEIGHT, k
    for k in range(K):
        if bad[k]:
            return COVARIANCE, k
    return 0, -1


def _symmetric_means(T, nk, pc, q, mu):
    """Means of two components constrained to mu_2 = -mu_1 = -theta (Dwivedi et al. 2020's
    over-specified model), maximising the M-step objective given the current precisions:
    (n_1 P_1 + n_2 P_2) theta = P_1 s_1 - P_2 s_2, s_k = sum_i r_ik x_i."""
    d = mu.shape[1]
    P1 = np.empty((d, d))
    P2 = np.empty((d, d))
    precision_of(pc, 0, P1)  # noqa: F821
    precision_of(pc, 1, P2)  # noqa: F821
    lhs = nk[0] * P1 + nk[1] * P2
    rhs = P1 @ np.ascontiguousarray(T[0, q : q + d]) - P2 @ np.ascontiguousarray(T[1, q : q + d])
    theta = np.linalg.solve(lhs, rhs)
    for j in range(d):
        mu[0, j] = theta[j]
        mu[1, j] = -theta[j]


def _log_prior(params, cfg):
    if not cfg.has_prior:
        return 0.0
    return strategy_log_prior(params[1], params[2], params[3], cfg)  # noqa: F821


def _to_vector(params, cfg, out):
    """Free parameters: the first K - 1 weights, the means, the covariance entries (lower
    triangle per matrix for full/tied, every variance for diag/spherical); fixed ones left
    out."""
    w, mu, cov = params[0], params[1], params[2]
    K, d = mu.shape
    offset = 0
    if not cfg.fix_weights and K > 1:
        for k in range(K - 1):
            out[offset] = w[k]
            offset += 1
    if not cfg.fix_means:
        for k in range(K):
            for j in range(d):
                out[offset] = mu[k, j]
                offset += 1
    if not cfg.fix_covariances:
        offset = cov_to_vector(cov, out, offset)  # noqa: F821


def _from_vector(v, template, cfg, out):
    """The state with free parameters from v into out; False outside the parameter space
    (weights off the simplex, a covariance not positive definite, a value not finite)."""
    w, mu, cov, pc, nat = out
    K, d = mu.shape
    for j in range(v.shape[0]):
        if not math.isfinite(v[j]):
            return False
    w[:] = template[0]
    mu[...] = template[1]
    cov[...] = template[2]
    offset = 0
    if not cfg.fix_weights and K > 1:
        rest = 1.0
        for k in range(K - 1):
            w[k] = v[offset]
            rest -= v[offset]
            offset += 1
        w[K - 1] = rest
    for k in range(K):
        if not w[k] > 0.0:
            return False
    if not cfg.fix_means:
        for k in range(K):
            for j in range(d):
                mu[k, j] = v[offset]
                offset += 1
    if not cfg.fix_covariances:
        offset, ok = cov_from_vector(v, offset, cov)  # noqa: F821
        if not ok:
            return False
    bad = np.zeros(K, dtype=np.bool_)
    finish(w, mu, cov, cfg, pc, nat, bad)  # noqa: F821
    return True


@kernel
def _copy_params(src, dst) -> None:
    copy_array(src[0], dst[0])
    copy_array(src[1], dst[1])
    dst[2][...] = src[2]
    dst[3][...] = src[3]
    copy_array(src[4], dst[4])


@kernel
def _copy_stats(src, dst) -> None:
    copy_array(src[0], dst[0])


# ---------------------------------------------------------------------------------------------
# The model for one covariance type
# ---------------------------------------------------------------------------------------------
def n_features(covariance_type: str, d: int) -> int:
    return strategy(covariance_type).n_second(d) + d + 1


def chunking(n: int, m: int, K: int) -> tuple[int, int]:
    """(points per chunk, groups): fixed functions of the data's and the model's sizes."""
    B = whole_lines(int(max(64, min(2048, CHUNK_ELEMENTS // max(m, K)))))
    n_chunks = -(-n // B)
    return B, int(max(1, min(MAX_GROUPS, n_chunks)))


@cache
def finisher(covariance_type: str):
    """The compiled ``finish(weights, means, cov, cfg, prec_out, natural_out, bad_out)`` of a
    covariance type: precision factors (collapse check) and natural coefficients."""
    s = strategy(covariance_type)
    return specialise(
        _finish, f"gaussian_{s.NAME}", {"precision": s.precision, "natural": s.natural}
    )


@cache
def gaussian_model(covariance_type: str) -> EMModel:
    """The Gaussian-mixture EMModel with the given covariance strategy."""
    s = strategy(covariance_type)
    tag = f"gaussian_{s.NAME}"
    group_pass = specialise(_group_pass, tag, {"features": s.features, "log_joint": s.log_joint})
    pieces = {"group_pass": group_pass}
    finish = finisher(covariance_type)
    symmetric = specialise(_symmetric_means, tag, {"precision_of": s.precision_of})
    m_step = specialise(
        _m_step,
        tag,
        {
            "covariances": s.covariances,
            "floor": s.floor,
            "finish": finish,
            "natural": s.natural,
            "_symmetric_means": symmetric,
        },
    )

    def new_stats(XT, params, cfg):
        return (np.zeros((params[1].shape[0], n_features(s.NAME, XT.shape[0]))),)

    def new_work(XT, params, cfg, parallel):
        K, m = params[1].shape[0], n_features(s.NAME, XT.shape[0])
        G, B = cfg.groups, cfg.chunk
        slots = min(G, numba.get_num_threads()) if parallel else 1  # chunk scratch per thread
        return (
            aligned_zeros((slots, m * B)),
            aligned_zeros((slots, K * B)),
            aligned_zeros((slots, XT.shape[0] * B)),
            np.zeros((G, K, m)),
            np.zeros(G),
            np.zeros((slots, 2, B)),
        )

    def vector_size(params, cfg):
        K, d = params[1].shape[-2:]
        size = 0 if cfg.fix_weights or K == 1 else K - 1
        size += 0 if cfg.fix_means else K * d
        return size + (0 if cfg.fix_covariances else s.n_cov_params(K, d))

    def vector_units(XT, params, cfg):
        K, d = params[1].shape[-2:]
        sd = np.sqrt(variance_scale(XT.var(axis=1)))
        parts = []
        if not cfg.fix_weights and K > 1:
            parts.append(np.ones(K - 1))
        if not cfg.fix_means:
            parts.append(np.tile(sd, K))
        if not cfg.fix_covariances:
            parts.append(s.cov_units(sd, K))
        return np.concatenate(parts) if parts else np.ones(0)

    def pass_work(XT, params, cfg):
        return float(XT.shape[1]) * n_features(s.NAME, XT.shape[0]) * params[1].shape[-2]

    return EMModel(
        name=tag,
        e_step=specialise(_e_step, tag, pieces),
        m_step=m_step,
        log_prior=specialise(_log_prior, tag, {"strategy_log_prior": s.log_prior}),
        copy_params=_copy_params,
        copy_stats=_copy_stats,
        to_vector=specialise(_to_vector, tag, {"cov_to_vector": s.cov_to_vector}),
        from_vector=specialise(
            _from_vector, tag, {"cov_from_vector": s.cov_from_vector, "finish": finish}
        ),
        new_stats=new_stats,
        new_work=new_work,
        vector_size=vector_size,
        vector_units=vector_units,
        pass_work=pass_work,
        degenerate_kinds=KINDS,
        n_points=lambda XT: XT.shape[1],
        e_step_parallel=specialise(_e_step, tag, pieces, parallel=True),
    )

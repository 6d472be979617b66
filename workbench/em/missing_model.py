"""The Gaussian mixture with values missing at random, as an EM model on the seam.

Exact EM for incomplete rows (Ghahramani & Jordan 1994; Little & Rubin 2002, ch. 11):

- E-step: each row's responsibilities from its OBSERVED coordinates O only,
  r_ik proportional to w_k N(x_O | mu_kO, S_kOO); the observed-data log-likelihood is
  sum_i log sum_k w_k N(x_O | mu_kO, S_kOO).
- M-step: the complete-data M-step of the covariance strategy on the EXPECTED sufficient
  statistics, where a missing block is replaced by its conditional mean given the observed one,
  x_M -> mu_kM + B (x_O - mu_kO), B = S_kMO S_kOO^-1, and its second moment gains the
  conditional covariance S_kMM - B S_kOM.

Cost stays close to complete-data EM: rows are grouped by missingness pattern, and the data pass
of a pattern is the complete-data pass of the full strategy on its observed coordinates (their
features, one matrix product for the log joint and one for the statistics, per chunk). It leaves
the responsibility-weighted moments of x_O per pattern and component; the M-step turns them into
the expected complete-data statistics with the conditional-mean algebra above (a few d x d
products per pattern and component), then calls the Gaussian model's own M-step. With no value
missing there is one pattern and the run is complete-data EM.

Data (:func:`group_by_pattern`): XT (d, n) with rows sorted by pattern and missing values 0;
the patterns go in the config (:class:`MissingConfig`: starts (P + 1,), order (P, d) the
observed coordinates first, n_observed (P,), beside the Gaussian config). Parameters: the
Gaussian model's. Statistics: ``(T_obs (P, K, m_d), T (K, m))``: per pattern the observed
moments in the full strategy's layout for its o observed coordinates, and the packed expected
statistics.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import numpy as np
from numba import prange

from workbench.em.covariance import MISSING_TYPES, full
from workbench.em.covariance import matrix as mat
from workbench.em.covariance.registry import strategy
from workbench.em.gaussian_model import MAX_GROUPS, gaussian_model
from workbench.em.logsumexp import normalise_columns
from workbench.em.model import EMModel
from workbench.em.products import add_statistics, aligned_zeros, log_joint_product
from workbench.em.specialise import kernel, specialise


class MissingConfig(NamedTuple):
    gaussian: tuple  # the Gaussian model's GaussianConfig
    starts: np.ndarray  # (P + 1,) first row of each pattern (rows sorted by pattern)
    order: np.ndarray  # (P, d) each pattern's observed coordinates, then its missing ones
    n_observed: np.ndarray  # (P,)
    chunk_pattern: np.ndarray  # (C,) the pattern of each chunk of rows
    chunk_start: np.ndarray  # (C + 1,) first row of each chunk (chunks never straddle patterns)


def chunk_list(starts: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(pattern of each chunk, chunk boundaries): each pattern's rows cut into chunks of at
    most ``chunk`` rows (a fixed function of the data, never of the threads)."""
    patterns, bounds = [], [0]
    for p in range(len(starts) - 1):
        for lo in range(int(starts[p]), int(starts[p + 1]), chunk):
            patterns.append(p)
            bounds.append(min(int(starts[p + 1]), lo + chunk))
    return np.array(patterns, dtype=np.int64), np.array(bounds, dtype=np.int64)


def group_by_pattern(X: np.ndarray):
    """(XT (d, n), starts, order, n_observed, row order (n,)): rows of X (n, d, NaN = missing)
    sorted by missingness pattern. Rows with every coordinate missing must be removed first."""
    X = np.asarray(X, dtype=float)
    observed = ~np.isnan(X)
    if not np.all(observed.any(axis=1)):
        raise ValueError("data: a row with every coordinate missing carries no information")
    d = X.shape[1]
    if d <= 62:  # each row's pattern as the bits of one integer: a fast sort
        codes = observed.astype(np.int64) @ (np.int64(1) << np.arange(d, dtype=np.int64))
    else:
        codes = np.unique(observed, axis=0, return_inverse=True)[1].reshape(-1)
    order_rows = np.argsort(codes, kind="stable")
    _, first, counts = np.unique(codes[order_rows], return_index=True, return_counts=True)
    patterns = observed[order_rows[first]]  # (P, d) observed coordinates of each pattern
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    order = np.zeros((len(patterns), d), dtype=np.int64)
    n_obs = patterns.sum(axis=1).astype(np.int64)
    for p, mask in enumerate(patterns):
        order[p] = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])
    XT = np.ascontiguousarray(np.nan_to_num(X[order_rows], nan=0.0).T)
    return XT, starts, order, n_obs, order_rows


@kernel
def _observed_natural(w, mu, cov_matrix, idx, o, nat, S, U) -> bool:
    """Natural coefficients (m_o,) of log w + log N(x_O | mu_O, S_OO) in the full strategy's
    features of x_O; False when S_OO is not positive definite."""
    for a in range(o):
        for b in range(o):
            S[a, b] = cov_matrix[idx[a], idx[b]]
    Sv = S[:o, :o]
    L = np.zeros((o, o))
    if not mat.cholesky(Sv, np.zeros(o), L):
        return False
    Uo = U[:o, :o]
    mat.precision_factor(Sv, np.zeros(o), Uo)
    P = np.empty((o, o))
    mat.precision_matrix(Uo, P)
    mu_o = np.empty(o)
    for a in range(o):
        mu_o[a] = mu[idx[a]]
    c = 0
    for j in range(o):
        for l in range(j, o):
            nat[c] = -0.5 * P[j, j] if j == l else -P[j, l]
            c += 1
    b_vec = P @ mu_o
    for j in range(o):
        nat[c + j] = b_vec[j]
    const = np.log(w) + mat.log_det_factor(Uo) - 0.5 * o * full.LOG_2PI
    nat[c + o] = const - 0.5 * (b_vec @ mu_o)
    return True


def _pattern_naturals(params, cfg, nat_all) -> bool:
    """nat_all[p, k, :m_o]: component k's natural coefficients on pattern p's observed
    coordinates; False when some S_kOO is not positive definite."""
    w, mu = params[0], params[1]
    K, d = mu.shape
    C = np.empty((d, d))
    S = np.empty((d, d))
    U = np.empty((d, d))
    for k in range(K):
        component_matrix(params[2], k, C)  # noqa: F821 (bound by specialise)
        for p in range(cfg.n_observed.shape[0]):
            o = cfg.n_observed[p]
            if not _observed_natural(w[k], mu[k], C, cfg.order[p, :o], o, nat_all[p, k], S, U):
                return False
    return True


@kernel
def _group_pass(XT, patterns, bounds, n_observed, order, nat_all, F, J, XO_buf, T_group, top,
                norm, g, G) -> float:  # fmt: skip
    """Chunks g, g + G, ... of the chunk list (each within one pattern): the observed
    coordinates gathered, their features, log joint and responsibilities, and the moments
    added into T_group (P, K, m_d)."""
    T_group[...] = 0.0
    K = nat_all.shape[1]
    total = 0.0
    for c in range(g, patterns.shape[0], G):
        p = patterns[c]
        lo, hi = bounds[c], bounds[c + 1]
        b = hi - lo
        o = n_observed[p]
        m_o = o * (o + 1) // 2 + o + 1
        XO = XO_buf[: o * b].reshape((o, b))
        for a in range(o):
            row = order[p, a]
            for i in range(b):
                XO[a, i] = XT[row, lo + i]
        FT = F[: m_o * b].reshape((m_o, b))
        JT = J[: K * b].reshape((K, b))
        full.features(XO, FT)
        log_joint_product(np.ascontiguousarray(nat_all[p, :, :m_o]), FT, JT)
        total += normalise_columns(JT, top, norm)
        add_statistics(JT, FT, T_group[p, :, :m_o])
    return total


def _e_step(XT, params, cfg, stats, work):
    """Observed-data E-step, chunks of each pattern in G groups; the log-likelihood."""
    F_all, J_all, XO_all, T_groups, ll_all, scratch, nat_all = work
    if not pattern_naturals(params, cfg, nat_all):  # noqa: F821
        return np.nan
    G = T_groups.shape[0]
    patterns, bounds, n_observed, order = (
        cfg.chunk_pattern,
        cfg.chunk_start,
        cfg.n_observed,
        cfg.order,
    )
    for g in prange(G):  # (the config, a nested record, stays outside the parallel region)
        ll_all[g] = _group_pass(
            XT, patterns, bounds, n_observed, order, nat_all, F_all[g], J_all[g], XO_all[g],
            T_groups[g], scratch[g, 0], scratch[g, 1], g, G,
        )  # fmt: skip
    T_obs = stats[0]
    T_obs[...] = T_groups[0]
    loglik = ll_all[0]
    for g in range(1, G):
        T_obs += T_groups[g]
        loglik += ll_all[g]
    return loglik


def _expected_statistics(cfg, params, T_obs, T_out):
    """The expected complete-data statistics (K, m) under params from the observed moments."""
    starts, order, n_obs = cfg.starts, cfg.order, cfg.n_observed
    mu = params[1]
    K, d = mu.shape
    C = np.empty((d, d))
    for k in range(K):
        component_matrix(params[2], k, C)  # noqa: F821
        second = np.zeros((d, d))
        sums = np.zeros(d)
        count = 0.0
        for p in range(starts.shape[0] - 1):
            o = n_obs[p]
            q = d - o
            idx = order[p]
            m_o = o * (o + 1) // 2 + o + 1
            row = T_obs[p, k]
            n_p = row[m_o - 1]
            S_oo = np.empty((o, o))
            c = 0
            for a in range(o):
                for b in range(a, o):
                    S_oo[a, b] = row[c]
                    S_oo[b, a] = row[c]
                    c += 1
            s_o = row[c : c + o].copy()
            # conditional mean x_M = a + B x_O and covariance V under component k
            a_vec = np.zeros(q)
            Bm = np.zeros((q, o))
            V = np.zeros((q, q))
            if q > 0:
                Soo = np.empty((o, o))
                Smo = np.empty((q, o))
                for a in range(o):
                    for b in range(o):
                        Soo[a, b] = C[idx[a], idx[b]]
                for a in range(q):
                    for b in range(o):
                        Smo[a, b] = C[idx[o + a], idx[b]]
                if o > 0:
                    Bm = np.linalg.solve(Soo, Smo.T).T
                for a in range(q):
                    t = mu[k, idx[o + a]]
                    for b in range(o):
                        t -= Bm[a, b] * mu[k, idx[b]]
                    a_vec[a] = t
                    for b in range(q):
                        v = C[idx[o + a], idx[o + b]]
                        for e in range(o):
                            v -= Bm[a, e] * C[idx[b + o], idx[e]]
                        V[a, b] = v
            Bs = Bm @ s_o
            BS = Bm @ S_oo
            BSB = BS @ Bm.T
            count += n_p
            for a in range(o):
                sums[idx[a]] += s_o[a]
                for b in range(o):
                    second[idx[a], idx[b]] += S_oo[a, b]
            for a in range(q):
                ia = idx[o + a]
                sums[ia] += n_p * a_vec[a] + Bs[a]
                for b in range(o):
                    value = a_vec[a] * s_o[b] + BS[a, b]
                    second[ia, idx[b]] += value
                    second[idx[b], ia] += value
                for b in range(q):
                    second[ia, idx[o + b]] += (
                        n_p * (a_vec[a] * a_vec[b] + V[a, b])
                        + a_vec[a] * Bs[b]
                        + Bs[a] * a_vec[b]
                        + BSB[a, b]
                    )
        pack_statistics(second, sums, count, T_out[k])  # noqa: F821


def _m_step(stats, params, cfg, out):
    """Expected statistics under the current parameters, then the Gaussian M-step."""
    expected_statistics(cfg, params, stats[0], stats[1])  # noqa: F821
    return gaussian_m_step((stats[1],), params, cfg.gaussian, out)  # noqa: F821


def _log_prior(params, cfg):
    return gaussian_log_prior(params, cfg.gaussian)  # noqa: F821


def _to_vector(params, cfg, out):
    gaussian_to_vector(params, cfg.gaussian, out)  # noqa: F821


def _from_vector(v, template, cfg, out):
    return gaussian_from_vector(v, template, cfg.gaussian, out)  # noqa: F821


@kernel
def _copy_stats(src, dst) -> None:
    dst[0][...] = src[0]
    dst[1][...] = src[1]


@cache
def missing_model(covariance_type: str) -> EMModel:
    """The EMModel of a Gaussian mixture with values missing at random (full or diag)."""
    s = strategy(covariance_type)
    if s.NAME not in MISSING_TYPES:
        raise ValueError(
            f"covariance_type={covariance_type!r}: EM with missing values supports "
            f"{', '.join(MISSING_TYPES)}"
        )
    tag = f"missing_{s.NAME}"
    g = gaussian_model(covariance_type)
    bound = {"component_matrix": s.component_matrix}
    naturals = specialise(_pattern_naturals, tag, bound)
    e_step = specialise(_e_step, tag, {"pattern_naturals": naturals})
    e_step_parallel = specialise(_e_step, tag, {"pattern_naturals": naturals}, parallel=True)
    expected = specialise(
        _expected_statistics, tag, {**bound, "pack_statistics": s.pack_statistics}
    )
    m_step = specialise(
        _m_step, tag, {"expected_statistics": expected, "gaussian_m_step": g.m_step}
    )

    def new_stats(XT, params, cfg):
        K, d = params[1].shape
        P = len(cfg.n_observed)
        m = s.n_second(d) + d + 1
        return (np.zeros((P, K, full.n_second(d) + d + 1)), np.zeros((K, m)))

    def new_work(XT, params, cfg, parallel):
        K, d = params[1].shape
        m, P = full.n_second(d) + d + 1, len(cfg.n_observed)
        G = int(min(MAX_GROUPS, len(cfg.chunk_pattern)))
        B = int(np.diff(cfg.chunk_start).max())
        return (
            aligned_zeros((G, m * B)),
            aligned_zeros((G, K * B)),
            aligned_zeros((G, d * B)),
            np.zeros((G, P, K, m)),
            np.zeros(G),
            np.zeros((G, 2, B)),
            np.zeros((P, K, m)),
        )

    return g._replace(
        name=tag,
        e_step=e_step,
        m_step=m_step,
        log_prior=specialise(_log_prior, tag, {"gaussian_log_prior": g.log_prior}),
        copy_stats=_copy_stats,
        to_vector=specialise(_to_vector, tag, {"gaussian_to_vector": g.to_vector}),
        from_vector=specialise(_from_vector, tag, {"gaussian_from_vector": g.from_vector}),
        new_stats=new_stats,
        new_work=new_work,
        vector_units=lambda XT, params, cfg: g.vector_units(XT, params, cfg.gaussian),
        vector_size=lambda params, cfg: g.vector_size(params, cfg.gaussian),
        e_step_parallel=e_step_parallel,
    )

"""Monte Carlo errors of a study's summaries: means with their standard error sd / sqrt(m) and
rates of 0/1 flags with their 95% Wilson interval and counts, from per-replicate rows.

The one home of these numbers: the per-condition summary (:mod:`workbench.experiment.summary`)
and every report section use it. Rates never get a "0 ± 0" standard error from a handful of
replicates: Wilson's interval is exact at the ends (0/n has an upper bound above 0).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def mean_se(values) -> tuple[float, float, int]:
    """(mean, Monte Carlo standard error sd / sqrt(m), m) of per-replicate ``values``
    (anything not a finite number dropped); the se is NaN below two values."""
    x = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, 0
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
    return float(x.mean()), se, int(x.size)


def wilson_interval(successes: float, trials: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval (default 95%) for a binomial proportion; (nan, nan) without trials.
    ``successes`` and ``trials`` may be effective (non-integer) counts."""
    if not trials > 0:
        return np.nan, np.nan
    p = successes / trials
    denom = 1.0 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denom
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denom
    lower = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact at the ends, no round-off
    upper = 1.0 if successes >= trials else min(1.0, centre + half)
    return float(lower), float(upper)


def rate_interval(flags, clusters=None) -> dict[str, float]:
    """A rate of 0/1 ``flags`` (NaN dropped) with its Wilson 95% interval.

    ``clusters`` (same length): labels of correlated groups (e.g. restarts on one data set).
    The interval then uses Kish's effective sample size n / deff, with the design effect deff
    (>= 1) from the cluster-robust variance of the rate; 0/n and n/n keep deff = 1.
    Returns rate, lower, upper, k (successes), n (trials), n_eff, clusters.
    """
    x = np.asarray(flags, dtype=float)
    keep = np.isfinite(x)
    x = x[keep]
    n, k = x.size, float(x.sum())
    out = {"rate": np.nan, "lower": np.nan, "upper": np.nan, "k": k, "n": n, "n_eff": float(n)}
    out["clusters"] = n
    if n == 0:
        return out
    p = k / n
    deff = 1.0
    if clusters is not None:
        labels = np.asarray(clusters)[keep]
        _, groups = np.unique(labels, return_inverse=True)
        c = groups.max() + 1
        out["clusters"] = int(c)
        if c > 1 and 0 < p < 1:
            resid = np.bincount(groups, weights=x - p, minlength=c)
            robust = c / (c - 1) * np.sum(resid**2) / n**2
            deff = max(1.0, robust / (p * (1 - p) / n))
    lower, upper = wilson_interval(p * n / deff, n / deff)
    out.update(rate=p, lower=lower, upper=upper, n_eff=n / deff)
    return out


def count_rate(k: int, n: int) -> dict[str, float]:
    """:func:`rate_interval` of ``k`` successes in ``n`` independent trials."""
    return rate_interval(np.r_[np.ones(int(k)), np.zeros(int(n) - int(k))])


def summarise_rate(
    frame: pd.DataFrame, by: list[str], column: str, clusters: list[str] | None = None
) -> pd.DataFrame:
    """Per group of ``by``: rate, lower, upper (95% Wilson), k, n, n_eff of the 0/1 ``column``;
    rows sharing the values of ``clusters`` (e.g. one data set) count as one correlated group."""
    columns = [*by, "rate", "lower", "upper", "k", "n", "n_eff", "clusters"]
    if column not in frame or frame.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for key, group in frame.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        labels = None
        if clusters:
            labels = group[clusters].astype(str).agg("|".join, axis=1).to_numpy()
        flags = pd.to_numeric(group[column], errors="coerce").to_numpy(dtype=float)
        stats = rate_interval(flags, labels)
        if stats["n"]:
            rows.append({**dict(zip(by, key, strict=True)), **stats})
    return pd.DataFrame(rows, columns=columns)

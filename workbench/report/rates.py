"""Rates as the report shows them: value, 95% Wilson interval and counts, from the one interval
helper of :mod:`workbench.evaluate` (never "0 ± 0" from a handful of replicates)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.evaluate import rate_interval


def rate_ci(flags, clusters=None) -> dict[str, float]:
    """A rate of 0/1 flags with its 95% Wilson interval and counts
    (:func:`workbench.evaluate.rate_interval`; ``clusters`` labels correlated groups)."""
    return rate_interval(flags, clusters)


def count_rate(k: int, n: int) -> dict[str, float]:
    """:func:`rate_ci` of ``k`` successes in ``n`` independent trials."""
    return rate_ci(np.r_[np.ones(int(k)), np.zeros(int(n) - int(k))])


def rate_yerr(stats: pd.DataFrame) -> np.ndarray:
    """Asymmetric matplotlib ``yerr`` (2, m) from ``rate``/``value``, ``lower`` and ``upper``
    columns: the 95% Wilson interval around each rate (no bar where it is undefined)."""
    value = stats["rate"] if "rate" in stats else stats["value"]
    value = value.to_numpy(dtype=float)
    below = value - stats["lower"].to_numpy(dtype=float)
    above = stats["upper"].to_numpy(dtype=float) - value
    return np.nan_to_num(np.vstack([below, above]), nan=0.0).clip(min=0.0)


def tied_names(
    stats: pd.DataFrame, column: str, value: float, by: str = "rate", sep: str = ", "
) -> str:
    """Every row's ``column`` whose ``by`` equals ``value``: the one name, or ``"tied: a, b"``
    when several share it (an extreme among ties is never picked arbitrarily)."""
    tied = stats.loc[np.isclose(stats[by].astype(float), value), column].astype(str).tolist()
    return tied[0] if len(tied) == 1 else f"tied: {sep.join(tied)}"


def rate_text(stats: dict | pd.Series, unit: str = "fits") -> str:
    """``"0.25 (95% CI 0.14-0.40; 10/40 fits)"``; the interval is Wilson's (effective n when
    clustered), so 0/n reads ``0 (95% CI 0-0.09; 0/40 fits)``, never ``0 ± 0``."""
    n = int(stats["n"])
    if not n:
        return f"n/a (0 {unit})"
    rate, lower, upper = stats["rate"], stats["lower"], stats["upper"]
    return f"{rate:.3g} (95% CI {lower:.2g}-{upper:.2g}; {int(round(stats['k']))}/{n} {unit})"


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
        stats = rate_ci(flags, labels)
        if stats["n"]:
            rows.append({**dict(zip(by, key, strict=True)), **stats})
    return pd.DataFrame(rows, columns=columns)

"""Rates as the report shows them: value, 95% Wilson interval and counts, from the one interval
helper of :mod:`workbench.evaluate` (never "0 ± 0" from a handful of replicates)."""

from __future__ import annotations

import pandas as pd

from workbench.evaluate import rate_interval


def rate_ci(flags, clusters=None) -> dict[str, float]:
    """A rate of 0/1 flags with its 95% Wilson interval and counts
    (:func:`workbench.evaluate.rate_interval`; ``clusters`` labels correlated groups)."""
    return rate_interval(flags, clusters)


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

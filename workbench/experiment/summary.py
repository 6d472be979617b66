"""The one summary of a tidy results table (:func:`workbench.experiment.tables.load_table`): per
condition, counts, rates with their 95% Wilson interval and means with their Monte Carlo
standard error (:mod:`workbench.montecarlo`), from the per-replicate rows, never from pooled
summaries. ``workbench run`` / ``workbench status`` print it (:func:`summary_table`) and the
report's summary section formats it (``workbench.report.summaries.condition_summary``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from workbench.montecarlo import mean_se, rate_interval
from workbench.status import FAILED_STATUSES, EMStatus

# Means computed per condition (value, ``_se`` and ``_m`` columns): the union of what the
# terminal summary and the report show.
MEANS = (
    "gap",
    "overall_rmse",
    "means_rmse",
    "ari",
    "means_coverage",
    "n_iter",
    "fit_time",  # fitting (EM) or sampling (Bayes) seconds, compile excluded
    "diag.compile_time",
)
RATE_FIELDS = ("rate", "lower", "upper", "k", "n")
# The terminal's columns: the returned fit's failure rate and these means.
CLI_MEANS = ("gap", "overall_rmse", "ari", "n_iter", "fit_time", "diag.compile_time")


def _flags(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def rate_columns(name: str) -> list[str]:
    """The summary's columns of rate ``name``: ``<name>_rate`` and its ``_lower``, ``_upper``,
    ``_k``, ``_n`` (in RATE_FIELDS order)."""
    return [f"{name}_rate" + ("" if f == "rate" else f"_{f}") for f in RATE_FIELDS]


def _rate(name: str, stats: dict[str, float]) -> pd.Series:
    return pd.Series([stats[f] for f in RATE_FIELDS], index=rate_columns(name))


def per_start_rate(ok: pd.DataFrame) -> dict[str, float] | None:
    """The per-start local-optimum rate pooled over every restart of ``ok``'s fits (k = the
    stored ``restart_failure_rate`` x ``diag.n_restarts`` of each fit), each fit's restarts a
    correlated cluster: :func:`~workbench.montecarlo.rate_interval`'s dict (``n`` counts
    starts); None without the columns."""
    if "restart_failure_rate" not in ok or "diag.n_restarts" not in ok:
        return None
    rate = pd.to_numeric(ok["restart_failure_rate"], errors="coerce")
    size = pd.to_numeric(ok["diag.n_restarts"], errors="coerce")
    keep = rate.notna() & size.notna() & (size > 0)
    if not keep.any():
        return None
    sizes = size[keep].astype(int).to_numpy()
    k = np.rint(rate[keep].to_numpy() * sizes).astype(int)
    flags = np.concatenate(
        [np.r_[np.ones(a), np.zeros(m - a)] for a, m in zip(k, sizes, strict=True)]
    )
    return rate_interval(flags, np.repeat(np.arange(len(sizes)), sizes))


def _condition(group: pd.DataFrame, means: Sequence[str]) -> pd.Series:
    """The summary of one condition's rows (see :func:`summarise_conditions`)."""
    ok = group[~group["status"].isin(FAILED_STATUSES)]
    row: dict[str, float] = {"fits": len(group), "errors": len(group) - len(ok)}
    parts = []
    if "failed" in ok and ok["failed"].notna().any():
        parts.append(_rate("failure", rate_interval(_flags(ok["failed"]))))
    if ok["method"].eq("em").any():
        degenerate = (ok["status"] == EMStatus.DEGENERATE).to_numpy(float)
        parts.append(_rate("degenerate", rate_interval(degenerate)))
    per_start = per_start_rate(ok)
    if per_start is not None:
        parts.append(_rate("start_failure", per_start))
    for name in means:
        if name in ok and ok[name].notna().any():
            value, se, m = mean_se(ok[name])
            row.update({name: value, f"{name}_se": se, f"{name}_m": m})
    return pd.concat([pd.Series(row, dtype=object), *parts])


def summarise_conditions(
    table: pd.DataFrame, by: Sequence[str] = ("fitter", "data"), means: Sequence[str] = MEANS
) -> pd.DataFrame:
    """One row per condition (group of ``by``, in table order) of a tidy results table.

    Columns: ``by``; ``fits`` and ``errors`` (cells without a fit: error, timeout, crash,
    skip); over the completed fits, for each rate ``failure`` (the stored ``failed`` verdict of
    the returned fit), ``degenerate`` (EM fits whose status is degenerate) and
    ``start_failure`` (the per-start local-optimum rate, each fit's restarts a cluster):
    ``<rate>_rate``, ``_rate_lower``, ``_rate_upper`` (95% Wilson), ``_rate_k`` and ``_rate_n``
    (:func:`rate_columns`), present for the conditions they apply to (NaN elsewhere); for each
    of ``means`` present: ``<name>`` (the mean), ``<name>_se`` (sd / sqrt(m)) and ``<name>_m``.
    """
    by = list(by)
    rows = [
        pd.concat([pd.Series(dict(zip(by, key, strict=True)), dtype=object), _condition(g, means)])
        for key, g in table.groupby(by, sort=False, dropna=False)
    ]
    if not rows:
        return pd.DataFrame(columns=[*by, "fits", "errors"])
    out = pd.DataFrame(rows).reset_index(drop=True)
    order = [*by, "fits", "errors"]
    order += [c for r in ("failure", "degenerate", "start_failure") for c in rate_columns(r)]
    order += [f"{m}{s}" for m in means for s in ("", "_se", "_m")]
    out = out[[c for c in order if c in out]]
    numeric = [c for c in out.columns if c not in by]
    out[numeric] = out[numeric].apply(pd.to_numeric, errors="coerce")
    out[["fits", "errors"]] = out[["fits", "errors"]].astype(int)
    return out


def summary_table(frame: pd.DataFrame, metrics: tuple[str, ...] = CLI_MEANS) -> pd.DataFrame:
    """The terminal's view of :func:`summarise_conditions` per (fitter, data) condition:
    fits, errors, ``failure_rate`` with ``failure_rate_lower`` / ``_upper`` (95% Wilson) and
    ``failure_rate_n``, and each of ``metrics`` with ``<name>_se`` (``diag.`` dropped from
    names)."""
    if frame.empty:
        return pd.DataFrame()
    summary = summarise_conditions(frame, ("fitter", "data"), metrics)
    columns = {"fitter": "fitter", "data": "data", "fits": "fits", "errors": "errors"}
    if "failure_rate" in summary:
        for suffix in ("", "_lower", "_upper", "_n"):
            columns[f"failure_rate{suffix}"] = f"failure_rate{suffix}"
    for name in metrics:
        if name in summary:
            short = name.removeprefix("diag.")
            columns[name], columns[f"{name}_se"] = short, f"{short}_se"
    return summary[list(columns)].rename(columns=columns)

"""The summaries a report shows, from per-replicate rows, never from pooled summaries: means
with their Monte Carlo standard error sd / sqrt(m) and rates with their counts and 95% Wilson
interval (:mod:`workbench.montecarlo`), per condition; paired comparisons of fitters on the same
data sets; the failures list; example cells for the figures of single fits."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from workbench.experiment.summary import (
    RATE_FIELDS,
    per_start_rate,
    rate_columns,
    summarise_conditions,
)
from workbench.montecarlo import mean_se, rate_interval
from workbench.report.store_reader import ReportData, completed, numbers
from workbench.report.text import rate_text
from workbench.status import ERROR_STATUSES, SUCCESS_STATUSES, EMStatus

DEFAULT_NOMINAL = 0.9


def summarise(frame: pd.DataFrame, by: list[str], column: str, kind: str = "mean") -> pd.DataFrame:
    """Per group of ``by``: ``value``, ``se`` and ``m`` of ``column`` from per-replicate rows.
    kind ``mean``: se = sd / sqrt(m); kind ``rate`` (0/1 flags): no se (NaN) but the 95% Wilson
    interval ``lower``, ``upper`` and the count ``k`` of
    :func:`~workbench.montecarlo.rate_interval`; kind ``starts`` (the per-fit
    ``restart_failure_rate``): likewise over every start, each fit's restarts a correlated
    cluster (:func:`~workbench.experiment.summary.per_start_rate`; ``m`` counts starts)."""
    extra = ["lower", "upper", "k"] if kind in ("rate", "starts") else []
    columns = [*by, "value", "se", "m", *extra]
    rows = []
    if column not in frame:
        return pd.DataFrame(columns=columns)
    for key, group in frame.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        values = pd.to_numeric(group[column], errors="coerce").to_numpy(dtype=float)
        if extra:
            stats = rate_interval(values) if kind == "rate" else per_start_rate(group)
            if stats is None:
                continue
            row = {"value": stats["rate"], "se": math.nan, "m": int(stats["n"])}
            row.update({name: stats[name] for name in extra})
        else:
            value, se, m = mean_se(values)
            row = {"value": value, "se": se, "m": m}
        if row["m"]:
            rows.append({**dict(zip(by, key, strict=True)), **row})
    return pd.DataFrame(rows, columns=columns)


# Means shown as (value, se) pairs in the condition summary: (label, column).
SUMMARY_COLUMNS = (
    ("overall RMSE", "overall_rmse"),
    ("means RMSE", "means_rmse"),
    ("ARI", "ari"),
    ("means coverage", "means_coverage"),
    ("iterations", "n_iter"),
    ("fit time, compile excluded (s)", "fit_time"),
    ("compile time (s)", "diag.compile_time"),
)


def condition_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The report's view of :func:`~workbench.experiment.summary.summarise_conditions`: one row
    per (experiment, fitter, data) condition: fits, errors, the returned fit's local-optimum
    rate with ``local-optimum rate`` its value and ``local-optimum rate (95% CI)`` its Wilson
    interval and counts, the degenerate share and the per-start local-optimum rate likewise,
    and each mean quantity as (value, se) pairs in columns ``<name>`` and ``<name> se``."""
    means = tuple(column for _, column in SUMMARY_COLUMNS)
    summary = summarise_conditions(table, ("experiment", "fitter", "data"), means)
    out = summary[["experiment", "fitter", "data", "fits", "errors"]].copy()
    texts = (
        ("failure", "local-optimum rate (95% CI)", "fits"),
        ("degenerate", "degenerate (95% CI)", "fits"),
        ("start_failure", "per-start local-optimum rate (95% CI)", "starts"),
    )
    for prefix, label, unit in texts:
        if f"{prefix}_rate" not in summary:
            continue
        if prefix == "failure":
            out["local-optimum rate"] = summary["failure_rate"]
        stats = summary[rate_columns(prefix)].set_axis(RATE_FIELDS, axis=1)
        out[label] = [
            rate_text(row, unit) if pd.notna(row["n"]) else np.nan for _, row in stats.iterrows()
        ]
    for label, column in SUMMARY_COLUMNS:
        if column in summary:
            out[label], out[f"{label} se"] = summary[column], summary[f"{column}_se"]
    return out


def status_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Fits by status per (experiment, fitter): a small cross table."""
    counts = table.groupby(["experiment", "fitter", "status"], sort=False).size()
    return counts.unstack("status", fill_value=0).reset_index()


def coverage_columns(table: pd.DataFrame) -> list[str]:
    """Metric columns holding interval coverage fractions (``weights_coverage``, ...)."""
    return [c for c in table.columns if c.endswith("_coverage") and table[c].notna().any()]


def nominal_level(table: pd.DataFrame) -> pd.Series:
    """Each row's nominal interval level: from a ``fit.*level*`` setting, else 0.9."""
    level = pd.Series(DEFAULT_NOMINAL, index=table.index, dtype=float)
    for column in table.columns:
        if column.startswith("fit.") and "level" in column:
            values = pd.to_numeric(table[column], errors="coerce")
            level = values.where(values.notna(), level)
    return level


def pairs(table: pd.DataFrame) -> list[tuple[str, str]]:
    """Fitter conditions to compare on the same data sets: every (EM-side, other-method)
    pair when several methods ran, else the first fitter against each other one."""
    fitters = table.drop_duplicates("fitter")[["fitter", "method"]]
    methods = list(dict.fromkeys(fitters["method"]))
    if len(methods) > 1:
        base = fitters[fitters["method"] == methods[0]]["fitter"].tolist()
        other = fitters[fitters["method"] != methods[0]]["fitter"].tolist()
        return [(a, b) for b in other for a in base][:6]
    names = fitters["fitter"].tolist()
    return [(names[0], b) for b in names[1:4]]


def paired(table: pd.DataFrame, a: str, b: str, metric: str) -> pd.DataFrame:
    """Rows (experiment, data, replicate, ``a``, ``b``, difference b - a) for data sets both
    fitters finished: a paired comparison on the very same data."""
    ok = completed(table)
    keys = ["experiment", "data", "data_id", "replicate"]
    left = ok[ok["fitter"] == a][[*keys, metric]].rename(columns={metric: "a"})
    right = ok[ok["fitter"] == b][[*keys, metric]].rename(columns={metric: "b"})
    both = left.merge(right, on=keys).dropna(subset=["a", "b"])
    both["difference"] = both["b"] - both["a"]
    return both


def fixed_budget(table: pd.DataFrame) -> pd.Series:
    """Fits that ran a fixed number of iterations by design (``tol = 0``, status max_iter)."""
    return (table["status"] == EMStatus.MAX_ITER) & (numbers(table, "fit.tol") == 0)


def failures_table(table: pd.DataFrame, limit: int = 200) -> tuple[pd.DataFrame, int]:
    """Fits that errored, or returned a local optimum or a non-ok status (fixed-budget runs
    that reached max_iter by design excepted); at most ``limit`` rows, plus the total count."""
    failed = numbers(table, "failed").fillna(0).astype(bool)
    bad_status = ~table["status"].isin(SUCCESS_STATUSES) & ~fixed_budget(table)
    rows = table[failed | bad_status | table["status"].isin(ERROR_STATUSES)]
    columns = ["experiment", "fitter", "data", "replicate", "status", "gap", "message", "cell_id"]
    rows = rows[[c for c in columns if c in rows]]
    return rows.head(limit), len(rows)


def example_cells(data: ReportData, limit: int = 6) -> list[tuple]:
    """(experiment, row, kind) examples: per experiment and method, a success and a failure."""
    out = []
    for exp in data.experiments:
        done = completed(exp.table)
        done = done[done["cell_id"].notna()]
        for _, group in done.groupby("method", sort=False):
            bad = numbers(group, "failed").fillna(0).astype(bool)
            bad |= ~group["status"].isin(SUCCESS_STATUSES)
            gap = numbers(group, "gap").fillna(0.0)
            if (~bad).any():
                score = (gap + numbers(group, "overall_rmse"))[~bad]
                out.append((exp, group.loc[score.fillna(np.inf).idxmin()], "success"))
            if bad.any():
                out.append((exp, group[bad].loc[gap[bad].idxmax()], "failure"))
    return out[:limit]

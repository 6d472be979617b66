"""What a report reads from a results store, and the summaries it shows.

Everything comes from the store (read-only): the tidy per-fit table of
:func:`workbench.experiment.tables.load_table`, the design, the data sets' truths, EM traces,
restarts and the runs' provenance. Summaries are computed from per-replicate rows, never from
pooled summaries: means with their Monte Carlo standard error sd / sqrt(m), rates with their
counts and 95% Wilson interval (:mod:`workbench.report.rates`)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.data.dataset import Dataset
from workbench.data.registry import generate
from workbench.experiment.config import DataCondition
from workbench.experiment.design import Cell
from workbench.experiment.runner import ERROR_STATUSES, FAILED_STATUSES
from workbench.experiment.store import Store
from workbench.experiment.tables import load_table
from workbench.params import MixtureParams
from workbench.report.rates import rate_ci, rate_text, summarise_rate  # noqa: F401 - re-exported

# Columns of the tidy table that describe a fitter condition or bookkeeping, not a grid axis.
NOT_AXES = ("data.generator",)
DEFAULT_NOMINAL = 0.9


@dataclass
class Experiment:
    """One experiment's store, read once: its per-fit table and the small design tables."""

    directory: Path
    name: str
    meta: dict[str, str]
    table: pd.DataFrame
    runs: pd.DataFrame
    datasets: pd.DataFrame
    cells: pd.DataFrame
    data_conditions: pd.DataFrame
    sections: tuple[str, ...] | None = None  # [report] sections of the latest run's config

    def query(self, sql: str, params: tuple = ()) -> pd.DataFrame:
        """A read-only SQL query against the store."""
        store = Store.open(self.directory)
        try:
            return pd.read_sql_query(sql, store.conn, params=params)
        finally:
            store.close()

    def traces(self, cell_ids: list[str]) -> pd.DataFrame:
        """EM objective per (cell_id, restart, iteration) for the given cells."""
        if not cell_ids:
            return pd.DataFrame(columns=["cell_id", "restart", "iteration", "loglik"])
        marks = ",".join("?" * len(cell_ids))
        return self.query(
            f"SELECT cell_id, restart, iteration, loglik FROM em_traces WHERE cell_id IN ({marks})"
            " ORDER BY cell_id, restart, iteration",
            tuple(cell_ids),
        )

    def restarts(self, cell_ids: list[str]) -> pd.DataFrame:
        """One row per restart of the given cells: loglik, status, n_iter, gap, failed, best."""
        marks = ",".join("?" * len(cell_ids)) or "''"
        return self.query(f"SELECT * FROM restarts WHERE cell_id IN ({marks})", tuple(cell_ids))

    def params(self, cell_id: str) -> MixtureParams | None:
        """The stored fitted parameters of a cell, or None."""
        rows = self.query("SELECT params FROM fits WHERE cell_id = ?", (cell_id,))
        if rows.empty or rows["params"].iloc[0] is None:
            return None
        return MixtureParams.from_dict(json.loads(rows["params"].iloc[0]))

    def truth(self, data_id: str, replicate: int) -> MixtureParams | None:
        """The stored generating parameters of a data set, or None."""
        rows = self.datasets[
            (self.datasets["data_id"] == data_id) & (self.datasets["replicate"] == replicate)
        ]
        if rows.empty or rows["truth"].iloc[0] is None:
            return None
        return MixtureParams.from_dict(json.loads(rows["truth"].iloc[0]))

    def dataset(self, cell_id: str) -> Dataset:
        """Regenerate a cell's data set from its stored generator, settings and data seed."""
        cell = self.cells.set_index("cell_id").loc[cell_id]
        cond = self.data_conditions.set_index("data_id").loc[cell["data_id"]]
        settings = json.loads(cond["settings"])
        data = DataCondition(cond["generator"], settings, "data", cond["label"])
        stored = Cell(
            cell_id,
            0,
            int(cell["replicate"]),
            cell["data_id"],
            "",
            data,
            None,  # type: ignore[arg-type]
            tuple(json.loads(cell["data_entropy"])),
            (),
        )
        return generate(data.generator, np.random.default_rng(stored.data_seed()), **settings)

    def posterior_file(self, cell_id: str) -> Path | None:
        """The cell's stored posterior netCDF, when it exists."""
        row = self.table.loc[self.table["cell_id"] == cell_id, "posterior_path"]
        if row.empty or not isinstance(row.iloc[0], str):
            return None
        path = self.directory / row.iloc[0]
        return path if path.is_file() else None


def load_experiment(directory: str | Path) -> Experiment:
    """Read an experiment's store (raises StoreError when there is none)."""
    directory = Path(directory)
    store = Store.open(directory)
    try:
        conn = store.conn
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        read = lambda sql: pd.read_sql_query(sql, conn)  # noqa: E731
        runs = read("SELECT * FROM runs ORDER BY run_id")
        datasets = read("SELECT * FROM datasets")
        cells = read("SELECT cell_id, data_id, fitter_id, replicate, data_entropy FROM cells")
        conditions = read("SELECT * FROM data_conditions ORDER BY position")
    finally:
        store.close()
    table = load_table(directory)
    name = meta.get("name", directory.name)
    table.insert(0, "experiment", name)
    return Experiment(
        directory, name, meta, table, runs, datasets, cells, conditions, _sections(runs)
    )


def _sections(runs: pd.DataFrame) -> tuple[str, ...] | None:
    """The ``[report] sections`` of the latest run's resolved config, if it names any."""
    for text in reversed(runs.get("resolved", pd.Series(dtype=object)).tolist()):
        try:
            sections = json.loads(text or "{}").get("report", {}).get("sections")
        except (ValueError, AttributeError):
            continue
        if isinstance(sections, list) and sections:
            return tuple(str(s) for s in sections)
    return None


# ---- grid variables ------------------------------------------------------------------------------
def grid_variables(table: pd.DataFrame, prefix: str = "data.") -> list[str]:
    """Setting columns (``data.*`` or ``fit.*``) that take more than one value: the grid axes."""
    out = []
    for column in table.columns:
        if not column.startswith(prefix) or column in NOT_AXES:
            continue
        values = {json.dumps(v, default=str) for v in table[column] if not _missing(v)}
        if len(values) > 1:
            out.append(column)
    return out


def numeric_variable(series: pd.Series) -> bool:
    """Whether a grid variable's values are all numbers (plotted on a numeric axis)."""
    values = [v for v in series if not _missing(v)]
    return bool(values) and all(
        isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in values
    )


def short_name(column: str) -> str:
    """``data.separation`` -> ``separation``; ``fit.init`` -> ``fit init``."""
    head, _, tail = column.partition(".")
    return tail if head == "data" else f"{head} {tail}" if tail else column


def slug(text: str) -> str:
    """A file-name-safe form of a column or label."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "x"


def numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as floats (NaN where missing or not a number; all NaN when absent)."""
    if column not in frame:
        return pd.Series(np.nan, index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def series_key(table: pd.DataFrame) -> pd.Series:
    """The legend label of each row: its fitter condition, prefixed by the experiment when
    several experiments are overlaid."""
    if table["experiment"].nunique() > 1:
        return table["experiment"].astype(str) + ": " + table["fitter"].astype(str)
    return table["fitter"].astype(str)


# ---- Monte Carlo summaries -----------------------------------------------------------------------
def mean_se(values: np.ndarray) -> tuple[float, float, int]:
    """(mean, MC standard error sd / sqrt(m), m) of per-replicate values (non-finite dropped)."""
    x = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, 0
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else math.nan
    return float(x.mean()), se, int(x.size)


def summarise(frame: pd.DataFrame, by: list[str], column: str, kind: str = "mean") -> pd.DataFrame:
    """Per group of ``by``: ``value``, ``se`` and ``m`` of ``column`` from per-replicate rows.
    kind ``mean``: se = sd / sqrt(m); kind ``rate`` (0/1 flags): no se (NaN) but the 95% Wilson
    interval ``lower``, ``upper`` and the count ``k`` of :func:`rate_ci`; kind ``starts`` (the
    per-fit ``restart_failure_rate``): likewise over every start, each fit's restarts a
    correlated cluster (:func:`_restart_rate`; ``m`` counts starts)."""
    extra = ["lower", "upper", "k"] if kind in ("rate", "starts") else []
    columns = [*by, "value", "se", "m", *extra]
    rows = []
    if column not in frame:
        return pd.DataFrame(columns=columns)
    for key, group in frame.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        values = pd.to_numeric(group[column], errors="coerce").to_numpy(dtype=float)
        if extra:
            stats = rate_ci(values) if kind == "rate" else _restart_rate(group)
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


def completed(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of fits that produced a result (no error, timeout, crash or skip)."""
    return table[~table["status"].isin(FAILED_STATUSES)]


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


# Rates of the returned fit: (label, 0/1 column or a failure_kind to count).
def _restart_rate(ok: pd.DataFrame) -> dict[str, float] | None:
    """The per-start local-optimum rate pooled over every restart of the condition (k = rate x
    restarts per cell), each cell's restarts a correlated cluster."""
    if "restart_failure_rate" not in ok or "diag.n_restarts" not in ok:
        return None
    rate = pd.to_numeric(ok["restart_failure_rate"], errors="coerce")
    size = pd.to_numeric(ok["diag.n_restarts"], errors="coerce")
    keep = rate.notna() & size.notna() & (size > 0)
    if not keep.any():
        return None
    flags, cells = [], []
    for i, (r, m) in enumerate(zip(rate[keep], size[keep].astype(int), strict=True)):
        k = int(round(r * m))
        flags += [1.0] * k + [0.0] * (m - k)
        cells += [i] * m
    return rate_ci(np.asarray(flags), np.asarray(cells))


def condition_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, fitter, data) condition: fits, errors, the returned fit's
    local-optimum rate with ``local-optimum rate`` its value and ``local-optimum rate (95% CI)``
    its Wilson interval and counts, the degenerate share and the per-start local-optimum rate
    likewise, and each mean quantity as (value, se) pairs in columns ``<name>`` and
    ``<name> se``."""
    rows = []
    for (exp, fitter, data), group in table.groupby(["experiment", "fitter", "data"], sort=False):
        ok = completed(group)
        row: dict[str, Any] = {"experiment": exp, "fitter": fitter, "data": data}
        row["fits"] = len(group)
        row["errors"] = int(len(group) - len(ok))
        if "failed" in ok and ok["failed"].notna().any():
            stats = rate_ci(pd.to_numeric(ok["failed"], errors="coerce").to_numpy(dtype=float))
            row["local-optimum rate"] = stats["rate"]
            row["local-optimum rate (95% CI)"] = rate_text(stats)
        if ok["method"].eq("em").any():
            stats = rate_ci((ok["status"] == "degenerate").to_numpy(dtype=float))
            row["degenerate (95% CI)"] = rate_text(stats)
        per_start = _restart_rate(ok)
        if per_start is not None:
            row["per-start local-optimum rate (95% CI)"] = rate_text(per_start, "starts")
        for label, column in SUMMARY_COLUMNS:
            if column in ok and ok[column].notna().any():
                value, se, _ = mean_se(pd.to_numeric(ok[column], errors="coerce").to_numpy())
                row[label], row[f"{label} se"] = value, se
        rows.append(row)
    return pd.DataFrame(rows)


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
    return (table["status"] == "max_iter") & (numbers(table, "fit.tol") == 0)


def failures_table(table: pd.DataFrame, limit: int = 200) -> tuple[pd.DataFrame, int]:
    """Fits that errored, or returned a local optimum or a non-ok status (fixed-budget runs
    that reached max_iter by design excepted); at most ``limit`` rows, plus the total count."""
    failed = numbers(table, "failed").fillna(0).astype(bool)
    bad_status = ~table["status"].isin(("converged", "ok")) & ~fixed_budget(table)
    rows = table[failed | bad_status | table["status"].isin(ERROR_STATUSES)]
    columns = ["experiment", "fitter", "data", "replicate", "status", "gap", "message", "cell_id"]
    rows = rows[[c for c in columns if c in rows]]
    return rows.head(limit), len(rows)


@dataclass
class ReportData:
    """The experiments of one report and their combined per-fit table."""

    experiments: list[Experiment]
    table: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.table = pd.concat([e.table for e in self.experiments], ignore_index=True)
        self.table["series"] = series_key(self.table)

    @property
    def name(self) -> str:
        return "_vs_".join(e.name for e in self.experiments)

    def experiment(self, name: str) -> Experiment:
        return next(e for e in self.experiments if e.name == name)


def example_cells(data: ReportData, limit: int = 6) -> list[tuple]:
    """(experiment, row, kind) examples: per experiment and method, a success and a failure."""
    out = []
    for exp in data.experiments:
        done = completed(exp.table)
        done = done[done["cell_id"].notna()]
        for _, group in done.groupby("method", sort=False):
            bad = numbers(group, "failed").fillna(0).astype(bool)
            bad |= ~group["status"].isin(("converged", "ok"))
            gap = numbers(group, "gap").fillna(0.0)
            if (~bad).any():
                score = (gap + numbers(group, "overall_rmse"))[~bad]
                out.append((exp, group.loc[score.fillna(np.inf).idxmin()], "success"))
            if bad.any():
                out.append((exp, group[bad].loc[gap[bad].idxmax()], "failure"))
    return out[:limit]

"""The one reader of a results store: the tidy results table (one row per fit, typed columns),
the restarts table (one row per EM restart), EM traces, fitted parameters and the design tables,
and the export. The CLI summary, the export and every report section read the store through
these functions alone; nothing else runs SQL against a store for reading.

Columns of :func:`load_table`: cell_id, position, replicate, data (condition label), fitter
(condition label), fitter_name (the ``[fitters.<name>]`` table), method, data_id, fitter_id,
status, message, loglik, n_iter, timings (fit_time, data_time, eval_time, total_time in seconds;
started_at, finished_at), worker, run_id, posterior_path; then ``data.<setting>`` and
``fit.<setting>`` for every explicit setting (lists as JSON text), the evaluation of
``evaluate_fit`` under its own names (``failed`` 1.0 / 0.0 / NaN = no verdict, ``gap`` in nats,
``failure_kind``, ``failure_rule`` and ``matching`` text, the ``unmatched_*`` counts Int64,
every other metric float64) and the fitter's diagnostics as ``diag.<name>``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.experiment.store import STORE_FILE, TIMING_COLUMNS, Store, StoreError, readable
from workbench.experiment.summary import summary_table
from workbench.params import MixtureParams

BASE_QUERY = """
SELECT f.cell_id, c.position, c.replicate, dc.label AS data, fc.label AS fitter,
    fc.fitter AS fitter_name, fc.method, c.data_id, c.fitter_id, f.status, f.message, f.loglik,
    f.n_iter, f.fit_time, f.data_time, f.eval_time, f.total_time, f.started_at, f.finished_at,
    f.worker, f.run_id, f.posterior_path, dc.generator, dc.settings AS data_settings,
    fc.settings AS fit_settings
FROM fits f JOIN cells c USING (cell_id) JOIN data_conditions dc USING (data_id)
    JOIN fitter_conditions fc USING (fitter_id)
ORDER BY c.position
"""
# Metrics of evaluate_fit that are text, and counts (nullable Int64); every other metric is a
# number (float64).
TEXT_METRICS = ("failure_kind", "failure_rule", "matching")
COUNT_METRICS = ("unmatched_fitted", "unmatched_true")
# Verdict inputs of each restart, stored in the restarts table's ``extra`` JSON.
RESTART_VERDICT = (
    "polished_loglik", "polished_status", "polished_iter", "max_eigenvalue", "param_distance",
    "cluster_change", "failure_kind",
)  # fmt: skip


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, list | dict) else value


def load_table(directory: str | Path) -> pd.DataFrame:
    """Every finished fit of the store in ``directory``, tidy, in design order."""
    store = Store.open(Path(directory))
    try:
        with readable(Path(directory) / STORE_FILE):
            conn = store.conn
            cursor = conn.execute(BASE_QUERY)
            names = [d[0] for d in cursor.description]
            base = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            extra: dict[str, dict[str, Any]] = {r["cell_id"]: {} for r in base}
            metric_names: set[str] = set()
            diag_names: set[str] = set()
            for cell_id, name, value in conn.execute("SELECT cell_id, name, value FROM metrics"):
                extra[cell_id][name] = value
                metric_names.add(name)
            for cell_id, name, value in conn.execute(
                "SELECT cell_id, name, value FROM diagnostics"
            ):
                extra[cell_id][f"diag.{name}"] = value
                diag_names.add(f"diag.{name}")
    finally:
        store.close()
    records = []
    setting_columns: dict[str, None] = {}
    for row in base:
        record = {k: v for k, v in row.items() if k not in ("data_settings", "fit_settings")}
        record["data.generator"] = record.pop("generator")
        for prefix, key in (("data", "data_settings"), ("fit", "fit_settings")):
            for name, value in json.loads(row[key]).items():
                record[f"{prefix}.{name}"] = _cell(value)
                setting_columns[f"{prefix}.{name}"] = None
        for name, value in extra[row["cell_id"]].items():
            record[name if name not in record else f"metric.{name}"] = value
        records.append(record)
    columns = [d for d in names if d not in ("generator", "data_settings", "fit_settings")]
    columns += ["data.generator"] + sorted(setting_columns, key=lambda c: c.startswith("fit."))
    columns += sorted(metric_names - set(columns)) + [
        f"metric.{m}" for m in sorted(metric_names & set(columns))
    ]
    columns += sorted(diag_names)
    frame = pd.DataFrame.from_records(records, columns=columns)
    for name in metric_names - set(TEXT_METRICS):
        column = name if f"metric.{name}" not in frame else f"metric.{name}"
        dtype = "Int64" if name in COUNT_METRICS else "float64"
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(dtype)
    return frame


@contextmanager
def _reading(directory: str | Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the store in ``directory`` (StoreError when missing, foreign
    or unreadable)."""
    store = Store.open(Path(directory))
    try:
        with readable(Path(directory) / STORE_FILE):
            yield store.conn
    finally:
        store.close()


def _select(directory: str | Path, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    with _reading(directory) as conn:
        return pd.read_sql_query(sql, conn, params=tuple(params))


def _in(cell_ids: Sequence[str] | None) -> tuple[str, tuple[str, ...]]:
    """A ``WHERE cell_id IN (...)`` clause for ``cell_ids`` (every cell when None)."""
    if cell_ids is None:
        return "", ()
    marks = ",".join("?" * len(cell_ids)) or "NULL"  # IN (NULL): no row
    return f" WHERE cell_id IN ({marks})", tuple(cell_ids)


def load_restarts(directory: str | Path, cell_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per EM restart (of ``cell_ids``, else of every cell): cell_id, restart, loglik,
    status, n_iter, gap (nats below the best known optimum, polished), failed (1.0 a local
    optimum, 0.0 not, NaN no verdict), best (1 for the restart returned as the fit) and the
    stored verdict's inputs and kind (RESTART_VERDICT columns; NaN where not stored)."""
    where, params = _in(cell_ids)
    rows = _select(directory, f"SELECT * FROM restarts{where} ORDER BY cell_id, restart", params)
    extra = [json.loads(e) if isinstance(e, str) else {} for e in rows.pop("extra")]
    verdicts = pd.DataFrame(extra, index=rows.index).reindex(columns=list(RESTART_VERDICT))
    rows = pd.concat([rows, verdicts], axis=1)
    rows["failed"] = pd.to_numeric(rows["failed"], errors="coerce").astype("float64")
    return rows


def load_traces(directory: str | Path, cell_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """EM objective per (cell_id, restart, iteration) of ``cell_ids`` (every cell when None)."""
    where, params = _in(cell_ids)
    sql = f"SELECT cell_id, restart, iteration, loglik FROM em_traces{where}"
    return _select(directory, sql + " ORDER BY cell_id, restart, iteration", params)


def load_params(
    directory: str | Path, cell_ids: Sequence[str] | None = None
) -> dict[str, MixtureParams]:
    """The stored fitted parameters by cell_id, of the cells (of ``cell_ids``) that have them."""
    where, params = _in(cell_ids)
    sql = f"SELECT cell_id, params FROM fits{where}"
    rows = _select(directory, sql, params)
    return {
        cell_id: MixtureParams.from_dict(json.loads(text))
        for cell_id, text in zip(rows["cell_id"], rows["params"], strict=True)
        if isinstance(text, str)
    }


def load_design(directory: str | Path) -> dict[str, Any]:
    """The store's small tables: ``meta`` (dict), and DataFrames ``runs`` (by run_id),
    ``datasets``, ``cells`` (cell_id, data_id, fitter_id, replicate, data_entropy) and
    ``data_conditions`` (in design order)."""
    with _reading(directory) as conn:
        read = lambda sql: pd.read_sql_query(sql, conn)  # noqa: E731
        return {
            "meta": dict(conn.execute("SELECT key, value FROM meta").fetchall()),
            "runs": read("SELECT * FROM runs ORDER BY run_id"),
            "datasets": read("SELECT * FROM datasets"),
            "cells": read("SELECT cell_id, data_id, fitter_id, replicate, data_entropy FROM cells"),
            "data_conditions": read("SELECT * FROM data_conditions ORDER BY position"),
        }


def without_timings(frame: pd.DataFrame) -> pd.DataFrame:
    """The table less columns that legitimately differ between identical runs: timings, the
    worker, the run, and per-process diagnostics (seconds, compile cache hits)."""
    volatile = ("time", "second", "compile_cached")
    drop = [
        c
        for c in frame.columns
        if c in TIMING_COLUMNS or any(v in c.split(".")[-1] for v in volatile)
    ]
    return frame.drop(columns=drop)


def export_table(directory: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write ``results.csv`` (and ``results.parquet`` when pyarrow is installed) to ``out``
    (default: the experiment directory). Returns the paths written."""
    frame = load_table(directory)
    out = Path(out) if out is not None else Path(directory)
    try:
        return _write_tables(frame, out)
    except OSError as err:
        why = err.strerror or str(err)
        raise StoreError(f"{err.filename or out}: cannot write the export ({why})") from None


def _write_tables(frame: pd.DataFrame, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.csv"]
    frame.to_csv(written[0], index=False)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return written
    mixed = frame.copy()
    for column in mixed.columns:
        if mixed[column].dtype == object:
            kinds = {type(v) for v in mixed[column] if v is not None and v == v}
            if len(kinds) > 1:
                mixed[column] = [None if v is None or v != v else str(v) for v in mixed[column]]
    written.append(out / "results.parquet")
    mixed.to_parquet(written[1], index=False)
    return written


__all__ = [
    "export_table", "load_design", "load_params", "load_restarts", "load_table", "load_traces",
    "summary_table", "without_timings",
]  # fmt: skip

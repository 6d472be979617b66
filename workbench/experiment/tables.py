"""The tidy results table (one row per fit) read from a store, its export, and a summary with
Monte Carlo standard errors.

Columns: cell_id, position, replicate, data (condition label), fitter (condition label),
fitter_name (the ``[fitters.<name>]`` table), method, data_id, fitter_id, status, message,
loglik, n_iter, timings (fit_time, data_time, eval_time, total_time in seconds; started_at,
finished_at), worker, run_id, posterior_path; then ``data.<setting>`` and ``fit.<setting>`` for
every explicit setting (lists as JSON text), the metrics of ``evaluate_fit`` under their own
names, and the fitter's diagnostics as ``diag.<name>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.experiment.runner import FAILED_STATUSES
from workbench.experiment.store import STORE_FILE, TIMING_COLUMNS, Store, StoreError, readable
from workbench.montecarlo import mean_se, rate_interval

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
# fit_time: fitting (EM) or sampling (Bayes) seconds, compile excluded; compile time apart.
SUMMARY_METRICS = ("gap", "overall_rmse", "ari", "n_iter", "fit_time", "diag.compile_time")


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
    return frame


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


def summary_table(frame: pd.DataFrame, metrics: tuple[str, ...] = SUMMARY_METRICS) -> pd.DataFrame:
    """Per (fitter, data) condition: fits, errors, failure rate with its 95% Wilson interval
    (``failure_rate_lower`` / ``_upper``) and count ``failure_rate_n``, and mean metrics with
    their Monte Carlo standard error sd / sqrt(m), computed from the per-replicate rows."""
    rows = []
    if frame.empty:
        return pd.DataFrame(rows)
    for (fitter, data), group in frame.groupby(["fitter", "data"], sort=False):
        ok = group[~group["status"].isin(FAILED_STATUSES)]
        row: dict[str, Any] = {"fitter": fitter, "data": data, "fits": len(group)}
        row["errors"] = int(len(group) - len(ok))
        if "failed" in ok and ok["failed"].notna().any():
            stats = rate_interval(pd.to_numeric(ok["failed"], errors="coerce").to_numpy(float))
            row["failure_rate"] = stats["rate"]
            row["failure_rate_lower"], row["failure_rate_upper"] = stats["lower"], stats["upper"]
            row["failure_rate_n"] = stats["n"]
        for name in metrics:
            if name in ok and ok[name].notna().any():
                short = name.removeprefix("diag.")
                row[short], row[f"{short}_se"], _ = mean_se(ok[name])
        rows.append(row)
    return pd.DataFrame(rows)

"""One typed record per cell, one tidy table read from the store, one summary behind the
terminal and the report; the verdict on a fit judged once, at evaluation, and read back as
stored."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import sqlite3
import textwrap

import numpy as np
import pandas as pd
import pytest
from experiment_fakes import SMALL

from workbench.cli import main
from workbench.evaluate import evaluate_fit, restart_verdicts
from workbench.experiment import summary as summary_module
from workbench.experiment.config import parse_config
from workbench.experiment.design import FIT_STREAM, build_design
from workbench.experiment.record import CellRecord
from workbench.experiment.runner import _dataset, make_task, run_cell
from workbench.experiment.store import SCHEMA_VERSION, STORE_FILE
from workbench.experiment.summary import summarise_conditions, summary_table
from workbench.experiment.tables import load_restarts, load_table
from workbench.fitter_interface import build_from_factory
from workbench.status import LOCAL_OPTIMUM_KINDS, FailureKind


@pytest.fixture
def small_run(tmp_path, write_config, capsys):
    path = write_config(SMALL, "small")
    argv = ["run", str(path), "--executor", "serial", "--reports-dir", str(tmp_path / "reports")]
    assert main([*argv, "--quiet", "--no-report"]) == 0, capsys.readouterr().err
    return tmp_path / "reports" / "small"


def test_the_tidy_table_has_typed_columns(small_run):
    """One row per fit; the verdict and every numeric metric float64 (failed: 1.0 / 0.0 / NaN),
    text metrics and statuses as text, design columns integers."""
    table = load_table(small_run)
    assert len(table) == 8 and table["cell_id"].is_unique
    for column in ("failed", "gap", "param_distance", "overall_rmse", "ari", "bias_means",
                   "restart_failure_rate", "loglik", "fit_time"):  # fmt: skip
        assert table[column].dtype == np.float64, (column, table[column].dtype)
    for column in ("position", "replicate"):
        assert pd.api.types.is_integer_dtype(table[column]), column
    for column in ("status", "failure_kind", "failure_rule", "matching", "fitter", "data"):
        assert all(isinstance(v, str) for v in table[column]), column
    assert set(table["failed"].dropna()) <= {0.0, 1.0}
    kinds = table["failure_kind"]
    judged = kinds != FailureKind.UNJUDGED
    assert (table.loc[judged, "failed"] == kinds[judged].isin(LOCAL_OPTIMUM_KINDS)).all()
    for text in table["matching"]:  # every true component matched to one fitted component
        assert sorted(t for _, t in json.loads(text)) == [0, 1]


def test_restarts_are_read_with_their_stored_verdict(small_run):
    """The restarts table comes back with each restart's verdict as columns; the returned
    restart's verdict is the fit's, as stored (never recomputed by the reader)."""
    restarts = load_restarts(small_run)
    table = load_table(small_run).set_index("cell_id")
    assert len(restarts) == 8 * 2 and "extra" not in restarts
    assert restarts["failed"].dtype == np.float64
    assert restarts["failure_kind"].isin(list(FailureKind)).all()
    assert restarts["polished_loglik"].notna().all()
    best = restarts[restarts["best"] == 1].set_index("cell_id")
    assert best.index.sort_values().equals(table.index.sort_values())
    np.testing.assert_array_equal(best["failed"], table.loc[best.index, "failed"])
    assert (best["failure_kind"] == table.loc[best.index, "failure_kind"]).all()
    only = load_restarts(small_run, [best.index[0]])
    assert set(only["cell_id"]) == {best.index[0]} and len(only) == 2
    assert load_restarts(small_run, []).empty


def test_run_cell_builds_one_frozen_record_carrying_the_evaluation(tmp_path):
    """The worker returns one immutable CellRecord whose verdict and metrics are evaluate_fit's
    on the very data and fit (refitted here from the cell's seeds)."""
    spec = parse_config(SMALL, str(tmp_path / "small.toml"))
    cell = build_design(spec)[0]
    task = make_task(cell, None, "best", 0)
    record = run_cell(task)
    assert isinstance(record, CellRecord) and record.status == "converged", record.message
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.status = "error"  # type: ignore[misc]

    dataset = _dataset(task)
    seq = np.random.SeedSequence(task.fit_entropy, spawn_key=(FIT_STREAM,))
    result = build_from_factory(task.factory, task.fitter_settings).fit(
        dataset, np.random.default_rng(seq)
    )
    metrics = evaluate_fit(dataset, result)
    assert record.failed == metrics["failed"] and record.failure_kind == metrics["failure_kind"]
    assert record.gap == metrics["gap"]
    for name in ("overall_rmse", "matching", "bias_weights", "bias_means", "bias_scales"):
        assert record.metrics[name] == metrics[name], name
    stored = record.evaluation()
    assert {k: stored[k] for k in ("failed", "gap", "failure_kind")} == {
        k: metrics[k] for k in ("failed", "gap", "failure_kind")
    }
    verdicts = restart_verdicts(result)
    assert [r.verdict["failure_kind"] for r in record.restarts] == [
        v["failure_kind"] for v in verdicts
    ]
    assert [r.best for r in record.restarts] == [
        r == result.restarts.best for r in range(len(verdicts))
    ]
    np.testing.assert_array_equal(record.params.means, result.params.means)


def _calls(function) -> set[str]:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    return {
        node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }


def test_the_terminal_and_the_report_show_one_summary(small_run):
    """``summary_table`` (terminal) and the report's ``condition_summary`` are views of
    ``summarise_conditions``: the same numbers, and neither computes a rate or mean itself."""
    from workbench.report.summaries import condition_summary

    table = load_table(small_run)
    core = summarise_conditions(table)
    cli = summary_table(table)
    report = condition_summary(table.assign(experiment="small"))
    assert len(core) == len(cli) == len(report) == 4
    for column in ("failure_rate", "failure_rate_lower", "overall_rmse", "overall_rmse_se", "gap"):
        np.testing.assert_array_equal(cli[column], core[column])
    np.testing.assert_array_equal(report["local-optimum rate"], core["failure_rate"])
    np.testing.assert_array_equal(report["overall RMSE se"], core["overall_rmse_se"])
    flags = table.groupby(["fitter", "data"], sort=False)["failed"].mean().to_numpy()
    np.testing.assert_allclose(core["failure_rate"], flags)
    for view in (summary_table, condition_summary):
        assert "summarise_conditions" in _calls(view)
        assert not {"rate_interval", "mean_se", "groupby"} & _calls(view), view
    assert summary_module.summarise_conditions is summarise_conditions


@pytest.mark.parametrize("command", ["status", "export", "report"])
def test_a_store_of_an_older_schema_is_one_line(command, small_run, tmp_path, capsys):
    with sqlite3.connect(small_run / STORE_FILE) as conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    argv = [command, str(small_run)]
    if command != "status":
        argv += ["--out", str(tmp_path / ("out" if command == "export" else "r.html"))]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"schema version 1, this workbench reads {SCHEMA_VERSION}" in err
    assert str(small_run / STORE_FILE) in err


def test_summary_columns_keep_their_declared_order():
    """A mean present only for a later condition (here interval coverage) takes its declared
    place, not the end of the table (the report's summary used to order columns by the first
    condition that had them)."""
    from workbench.report.summaries import SUMMARY_COLUMNS, condition_summary

    rows = [
        {"experiment": "x", "fitter": f, "data": "d", "status": "converged", "method": "em",
         "failed": 0.0, "overall_rmse": 0.1 * r, "n_iter": 10.0 + r,
         "means_coverage": np.nan if f == "a" else 0.5 * r}
        for f in ("a", "b") for r in (1, 2)
    ]  # fmt: skip
    summary = condition_summary(pd.DataFrame(rows))
    labels = [label for label, _ in SUMMARY_COLUMNS if label in summary]
    assert labels == ["overall RMSE", "means coverage", "iterations"]
    assert [c for c in summary.columns if c in labels] == labels
    assert np.isnan(summary.loc[0, "means coverage"]) and summary.loc[1, "means coverage"] == 0.75
    np.testing.assert_allclose(summary["iterations"], [11.5, 11.5])
    np.testing.assert_allclose(summary["iterations se"], [0.5, 0.5])

"""The results store: tidy table, long tables, provenance, resume without duplicates, refusal
to resume into a changed design, export."""

from __future__ import annotations

import hashlib
import sqlite3

import numpy as np
import pandas as pd
import pytest
from experiment_fakes import SMALL

from workbench.cli import main
from workbench.experiment.store import STORE_FILE
from workbench.experiment.tables import load_table, without_timings


def run(capsys, *args):
    code = main(["run", *map(str, args), "--quiet", "--no-report"])
    err = capsys.readouterr().err
    return code, err


def query(directory, sql):
    with sqlite3.connect(directory / STORE_FILE) as conn:
        return conn.execute(sql).fetchall()


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def small_run(tmp_path, write_config, capsys):
    path = write_config(SMALL, "small")
    code, err = run(capsys, path, "--executor", "serial", "--reports-dir", tmp_path / "reports")
    assert code == 0, err
    return path, tmp_path / "reports" / "small"


def test_tidy_table_one_row_per_fit(small_run):
    _, directory = small_run
    table = load_table(directory)
    assert len(table) == 2 * 2 * 2 and table["cell_id"].is_unique
    assert list(table["position"]) == sorted(table["position"])
    for column in ("data", "fitter", "method", "status", "loglik", "n_iter", "replicate"):
        assert column in table
    assert set(table["data.separation"]) == {1.5, 3.0}
    assert set(table["fit.init"]) == {"kmeans++", "random_from_data"}
    assert set(table["status"]) <= {"converged", "max_iter", "degenerate"}
    for metric in ("gap", "failed", "overall_rmse", "ari", "diag.reference_loglik"):
        assert metric in table and table[metric].notna().all()
    assert (table["fit_time"] > 0).all()


def test_long_tables_hold_restarts_traces_and_datasets(small_run):
    _, directory = small_run
    restarts = query(
        directory, "SELECT cell_id, COUNT(*), SUM(best) FROM restarts GROUP BY cell_id"
    )
    assert len(restarts) == 8 and all(n == 2 and b == 1 for _, n, b in restarts)
    traces = query(
        directory,
        "SELECT t.cell_id, t.restart, COUNT(*), r.n_iter FROM em_traces t "
        "JOIN restarts r USING (cell_id, restart) GROUP BY t.cell_id, t.restart",
    )
    assert len(traces) == 16 and all(count == n_iter + 1 for *_, count, n_iter in traces)
    table = load_table(directory)
    best = dict(query(directory, "SELECT cell_id, loglik FROM restarts WHERE best = 1"))
    assert all(best[c] == ll for c, ll in zip(table["cell_id"], table["loglik"], strict=True))
    assert query(directory, "SELECT COUNT(*) FROM datasets") == [(2 * 2,)]


def test_provenance_is_recorded(tmp_path, write_config, capsys):
    path = write_config(SMALL, "small")
    code, _ = run(
        capsys, path, "--set", "experiment.replicates=1", "--reports-dir", tmp_path, "-j", "1"
    )
    assert code == 0
    (row,) = query(
        tmp_path / "small-replicates1",  # a --set that changes the design: a derived folder
        "SELECT config_text, overrides, versions, platform, started_at, ended_at, outcome, "
        "executor FROM runs",
    )
    text, overrides, versions, platform, started, ended, outcome, executor = row
    assert text == SMALL and overrides == '["experiment.replicates=1"]'
    assert '"numpy"' in versions and '"python"' in platform
    assert started < ended and outcome == "finished" and executor == "local"


def test_rerun_resumes_without_duplicates(small_run, capsys):
    path, directory = small_run
    before = load_table(directory)
    with sqlite3.connect(directory / STORE_FILE) as conn:  # forget two cells, as after a kill
        victims = [r[0] for r in conn.execute("SELECT cell_id FROM fits LIMIT 2")]
        for table in ("fits", "metrics", "diagnostics", "restarts", "em_traces"):
            conn.executemany(f"DELETE FROM {table} WHERE cell_id = ?", [(v,) for v in victims])
    code, err = run(capsys, path, "--executor", "serial", "--reports-dir", directory.parent)
    assert code == 0, err
    after = load_table(directory)
    pd.testing.assert_frame_equal(without_timings(before), without_timings(after))
    assert set(after.loc[after["run_id"] == 2, "cell_id"]) == set(victims)
    code, _ = run(capsys, path, "--executor", "serial", "--reports-dir", directory.parent)
    assert query(directory, "SELECT COUNT(*), MAX(cells_run) FROM runs WHERE run_id = 3") == [
        (1, 0)
    ]


def test_changed_design_is_refused_unless_fresh(small_run, capsys):
    path, directory = small_run
    store = directory / STORE_FILE
    before = digest(store)
    where = ("--name", "small", "--reports-dir", directory.parent)  # not a derived folder
    code, err = run(capsys, path, "--set", "data.n=130", *where)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "different design" in err and "--fresh" in err
    assert digest(store) == before
    code, err = run(capsys, path, "--set", "data.n=130", "--fresh", *where)
    assert code == 0, err
    assert set(load_table(directory)["data.n"]) == {130}


def test_export_csv_and_parquet(small_run, tmp_path, capsys):
    _, directory = small_run
    assert main(["export", str(directory), "--out", str(tmp_path / "out")]) == 0
    table = load_table(directory)
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    parquet = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert len(csv) == len(parquet) == len(table)
    assert np.array_equal(parquet["loglik"].to_numpy(), table["loglik"].to_numpy())
    assert list(parquet.columns) == list(table.columns)


def test_status_report_and_missing_store(small_run, capsys, tmp_path):
    _, directory = small_run
    assert main(["status", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "8 cells: 8 done, 0 failed, 0 pending" in out
    assert main(["report", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "em(init=kmeans++)" in out and "±" in out
    assert main(["status", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no results store" in err


def test_data_sets_carry_their_fingerprint_and_older_stores_resume(small_run, capsys):
    """Every stored data set has the SHA-256 fingerprint of its points and labels; a store
    made before fingerprints (no such column) resumes: the column is added, cells run now get
    one, older rows stay NULL (unchecked by the report)."""
    from workbench.experiment.runner import data_fingerprint
    from workbench.report.store_reader import load_experiment

    path, directory = small_run
    rows = query(directory, "SELECT data_id, replicate, fingerprint FROM datasets")
    assert len(rows) == 4 and all(isinstance(f, str) and len(f) == 64 for _, _, f in rows)
    exp = load_experiment(directory)
    for cell_id, data_id, replicate in exp.table[["cell_id", "data_id", "replicate"]].values:
        dataset = exp.dataset(cell_id)  # regenerated and checked
        expected = dict(((d, r), f) for d, r, f in rows)[(data_id, replicate)]
        assert data_fingerprint(dataset.X, dataset.labels) == expected

    with sqlite3.connect(directory / STORE_FILE) as conn:  # as a store of the older schema
        conn.execute("ALTER TABLE datasets DROP COLUMN fingerprint")
        replicate_one = "SELECT cell_id FROM cells WHERE replicate = 1"
        for table in ("fits", "metrics", "diagnostics", "restarts", "em_traces"):
            conn.execute(f"DELETE FROM {table} WHERE cell_id IN ({replicate_one})")
        conn.execute("DELETE FROM datasets WHERE replicate = 1")
    code, err = run(capsys, path, "--executor", "serial", "--reports-dir", directory.parent)
    assert code == 0, err
    rows = query(directory, "SELECT replicate, fingerprint FROM datasets ORDER BY replicate")
    assert [r for r, _ in rows] == [0, 0, 1, 1]
    assert [f is None for _, f in rows] == [True, True, False, False]
    exp = load_experiment(directory)
    for cell_id in exp.table["cell_id"]:
        exp.dataset(cell_id)  # unchecked rows and checked rows alike

"""Executors give identical tables (serial, local processes, Dask LocalCluster); crashes,
timeouts and errors are isolated and recorded; hopeless conditions stop early."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
from experiment_fakes import SMALL

from workbench.cli import main
from workbench.experiment.runner import CellTimeout, time_limit
from workbench.experiment.tables import load_table, without_timings

EM_GRID = SMALL.replace(
    "K = 2\nd = 1\nseparation = [1.5, 3.0]",
    'separation = [1.0, 3.0]\nK = [2, 3]\nd = [1, 2]\nzip = [["K", "d"]]',
) + (  # small_em starts and diag covariances too
    '\n[fitters.small]\nmethod = "em"\ninit = "small_em"\ncovariance_type = "diag"\n'
)


def run(capsys, path, reports, *extra):
    code = main(
        [
            "run",
            str(path),
            "--quiet",
            "--no-report",
            "--reports-dir",
            str(reports),
            *map(str, extra),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return load_table(reports / "small")


def test_serial_local_and_dask_tables_are_identical(tmp_path, write_config, capsys):
    path = write_config(EM_GRID, "small")
    serial = run(capsys, path, tmp_path / "serial", "--executor", "serial")
    local = run(capsys, path, tmp_path / "local", "-j", "2")
    dask = run(capsys, path, tmp_path / "dask", "--executor", "dask", "-j", "2")
    assert len(serial) == 2 * 2 * 3 * 2
    assert set(serial["status"]) <= {"converged", "max_iter", "degenerate"}
    pd.testing.assert_frame_equal(without_timings(serial), without_timings(local), check_exact=True)
    pd.testing.assert_frame_equal(without_timings(serial), without_timings(dask), check_exact=True)
    assert local["worker"].nunique() == 2


@pytest.mark.parametrize("executor", ["local", "dask"])
def test_worker_crash_is_isolated(tmp_path, write_config, capsys, fakes, executor):
    replicates = 2 if executor == "dask" else 4  # dask restarts a dead worker slowly
    text = SMALL.replace("replicates = 2", f"replicates = {replicates}") + (
        '\n[fitters.crashy]\nmethod = "crash"\ncrash_probability = 0.5\n'
    )
    table = run(capsys, write_config(text, "small"), tmp_path, "-j", "2", "--executor", executor)
    crashy = table[table["fitter_name"] == "crashy"]
    crashed = crashy[crashy["status"] == "crashed"]
    assert 0 < len(crashed) < len(crashy)
    died = "KilledWorker" if executor == "dask" else r"worker process died \(exit code 3\)"
    assert crashed["message"].str.contains(died).all()
    assert set(crashy["status"]) <= {"crashed", "converged", "max_iter", "degenerate"}
    others = table[table["fitter_name"] == "em"]
    assert (
        len(others) == 2 * 2 * replicates and not others["status"].isin(["crashed", "error"]).any()
    )


@pytest.mark.parametrize("executor", ["local", "serial"])
def test_timeout_is_enforced_in_the_worker(tmp_path, write_config, capsys, fakes, executor):
    """A stuck cell (busy for 60 s) is stopped at the 2.5 s cell timeout while healthy cells of
    the same run finish. Outcomes only, no wall-clock bound: a timeout that did not fire leaves
    the stuck cell ``converged`` after its 60 s. The healthy control skips the reference bank
    (``reference = false``: a few milliseconds of EM), so even a heavily loaded machine cannot
    push it past the timeout."""
    text = (
        SMALL.replace("seed = 7", "seed = 7\ntimeout = 2.5")
        .replace("replicates = 2", "replicates = 1")
        .replace("n_restarts = 2\n", "n_restarts = 2\nreference = false\n", 1)
        + '\n[fitters.stuck]\nmethod = "sleep"\nseconds = 60.0\nreference = false\n'
    )
    table = run(capsys, write_config(text, "small"), tmp_path, "--executor", executor, "-j", "2")
    stuck = table[table["fitter_name"] == "stuck"]
    assert (stuck["status"] == "timeout").all() and len(stuck) == 2
    assert stuck["message"].str.contains("cell timeout of 2.5 s").all()
    assert (stuck["total_time"] >= 2.5).all()  # stopped by the timeout, not before it
    em = table[table["fitter_name"] == "em"]
    assert len(em) == 4 and em["status"].isin(["converged", "max_iter"]).all()


def test_cli_timeout_overrides_the_config(tmp_path, write_config, capsys, fakes):
    text = (
        SMALL.replace("replicates = 2", "replicates = 1")
        + '\n[fitters.stuck]\nmethod = "sleep"\nseconds = 3.0\n'
    )
    table = run(
        capsys, write_config(text, "small"), tmp_path, "--executor", "serial", "--timeout", "0.5"
    )
    assert (table.loc[table["fitter_name"] == "stuck", "status"] == "timeout").all()


def test_errors_are_recorded_and_hopeless_conditions_stop(tmp_path, write_config, capsys, fakes):
    text = (
        SMALL.replace("replicates = 2", "replicates = 5")
        .replace("seed = 7", "seed = 7\nmax_consecutive_errors = 2")
        .replace("separation = [1.5, 3.0]", "separation = 3.0")
        + '\n[fitters.broken]\nmethod = "error"\nmessage = "no luck"\n'
    )
    path = write_config(text, "small")
    code = main(
        ["run", str(path), "--executor", "serial", "--no-report", "--reports-dir", str(tmp_path)]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "stopping condition broken on gaussian_mixture: 2 consecutive failures" in captured.err
    broken = load_table(tmp_path / "small").query("fitter_name == 'broken'")
    assert list(broken["status"]) == ["error", "error", "skipped", "skipped", "skipped"]
    assert broken["message"].iloc[0] == "RuntimeError: no luck"
    assert broken["message"].iloc[-1].startswith("not run: condition stopped after 2")


def test_time_limit_interrupts_python_code_in_main_and_other_threads():
    def busy():
        with time_limit(0.2):
            end = time.monotonic() + 10
            while time.monotonic() < end:
                pass

    start = time.monotonic()
    with pytest.raises(CellTimeout):
        busy()
    assert time.monotonic() - start < 2
    result = {}

    def in_thread():
        try:
            busy()
        except CellTimeout:
            result["timeout"] = time.monotonic() - start

    start = time.monotonic()
    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(15)
    assert result["timeout"] < 2
    with time_limit(5.0):  # a finished block leaves nothing armed
        pass
    time.sleep(0.05)

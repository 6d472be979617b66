"""A run killed with SIGKILL mid-way resumes to the same table as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pandas as pd
from experiment_fakes import SMALL

from workbench.cli import main
from workbench.experiment.store import STORE_FILE
from workbench.experiment.tables import load_table, without_timings

SCRIPT = (
    "import sys; from workbench.settings import fitters; "
    "fitters.FITTERS['slow_em'] = 'experiment_fakes:SlowEMFitter'; "
    "from workbench.cli import main; sys.exit(main(sys.argv[1:]))"
)
CONFIG = SMALL.replace("replicates = 2", "replicates = 4").replace(
    "separation = [1.5, 3.0]",
    "separation = [3.0, 5.0]",  # quick fits; the pause sets the pace
) + ('\n[fitters.slow]\nmethod = "slow_em"\nseconds = 0.25\n')
TOTAL = 2 * 3 * 4


def stored(directory) -> int:
    try:
        with sqlite3.connect(f"file:{directory / STORE_FILE}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT COUNT(*) FROM fits").fetchone()[0]
    except sqlite3.Error:
        return 0


def counts(directory, table):
    with sqlite3.connect(directory / STORE_FILE) as conn:
        return conn.execute(f"SELECT cell_id, COUNT(*) FROM {table} GROUP BY cell_id").fetchall()


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, write_config, fakes, capsys):
    path = write_config(CONFIG, "small")
    command = [sys.executable, "-c", SCRIPT, "run", str(path), "-j", "2", "--quiet", "--no-report"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*command, "--reports-dir", str(killed)], start_new_session=True)
    deadline = time.monotonic() + 120
    while stored(killed / "small") < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its workers, mid-run
    proc.wait()
    at_kill = stored(killed / "small")
    assert 6 <= at_kill < TOTAL, at_kill
    # the killed run could not mark itself; status tells it is gone (issue 11)
    assert main(["status", str(killed / "small")]) == 0
    assert "interrupted: its process is gone" in capsys.readouterr().out

    rerun = subprocess.run([*command, "--reports-dir", str(killed)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{TOTAL} done" in rerun.stdout

    assert (
        main(
            [
                "run",
                str(path),
                "-j",
                "2",
                "--quiet",
                "--no-report",
                "--reports-dir",
                str(tmp_path / "ref"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    resumed, reference = load_table(killed / "small"), load_table(tmp_path / "ref" / "small")
    assert len(resumed) == TOTAL and resumed["cell_id"].is_unique
    assert set(resumed["run_id"]) == {1, 2}
    assert (resumed["run_id"] == 1).sum() == at_kill
    pd.testing.assert_frame_equal(without_timings(resumed), without_timings(reference))
    for table in ("restarts", "em_traces", "metrics", "diagnostics"):
        assert counts(killed / "small", table) == counts(tmp_path / "ref" / "small", table)
    with sqlite3.connect(killed / "small" / STORE_FILE) as conn:
        runs = conn.execute("SELECT run_id, outcome FROM runs ORDER BY run_id").fetchall()
    # the killed run never got to say so; the next run marked it interrupted (issue 11)
    assert runs == [(1, "interrupted"), (2, "finished")]

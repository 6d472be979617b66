"""The shipped quickstart, end to end, as a user runs it (a subprocess of the real CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import arviz as az
import pandas as pd

from workbench.bayes.diagnostics import STATUSES as BAYES_STATUSES
from workbench.cli import main
from workbench.experiment.tables import load_table
from workbench.status import FAILED_STATUSES

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "experiments" / "quickstart.toml"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "workbench.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_quickstart_end_to_end(tmp_path):
    # Its wall time is a benchmark (benchmarks/quickstart_cold.py), not an assertion here.
    done = cli("run", str(QUICKSTART), "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    directory = tmp_path / "reports" / "quickstart"
    table = load_table(directory)
    assert len(table) == 3 * 3 * 4 and table["cell_id"].is_unique
    assert not table["status"].isin(FAILED_STATUSES).any(), table[["fitter", "message"]]
    assert set(table["fitter"]) == {"em(init=kmeans++)", "em(init=random_params)", "bayes"}
    bayes = table[table["method"] == "bayes"]
    assert set(bayes["status"]) <= set(BAYES_STATUSES)
    assert bayes["diag.rhat_max"].notna().all() and bayes["means_coverage"].notna().all()
    for relative in bayes["posterior_path"]:
        posterior = az.from_netcdf(directory / relative).posterior
        assert posterior.sizes["chain"] == 2 and posterior.sizes["draw"] == 400
    em = table[table["method"] == "em"]
    assert em["failed"].notna().all() and em["gap"].notna().all()
    # paired: every fitter saw the same data sets
    assert table.groupby(["data", "replicate"])["fitter"].nunique().eq(3).all()

    again = cli("run", str(QUICKSTART), "--quiet", "--no-report", cwd=tmp_path)
    assert again.returncode == 0 and "0 run now" in again.stdout
    status = cli("status", str(directory), cwd=tmp_path)
    assert "36 cells: 36 done, 0 failed, 0 pending" in status.stdout
    exported = cli("export", str(directory), cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert len(pd.read_parquet(directory / "results.parquet")) == 36


def test_quickstart_em_only_and_list(tmp_path, capsys):
    args = ["run", "quickstart", "--set", "fitters.bayes.enabled=false", "-j", "2", "--no-report"]
    assert main([*args, "--reports-dir", str(tmp_path), "--quiet"]) == 0
    table = load_table(tmp_path / "quickstart-enabledfalse")  # the --set's derived folder
    assert len(table) == 24 and set(table["method"]) == {"em"}
    assert main(["list"]) == 0
    assert "quickstart" in capsys.readouterr().out

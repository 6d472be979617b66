"""A new user's first hour (issue 12): light commands, a readable summary, variations that keep
the stored results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pymc", "arviz", "pytensor", "nutpie", "numba", "matplotlib", "dask")


@pytest.mark.parametrize(
    "argv",
    [["validate", "experiments/quickstart.toml"], ["--help"], ["list"], ["validate", "scaling"]],
    ids=["validate", "help", "list", "validate-scaling"],
)
def test_light_commands_import_no_heavy_library(argv):
    """validate, list and --help answer without importing PyMC, ArviZ, numba, matplotlib or Dask
    (they took 13 s and 2 s when they did)."""
    code = (
        "import sys; from workbench.cli import main; "
        f"main({argv!r}); "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-2000:]


LONG_LABELS = """
[experiment]
name = "long_labels"
replicates = 2
seed = 11

[data]
generator = "gaussian_mixture"
n = [120, 150]
K = 2
d = 1
separation = [1.5, 3.0]
zip = [["n", "separation"]]

[fitters.em_with_a_rather_long_table_name_that_makes_every_label_long]
method = "em"
init = ["kmeans++", "random_from_data", "random_params"]
n_restarts = [1, 2]
tol = [1e-6, 1e-8]
engine = "numpy"
"""


def test_summary_reads_at_100_columns(write_config, tmp_path, capsys):
    """The terminal summary of a stored experiment with long condition labels: no line wider
    than 100 columns, no ellipsis, and every condition's full label in the key."""
    from workbench.cli import main
    from workbench.experiment.config import load_config
    from workbench.experiment.console import print_summary

    path = write_config(LONG_LABELS)
    reports = tmp_path / "reports"
    argv = ["run", str(path), "--reports-dir", str(reports), "--executor", "serial"]
    assert main([*argv, "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    print_summary(reports / "long_labels", width=100)
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "…" not in out and "..." not in out
    spec = load_config(path)
    labels = [c.label for c in spec.fitters] + [c.label for c in spec.data]
    assert max(len(label) for label in labels) > 90  # some labels need wrapping at 100
    flat = " ".join(out.split())
    for label in labels:
        assert " ".join(label.split()) in flat, label
    for metric in ("failure_rate", "gap", "overall_rmse", "ari", "n_iter", "fit_time"):
        assert metric in out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_set_that_changes_the_design_goes_to_a_derived_folder(write_config, tmp_path, capsys):
    """`run X --set data.n=...` after `run X` keeps X's results byte for byte, names the new
    folder, and a rerun of the same --set resumes there; --name picks the folder outright."""
    from experiment_fakes import SMALL

    from workbench.cli import main

    path = write_config(SMALL)
    reports = tmp_path / "reports"
    base = ["run", str(path), "--reports-dir", str(reports), "--executor", "serial", "--quiet"]
    assert main([*base, "--no-report"]) == 0
    before = _files(reports / "small")
    capsys.readouterr()

    assert main([*base, "--no-report", "--set", "data.n=150"]) == 0
    out, err = capsys.readouterr()
    assert _files(reports / "small") == before
    derived = reports / "small-n150"
    assert str(derived) in err and "small-n150: 8 cells, 8 done" in out
    assert sorted(p.name for p in reports.iterdir()) == ["small", "small-n150"]

    assert main([*base, "--no-report", "--set", "data.n=150"]) == 0  # resumes, runs nothing
    out, err = capsys.readouterr()
    assert "small-n150: 8 cells, 8 done (0 failed), 0 run now" in out
    assert sorted(p.name for p in reports.iterdir()) == ["small", "small-n150"]
    assert _files(reports / "small") == before

    assert main([*base, "--no-report", "--set", "data.n=150", "--name", "mine"]) == 0
    assert "mine: 8 cells, 8 done (0 failed), 8 run now" in capsys.readouterr().out
    assert main([*base, "--no-report", "--name", "../x"]) == 2
    assert "--name" in capsys.readouterr().err
    assert _files(reports / "small") == before


def test_design_change_without_set_offers_a_way_that_keeps_results(write_config, tmp_path, capsys):
    """An edited config refused against its old store names --name as well as --fresh."""
    from experiment_fakes import SMALL

    from workbench.cli import main

    path = write_config(SMALL)
    reports = tmp_path / "reports"
    base = ["run", str(path), "--reports-dir", str(reports), "--executor", "serial", "--quiet"]
    assert main([*base, "--no-report"]) == 0
    before = _files(reports / "small")
    path.write_text(SMALL.replace("n = 120", "n = 130"))
    capsys.readouterr()
    assert main([*base, "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "different design" in err and "--name" in err
    assert main([*base, "--no-report", "--name", "small-n130"]) == 0
    assert _files(reports / "small") == before

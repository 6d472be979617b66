"""A new user's first hour (issue 12): light commands, a readable summary, variations that keep
the stored results."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cache import code_version

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


# ---- a first run that explains itself ---------------------------------------------------------
def _python(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    environ.update(PYTHONPATH=str(ROOT), **env)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_numba_cache_is_in_the_user_cache_directory(tmp_path):
    """Importing workbench points numba's disk cache at $XDG_CACHE_HOME/workbench/numba/em-<hash
    of the EM sources> (set before numba is imported, and without importing it); a
    NUMBA_CACHE_DIR of the user's wins."""
    versioned = tmp_path / "workbench" / "numba" / f"em-{code_version()}"
    code = (
        "import sys, workbench; assert 'numba' not in sys.modules; "
        "import numba; print(numba.config.CACHE_DIR)"
    )
    assert _python(code, XDG_CACHE_HOME=str(tmp_path)) == str(versioned)
    mine = tmp_path / "mine"
    assert _python(code, XDG_CACHE_HOME=str(tmp_path), NUMBA_CACHE_DIR=str(mine)) == str(mine)
    code = (  # numba imported first (PyMC does): its config is pointed there all the same
        "import numba, workbench; print(numba.config.CACHE_DIR)"
    )
    assert _python(code, XDG_CACHE_HOME=str(tmp_path)) == str(versioned)


def test_an_edit_to_any_em_source_moves_the_numba_cache(tmp_path):
    """numba checks only the file defining a cached function; the cache folder is named by a
    hash of every EM source, so editing a callee (say products.py) cannot leave a caller in
    another file running its old compiled code."""
    sources = tmp_path / "em"
    shutil.copytree(
        ROOT / "workbench" / "em", sources, ignore=shutil.ignore_patterns("__pycache__")
    )
    before = code_version(sources)
    assert code_version(ROOT / "workbench" / "em") == before
    products = sources / "products.py"
    products.write_text(products.read_text() + "\n# an edit\n")
    assert code_version(sources) != before


@pytest.mark.slow
def test_compiled_em_kernels_go_to_the_user_cache_not_the_package(tmp_path):
    """A cold compile of the EM kernels writes numba's cache under $XDG_CACHE_HOME only."""
    package = ROOT / "workbench" / "em" / "__pycache__"
    before = sorted(package.glob("*.nb*")) if package.exists() else []
    _python("from workbench.em.run import warm; warm('full'); print('ok')",
            XDG_CACHE_HOME=str(tmp_path))  # fmt: skip
    assert list((tmp_path / "workbench" / "numba" / f"em-{code_version()}").rglob("loop.*.nbi"))
    after = sorted(package.glob("*.nb*")) if package.exists() else []
    assert after == before


def test_compile_phases_of_the_quickstart():
    """One phase for the EM kernels and one per Bayes model structure (K, d), planned from the
    cells without importing PyMC or numba."""
    code = (
        "import sys\n"
        "from workbench.experiment.config import load_config\n"
        "from workbench.experiment.design import build_design\n"
        "from workbench.experiment.runner import _dataset, make_task\n"
        "from workbench.experiment.warmup import compile_phases\n"
        "out = []\n"
        "for name in ('quickstart', 'local_optima_quick'):\n"
        "    cells = build_design(load_config(f'experiments/{name}.toml'))\n"
        "    phases = compile_phases(cells, lambda c: _dataset(make_task(c, None, 'all', 1)))\n"
        "    out.append([(p.label, p.cells) for p in phases])\n"
        "assert 'pymc' not in sys.modules and 'numba' not in sys.modules\n"
        "print(repr(out))\n"
    )
    quickstart, local_optima = eval(_python(code))  # noqa: S307 - our own repr
    labels = [label for label, _ in quickstart]
    assert len(labels) == 2 and "EM kernels" in labels[0]
    assert labels[1] == "compiling the Bayes model K=2 d=1 (nutpie)"
    assert quickstart[1][1] == 12  # the 12 Bayes cells all use that model
    assert len(local_optima) == 1 and "EM kernels" in local_optima[0][0]  # EM only


class _Outcome:
    def __init__(self, total_time: float, compile_time: float, status: str = "ok") -> None:
        self.cell_id, self.status, self.message, self.log = "c", status, "", []
        self.total_time = total_time
        self.diagnostics = {"compile_time": compile_time, "compile_cached": int(compile_time == 0)}


class _Cell:
    def __init__(self, fitter: str) -> None:
        self.fitter = type("F", (), {"label": fitter})()
        self.data = type("D", (), {"label": "d"})()
        self.replicate = 0


def test_progress_shows_phases_and_its_eta_leaves_compile_time_out(tmp_path, capsys):
    from workbench.experiment.console import Progress

    progress = Progress("plain", tmp_path / "run.log", slots=2)
    with progress.phase("compiling the Bayes model K=2 d=1 (nutpie)"):
        pass
    err = capsys.readouterr().err
    assert "compiling the Bayes model K=2 d=1 (nutpie) ..." in err
    assert "compiling the Bayes model K=2 d=1 (nutpie): " in err
    cells = [_Cell("em")] * 10 + [_Cell("bayes")] * 10
    progress.plan(cells)
    progress.expect_worker_compiles(2)
    assert "workers compiling" in progress.description()
    progress.start(20, 0, 0)
    progress.advance(cells[0], _Outcome(0.5, 0.0))
    assert progress.eta_text() == "ETA -:--"  # the Bayes cells are not timed yet
    progress.advance(cells[10], _Outcome(42.0, 40.0))  # 2 s of sampling, 40 s compiling
    assert progress.description() == "cells (workers compiling the Bayes model)"
    progress.advance(cells[11], _Outcome(41.0, 38.0))  # 3 s
    assert progress.description() == "cells"
    # 9 EM cells at 0.5 s and 8 Bayes cells at 2.5 s, two at a time
    assert progress.eta() == pytest.approx((9 * 0.5 + 8 * 2.5) / 2, abs=0.5)
    progress.close()
    log = (tmp_path / "run.log").read_text()
    assert "phase: compiling the Bayes model K=2 d=1" in log and "compile 40.0 s" in log


def test_report_prints_a_line_per_section(write_config, tmp_path, capsys):
    """`workbench report` says what it builds while it builds it (it printed nothing for 82 s)."""
    from experiment_fakes import SMALL

    from workbench.cli import main

    path = write_config(SMALL)
    reports = tmp_path / "reports"
    argv = ["run", str(path), "--reports-dir", str(reports), "--executor", "serial", "--quiet"]
    assert main([*argv, "--no-report"]) == 0
    capsys.readouterr()
    assert main(["report", str(reports / "small")]) == 0
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0].startswith("building the report")
    sections = [line for line in lines if "section: " in line]
    assert any("section: Summary" in line for line in sections) and len(sections) >= 4, err
    assert any(line.strip().endswith("s  done") for line in lines), err


def test_a_model_compiled_before_is_left_to_the_workers(tmp_path, monkeypatch, capsys):
    """The parent compiles a Bayes model once; a later run on local workers skips that phase
    (the disk cache holds it and each worker builds its own copy anyway); a serial run, whose
    cells run in the parent, compiles it in the parent every time."""
    from workbench.experiment import warmup
    from workbench.experiment.console import Progress

    calls = []
    phase = warmup.Phase("compiling the Bayes model K=2 d=1 (nutpie)", lambda: calls.append(1),
                         cells=5, marker=tmp_path / "compiled" / "marker")  # fmt: skip
    monkeypatch.setattr(warmup, "compile_phases", lambda cells, dataset_of: [phase])
    for in_workers, expected in ((True, 1), (True, 1), (False, 2)):
        progress = Progress("plain", tmp_path / "run.log", slots=2)
        warmup.compile_first([], None, progress, in_workers)
        assert len(calls) == expected
        assert progress.worker_compiles == (2 if in_workers else 0)
        progress.close()
    assert phase.on_disk()
    log = (tmp_path / "run.log").read_text()
    assert "phase skipped: compiling the Bayes model K=2 d=1 (nutpie)" in log


def test_a_cold_em_compile_runs_alongside_the_bayes_model(tmp_path, monkeypatch):
    """With both to compile, the EM kernels compile in another process while the parent
    compiles the Bayes model; the EM phase then only waits for it and loads the kernels."""
    from workbench.experiment import warmup
    from workbench.experiment.console import Progress

    order = []
    script = f"open({str(tmp_path / 'aside')!r}, 'w').write('ran')"
    em = warmup.Phase("compiling the EM kernels (first run only)", lambda: order.append("em"),
                      script=script)  # fmt: skip
    bayes = warmup.Phase("compiling the Bayes model K=2 d=1 (nutpie)", lambda: order.append("b"))
    monkeypatch.setattr(warmup, "compile_phases", lambda cells, dataset_of: [em, bayes])
    progress = Progress("quiet", tmp_path / "run.log")
    warmup.compile_first([], None, progress, in_workers=True)
    progress.close()
    assert order == ["b", "em"]
    assert (tmp_path / "aside").read_text() == "ran"  # the background process ran the script
    log = (tmp_path / "run.log").read_text()
    assert "phase: compiling the Bayes model K=2 d=1 (nutpie), the EM kernels alongside" in log
    assert "phase: finishing the EM kernels, compiled alongside" in log


def test_notes_shown_during_a_run_are_recorded_with_it(write_config, tmp_path, capsys):
    """A note the run shows (here: the workbench source changed since stored cells were
    computed) is kept by the progress display and stored in the run's row of the store."""
    import json
    import sqlite3

    from experiment_fakes import SMALL

    from workbench.cli import main
    from workbench.experiment.console import Progress

    progress = Progress("quiet", tmp_path / "notes.log")
    progress.note("first")
    progress.note("second")
    progress.close()
    assert progress.notes == ["first", "second"]

    path = write_config(SMALL)
    reports = tmp_path / "reports"
    base = ["run", str(path), "--reports-dir", str(reports), "--executor", "serial", "--quiet"]
    assert main([*base, "--no-report"]) == 0
    store = reports / "small" / "results.sqlite"
    with sqlite3.connect(store) as conn:  # as if the first run had used other code
        versions = json.loads(conn.execute("SELECT versions FROM runs").fetchone()[0])
        versions["workbench_source"] = "0" * 16
        conn.execute("UPDATE runs SET versions = ?", (json.dumps(versions),))
    capsys.readouterr()
    assert main([*base, "--no-report"]) == 0
    assert "source changed" in capsys.readouterr().err
    with sqlite3.connect(store) as conn:
        notes = [json.loads(n or "[]") for (n,) in conn.execute("SELECT notes FROM runs")]
    assert notes[0] == [] and len(notes) == 2
    assert len(notes[1]) == 1 and "source changed" in notes[1][0]

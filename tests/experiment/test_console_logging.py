"""The run's terminal and run.log lines go through :mod:`logging` (rich's RichHandler on a
terminal); library code never prints."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

from rich.logging import RichHandler

from workbench.experiment.console import RUN_LOGGER, Progress

PACKAGE = Path(__file__).resolve().parents[2] / "workbench"
# The command line prints its results and errors; the terminal summary table is its output.
MAY_PRINT = {("cli.py", None), ("experiment/console.py", "print_summary")}


def test_rich_mode_logs_through_a_rich_handler_and_to_the_run_log(tmp_path, capsys):
    progress = Progress("rich", tmp_path / "run.log")
    handlers = logging.getLogger(RUN_LOGGER).handlers
    assert any(isinstance(h, RichHandler) for h in handlers)
    progress.note("note: something to see")
    logging.getLogger("workbench.experiment.warmup").warning("a warning from another module")
    progress.close()
    err = capsys.readouterr().err
    assert "note: something to see" in err and "a warning from another module" in err
    log = (tmp_path / "run.log").read_text()
    assert "note: something to see" in log and "a warning from another module" in log
    assert not any(isinstance(h, RichHandler) for h in logging.getLogger(RUN_LOGGER).handlers)


def test_quiet_mode_shows_notes_only_and_logs_everything(tmp_path, capsys):
    progress = Progress("quiet", tmp_path / "run.log")
    with progress.phase("a phase"):
        logging.getLogger("workbench.experiment.runner").info("a detail for the log")
    progress.note("note: shown even when quiet")
    progress.close()
    err = capsys.readouterr().err
    assert err.strip() == "note: shown even when quiet"
    log = (tmp_path / "run.log").read_text()
    assert "phase: a phase" in log and "a detail for the log" in log
    assert "a phase ..." not in log  # lines meant for the screen alone stay off the log


def _printing_functions(path: Path) -> set[str | None]:
    """Names of the top-level functions (None: module level or a class) that call print."""
    found: set[str | None] = set()
    tree = ast.parse(path.read_text())
    for top in tree.body:
        name = top.name if isinstance(top, ast.FunctionDef) else None
        for node in ast.walk(top):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                found.add(name)
    return found


def test_library_code_never_prints():
    printing = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        for name in _printing_functions(path):
            if (relative, None) not in MAY_PRINT and (relative, name) not in MAY_PRINT:
                printing.append(f"{relative}:{name}")
    assert not printing, printing

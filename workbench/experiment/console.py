"""What a run shows in the terminal: its compile phases and progress, and the summary.

:class:`Progress` shows the phases before the cells (compiling EM kernels, each Bayes model
structure) with their elapsed time, then a bar whose ETA counts the cells' own work only (the
compile time a cell records is left out), and logs everything to ``run.log``. Every line goes
through :mod:`logging`: the modules of :mod:`workbench.experiment` log to their own loggers, and a
:class:`Progress` hangs the run's handlers on ``workbench.experiment`` while it is open (rich's
``RichHandler`` on a terminal, a plain stream handler on a pipe, warnings only when quiet; a file
handler for ``run.log``).

The summary of a stored experiment reads at 100 columns. Condition labels can be long
(``jin(init=random_from_data, ...)``), so the table names conditions by short keys (F1, F2 ...
for fitter conditions, D1, D2 ... for data conditions) listed with their full labels above it,
and splits its metric columns over as many tables as the width needs: nothing is cut short.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from workbench.experiment.record import CellRecord
from workbench.status import FAILED_STATUSES

LOG = logging.getLogger(__name__)
RUN_LOGGER = "workbench.experiment"  # the run's handlers hang here: every module of the stage
SCREEN_ONLY = {"screen_only": True}  # extra= of a line for the terminal, not for run.log
SUMMARY_WIDTH = 100  # columns when the output is not a terminal
TIME_NOTE = (
    "fit_time: fitting (EM) or sampling (Bayes) seconds, compile excluded; "
    "compile_time: seconds compiling or loading compiled code (near 0 once loaded)"
)


# ---- progress ------------------------------------------------------------------------------------
def clock(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def compile_seconds(outcome: CellRecord) -> float:
    """The compile (or compiled-code loading) time a cell recorded, 0 when none."""
    value = (getattr(outcome, "diagnostics", None) or {}).get("compile_time")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0


class Progress:
    """Rich display (a terminal), plain lines (a pipe) or quiet; always a plain log of every
    phase and cell in ``run.log``. ``slots``: cells that run at once (for the ETA). Every
    :meth:`note` is also kept in ``notes`` (the run records them with its end)."""

    def __init__(self, mode: str, log_path: Path, slots: int = 1) -> None:
        self.mode = mode
        self.console: Any = None
        if mode == "rich":
            from rich.console import Console

            self.console = Console(stderr=True)
        self._handlers = run_handlers(mode, log_path, self.console)
        self._logger = logging.getLogger(RUN_LOGGER)
        self._saved_level = self._logger.level
        self._logger.setLevel(logging.DEBUG)
        for handler in self._handlers:
            self._logger.addHandler(handler)
        self.slots = max(1, slots)
        self.bar: Any = None
        self.done = self.failed = self.new = self.total = 0
        self.left: dict[str, int] = {}  # fitter condition -> cells still to run
        self.work: dict[str, list[float]] = {}  # fitter condition -> (seconds, cells) run now
        self.estimate: tuple[float, float, bool] | None = None  # (ETA s, made at, a lower bound)
        self.worker_compiles = 0  # compiles the workers still have to do (each its own copy)
        self.notes: list[str] = []  # every note shown, in order
        self.t0 = self.last = time.monotonic()

    # -- phases before the cells
    @contextlib.contextmanager
    def phase(self, label: str) -> Iterator[None]:
        """Show ``label`` with a spinner and its elapsed time while the block runs; then one
        line ``label: 12.3 s``."""
        LOG.debug("phase: %s", label)
        start = time.monotonic()
        display: Any = None
        if self.mode == "rich":
            from rich.progress import Progress as RichProgress
            from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

            display = RichProgress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            display.add_task(label, total=None)
            display.start()
        else:
            LOG.info("%s ...", label, extra=SCREEN_ONLY)
        try:
            yield
        finally:
            if display is not None:
                display.stop()
            took = time.monotonic() - start
            LOG.debug("phase done: %s (%.1f s)", label, took)
            LOG.info("%s: %.1f s", label, took, extra=SCREEN_ONLY)
            self.t0 = self.last = time.monotonic()

    def expect_worker_compiles(self, count: int) -> None:
        """The workers will each compile (from the disk cache) ``count`` models in all, in
        their first cells: the bar says so until they are done; the ETA leaves it out."""
        self.worker_compiles = count
        if count and self.mode == "plain":
            LOG.info(
                "then the workers build their copies of the Bayes model (%d in all)",
                count,
                extra=SCREEN_ONLY,
            )

    def description(self) -> str:
        return "cells (workers compiling the Bayes model)" if self.worker_compiles else "cells"

    # -- the cells
    def start(self, total: int, done: int, failed: int) -> None:
        self.total, self.done, self.failed = total, done, failed
        LOG.debug("start: %d cells, %d already done", total, done)
        if self.mode == "rich" and done < total:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("failed [red]{task.fields[failed]}"),
                TimeElapsedColumn(),
                _eta_column(self),
                console=self.console,
            )
            self.bar.start()
            self.task = self.bar.add_task(
                self.description(), total=total, completed=done, failed=failed
            )
        else:
            LOG.info(
                "running %d of %d cells (%d done before)",
                total - done,
                total,
                done,
                extra=SCREEN_ONLY,
            )

    def plan(self, cells: Iterable[Any]) -> None:
        """The cells about to run, so that the ETA weighs each fitter condition by its own
        cost (an EM cell takes milliseconds, a Bayes cell seconds)."""
        self.left = {}
        for cell in cells:
            self.left[cell.fitter.label] = self.left.get(cell.fitter.label, 0) + 1

    def _estimate(self) -> tuple[float, bool] | None:
        """(seconds of work left over the cells that run at once, whether some condition has
        no timed cell yet so that this is a lower bound); None before the first timed cell."""
        timed = [w for w in self.work.values() if w[1]]
        if not timed:
            return None
        overall = sum(w[0] for w in timed) / sum(w[1] for w in timed)
        seconds, unknown = 0.0, False
        for label, count in self.left.items():
            spent, cells = self.work.get(label, (0.0, 0))
            unknown |= count > 0 and not cells
            seconds += count * (spent / cells if cells else overall)
        left = sum(self.left.values()) or max(0, self.total - self.done)
        if not self.left:
            seconds = overall * left
        return seconds / max(1, min(self.slots, left)), unknown

    def eta(self) -> float | None:
        """Seconds left: per fitter condition, its cells left times the mean work of its cells
        run now (compile time excluded; the overall mean for a condition not timed yet), over
        the cells that run at once, counted down since; None before the first cell."""
        if self.estimate is None:
            return None
        seconds, made, _ = self.estimate
        return max(0.0, seconds - (time.monotonic() - made))

    def eta_text(self) -> str:
        left = self.eta()
        bound = self.estimate is not None and self.estimate[2]
        if left is None or (bound and left < 60):  # a condition not timed yet: unknown
            return "ETA -:--"
        return f"ETA {'>' if bound else ''}{clock(left)}"

    def advance(self, cell: Any, outcome: CellRecord) -> None:
        for line in getattr(outcome, "log", None) or ():  # library log lines: the log only
            LOG.debug("%s log: %s", outcome.cell_id, line)
        self.done += 1
        self.new += 1
        self.failed += outcome.status in FAILED_STATUSES
        compiled = compile_seconds(outcome)
        if (getattr(outcome, "diagnostics", None) or {}).get("compile_cached") == 0:
            self.worker_compiles = max(0, self.worker_compiles - 1)
        label = cell.fitter.label
        if label in self.left:
            self.left[label] = max(0, self.left[label] - 1)
        if math.isfinite(outcome.total_time):
            work = self.work.setdefault(label, [0.0, 0])
            work[0] += max(0.0, outcome.total_time - compiled)
            work[1] += 1
        found = self._estimate()
        self.estimate = None if found is None else (found[0], time.monotonic(), found[1])
        extra = f" {outcome.message}" if outcome.message else ""
        compile_note = f", compile {compiled:.1f} s" if compiled >= 0.05 else ""
        LOG.debug(
            "%s %s | %s | rep %s: %s (%.2f s%s)%s",
            outcome.cell_id,
            cell.fitter.label,
            cell.data.label,
            cell.replicate,
            outcome.status,
            outcome.total_time,
            compile_note,
            extra,
        )
        if self.bar is not None:
            self.bar.update(
                self.task, completed=self.done, failed=self.failed, description=self.description()
            )
        elif self.mode == "plain" and (
            time.monotonic() - self.last > 10 or self.done == self.total
        ):
            self.last = time.monotonic()
            LOG.info(
                "%d/%d cells, %d failed, %s",
                self.done,
                self.total,
                self.failed,
                self.eta_text(),
                extra=SCREEN_ONLY,
            )

    def note(self, text: str) -> None:
        """Show ``text`` (above the bar; also when quiet), log it and keep it in ``notes``."""
        self.notes.append(text)
        LOG.warning("%s", text)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def close(self) -> None:
        self.stop()
        for handler in self._handlers:
            self._logger.removeHandler(handler)
            handler.close()
        self._logger.setLevel(self._saved_level)
        self._handlers = []

    def record(self, text: str) -> None:
        """A line for ``run.log`` only."""
        LOG.debug("%s", text)


def _not_screen_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "screen_only", False)


def run_handlers(mode: str, log_path: Path, console: Any = None) -> list[logging.Handler]:
    """The run's log handlers: ``run.log`` (every record, timestamped; not the lines meant for
    the screen alone) and the terminal's: rich's ``RichHandler`` on ``console`` (``rich``), plain
    lines on stderr (``plain``), or warnings alone (``quiet``)."""
    log = logging.FileHandler(log_path, mode="a", encoding="utf-8")
    log.setLevel(logging.DEBUG)
    log.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    log.addFilter(_not_screen_only)
    screen: logging.Handler
    if mode == "rich":
        from rich.highlighter import NullHighlighter
        from rich.logging import RichHandler

        screen = RichHandler(
            console=console,
            show_time=False,
            show_level=False,
            show_path=False,
            markup=False,
            highlighter=NullHighlighter(),
            keywords=[],
        )
    else:
        screen = logging.StreamHandler(sys.stderr)
        screen.setFormatter(logging.Formatter("%(message)s"))
    screen.setLevel(logging.WARNING if mode == "quiet" else logging.INFO)
    return [log, screen]


def _eta_column(owner: Progress) -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class EtaColumn(ProgressColumn):
        """The owner's ETA, counting down between cells."""

        def render(self, task: Any) -> Text:
            return Text(owner.eta_text(), style="progress.remaining")

    return EtaColumn()


# ---- report and walkthrough ----------------------------------------------------------------------
STEP_LOGGERS = ("workbench.report", "workbench.walkthrough")


class _StepFormatter(logging.Formatter):
    """A step (INFO) as ``  12.3 s  message``, seconds since ``start``, the first one under a
    line ``what ...``; a warning (a note) as it is."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what, self.start, self.shown = what, time.monotonic(), False

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.WARNING:
            return record.getMessage()
        line = f"  {time.monotonic() - self.start:6.1f} s  {record.getMessage()}"
        if not self.shown:
            self.shown = True
            return f"{self.what} ...\n{line}"
        return line


@contextlib.contextmanager
def steps(what: str, quiet: bool = False) -> Iterator[None]:
    """One line per step that the report or the walkthrough logs (each section, each
    animation) with the seconds since the start, under a first line ``what ...`` shown with
    the first step (an error before any step stays the only line); then ``done``; notes
    (warnings) as they are, also when ``quiet``. All on stderr, through :mod:`logging`."""
    formatter = _StepFormatter(what)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    loggers = [logging.getLogger(name) for name in STEP_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield
        if formatter.shown:
            handler.handle(logging.makeLogRecord({"msg": "done", "levelno": logging.INFO}))
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


# ---- the summary ---------------------------------------------------------------------------------
def fmt(value: Any, se: Any) -> str:
    """``value ± se`` to 3 and 2 significant digits; ``-`` for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:.3g}"
    missing = se is None or (isinstance(se, float) and math.isnan(se))
    return text if missing else f"{text} ± {se:.2g}"


def fmt_rate(row: Any, name: str) -> str | None:
    """A rate with its 95% Wilson interval, ``0.25 [0.14, 0.4]``; None for other columns."""
    lower, value = row.get(f"{name}_lower"), row.get(name)
    if lower is None or value is None or math.isnan(value):
        return None
    return f"{value:.3g} [{lower:.2g}, {row[f'{name}_upper']:.2g}]"


def condition_keys(labels: list[str], prefix: str) -> dict[str, str]:
    """label -> short key (``F1``, ``F2`` ...) in order of first appearance."""
    unique = list(dict.fromkeys(labels))
    return {label: f"{prefix}{i}" for i, label in enumerate(unique, start=1)}


def key_lines(title: str, keys: dict[str, str], width: int) -> list[str]:
    """``title`` then one ``  F1  label`` line per condition, long labels wrapped at their
    commas onto indented lines no wider than ``width``."""
    lines = [title]
    pad = max(len(k) for k in keys.values()) + 4
    for label, key in keys.items():
        lines += textwrap.wrap(
            label,
            width=width,
            initial_indent=f"  {key:<{pad - 2}}",
            subsequent_indent=" " * (pad + 2),
            break_on_hyphens=False,
        ) or [f"  {key}"]
    return lines


def summary_tables(summary: Any, width: int) -> tuple[list[str], list[Any]]:
    """(key lines, rich Tables) for a ``summary_table`` frame, each table at most ``width``
    columns wide: the condition keys, fits and errors, then as many metric columns as fit."""
    from rich.console import Console
    from rich.table import Table

    fitters = condition_keys([str(f) for f in summary["fitter"]], "F")
    datas = condition_keys([str(d) for d in summary["data"]], "D")
    lines = key_lines("fitters:", fitters, width) + key_lines("data:", datas, width)
    metrics = [c for c in summary.columns if c not in ("fitter", "data", "fits", "errors")]
    metrics = [c for c in metrics if not c.endswith(("_se", "_lower", "_upper", "_n"))]
    columns = {
        "fitter": [fitters[str(f)] for f in summary["fitter"]],
        "data": [datas[str(d)] for d in summary["data"]],
        "fits": [str(v) for v in summary["fits"]],
        "errors": [str(v) for v in summary["errors"]],
    }
    for m in metrics:
        columns[m] = [
            fmt_rate(row, m) or fmt(row.get(m), row.get(f"{m}_se")) for _, row in summary.iterrows()
        ]
    measure = Console(width=10_000)

    def table(names: list[str]) -> Any:
        out = Table()
        for name in names:
            out.add_column(name, justify="left" if name in ("fitter", "data") else "right")
            out.columns[-1].no_wrap = True
        for i in range(len(summary)):
            out.add_row(*[columns[name][i] for name in names])
        return out

    def wide(names: list[str]) -> int:
        return measure.measure(table(names)).maximum

    fixed = ["fitter", "data", "fits", "errors"]
    groups: list[list[str]] = [[]]
    for m in metrics:
        if groups[-1] and wide([*fixed, *groups[-1], m]) > width:
            groups.append([])
        groups[-1].append(m)
    return lines, [table([*fixed, *g]) for g in groups]


def print_summary(directory: Path, width: int | None = None) -> None:
    """Failure rate (95% Wilson interval) and mean metrics (± Monte Carlo standard error) per
    fitter x data condition, at ``width`` columns (default: the terminal's, else 100)."""
    from rich.console import Console

    from workbench.experiment.tables import load_table, summary_table

    summary = summary_table(load_table(directory))
    if summary.empty:
        print("no finished fits yet")
        return
    if width is None:
        width = Console().width if sys.stdout.isatty() else SUMMARY_WIDTH
    title = f"{directory}: rate [95% Wilson interval]; mean ± Monte Carlo standard error"
    lines, tables = summary_tables(summary, width)
    console = Console(width=width, soft_wrap=False)
    print("\n".join([*textwrap.wrap(title, width, break_on_hyphens=False), *lines]))
    for table in tables:
        console.print(table)
    if "compile_time" in summary:
        print("\n".join(textwrap.wrap(TIME_NOTE, width)))

"""Running cells: one cell (generate, fit, evaluate) under a timeout enforced in the worker, and
the loop that feeds an executor, stores each outcome and stops hopeless conditions.

``run_cell`` never raises: an exception is status ``error``, an exceeded timeout ``timeout``;
executors add ``crashed`` when a worker process dies, and the loop ``skipped`` for cells of a
condition stopped after ``max_consecutive_errors`` consecutive failures.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import math
import os
import signal
import socket
import tempfile
import threading
import time
import traceback
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from workbench.experiment.design import DATA_STREAM, FIT_STREAM, Cell
from workbench.experiment.record import (
    CellRecord,
    DatasetRecord,
    RestartRecord,
    intervals_of,
    plain,
    split_metrics,
)
from workbench.status import ERROR_STATUSES, CellStatus

_DATA_CACHE: OrderedDict[str, Any] = OrderedDict()  # per worker process: recent data sets
_DATA_CACHE_SIZE = 4
# Libraries whose log records (pytensor's rewrite tracebacks, numba, PyMC) belong in the run
# log, not on the terminal: run_cell collects them into CellRecord.log.
LIBRARY_LOGGERS = ("pytensor", "pymc", "numba", "arviz", "nutpie")
MAX_LOG_LINES = 2000


class CellTimeout(BaseException):
    """Raised inside a cell when its time is up (a BaseException, so ``except Exception`` in
    fitter code cannot swallow it)."""


@dataclass(frozen=True)
class CellTask:
    """Everything a worker needs to run one cell: plain, picklable values."""

    cell_id: str
    generator: str
    data_settings: dict[str, Any]
    data_entropy: tuple[int, ...]
    factory: str  # "module:callable", so test-registered fitters work in any worker
    fitter_settings: dict[str, Any]
    fit_entropy: tuple[int, ...]
    timeout: float | None = None
    em_traces: str = "all"
    posterior_draws: int = 500


def make_task(cell: Cell, timeout: float | None, em_traces: str, posterior_draws: int) -> CellTask:
    return CellTask(
        cell_id=cell.cell_id,
        generator=cell.data.generator,
        data_settings=cell.data.settings,
        data_entropy=cell.data_entropy,
        factory=cell.fitter.factory,
        fitter_settings=cell.fitter.settings,
        fit_entropy=cell.fit_entropy,
        timeout=timeout,
        em_traces=em_traces,
        posterior_draws=posterior_draws,
    )


def now() -> str:
    """UTC timestamp, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def failure(cell_id: str, status: str, message: str) -> CellRecord:
    """A record made by the runner itself (crash, skip, killed): no fit."""
    stamp = now()
    return CellRecord(cell_id, status, message, started_at=stamp, finished_at=stamp)


# ---- timeouts ------------------------------------------------------------------------------------
@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise CellTimeout in this thread after ``seconds``.

    In a process's main thread: SIGALRM via ``setitimer``. In other threads (Dask workers): an
    asynchronous exception set from a timer thread. Both interrupt Python code between bytecodes,
    i.e. inside the EM loop, not after it.
    """
    if not seconds:
        yield
        return
    lock, state = threading.Lock(), {"active": True, "fired": False}
    main = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if main:

        def on_alarm(signum: int, frame: Any) -> None:
            with lock:
                if state["active"]:
                    state["fired"] = True
                    raise CellTimeout

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    else:
        ident = ctypes.c_ulong(threading.get_ident())

        def on_timer() -> None:
            with lock:
                if state["active"]:
                    state["fired"] = True
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ident, ctypes.py_object(CellTimeout))

        timer = threading.Timer(seconds, on_timer)
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        with lock:
            state["active"] = False
        if main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        else:
            timer.cancel()
            if state["fired"]:  # clear an exception not yet delivered
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ident, None)


# ---- library logs --------------------------------------------------------------------------------
class _LineCollector(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.lines) < MAX_LOG_LINES:
            try:
                self.lines.append(f"{record.name} {record.levelname}: {record.getMessage()}")
            except Exception:  # noqa: BLE001 - a malformed record must not fail the cell
                self.lines.append(f"{record.name} {record.levelname}: {record.msg!r}")


@contextlib.contextmanager
def library_logs(lines: list[str]) -> Iterator[None]:
    """Collect the records of LIBRARY_LOGGERS into ``lines`` instead of the terminal."""
    collector = _LineCollector(lines)
    saved = []
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers, logger.propagate = [collector], False
    try:
        yield
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers, logger.propagate = handlers, propagate


def one_line(text: str, limit: int = 500) -> str:
    """The first non-empty line of ``text``, at most ``limit`` characters."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


# ---- one cell ------------------------------------------------------------------------------------
def _dataset(task: CellTask) -> Any:
    """The cell's data set; recent ones are reused (the same data serve every fitter)."""
    from workbench.data.registry import generate

    key = json.dumps([task.generator, task.data_settings, task.data_entropy], sort_keys=True)
    if key in _DATA_CACHE:
        _DATA_CACHE.move_to_end(key)
        return _DATA_CACHE[key]
    seq = np.random.SeedSequence(task.data_entropy, spawn_key=(DATA_STREAM,))
    dataset = generate(task.generator, np.random.default_rng(seq), **task.data_settings)
    _DATA_CACHE[key] = dataset
    while len(_DATA_CACHE) > _DATA_CACHE_SIZE:
        _DATA_CACHE.popitem(last=False)
    return dataset


def data_fingerprint(X: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of a data set's points and true labels (float64 and int64 bytes, with the shape):
    stored with each data set so that one regenerated later from its seed (the report's figures)
    can be checked to be the very data the run fitted."""
    h = hashlib.sha256(repr(np.shape(X)).encode())
    h.update(np.ascontiguousarray(X, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def _posterior_bytes(idata: Any, max_draws: int) -> bytes | None:
    """posterior and sample_stats groups, thinned to <= max_draws per chain, as netCDF bytes."""
    groups = [g for g in ("posterior", "sample_stats") if g in idata.groups()]
    if not groups or max_draws <= 0:
        return None
    step = math.ceil(idata.posterior.sizes["draw"] / max_draws)
    if step > 1:
        idata = idata.isel(draw=slice(None, None, step))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "posterior.nc"
        idata.to_netcdf(str(path), groups=groups)
        return path.read_bytes()


def run_cell(task: CellTask) -> CellRecord:
    """Generate the data, fit, evaluate; one CellRecord. Never raises; the timeout covers all
    three."""
    parts: dict[str, Any] = {"worker": f"{socket.gethostname()}:{os.getpid()}"}
    parts["started_at"], log = now(), []
    start = time.perf_counter()
    try:
        # Imports (a fresh worker's first cell) are not the cell's time.
        from workbench.data import registry  # noqa: F401
        from workbench.evaluate import evaluate_fit, restart_table, restart_verdicts
        from workbench.fitter_interface import build_from_factory

        # the task names its factory: a worker needs no registry of methods
        fitter = build_from_factory(task.factory, task.fitter_settings)
        prepare = getattr(fitter, "prepare", None)
        # a worker's one-time start-up (e.g. loading compiled kernels), outside the cell's clock
        # and timeout; its seconds are the cell's compile_time
        warm_up = float(prepare() or 0.0) if callable(prepare) else 0.0
        start = time.perf_counter()
        with (
            time_limit(task.timeout),
            warnings.catch_warnings(record=True) as caught,
            library_logs(log),
        ):
            warnings.simplefilter("default")
            dataset = _dataset(task)
            parts["data_time"] = time.perf_counter() - start
            parts["dataset"] = DatasetRecord(
                n=dataset.n,
                d=dataset.d,
                n_components_to_fit=dataset.n_components_to_fit,
                truth=dataset.truth,
                info=json.loads(json.dumps(dataset.info, default=str)),  # plain, picklable
                fingerprint=data_fingerprint(dataset.X, dataset.labels),
            )
            seq = np.random.SeedSequence(task.fit_entropy, spawn_key=(FIT_STREAM,))
            result = fitter.fit(dataset, np.random.default_rng(seq))
            t_eval = time.perf_counter()
            verdicts = restart_verdicts(result) if result.restarts is not None else None
            metrics = evaluate_fit(dataset, result, verdicts)  # verdicts judged once per cell
            restarts = restart_table(result, verdicts)
            parts["eval_time"] = time.perf_counter() - t_eval
            if result.posterior is not None:
                parts["posterior"] = _posterior_bytes(result.posterior, task.posterior_draws)
        parts.update(_fit_parts(task, result, metrics, restarts, warm_up))
        parts["warnings"] = tuple(
            sorted({f"{w.category.__name__}: {w.message}"[:300] for w in caught})[:10]
        )
    except CellTimeout:
        parts["status"] = CellStatus.TIMEOUT
        parts["message"] = f"exceeded the cell timeout of {task.timeout:g} s"
    except Exception as err:  # noqa: BLE001 - a failing cell is data, not a crash
        parts["status"] = CellStatus.ERROR
        parts["message"] = one_line(f"{type(err).__name__}: {err}") or type(err).__name__
        parts["traceback"] = traceback.format_exc()[-4000:]
    parts["total_time"] = time.perf_counter() - start
    return CellRecord(task.cell_id, log=tuple(log), finished_at=now(), **parts)


def _fit_parts(
    task: CellTask, result: Any, metrics: dict, restarts: list[dict], warm_up: float
) -> dict[str, Any]:
    """The record's fields from a FitResult, its evaluation and its restart rows: status, fit,
    verdict (judged once, by ``evaluate_fit``), metrics, diagnostics, restarts, traces kept
    by ``task.em_traces``, intervals."""
    status = str(result.status)
    diagnostics = {k: plain(v) for k, v in (result.diagnostics or {}).items()}
    if warm_up:
        diagnostics["compile_time"] = diagnostics.get("compile_time", 0.0) + warm_up
    verdict, rest = split_metrics(metrics)
    parts: dict[str, Any] = {
        "status": status,
        "loglik": float(result.loglik),
        "n_iter": None if result.n_iter is None else int(result.n_iter),
        "fit_time": float(result.wall_time),
        "params": result.params,
        "failed": verdict.get("failed"),
        "gap": verdict.get("gap"),
        "failure_kind": verdict.get("failure_kind"),
        "metrics": rest,
        "diagnostics": diagnostics,
        "intervals": intervals_of(result.intervals),
    }
    if status in ERROR_STATUSES:  # a fitter's own error status
        reason = one_line(str((result.diagnostics or {}).get("error") or ""))
        parts["message"] = reason or f"the fitter returned status {status!r} without a reason"
    summary = result.restarts
    if summary is not None:
        parts["restarts"] = tuple(RestartRecord.from_row(row, summary.best) for row in restarts)
    if task.em_traces == "all" and summary is not None and summary.traces is not None:
        parts["traces"] = tuple(
            (r, np.asarray(t, dtype=float)) for r, t in enumerate(summary.traces)
        )
    elif task.em_traces != "none" and result.trace is not None:
        best = summary.best if summary is not None else 0
        parts["traces"] = ((int(best), np.asarray(result.trace, dtype=float)),)
    return parts


# ---- the loop ------------------------------------------------------------------------------------
class Executor(Protocol):
    """Runs tasks somewhere; ``collect`` blocks until at least one in-flight task is done."""

    slots: int

    def submit(self, task: CellTask) -> None: ...

    def collect(self) -> list[CellRecord]: ...

    def close(self) -> None: ...


class Reporter(Protocol):
    def start(self, total: int, done: int, failed: int) -> None: ...

    def advance(self, cell: Cell, outcome: CellRecord) -> None: ...

    def note(self, text: str) -> None: ...

    def stop(self) -> None: ...


def execute(
    cells: list[Cell],
    finished: set[str],
    make: Callable[[Cell], CellTask],
    executor: Executor,
    write: Callable[[Cell, CellRecord], None],
    reporter: Reporter,
    max_consecutive_errors: int,
    failed_before: int = 0,
) -> dict[str, int]:
    """Run every cell not in ``finished``; ``write`` stores each outcome as it arrives.

    A condition (data, fitter) whose last ``max_consecutive_errors`` outcomes were errors,
    timeouts or crashes is stopped: its remaining cells are stored as ``skipped``.
    Returns counts of outcomes by status for this call.
    """
    pending = deque(c for c in cells if c.cell_id not in finished)
    reporter.start(len(cells), len(cells) - len(pending), failed_before)
    streak: dict[tuple[str, str], int] = {}
    stopped: dict[tuple[str, str], str] = {}
    in_flight: dict[str, Cell] = {}
    counts: dict[str, int] = {}

    def record(cell: Cell, outcome: CellRecord) -> None:
        write(cell, outcome)
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        reporter.advance(cell, outcome)

    while pending or in_flight:
        while pending and len(in_flight) < executor.slots:
            cell = pending.popleft()
            if cell.condition in stopped:
                record(cell, failure(cell.cell_id, CellStatus.SKIPPED, stopped[cell.condition]))
                continue
            executor.submit(make(cell))
            in_flight[cell.cell_id] = cell
        if not in_flight:
            continue
        for outcome in executor.collect():
            cell = in_flight.pop(outcome.cell_id)
            record(cell, outcome)
            key = cell.condition
            streak[key] = streak.get(key, 0) + 1 if outcome.status in ERROR_STATUSES else 0
            if streak[key] >= max_consecutive_errors and key not in stopped:
                stopped[key] = (
                    f"not run: condition stopped after {streak[key]} consecutive failures "
                    f"(last: {outcome.status}: {outcome.message})"
                )[:500]
                reporter.note(
                    f"stopping condition {cell.fitter.label} on {cell.data.label}: "
                    f"{streak[key]} consecutive failures, last {outcome.status}: {outcome.message}"
                )
    reporter.stop()
    return counts

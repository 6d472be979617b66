"""Where cells run: in this process (serial), in local worker processes, or on Dask.

Local workers are spawned (not forked) with BLAS/OpenMP threads pinned to 1 through environment
variables set before numpy is imported in the worker, plus threadpoolctl when it is installed.
Each worker holds one cell at a time, so a worker that dies is pinned to its cell (``crashed``)
and is replaced; the rest of the study goes on. Dask is an optional extra (``.[dask]``).
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from workbench.experiment.record import CellRecord
from workbench.experiment.runner import CellTask, failure, run_cell
from workbench.status import CellStatus

THREAD_ENV = {
    var: "1"
    for var in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "BLIS_NUM_THREADS",
        "NUMBA_NUM_THREADS",
    )
}
# A local worker still busy this long past its cell timeout is killed by the runner (the in-worker
# timeout cannot interrupt a long call into compiled code).
HARD_KILL_GRACE = 30.0
_CONTROLLER: Any = None


class ExecutorError(RuntimeError):
    """A user-facing problem setting up an executor (missing extra, unreachable scheduler)."""


def pinned_run_cell(task: CellTask) -> CellRecord:
    """run_cell with BLAS/OpenMP pools limited to one thread (threadpoolctl, when installed)."""
    global _CONTROLLER
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import ThreadpoolController

            if _CONTROLLER is None:  # finding the BLAS libraries takes ms: once per process
                _CONTROLLER = ThreadpoolController()
            stack.enter_context(_CONTROLLER.limit(limits=1))
        except ImportError:
            pass
        try:  # numba's parallel kernels: one thread, so reductions add up in one order
            import numba

            previous = numba.get_num_threads()
            numba.set_num_threads(1)
            stack.callback(numba.set_num_threads, previous)
        except ImportError:
            pass
        return run_cell(task)


class SerialExecutor:
    """Runs each cell in this process: simplest, for debugging; a hard crash ends the run."""

    slots = 1

    def __init__(self) -> None:
        self._queue: deque[CellTask] = deque()

    def submit(self, task: CellTask) -> None:
        self._queue.append(task)

    def collect(self) -> list[CellRecord]:
        return [pinned_run_cell(self._queue.popleft())]

    def close(self) -> None:
        self._queue.clear()


def _worker_main(conn: multiprocessing.connection.Connection) -> None:
    """A local worker: run the cells it is sent until told to stop or the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        outcome = pinned_run_cell(task)
        try:
            conn.send(outcome)
        except (BrokenPipeError, OSError):
            return


class _Worker:
    """A fresh interpreter (``python -m workbench.experiment.executors FD``) on a socket pair:
    no fork, no re-import of the caller's ``__main__``, thread variables set before numpy loads,
    and the parent's ``sys.path`` (so test-registered fitters import)."""

    def __init__(self, log_path: Path | None = None) -> None:
        parent, child = socket.socketpair()
        env = {**os.environ, **THREAD_ENV}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        log = _open_log(log_path)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workbench.experiment.executors", str(child.fileno())],
                pass_fds=(child.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
                stderr=log,
            )
        finally:
            if log is not None:
                log.close()
        child.close()
        self.conn = multiprocessing.connection.Connection(parent.detach())
        self.task: CellTask | None = None
        self.since = 0.0

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait(10)
        self.conn.close()

    def stop(self, timeout: float = 2.0) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


def _open_log(path: Path | None) -> Any:
    """The run log opened for appending (a worker's stderr: library noise, a dying worker's last
    words), or None (inherit the terminal) when there is none or it cannot be opened."""
    if path is None:
        return None
    try:
        return open(path, "ab")  # noqa: SIM115 - handed to the child, closed by the caller
    except OSError:
        return None


class LocalExecutor:
    """``n_workers`` spawned worker processes, one cell each at a time; their stderr goes to
    ``log_path`` when given."""

    def __init__(self, n_workers: int | None = None, log_path: Path | None = None) -> None:
        self.slots = n_workers or os.cpu_count() or 1
        self.log_path = log_path
        self._workers: list[_Worker] = []

    def _idle(self) -> _Worker:
        for worker in self._workers:
            if worker.task is None:
                return worker
        worker = _Worker(self.log_path)
        self._workers.append(worker)
        return worker

    def submit(self, task: CellTask) -> None:
        worker = self._idle()
        worker.task, worker.since = task, time.monotonic()
        worker.conn.send(task)

    def collect(self) -> list[CellRecord]:
        busy = [w for w in self._workers if w.task is not None]
        multiprocessing.connection.wait([w.conn for w in busy], timeout=1.0)
        outcomes = []
        for worker in busy:
            task = worker.task
            assert task is not None
            outcome = None
            if worker.conn.poll():
                try:
                    outcome = worker.conn.recv()
                except (EOFError, OSError):
                    outcome = None
            if outcome is not None:
                worker.task = None
                outcomes.append(outcome)
            elif not worker.alive():
                code = worker.process.returncode
                why = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                outcomes.append(
                    failure(task.cell_id, CellStatus.CRASHED, f"worker process died ({why})")
                )
                self._replace(worker)
            elif task.timeout and time.monotonic() - worker.since > task.timeout + max(
                HARD_KILL_GRACE, task.timeout
            ):
                message = (
                    f"killed by the runner: still busy long after the {task.timeout:g} s timeout"
                )
                outcomes.append(failure(task.cell_id, CellStatus.TIMEOUT, message))
                self._replace(worker)
        return outcomes

    def _replace(self, worker: _Worker) -> None:
        worker.task = None
        worker.kill()
        self._workers.remove(worker)

    def close(self) -> None:
        for worker in self._workers:
            if worker.task is not None:
                worker.kill()
            else:
                worker.stop()
        self._workers.clear()


class DaskExecutor:
    """Cells as Dask tasks: on an existing scheduler (``address``) or a new LocalCluster."""

    def __init__(self, n_workers: int | None = None, address: str | None = None) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise ExecutorError(
                "the dask executor needs the optional extra: pip install -e '.[dask]'"
            ) from None
        self._cluster = None
        if address:
            try:
                self._client = Client(address, timeout="10s")
            except (OSError, TimeoutError, ValueError) as err:
                raise ExecutorError(f"--scheduler {address}: cannot connect: {err}") from None
        else:
            one_each = {  # a dying worker takes only its own cell with it
                "distributed.scheduler.allowed-failures": 0,
                "distributed.scheduler.worker-saturation": 1.0,
            }
            with dask.config.set(one_each):
                self._cluster = LocalCluster(
                    n_workers=n_workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    env=dict(THREAD_ENV),
                    silence_logs=50,
                )
                self._client = Client(self._cluster)
        threads = sum(self._client.nthreads().values())
        self.slots = max(1, threads)
        self._futures: dict[Any, CellTask] = {}
        self._attempts: dict[str, int] = {}

    def submit(self, task: CellTask) -> None:
        attempt = self._attempts.get(task.cell_id, 0)
        key = f"cell-{task.cell_id}" + (f"-retry{attempt}" if attempt else "")
        self._futures[self._client.submit(pinned_run_cell, task, pure=False, key=key)] = task

    def collect(self) -> list[CellRecord]:
        from distributed import wait

        done, _ = wait(list(self._futures), return_when="FIRST_COMPLETED")
        outcomes = []
        for future in done:
            task = self._futures.pop(future)
            if future.status == "finished":
                outcomes.append(future.result())
                continue
            try:
                err = future.exception()
            except Exception as exc:  # noqa: BLE001 - e.g. a cancelled future
                err = exc
            killed = type(err).__name__ == "KilledWorker"
            if killed and self._attempts.get(task.cell_id, 0) < 1:
                # A worker that dies may take a neighbour's cell with it: one more try each.
                self._attempts[task.cell_id] = 1
                self.submit(task)
                continue
            status = CellStatus.CRASHED if killed else CellStatus.ERROR
            outcomes.append(failure(task.cell_id, status, f"{type(err).__name__}: {err}"[:500]))
        return outcomes

    def close(self) -> None:
        for future in self._futures:
            future.cancel()
        self._futures.clear()
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(
    kind: str, n_workers: int | None, scheduler: str | None, log_path: Path | None = None
) -> Any:
    """``serial``, ``local`` or ``dask`` (``scheduler`` given implies dask); local workers
    write their stderr to ``log_path`` (the run log) when given."""
    if scheduler or kind == "dask":
        return DaskExecutor(n_workers, scheduler)
    if kind == "serial":
        return SerialExecutor()
    if kind == "local":
        return LocalExecutor(n_workers, log_path)
    raise ExecutorError(f"--executor {kind}: expected serial, local or dask")


if __name__ == "__main__":  # a local worker process (see _Worker)
    _worker_main(multiprocessing.connection.Connection(int(sys.argv[1])))

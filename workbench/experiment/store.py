"""The results store: one SQLite file per experiment, ``reports/<name>/results.sqlite``.

Tables (long format; ``cell_id`` joins them):

=================  ===============================================================================
meta               name, seed, replicates, design_hash, schema_version, created_at
data_conditions    data_id, position, label, generator, settings (JSON)
fitter_conditions  fitter_id, position, label, fitter (table name), method, settings (JSON)
cells              cell_id, position, data_id, fitter_id, replicate, data/fit seed entropy (JSON)
datasets           (data_id, replicate): n, d, n_components_to_fit, truth and info (JSON),
                   fingerprint (SHA-256 of the points and labels: runner.data_fingerprint)
fits               one row per finished cell: status, message, traceback, loglik, n_iter, timings
                   (fit_time, data_time, eval_time, total_time, started_at, finished_at), worker,
                   run_id, params (JSON), posterior_path, warnings
metrics            (cell_id, name) -> value: evaluate_fit's flat metrics
diagnostics        (cell_id, name) -> value: the fitter's diagnostics; view bayes_diagnostics
restarts           (cell_id, restart): loglik, status, n_iter, gap, failed (NULL: unjudged),
                   best, extra (JSON: the verdict's inputs and failure_kind)
em_traces          (cell_id, restart, iteration) -> loglik (EM objective)
intervals          (cell_id, parameter, component, dim) -> lower, upper
runs               provenance per invocation: config text, overrides, resolved config, argv,
                   executor, package versions, platform, start/end times, outcome
=================  ===============================================================================

Each finished cell arrives as one :class:`~workbench.experiment.record.CellRecord`. Results
are read back through :mod:`workbench.experiment.tables` alone; the store itself answers only
bookkeeping (finished cells, counts by status, runs).

Floats are stored as SQLite REAL (IEEE float64, exact); NaN is stored as NULL. Each finished cell
is written in ONE transaction (WAL journal), so a kill loses at most the cells in flight, and a
rerun skips every cell that has a ``fits`` row. Posterior draws of Bayes cells go to
``posteriors/<cell_id>.nc`` (netCDF via ArviZ: the posterior and sample_stats groups, thinned
to at most ``store.posterior_draws`` draws per chain), written atomically before the cell's
transaction commits; an orphan file of a killed cell is overwritten when the cell reruns.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.experiment.config import ExperimentSpec
from workbench.experiment.design import Cell, canonical, design_hash
from workbench.experiment.record import CellRecord
from workbench.experiment.runner import now
from workbench.status import FAILED_STATUSES, RunOutcome

# 2: restarts.failed is NULL for an unjudged restart (1 had 0), and every restart's extra
# record holds its verdict (failure_kind and its inputs).
SCHEMA_VERSION = "2"
STORE_FILE = "results.sqlite"
POSTERIOR_DIR = "posteriors"
TIMING_COLUMNS = (
    "fit_time", "data_time", "eval_time", "total_time", "started_at", "finished_at", "worker",
    "run_id",
)  # fmt: skip
PACKAGES = (
    "workbench", "numpy", "scipy", "pymc", "pytensor", "arviz", "nutpie", "numba", "pandas",
    "pyarrow", "dask", "distributed", "rich",
)  # fmt: skip

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS data_conditions (data_id TEXT PRIMARY KEY, position INTEGER,
    label TEXT, generator TEXT, settings TEXT);
CREATE TABLE IF NOT EXISTS fitter_conditions (fitter_id TEXT PRIMARY KEY, position INTEGER,
    label TEXT, fitter TEXT, method TEXT, settings TEXT);
CREATE TABLE IF NOT EXISTS cells (cell_id TEXT PRIMARY KEY, position INTEGER UNIQUE,
    data_id TEXT REFERENCES data_conditions, fitter_id TEXT REFERENCES fitter_conditions,
    replicate INTEGER, data_entropy TEXT, fit_entropy TEXT);
CREATE TABLE IF NOT EXISTS runs (run_id INTEGER PRIMARY KEY, started_at TEXT, ended_at TEXT,
    outcome TEXT, argv TEXT, config_path TEXT, config_text TEXT, overrides TEXT, resolved TEXT,
    executor TEXT, workers INTEGER, timeout REAL, versions TEXT, platform TEXT,
    cells_run INTEGER, notes TEXT);
CREATE TABLE IF NOT EXISTS datasets (data_id TEXT, replicate INTEGER, n INTEGER, d INTEGER,
    n_components_to_fit INTEGER, truth TEXT, info TEXT, fingerprint TEXT,
    PRIMARY KEY (data_id, replicate));
CREATE TABLE IF NOT EXISTS fits (cell_id TEXT PRIMARY KEY REFERENCES cells, run_id INTEGER,
    status TEXT NOT NULL, message TEXT, traceback TEXT, loglik REAL, n_iter INTEGER,
    fit_time REAL, data_time REAL, eval_time REAL, total_time REAL, worker TEXT,
    started_at TEXT, finished_at TEXT, params TEXT, posterior_path TEXT, warnings TEXT);
CREATE TABLE IF NOT EXISTS metrics (cell_id TEXT, name TEXT, value,
    PRIMARY KEY (cell_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS diagnostics (cell_id TEXT, name TEXT, value,
    PRIMARY KEY (cell_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS restarts (cell_id TEXT, restart INTEGER, loglik REAL, status TEXT,
    n_iter INTEGER, gap REAL, failed INTEGER, best INTEGER, extra TEXT,
    PRIMARY KEY (cell_id, restart)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS em_traces (cell_id TEXT, restart INTEGER, iteration INTEGER,
    loglik REAL, PRIMARY KEY (cell_id, restart, iteration)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS intervals (cell_id TEXT, parameter TEXT, component INTEGER,
    dim INTEGER, lower REAL, upper REAL,
    PRIMARY KEY (cell_id, parameter, component, dim)) WITHOUT ROWID;
CREATE VIEW IF NOT EXISTS bayes_diagnostics AS
    SELECT d.cell_id, d.name, d.value FROM diagnostics d JOIN cells c USING (cell_id)
    JOIN fitter_conditions f USING (fitter_id) WHERE f.method = 'bayes';
"""
REQUIRED_TABLES = ("meta", "cells", "fits", "runs", "data_conditions", "fitter_conditions")
# The outcome of a run whose process ended without closing it (SIGKILL, a crash, power loss),
# written by the next run that opens the store, and shown by ``status`` meanwhile.
INTERRUPTED = RunOutcome.INTERRUPTED


class StoreError(RuntimeError):
    """A user-facing store problem: missing, unreadable or foreign store, changed design, store
    in use, unusable directory. One line naming the path."""


class DesignMismatch(StoreError):
    """The store holds the cells of a different design (another config, or other overrides)."""


class StoreWriteError(RuntimeError):
    """The environment refused a write (disk full, permission, I/O error): one line naming the
    path; the cell's transaction was rolled back, so the store is as it was."""


@contextmanager
def readable(path: Path) -> Iterator[None]:
    """Turn SQLite's complaints about a damaged or foreign file into one-line StoreErrors."""
    try:
        yield
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{path}: not a readable results store ({err})") from None


def check_schema(conn: sqlite3.Connection, path: Path, thorough: bool = False) -> None:
    """StoreError unless ``conn`` holds a workbench results store of this schema version;
    ``thorough`` also runs SQLite's quick_check over every page."""
    with readable(path):
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = [t for t in REQUIRED_TABLES if t not in tables]
        if missing:
            raise StoreError(
                f"{path}: not a workbench results store (no table {missing[0]}); "
                "use --fresh to replace it"
            )
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None and row[0] != SCHEMA_VERSION:
            raise StoreError(
                f"{path}: results store of schema version {row[0]}, this workbench reads "
                f"{SCHEMA_VERSION}; rerun its experiment with --fresh"
            )
        if thorough:
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                raise StoreError(
                    f"{path}: damaged results store ({problems[0]}); use --fresh to start over"
                )


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # a process kill loses nothing committed
    return conn


def source_hash() -> str:
    """Hash of the workbench package's source, to tell runs of different code apart."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "workbench_source": source_hash()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def platform_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_implementation() + " " + platform.python_version(),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
    }


class Store:
    """An open results store (single writer: the process running ``workbench run``)."""

    def __init__(self, directory: Path, conn: sqlite3.Connection) -> None:
        self.directory = Path(directory)
        self.conn = conn
        self._lock: Any = None

    # ---- opening -----------------------------------------------------------------------------
    @staticmethod
    def check(directory: Path, cells: list[Cell]) -> int:
        """Without writing: the number of finished cells to resume from (0 for a new store).
        Raises StoreError when the stored design differs from ``cells``."""
        path = Path(directory) / STORE_FILE
        if not path.exists():
            return 0
        if not path.is_file():
            raise StoreError(f"{path}: not a results store file; use --fresh to replace it")
        if path.stat().st_size == 0:
            return 0  # an empty file (a store created but never written): nothing to resume
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{path}: not a readable results store ({err}); use --fresh") from None
        try:
            check_schema(conn, path, thorough=True)
            with readable(path):
                stored = {r[0] for r in conn.execute("SELECT cell_id FROM cells")}
                done = conn.execute("SELECT COUNT(*) FROM fits").fetchone()[0]
        finally:
            conn.close()
        wanted = {c.cell_id for c in cells}
        if stored and stored != wanted:
            raise DesignMismatch(
                f"{path}: holds a different design ({len(stored)} cells stored, {len(wanted)} in "
                f"the config, {len(stored & wanted)} in common); run it under another name "
                "(--name NEW) to keep both, or rerun with --fresh to discard the stored one"
            )
        return done

    @classmethod
    def open_for_run(
        cls, directory: Path, spec: ExperimentSpec, cells: list[Cell], fresh: bool
    ) -> Store:
        """Create (or, with ``fresh``, recreate) the store and its design, or reopen it.
        Raises StoreError, before writing anything, for a changed design or a busy store."""
        directory = Path(directory)
        if not fresh:
            cls.check(directory, cells)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            lock = open(directory / ".lock", "w")  # noqa: SIM115 - held until close()
        except OSError as err:
            raise StoreError(f"{directory}: cannot write results there ({_why(err)})") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise StoreError(f"{directory}: another workbench run is using it") from None
        try:
            if fresh:
                for name in (STORE_FILE, STORE_FILE + "-wal", STORE_FILE + "-shm", "run.log"):
                    (directory / name).unlink(missing_ok=True)
                shutil.rmtree(directory / POSTERIOR_DIR, ignore_errors=True)
            store = cls(directory, connect(directory / STORE_FILE))
        except (OSError, sqlite3.Error) as err:
            lock.close()
            raise StoreError(f"{directory}: cannot write results there ({_why(err)})") from None
        store._lock = lock
        try:
            with store.writing():
                store.conn.executescript(SCHEMA)
                store._add_missing_columns()
                with store.transaction() as c:
                    if c.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 0:
                        store._write_design(c, spec, cells)
                    store._close_stale_runs(c)
        except BaseException:
            store.close()
            raise
        return store

    def _add_missing_columns(self) -> None:
        """Columns added to the schema since a store was made (resuming it): the data sets'
        ``fingerprint`` (older rows keep NULL: their data cannot be checked)."""
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(datasets)")}
        if "fingerprint" not in columns:
            self.conn.execute("ALTER TABLE datasets ADD COLUMN fingerprint TEXT")

    def _close_stale_runs(self, c: sqlite3.Connection) -> None:
        """Mark runs left ``running`` as interrupted: this process holds the store's lock, so
        their processes are gone (killed, crashed) without closing them."""
        c.execute(
            "UPDATE runs SET outcome = ?, notes = ? WHERE outcome = ?",
            (
                INTERRUPTED,
                json.dumps(["marked interrupted by the next run: its process ended without "
                            "closing the run (killed or crashed)"]),
                RunOutcome.RUNNING,
            ),
        )  # fmt: skip

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Turn a refused write (disk full, read-only file, I/O error) into StoreWriteError."""
        path = self.directory / STORE_FILE
        try:
            yield
        except sqlite3.DatabaseError as err:
            raise StoreWriteError(f"{path}: cannot write ({_why(err)})") from None
        except OSError as err:
            where = err.filename or path
            raise StoreWriteError(f"{where}: cannot write ({_why(err)})") from None

    @classmethod
    def open(cls, directory: Path, thorough: bool = False) -> Store:
        """Open an existing store for reading (status, export, report). StoreError for a
        missing, foreign or (with ``thorough``: SQLite's quick_check) damaged store."""
        path = Path(directory) / STORE_FILE
        if not path.is_file():
            raise StoreError(f"{directory}: no results store ({STORE_FILE}) found")
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{path}: not a readable results store ({err})") from None
        try:
            check_schema(conn, path, thorough)
        except BaseException:
            conn.close()
            raise
        return cls(Path(directory), conn)

    def last_run(self) -> tuple | None:
        """(started_at, ended_at, outcome, executor, workers) of the latest run; a run still
        marked ``running`` whose process is gone (the store's lock is free) reads
        ``interrupted``."""
        with readable(self.directory / STORE_FILE):
            row = self.conn.execute(
                "SELECT started_at, ended_at, outcome, executor, workers FROM runs"
                " ORDER BY run_id DESC LIMIT 1"
            ).fetchone()
        if row is not None and row[2] == RunOutcome.RUNNING and not self.locked():
            row = (*row[:2], f"{INTERRUPTED}: its process is gone", *row[3:])
        return row

    def locked(self) -> bool:
        """Whether a run holds this store's lock (True when that cannot be told)."""
        try:
            with open(self.directory / ".lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(lock, fcntl.LOCK_UN)
        except OSError:
            return True
        return False

    def close(self) -> None:
        if self._lock is not None:  # the writer leaves a single file (no -wal/-shm)
            try:
                self.conn.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.OperationalError:
                pass
        self.conn.close()
        if self._lock is not None:
            self._lock.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _write_design(self, c: sqlite3.Connection, spec: ExperimentSpec, cells: list[Cell]) -> None:
        meta = {
            "name": spec.name,
            "seed": str(spec.seed),
            "replicates": str(spec.replicates),
            "design_hash": design_hash(cells),
            "schema_version": SCHEMA_VERSION,
            "created_at": now(),
        }
        c.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        seen_d: dict[str, int] = {}
        seen_f: dict[str, int] = {}
        for cell in cells:
            if cell.data_id not in seen_d:
                seen_d[cell.data_id] = len(seen_d)
                d = cell.data
                c.execute(
                    "INSERT INTO data_conditions VALUES (?, ?, ?, ?, ?)",
                    (
                        cell.data_id,
                        seen_d[cell.data_id],
                        d.label,
                        d.generator,
                        canonical(d.settings),
                    ),
                )
            if cell.fitter_id not in seen_f:
                seen_f[cell.fitter_id] = len(seen_f)
                f = cell.fitter
                c.execute(
                    "INSERT INTO fitter_conditions VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        cell.fitter_id,
                        seen_f[cell.fitter_id],
                        f.label,
                        f.table,
                        f.method,
                        canonical(f.settings),
                    ),
                )
            c.execute(
                "INSERT INTO cells VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    cell.cell_id, cell.position, cell.data_id, cell.fitter_id, cell.replicate,
                    json.dumps(cell.data_entropy), json.dumps(cell.fit_entropy),
                ),
            )  # fmt: skip

    # ---- runs --------------------------------------------------------------------------------
    def start_run(self, spec: ExperimentSpec, argv: list[str], executor: str, workers: int) -> int:
        with self.writing(), self.transaction() as c:
            cur = c.execute(
                "INSERT INTO runs (started_at, outcome, argv, config_path, config_text, overrides,"
                " resolved, executor, workers, timeout, versions, platform, cells_run)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (
                    now(), RunOutcome.RUNNING, json.dumps(argv), spec.path, spec.text,
                    json.dumps(list(spec.overrides)),
                    json.dumps(spec.resolved, default=str), executor, workers, spec.timeout,
                    json.dumps(package_versions()), json.dumps(platform_info()),
                ),
            )  # fmt: skip
            return int(cur.lastrowid or 0)

    def end_run(self, run_id: int, outcome: str, cells_run: int, notes: list[str]) -> None:
        with self.writing(), self.transaction() as c:
            c.execute(
                "UPDATE runs SET ended_at = ?, outcome = ?, cells_run = ?, notes = ?"
                " WHERE run_id = ?",
                (now(), outcome, cells_run, json.dumps(notes), run_id),
            )

    def previous_source(self) -> str | None:
        """The workbench source hash of the latest earlier run, if any."""
        row = self.conn.execute(
            "SELECT versions FROM runs ORDER BY run_id DESC LIMIT 1 OFFSET 1"
        ).fetchone()
        return json.loads(row[0]).get("workbench_source") if row and row[0] else None

    def finished_ids(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT cell_id FROM fits")}

    def counts(self) -> dict[str, int]:
        """Cells by status, plus ``total`` and ``pending``."""
        with readable(self.directory / STORE_FILE):
            return self._counts()

    def _counts(self) -> dict[str, int]:
        out = dict(
            self.conn.execute("SELECT status, COUNT(*) FROM fits GROUP BY status").fetchall()
        )
        out["total"] = self.conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
        out["pending"] = out["total"] - sum(v for k, v in out.items() if k != "total")
        return out

    def n_failed(self) -> int:
        marks = ",".join("?" * len(FAILED_STATUSES))
        query = f"SELECT COUNT(*) FROM fits WHERE status IN ({marks})"
        return self.conn.execute(query, FAILED_STATUSES).fetchone()[0]

    # ---- one cell ----------------------------------------------------------------------------
    def write(self, cell: Cell, record: CellRecord, run_id: int) -> None:
        """Store one finished cell atomically (its posterior file first, then one transaction).
        Raises StoreWriteError, with the transaction rolled back, when a write is refused."""
        with self.writing():
            self._write(cell, record, run_id)

    def _write(self, cell: Cell, out: CellRecord, run_id: int) -> None:
        posterior_path = None
        if out.posterior:
            folder = self.directory / POSTERIOR_DIR
            folder.mkdir(exist_ok=True)
            target = folder / f"{cell.cell_id}.nc"
            tmp = target.with_suffix(".nc.tmp")
            tmp.write_bytes(out.posterior)
            os.replace(tmp, target)
            posterior_path = f"{POSTERIOR_DIR}/{target.name}"
        cid = cell.cell_id
        params = None if out.params is None else json.dumps(out.params.to_dict())
        with self.transaction() as c:
            if out.dataset is not None:
                ds = out.dataset
                c.execute(
                    "INSERT OR IGNORE INTO datasets (data_id, replicate, n, d, n_components_to_fit,"
                    " truth, info, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        cell.data_id, cell.replicate, ds.n, ds.d, ds.n_components_to_fit,
                        json.dumps(ds.truth.to_dict()), json.dumps(ds.info, default=str),
                        ds.fingerprint,
                    ),
                )  # fmt: skip
            c.execute(
                "INSERT INTO fits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cid, run_id, out.status, out.message, out.traceback, out.loglik, out.n_iter,
                    out.fit_time, out.data_time, out.eval_time, out.total_time, out.worker,
                    out.started_at, out.finished_at, params, posterior_path,
                    json.dumps(list(out.warnings)) if out.warnings else None,
                ),
            )  # fmt: skip
            c.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?)",
                [(cid, k, v) for k, v in out.evaluation().items()],
            )
            c.executemany(
                "INSERT INTO diagnostics VALUES (?, ?, ?)",
                [(cid, k, v) for k, v in out.diagnostics.items()],
            )
            c.executemany(
                "INSERT INTO restarts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (cid, r.restart, r.loglik, r.status, r.n_iter, r.gap, r.failed, int(r.best),
                     json.dumps(dict(r.verdict)) if r.verdict else None)
                    for r in out.restarts
                ],
            )  # fmt: skip
            for restart, trace in out.traces:
                c.executemany(
                    "INSERT INTO em_traces VALUES (?, ?, ?, ?)",
                    [(cid, restart, i, float(v)) for i, v in enumerate(trace)],
                )
            c.executemany(
                "INSERT INTO intervals VALUES (?, ?, ?, ?, ?, ?)",
                [(cid, *row) for row in out.intervals],
            )


def _why(err: BaseException) -> str:
    """The reason of an OS or SQLite error, without Python's decoration."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err) or type(err).__name__

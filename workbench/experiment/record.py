"""One typed record per cell: what a fit (or a cell without one) produced, built once by the
runner from the fitter's ``FitResult`` and its evaluation (``workbench.evaluate``), and written
by the store in one transaction. The verdict of the returned fit (``failed``, ``gap``,
``failure_kind``) and of every restart is judged at evaluation and carried here; nothing
downstream judges again.

Values are plain (numbers, str, None; numpy scalars unwrapped) so that SQLite stores them
exactly and a worker process can send the record to the parent by pickle.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from workbench.params import MixtureParams

# Keys of evaluate_fit that are fields of the record itself (status, loglik, n_iter, wall_time
# as fit_time; the verdict of the returned fit).
FIT_KEYS = ("status", "loglik", "n_iter", "wall_time")
VERDICT_KEYS = ("failed", "gap", "failure_kind")
# Keys of a restart's row (evaluate.restart_table) stored as columns; the rest is its verdict.
RESTART_RUN = ("restart", "loglik", "status", "n_iter", "gap", "failed")
RESTART_COLUMNS = (*RESTART_RUN, "best")


def plain(value: Any) -> Any:
    """A value SQLite can hold exactly: numbers, str, None (numpy scalars unwrapped; anything
    else as JSON)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, default=lambda v: np.asarray(v).tolist())


class Interval(NamedTuple):
    """One interval bound pair: ``parameter`` (weights, means, scales), component, dim."""

    parameter: str
    component: int
    dim: int
    lower: float
    upper: float


@dataclass(frozen=True)
class RestartRecord:
    """One EM restart: its run (loglik in nats, status, iterations), its verdict (``gap`` nats
    below the best known optimum at its polished fixed point, ``failed`` a local optimum or
    None when unjudged), whether it is the returned fit, and the verdict's inputs and kind
    (``polished_loglik``, ``polished_status``, ``polished_iter``, ``max_eigenvalue``,
    ``param_distance``, ``cluster_change``, ``failure_kind``)."""

    restart: int
    loglik: float
    status: str
    n_iter: int
    gap: float
    failed: bool | None
    best: bool
    verdict: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], best: int) -> RestartRecord:
        """From a row of :func:`workbench.evaluate.restart_table` (``best``: the index of the
        restart returned as the fit)."""
        values = {k: plain(row.get(k)) for k in RESTART_RUN}
        verdict = {k: plain(v) for k, v in row.items() if k not in RESTART_COLUMNS}
        return cls(**values, best=row["restart"] == best, verdict=verdict)


@dataclass(frozen=True)
class DatasetRecord:
    """A cell's data set as stored: sizes, generating parameters, the generator's info (plain
    JSON values), and the SHA-256 fingerprint of its points and labels
    (``runner.data_fingerprint``)."""

    n: int
    d: int
    n_components_to_fit: int
    truth: MixtureParams
    info: Mapping[str, Any]
    fingerprint: str


@dataclass(frozen=True)
class CellRecord:
    """What one cell produced. Times in seconds, log-likelihoods in nats.

    status: the fit's (``workbench.status``: EM, Bayes) or the cell's (error, timeout, crashed,
    skipped). The verdict on the returned fit: ``gap`` (nats below the best known optimum; None
    when not evaluated, NaN without a reference), ``failure_kind`` (None when not judged: no
    restarts) and ``failed`` (a local optimum; None when unjudged). metrics: the rest of
    ``evaluate_fit`` (recovery errors, ARI, restart rates, coverage, ...). diagnostics: the
    fitter's own numbers and short strings.
    traces: (restart, objective per iteration) of the traces kept. posterior: netCDF bytes of
    the thinned posterior (Bayes). log: library log lines, for the run log only.
    """

    cell_id: str
    status: str
    message: str = ""
    traceback: str = ""
    loglik: float = math.nan
    n_iter: int | None = None
    fit_time: float = math.nan  # the fitter's own wall time
    data_time: float = math.nan
    eval_time: float = math.nan
    total_time: float = math.nan
    params: MixtureParams | None = None
    failed: bool | None = None
    gap: float | None = None
    failure_kind: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    diagnostics: Mapping[str, Any] = field(default_factory=dict)
    restarts: tuple[RestartRecord, ...] = ()
    traces: tuple[tuple[int, np.ndarray], ...] = ()
    intervals: tuple[Interval, ...] = ()
    posterior: bytes | None = None
    dataset: DatasetRecord | None = None
    warnings: tuple[str, ...] = ()
    log: tuple[str, ...] = ()
    worker: str = ""
    started_at: str = ""
    finished_at: str = ""

    def evaluation(self) -> dict[str, Any]:
        """Every evaluated quantity by name, as the store writes them: ``gap`` when the fit was
        evaluated (NaN without a reference), ``failed`` and ``failure_kind`` when it was judged
        (EM with restarts), then the metrics."""
        verdict: dict[str, Any] = {} if self.gap is None else {"gap": self.gap}
        if self.failure_kind is not None:
            verdict.update(failed=self.failed, failure_kind=self.failure_kind)
        return {**verdict, **self.metrics}


def split_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(verdict, rest) of ``evaluate_fit``'s flat metrics, the keys that are fields of the
    record (FIT_KEYS) dropped, every value plain."""
    verdict = {k: plain(metrics[k]) for k in VERDICT_KEYS if k in metrics}
    rest = {k: plain(v) for k, v in metrics.items() if k not in FIT_KEYS and k not in VERDICT_KEYS}
    return verdict, rest


def intervals_of(intervals: Mapping[str, tuple[np.ndarray, np.ndarray]] | None) -> tuple:
    """Interval rows of a FitResult's ``intervals`` (per parameter, (lower, upper) arrays of
    shape (K,) or (K, d))."""
    rows = []
    for name, (lower, upper) in (intervals or {}).items():
        lo = np.asarray(lower, dtype=float).reshape(len(lower), -1)
        hi = np.asarray(upper, dtype=float).reshape(len(upper), -1)
        for (k, j), value in np.ndenumerate(lo):
            rows.append(Interval(name, int(k), int(j), float(value), float(hi[k, j])))
    return tuple(rows)

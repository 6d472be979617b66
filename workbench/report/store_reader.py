"""What a report reads from a results store: each experiment's tidy per-fit table, its design
tables, and on request EM traces, restarts, fitted parameters, truths, posterior files and data
sets (regenerated from their seeds and checked against the fingerprint the run stored); and the
helpers that name the table's columns (grid variables, legend series).

Everything is read-only and read through :mod:`workbench.experiment.tables` (the one reader of
a store: no SQL here or in any report module); the tidy table is its ``load_table``'s."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from workbench.data.dataset import Dataset
from workbench.data.registry import generate
from workbench.experiment.design import Cell
from workbench.experiment.runner import data_fingerprint
from workbench.experiment.spec import DataCondition
from workbench.experiment.tables import (
    load_design,
    load_params,
    load_restarts,
    load_table,
    load_traces,
)
from workbench.params import MixtureParams
from workbench.status import FAILED_STATUSES

# Columns of the tidy table that describe a fitter condition or bookkeeping, not a grid axis.
NOT_AXES = ("data.generator",)


class DataMismatch(ValueError):
    """A data set regenerated from its seed differs from the one the run fitted."""


@dataclass
class Experiment:
    """One experiment's store, read once: its per-fit table and the small design tables."""

    directory: Path
    name: str
    meta: dict[str, str]
    table: pd.DataFrame
    runs: pd.DataFrame
    datasets: pd.DataFrame
    cells: pd.DataFrame
    data_conditions: pd.DataFrame
    sections: tuple[str, ...] | None = None  # [report] sections of the latest run's config

    def traces(self, cell_ids: list[str]) -> pd.DataFrame:
        """EM objective per (cell_id, restart, iteration) for the given cells."""
        return load_traces(self.directory, cell_ids)

    def restarts(self, cell_ids: list[str] | None = None) -> pd.DataFrame:
        """One row per restart of the given cells (every cell when None), with its stored
        verdict: :func:`workbench.experiment.tables.load_restarts`."""
        return load_restarts(self.directory, cell_ids)

    def params(self, cell_id: str) -> MixtureParams | None:
        """The stored fitted parameters of a cell, or None."""
        return load_params(self.directory, [cell_id]).get(cell_id)

    def fitted(self, cell_ids: list[str] | None = None) -> dict[str, MixtureParams]:
        """The stored fitted parameters by cell_id (of ``cell_ids``; every cell when None)."""
        return load_params(self.directory, cell_ids)

    def truth(self, data_id: str, replicate: int) -> MixtureParams | None:
        """The stored generating parameters of a data set, or None."""
        rows = self.datasets[
            (self.datasets["data_id"] == data_id) & (self.datasets["replicate"] == replicate)
        ]
        if rows.empty or rows["truth"].iloc[0] is None:
            return None
        return MixtureParams.from_dict(json.loads(rows["truth"].iloc[0]))

    def dataset(self, cell_id: str) -> Dataset:
        """Regenerate a cell's data set from its stored generator, settings and data seed, and
        check it against the fingerprint the run stored (raises :class:`DataMismatch` when the
        generator code or numpy changed since; a store from before fingerprints is unchecked)."""
        cell = self.cells.set_index("cell_id").loc[cell_id]
        cond = self.data_conditions.set_index("data_id").loc[cell["data_id"]]
        settings = json.loads(cond["settings"])
        data = DataCondition(cond["generator"], settings, "data", cond["label"])
        stored = Cell(
            cell_id,
            0,
            int(cell["replicate"]),
            cell["data_id"],
            "",
            data,
            None,  # type: ignore[arg-type]
            tuple(json.loads(cell["data_entropy"])),
            (),
        )
        dataset = generate(data.generator, np.random.default_rng(stored.data_seed()), **settings)
        expected = self._fingerprint(cell["data_id"], int(cell["replicate"]))
        if expected is not None and expected != data_fingerprint(dataset.X, dataset.labels):
            raise DataMismatch(
                f"{self.directory}: data set {cond['label']!r} replicate {cell['replicate']}, "
                "regenerated from its seed, is not the one the run fitted (the generator code or "
                "numpy changed since the run); rerun the experiment (--fresh) to draw it"
            )
        return dataset

    def _fingerprint(self, data_id: str, replicate: int) -> str | None:
        """The stored fingerprint of a data set (None in stores made before fingerprints)."""
        if "fingerprint" not in self.datasets:
            return None
        rows = self.datasets[
            (self.datasets["data_id"] == data_id) & (self.datasets["replicate"] == replicate)
        ]
        value = rows["fingerprint"].iloc[0] if not rows.empty else None
        return value if isinstance(value, str) else None

    def posterior_file(self, cell_id: str) -> Path | None:
        """The cell's stored posterior netCDF, when it exists."""
        row = self.table.loc[self.table["cell_id"] == cell_id, "posterior_path"]
        if row.empty or not isinstance(row.iloc[0], str):
            return None
        path = self.directory / row.iloc[0]
        return path if path.is_file() else None


def load_experiment(directory: str | Path) -> Experiment:
    """Read an experiment's store (raises StoreError when there is none)."""
    directory = Path(directory)
    design = load_design(directory)
    meta, runs = design["meta"], design["runs"]
    datasets, cells, conditions = design["datasets"], design["cells"], design["data_conditions"]
    table = load_table(directory)
    name = meta.get("name", directory.name)
    table.insert(0, "experiment", name)
    return Experiment(
        directory, name, meta, table, runs, datasets, cells, conditions, _sections(runs)
    )


def _sections(runs: pd.DataFrame) -> tuple[str, ...] | None:
    """The ``[report] sections`` of the latest run's resolved config, if it names any."""
    for text in reversed(runs.get("resolved", pd.Series(dtype=object)).tolist()):
        try:
            sections = json.loads(text or "{}").get("report", {}).get("sections")
        except (ValueError, AttributeError):
            continue
        if isinstance(sections, list) and sections:
            return tuple(str(s) for s in sections)
    return None


@dataclass
class ReportData:
    """The experiments of one report and their combined per-fit table."""

    experiments: list[Experiment]
    table: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.table = pd.concat([e.table for e in self.experiments], ignore_index=True)
        self.table["series"] = series_key(self.table)

    @property
    def name(self) -> str:
        return "_vs_".join(e.name for e in self.experiments)

    def experiment(self, name: str) -> Experiment:
        return next(e for e in self.experiments if e.name == name)


# ---- grid variables ------------------------------------------------------------------------------
def grid_variables(table: pd.DataFrame, prefix: str = "data.") -> list[str]:
    """Setting columns (``data.*`` or ``fit.*``) that take more than one value: the grid axes."""
    out = []
    for column in table.columns:
        if not column.startswith(prefix) or column in NOT_AXES:
            continue
        values = {json.dumps(v, default=str) for v in table[column] if not _missing(v)}
        if len(values) > 1:
            out.append(column)
    return out


def numeric_variable(series: pd.Series) -> bool:
    """Whether a grid variable's values are all numbers (plotted on a numeric axis)."""
    values = [v for v in series if not _missing(v)]
    return bool(values) and all(
        isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in values
    )


def short_name(column: str) -> str:
    """``data.separation`` -> ``separation``; ``fit.init`` -> ``fit init``."""
    head, _, tail = column.partition(".")
    return tail if head == "data" else f"{head} {tail}" if tail else column


def setting_label(column: str, value: object) -> str:
    """``name=value`` of a grid variable (short name, floats in %g) for titles and legends."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{short_name(column)}={text}"


def slug(text: str) -> str:
    """A file-name-safe form of a column or label."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "x"


def numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column as floats (NaN where missing or not a number; all NaN when absent)."""
    if column not in frame:
        return pd.Series(np.nan, index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def series_key(table: pd.DataFrame) -> pd.Series:
    """The legend label of each row: its fitter condition, prefixed by the experiment when
    several experiments are overlaid."""
    if table["experiment"].nunique() > 1:
        return table["experiment"].astype(str) + ": " + table["fitter"].astype(str)
    return table["fitter"].astype(str)


def completed(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of fits that produced a result (no error, timeout, crash or skip)."""
    return table[~table["status"].isin(FAILED_STATUSES)]

"""The experiment runner: config -> design -> run cells (serial, local processes, Dask) -> store.

``workbench run CONFIG`` is the command-line face (:mod:`workbench.cli`); from Python::

    from workbench.experiment import load_config, build_design, load_table
    spec = load_config("experiments/quickstart.toml", ["data.n=500"])
    cells = build_design(spec)                 # content-hashed cells and seeds
    table = load_table("reports/quickstart")   # tidy: one row per fit
"""

from workbench.experiment.config import ConfigError, ExperimentSpec, load_config, parse_config
from workbench.experiment.design import Cell, build_design
from workbench.experiment.record import CellRecord
from workbench.experiment.runner import CellTask, run_cell
from workbench.experiment.store import Store, StoreError

_TABLES = ("export_table", "load_table", "summary_table", "without_timings")


def __getattr__(name: str):
    """The table functions, imported on first use (pandas stays out of ``workbench validate``)."""
    if name in _TABLES:
        from workbench.experiment import tables

        return getattr(tables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Cell",
    "CellRecord",
    "CellTask",
    "ConfigError",
    "ExperimentSpec",
    "Store",
    "StoreError",
    "build_design",
    "export_table",
    "load_config",
    "load_table",
    "parse_config",
    "run_cell",
    "summary_table",
    "without_timings",
]

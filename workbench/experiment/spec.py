"""The records of a validated experiment config: the experiment, its data and fitter
conditions (grid points), and the one error a config can raise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.settings.experiment import DEFAULT_MAX_CELLS, DEFAULT_POSTERIOR_DRAWS


class ConfigError(ValueError):
    """A user error in a config or an override: one line naming the file, key and value."""


@dataclass(frozen=True)
class DataCondition:
    """One point of the data grid: a generator and its explicit settings."""

    generator: str
    settings: dict[str, Any]
    block: str  # where it came from, e.g. "data" or "data[1]"
    label: str = ""
    block_name: str = ""  # the block's own ``name``, if it gave one

    def in_blocks(self, names: tuple[str, ...]) -> bool:
        """True when ``names`` (positions or block names) include this condition's block."""
        return self.block in names or (bool(self.block_name) and self.block_name in names)

    def identity(self) -> dict[str, Any]:
        return {"generator": self.generator, **self.settings}


@dataclass(frozen=True)
class FitterCondition:
    """One point of a fitter's grid: method, explicit settings and the factory that builds it."""

    table: str  # the [fitters.<table>] name
    method: str
    settings: dict[str, Any]
    factory: str  # "module:callable", from workbench.settings.fitters.FITTERS
    label: str = ""
    data_blocks: tuple[str, ...] = ()  # the data blocks it fits; () = every block

    def fits(self, data: DataCondition) -> bool:
        """True when this fitter runs on data condition ``data``."""
        return not self.data_blocks or data.in_blocks(self.data_blocks)

    def identity(self) -> dict[str, Any]:
        return {"method": self.method, "settings": self.settings}


@dataclass(frozen=True)
class ExperimentSpec:
    """A validated experiment: its options and the expanded data and fitter grids."""

    name: str
    description: str
    replicates: int
    seed: int
    timeout: float | None
    max_consecutive_errors: int
    data: tuple[DataCondition, ...]
    fitters: tuple[FitterCondition, ...]
    report_sections: tuple[str, ...]  # default: every generic section, as the report shows
    em_traces: str = "all"  # "all" restarts' traces, the "best" one's, or "none"
    max_cells: int = DEFAULT_MAX_CELLS
    posterior_draws: int = DEFAULT_POSTERIOR_DRAWS
    path: str = "<config>"
    text: str = ""
    overrides: tuple[str, ...] = ()
    resolved: dict[str, Any] = field(default_factory=dict)

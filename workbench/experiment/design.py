"""The design: cells (data condition, fitter condition, replicate) with content-hashed ids and
independent, order-free seeds.

Every identity is canonical JSON (sorted keys) of explicit settings, hashed with SHA-256:

* data stream: ``SeedSequence([seed, *H(data settings, replicate)], spawn_key=(0,))`` - one data
  set per (data condition, replicate), whatever fitters run on it (a paired comparison);
* fitter stream: ``SeedSequence([seed, *H(data settings, fitter settings, replicate)],
  spawn_key=(1,))``.

So adding a fitter never changes the data, and reordering the config (keys, tables, grid values)
changes no seed and no id - only the display order (``position``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.experiment.spec import DataCondition, ExperimentSpec, FitterCondition

DATA_STREAM = 0
FIT_STREAM = 1


def canonical(obj: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, floats by repr (exact)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(obj: Any) -> str:
    """SHA-256 hex digest of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical(obj).encode()).hexdigest()


def entropy(seed: int, obj: Any) -> tuple[int, ...]:
    """SeedSequence entropy: the master seed and the eight 32-bit words of H(obj)."""
    raw = bytes.fromhex(digest(obj))
    return (seed, *(int.from_bytes(raw[i : i + 4], "little") for i in range(0, 32, 4)))


def data_id(condition: DataCondition) -> str:
    return digest({"data": condition.identity()})[:16]


def fitter_id(condition: FitterCondition) -> str:
    return digest({"fitter": condition.identity()})[:16]


@dataclass(frozen=True)
class Cell:
    """One unit of work: fit ``fitter`` to replicate ``replicate`` of data condition ``data``."""

    cell_id: str
    position: int  # display order only; never part of an identity
    replicate: int
    data_id: str
    fitter_id: str
    data: DataCondition
    fitter: FitterCondition
    data_entropy: tuple[int, ...]
    fit_entropy: tuple[int, ...]

    @property
    def condition(self) -> tuple[str, str]:
        """(data_id, fitter_id): the cells that differ only by replicate."""
        return self.data_id, self.fitter_id

    def data_seed(self) -> np.random.SeedSequence:
        return np.random.SeedSequence(self.data_entropy, spawn_key=(DATA_STREAM,))

    def fit_seed(self) -> np.random.SeedSequence:
        return np.random.SeedSequence(self.fit_entropy, spawn_key=(FIT_STREAM,))


def make_cell(
    seed: int, data: DataCondition, fitter: FitterCondition, replicate: int, position: int = 0
) -> Cell:
    """The cell for (data, fitter, replicate) under master ``seed``."""
    d_ident, f_ident = data.identity(), fitter.identity()
    return Cell(
        cell_id=digest({"seed": seed, "data": d_ident, "fitter": f_ident, "rep": replicate})[:20],
        position=position,
        replicate=replicate,
        data_id=data_id(data),
        fitter_id=fitter_id(fitter),
        data=data,
        fitter=fitter,
        data_entropy=entropy(seed, {"data": d_ident, "rep": replicate}),
        fit_entropy=entropy(seed, {"data": d_ident, "fitter": f_ident, "rep": replicate}),
    )


def build_design(spec: ExperimentSpec) -> list[Cell]:
    """All cells, replicate-major (so early results span every condition); a fitter restricted
    to some data blocks (``data = [...]``) gets cells on those blocks only."""
    cells = []
    for r in range(spec.replicates):
        for data in spec.data:
            for fitter in (f for f in spec.fitters if f.fits(data)):
                cells.append(make_cell(spec.seed, data, fitter, r, len(cells)))
    return cells


def design_hash(cells: list[Cell]) -> str:
    """Identity of a whole design: the hash of its sorted cell ids."""
    return digest(sorted(c.cell_id for c in cells))

"""Experiment configs: TOML parsing, ``--set`` overrides and loading (grids: :mod:`.grid`;
checks: :mod:`.validate`).

A config names the experiment, its data grid, its fitters and its report sections::

    [experiment]
    name = "quickstart"          # results go to reports/<name>/
    replicates = 4               # data sets per data condition
    seed = 2024                  # master seed (>= 0)
    timeout = 300                # seconds per cell, enforced in the worker (optional)
    max_cells = 100000           # refuse a larger design (optional; also --max-cells)

    [data]                       # or [[data]] blocks, each expanded on its own
    generator = "gaussian_mixture"
    n = 200
    separation = [1.0, 2.0, 4.0] # a list is a grid axis (cartesian product)
    K = [2, 3]
    d = [1, 2]
    zip = [["K", "d"]]           # tied axes vary together: (2, 1), (3, 2)

    [fitters.em]                 # one table per fitter; its settings may be gridded too
    method = "em"
    init = ["kmeans++", "random_from_data"]
    data = ["data[0]"]           # optional: fit only these data blocks (default: every block)

    [report]
    sections = ["summary", "failure_rates"]

A setting whose own value is a list (e.g. ``weights = [0.3, 0.7]``, known from the generator's or
fitter's declared settings, :mod:`workbench.settings`) is a single value; grid it with ``weights
= { grid = [[0.3, 0.7], [0.5, 0.5]] }``. The ``{ grid = [...] }`` form works for every setting,
and ``{ value = [...] }`` marks a list as one value where the declaration cannot tell (e.g. EM's
``fixed_weights``). A fitter
table with ``enabled = false`` is left out (handy with ``--set fitters.bayes.enabled=false``).
Every fitter fits every data block unless its table names blocks with ``data = [...]``: a
block's position (``"data[2]"``, or ``"data"`` for a single ``[data]`` table) or the ``name`` a
``[[data]]`` block gives itself (``name = "n_arm"``). Block names and restrictions only choose
which cells exist; they are not part of any cell's identity or seed.
Every problem raises :class:`ConfigError` with one line naming the file, the key and the value
(the checks: :mod:`workbench.experiment.validate`, against the declared settings).
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from workbench.experiment.spec import ConfigError, ExperimentSpec
from workbench.experiment.validate import Validator


# ---- overrides -----------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[list[str], Any]:
    """``"data.n=500"`` -> (["data", "n"], 500). The value is read as TOML, else as a string."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set data.n=500")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return [p.strip() for p in parts], value


def apply_overrides(raw: dict[str, Any], overrides: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """A copy of the parsed TOML with each ``--set`` applied in order.

    A numeric part indexes a ``[[data]]`` array; a name part on an array applies to every element.
    """
    raw = json.loads(json.dumps(raw, default=str))  # deep copy of plain TOML values

    def put(node: Any, parts: list[str], value: Any, text: str, done: list[str]) -> None:
        part = parts[0]
        if isinstance(node, list):
            if not part.isdigit():
                for item in node:
                    put(item, parts, value, text, done)
                return
            if int(part) >= len(node):
                raise ConfigError(f"--set {text}: {'.'.join(done)} has no element {part}")
            if len(parts) == 1:
                node[int(part)] = value
            else:
                put(node[int(part)], parts[1:], value, text, [*done, part])
            return
        if not isinstance(node, dict):
            raise ConfigError(f"--set {text}: {'.'.join(done)} is not a table")
        if len(parts) == 1:
            node[part] = value
        else:
            put(node.setdefault(part, {}), parts[1:], value, text, [*done, part])

    for text in overrides:
        parts, value = parse_override(text)
        put(raw, parts, value, text, [])
    return raw


def derived_name(name: str, overrides: tuple[str, ...] | list[str]) -> str:
    """The experiment name for a variation: ``name`` plus each override's last key part and
    value, sorted (``quickstart`` + ``data.n=500`` -> ``quickstart-n500``); a short hash of the
    overrides instead when that would be longer than 60 characters."""
    parts = []
    for text in overrides:
        key, _, value = text.partition("=")
        last = key.strip().split(".")[-1]
        parts.append(re.sub(r"[^A-Za-z0-9.+-]+", "_", f"{last}{value.strip()}").strip("_."))
    suffix = "-".join(sorted(p for p in parts if p))
    if not suffix or len(name) + len(suffix) > 60:
        suffix = hashlib.sha256("\n".join(sorted(overrides)).encode()).hexdigest()[:8]
    return f"{name}-{suffix}"


# ---- loading -------------------------------------------------------------------------------------
def load_config(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> ExperimentSpec:
    """Read, override and validate a config file. Raises ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    return parse_config(text, str(path), tuple(overrides))


def parse_config(
    text: str, path: str = "<config>", overrides: tuple[str, ...] = ()
) -> ExperimentSpec:
    """Validate config text (plus overrides) into an ExperimentSpec. Raises ConfigError."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    raw = apply_overrides(raw, overrides)
    return Validator(path).spec(raw, text, overrides)

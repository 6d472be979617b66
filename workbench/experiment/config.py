"""Experiment configs: TOML parsing, ``--set`` overrides, grid expansion and full validation.

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
fitter's type hints) is a single value; grid it with ``weights = { grid = [[0.3, 0.7], [0.5,
0.5]] }``. The ``{ grid = [...] }`` form works for every setting, and ``{ value = [...] }`` marks
a list as one value where the type hints cannot tell (e.g. EM's ``fixed_weights``). A fitter
table with ``enabled = false`` is left out (handy with ``--set fitters.bayes.enabled=false``).
Every fitter fits every data block unless its table names blocks with ``data = [...]``: a
block's position (``"data[2]"``, or ``"data"`` for a single ``[data]`` table) or the ``name`` a
``[[data]]`` block gives itself (``name = "n_arm"``). Block names and restrictions only choose
which cells exist; they are not part of any cell's identity or seed.
Every problem raises
:class:`ConfigError` with one line naming the file, the key and the value.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GENERIC_SECTIONS = (
    "summary",
    "failure_rates",
    "recovery",
    "traces",
    "convergence",
    "coverage",
    "densities",
    "bayes",
    "failures",
    "findings",
)
# the studies' own sections (issue 6) and the founding walkthrough
STUDY_SECTIONS = (
    "local_optima",
    "slow_convergence",
    "misspecification",
    "em_vs_bayes",
    "scaling",
    "missing_data",
    "walkthrough",
)
REPORT_SECTIONS = GENERIC_SECTIONS + STUDY_SECTIONS
SECTIONS = ("experiment", "data", "fitters", "report", "store")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEFAULT_TIMEOUT = 600.0
DEFAULT_MAX_CONSECUTIVE_ERRORS = 10
DEFAULT_POSTERIOR_DRAWS = 500
# Largest design accepted unless experiment.max_cells (or --max-cells) raises it: building a
# design costs about 110 us and 1.3 KB per cell, so 100 000 cells take ~11 s and ~130 MB.
DEFAULT_MAX_CELLS = 100_000
# validate and the trial build of each data condition generate at most this many points.
SAMPLE_N = 200


class ConfigError(ValueError):
    """A user error in a config or an override: one line naming the file, key and value."""


def show(value: Any, limit: int = 60) -> str:
    """A value as TOML-ish text, truncated, for error messages."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    factory: str  # "module:callable", resolved from workbench.fitters.FITTERS at validation
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


# ---- grids ---------------------------------------------------------------------------------------
# Data settings that are tables whose own values may be grid axes: ``missing = { mechanism =
# ["mcar", "mar"], fraction = [0.1, 0.3] }`` grids over both; zip names them ``missing.fraction``.
NESTED_SETTINGS = ("missing",)


def flatten_nested(table: dict[str, Any]) -> dict[str, Any]:
    """``{"missing": {"fraction": f}}`` -> ``{"missing.fraction": f}`` for NESTED_SETTINGS (a
    ``{grid = ...}``, ``{value = ...}`` or empty table is left whole); other keys unchanged."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        nested = isinstance(value, dict) and value and set(value) not in ({"grid"}, {"value"})
        if key in NESTED_SETTINGS and nested:
            out.update({f"{key}.{sub}": v for sub, v in value.items()})
        else:
            out[key] = value
    return out


def nest_flat(point: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`flatten_nested` for one grid point."""
    out: dict[str, Any] = {}
    for key, value in point.items():
        head, dot, sub = key.partition(".")
        if dot and head in NESTED_SETTINGS:
            out.setdefault(head, {})[sub] = value
        else:
            out[key] = value
    return out


def expand_grid(
    table: dict[str, Any], list_valued: dict[str, bool], fail: Any, where: str
) -> list[dict[str, Any]]:
    """Expand one settings table into its grid points, in config order.

    A list is an axis unless the key is list-valued; ``{grid = [...]}`` is always an axis.
    Keys named together in ``zip = [[...], ...]`` vary together (scalars broadcast).
    """
    table = dict(table)
    axes, groups = _axes(table, list_valued, fail, where)
    factors = []
    for group in groups:
        length = max(len(axes[k]) for k in group)
        factors.append(
            [{k: axes[k][i if len(axes[k]) > 1 else 0] for k in group} for i in range(length)]
        )
    settings = [k for k in table if k != "zip"]
    points = []
    for combo in itertools.product(*factors):
        point: dict[str, Any] = {}
        for part in combo:
            point.update(part)
        points.append({k: point[k] for k in settings})
    return points


def grid_size(table: dict[str, Any], list_valued: dict[str, bool], fail: Any, where: str) -> int:
    """How many points :func:`expand_grid` gives for ``table``, counted without building them."""
    axes, groups = _axes(dict(table), list_valued, fail, where)
    return math.prod(max(len(axes[k]) for k in group) for group in groups)


def _axes(
    table: dict[str, Any], list_valued: dict[str, bool], fail: Any, where: str
) -> tuple[dict[str, list[Any]], list[list[str]]]:
    """The values of every setting (one value, or a grid axis) and the groups of settings that
    vary together (zip groups, then each other setting alone). Pops ``zip`` from ``table``."""
    zips = table.pop("zip", [])
    if not isinstance(zips, list) or not all(
        isinstance(g, list) and g and all(isinstance(k, str) for k in g) for g in zips
    ):
        fail(f"{where}.zip", zips, 'must be a list of lists of keys, e.g. [["n", "separation"]]')
    axes: dict[str, list[Any]] = {}
    gridded: set[str] = set()
    for key, value in table.items():
        if isinstance(value, dict) and set(value) == {"value"}:
            axes[key] = [value["value"]]
            continue
        if isinstance(value, dict) and set(value) == {"grid"}:
            value = value["grid"]
            if not isinstance(value, list):
                fail(f"{where}.{key}.grid", value, "must be a list of values")
        elif not (isinstance(value, list) and not list_valued.get(key, False)):
            axes[key] = [value]
            continue
        if not value:
            fail(f"{where}.{key}", value, "an empty grid has no values")
        axes[key] = list(value)
        gridded.add(key)
    seen: set[str] = set()
    groups: list[list[str]] = []
    for group in zips:
        for key in group:
            if key not in table:
                fail(f"{where}.zip", group, f"names {key!r}, which is not a setting here")
            if key in seen:
                fail(f"{where}.zip", group, f"names {key!r} in two zip groups")
            seen.add(key)
        lengths = {len(axes[k]) for k in group if k in gridded}
        if len(lengths) > 1:
            sizes = ", ".join(f"{k}: {len(axes[k])}" for k in group if k in gridded)
            fail(f"{where}.zip", group, f"zipped lists differ in length ({sizes})")
        groups.append(group)
    groups += [[k] for k in table if k not in seen]
    return axes, groups


def _varying_label(points: list[dict[str, Any]], base: str = "") -> list[str]:
    """Short labels naming only the keys whose values differ between points."""
    every_key = dict.fromkeys(k for p in points for k in p)  # union, in order of appearance
    keys = [k for k in every_key if len({json.dumps(p.get(k)) for p in points}) > 1]
    labels = []
    for p in points:
        text = ", ".join(f"{k}={show(p.get(k), 30).strip(chr(34))}" for k in keys)
        labels.append(f"{base}({text})" if base and text else (base or text))
    return labels


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
    from workbench.experiment.validate import Validator

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    raw = apply_overrides(raw, overrides)
    return Validator(path).spec(raw, text, overrides)


__all__ = [
    "ConfigError",
    "DataCondition",
    "ExperimentSpec",
    "FitterCondition",
    "REPORT_SECTIONS",
    "apply_overrides",
    "derived_name",
    "expand_grid",
    "load_config",
    "parse_config",
    "parse_override",
    "show",
]

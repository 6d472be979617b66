"""Grid expansion of a settings table: a list is an axis (unless the setting's own value is a
list), ``{grid = [...]}`` always one, ``{value = [...]}`` never; ``zip`` ties axes; nested
tables (``missing``) grid over their own values. Pure functions over plain TOML values."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

from workbench.settings.base import show

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


def varying_label(points: list[dict[str, Any]], base: str = "") -> list[str]:
    """Short labels naming only the keys whose values differ between points."""
    every_key = dict.fromkeys(k for p in points for k in p)  # union, in order of appearance
    keys = [k for k in every_key if len({json.dumps(p.get(k)) for p in points}) > 1]
    labels = []
    for p in points:
        text = ", ".join(f"{k}={show(p.get(k), 30).strip(chr(34))}" for k in keys)
        labels.append(f"{base}({text})" if base and text else (base or text))
    return labels

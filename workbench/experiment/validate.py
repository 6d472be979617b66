"""Validation of a parsed config against the declared settings (:mod:`workbench.settings`):
its own sections, every data condition and every fitter condition, before anything runs.

Nothing is generated or built here: a data condition is checked by its generator's settings
model, which also says its n, d and the K a fitter takes by default; a fitter condition by its
method's settings model (a method registered without one takes its settings as written, and its
cell checks them when it builds the fitter). Every failure is a :class:`ConfigError`, one line
naming the file, the key and the value.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, NoReturn, TypeVar

from pydantic import ValidationError

from workbench.experiment.grid import (
    expand_grid,
    flatten_nested,
    grid_size,
    nest_flat,
    varying_label,
)
from workbench.experiment.spec import ConfigError, DataCondition, ExperimentSpec, FitterCondition
from workbench.settings.base import Settings, list_valued, problem, show
from workbench.settings.data import DATA_SETTINGS, block_model
from workbench.settings.experiment import NAME_RE, SECTION_SETTINGS
from workbench.settings.fitters import FITTER_SETTINGS, FITTERS

SECTIONS = ("experiment", "data", "fitters", "report", "store")
S = TypeVar("S", bound=Settings)


class Validator:
    """Checks one parsed config; every failure is a ConfigError naming file, key and value."""

    def __init__(self, path: str) -> None:
        self.path = path
        # data condition -> (n, d, K to fit) as its settings say (None: they do not say)
        self.shapes: dict[str, tuple[int | None, int | None, int | None]] = {}

    def fail(self, key: str, value: Any, why: str) -> NoReturn:
        raise ConfigError(f"{self.path}: {key} = {show(value)}: {why}")

    def missing(self, key: str, what: str) -> NoReturn:
        raise ConfigError(f"{self.path}: {key}: missing ({what})")

    def settings(self, model: type[S], values: dict[str, Any], where: str) -> S:
        """``values`` validated by ``model``; its first error as a ConfigError at ``where``."""
        try:
            return model.model_validate(values)
        except ValidationError as err:
            raise ConfigError(f"{self.path}: {problem(err, model, values).config(where)}") from None

    def table(self, parent: dict, key: str, where: str, required: bool = False) -> dict:
        value = parent.get(key)
        if value is None:
            if required:
                self.missing(where, "a table")
            return {}
        if not isinstance(value, dict):
            self.fail(where, value, "must be a table")
        return value

    # ---- sections ------------------------------------------------------------------------------
    def section(self, raw: dict, name: str, required: bool) -> Any:
        """The ``[name]`` section (experiment, report, store), checked by its settings model."""
        return self.settings(SECTION_SETTINGS[name], self.table(raw, name, name, required), name)

    def spec(self, raw: dict, text: str, overrides: tuple[str, ...]) -> ExperimentSpec:
        for key, value in raw.items():
            if key not in SECTIONS:
                self.fail(key, value, f"unknown section (expected one of {', '.join(SECTIONS)})")
        exp = self.section(raw, "experiment", required=True)
        self.design_size(raw, exp.replicates, exp.max_cells)
        data = self.data(raw.get("data"))
        restrictions: list[tuple[str, ...]] = []
        tables = self.table(raw, "fitters", "fitters", required=True)
        fitters = self.fitters(tables, data, restrictions)
        self.every_block_fitted(data, restrictions)
        data = tuple(c for c in data if any(f.fits(c) for f in fitters))  # drop disabled-only
        report = self.section(raw, "report", required=False)
        store = self.section(raw, "store", required=False)
        return ExperimentSpec(
            **exp.model_dump(),
            data=data,
            fitters=fitters,
            report_sections=tuple(report.sections),
            em_traces=store.em_traces,
            posterior_draws=store.posterior_draws,
            path=self.path,
            text=text,
            overrides=tuple(overrides),
            resolved=raw,
        )

    def data(self, raw: Any) -> tuple[DataCondition, ...]:
        if raw is None:
            self.missing("data", "a [data] table or [[data]] blocks")
        blocks = raw if isinstance(raw, list) else [raw]
        if not blocks or not all(isinstance(b, dict) for b in blocks):
            self.fail("data", raw, "must be a table or an array of tables")
        out: list[DataCondition] = []
        names: dict[str, str] = {}
        for i, block in enumerate(blocks):
            where = "data" if isinstance(raw, dict) else f"data[{i}]"
            block = dict(block)
            name = self.block_name(block.pop("name", None), where, names)
            if "generator" not in block:
                self.missing(f"{where}.generator", f"one of {', '.join(DATA_SETTINGS)}")
            settings = {k: v for k, v in block.items() if k != "generator"}
            for gen in self.generators(block["generator"], where):
                points = self.data_points(gen, settings, where)
                out += [dataclasses.replace(p, block_name=name) for p in points]
        self.duplicates([c.identity() for c in out], [c.block for c in out], "data")
        labels = varying_label([flatten_nested(c.identity()) for c in out])
        return tuple(
            dataclasses.replace(c, label=lab or c.generator)
            for c, lab in zip(out, labels, strict=True)
        )

    def generators(self, value: Any, where: str) -> list[str]:
        """A block's generator names (one, a list, or ``{grid = [...]}``), each known."""
        gens = value["grid"] if isinstance(value, dict) and set(value) == {"grid"} else value
        gens = gens if isinstance(gens, list) else [gens]
        for gen in gens:
            if not isinstance(gen, str) or gen not in DATA_SETTINGS:
                known = ", ".join(DATA_SETTINGS)
                self.fail(f"{where}.generator", gen, f"unknown generator (expected one of {known})")
        return gens

    def block_name(self, name: Any, where: str, seen: dict[str, str]) -> str:
        """A data block's optional ``name`` (what a fitter's ``data = [...]`` may cite)."""
        if name is None:
            return ""
        if not isinstance(name, str) or not NAME_RE.match(name):
            self.fail(f"{where}.name", name, "a block name uses letters, digits, '_', '.' or '-'")
        if name in seen:
            self.fail(f"{where}.name", name, f"already names {seen[name]}")
        seen[name] = where
        return name

    def data_blocks(self, value: Any, where: str, data: tuple[DataCondition, ...]) -> tuple:
        """A fitter's ``data = [...]``: the blocks it fits, each a position or a block name."""
        known = list(dict.fromkeys(r for c in data for r in (c.block, c.block_name) if r))
        refs = [value] if isinstance(value, str) else value
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            self.fail(f"{where}.data", value, 'must be a list of data blocks, e.g. ["data[0]"]')
        for ref in refs:
            if ref not in known:
                self.fail(f"{where}.data", ref, f"no such data block (known: {', '.join(known)})")
        return tuple(dict.fromkeys(refs))

    def every_block_fitted(
        self, data: tuple[DataCondition, ...], restrictions: list[tuple[str, ...]]
    ) -> None:
        """Every data block must be fitted by some fitter table, enabled or not (a block that
        only disabled tables fit is then left out of the design, not an error)."""
        for cond in data:
            if not any(not r or cond.in_blocks(r) for r in restrictions):
                cited = ", ".join(sorted({b for r in restrictions for b in r}))
                self.fail(
                    cond.block, cond.block_name or cond.generator,
                    f"no fitter fits this block (the fitters' data = [...] name only {cited})",
                )  # fmt: skip

    def data_points(self, gen: str, block: dict, where: str) -> list[DataCondition]:
        """The grid points of one generator's block, each checked by its settings model; a
        point keeps the values as the model reads them (an int given for a float is a float)."""
        model = block_model(gen)
        out = []
        for point in expand_grid(flatten_nested(block), list_valued(model), self.fail, where):
            point = nest_flat(point)
            checked = self.settings(model, point, where)
            point = {k: v if k == "missing" else getattr(checked, k) for k, v in point.items()}
            cond = DataCondition(gen, point, where)
            shape = (checked.points, checked.dimension, checked.components_to_fit)
            self.shapes[_key(cond)] = shape
            out.append(cond)
        return out

    def fitters(
        self, tables: dict, data: tuple[DataCondition, ...], restrictions: list[tuple[str, ...]]
    ) -> tuple[FitterCondition, ...]:
        """Every enabled fitter table's grid points; appends each table's data blocks (enabled
        or not; () = every block) to ``restrictions``."""
        out: list[FitterCondition] = []
        for label, table in tables.items():
            where = f"fitters.{label}"
            if not NAME_RE.match(label):
                self.fail(where, label, "fitter names use letters, digits, '_', '.' or '-'")
            if not isinstance(table, dict):
                self.fail(where, table, "must be a table with a method and its settings")
            table = dict(table)
            blocks = self.data_blocks(table.pop("data"), where, data) if "data" in table else ()
            restrictions.append(blocks)
            enabled = table.pop("enabled", True)
            if not isinstance(enabled, bool):
                self.fail(f"{where}.enabled", enabled, "must be true or false")
            if not enabled:
                continue
            if "method" not in table:
                self.missing(f"{where}.method", f"one of {', '.join(FITTERS)}")
            method = table.pop("method")
            if not isinstance(method, str) or method not in FITTERS:
                known = ", ".join(FITTERS)
                self.fail(f"{where}.method", method, f"unknown method (expected one of {known})")
            model = FITTER_SETTINGS.get(method)
            listy = list_valued(model) if model is not None else {}
            points = expand_grid(table, listy, self.fail, where)
            labels = varying_label(points, label)
            for point, plabel in zip(points, labels, strict=True):
                if model is not None:
                    checked = self.settings(model, point, where)
                    point = {k: getattr(checked, k) for k in point}
                for cond in (c for c in data if not blocks or c.in_blocks(blocks)):
                    self.components(model, point, cond, where)
                    self.takes_missing(method, model, cond, where)
                out.append(FitterCondition(label, method, point, FITTERS[method], plabel, blocks))
        if not out:
            self.missing("fitters", "at least one enabled [fitters.<name>] table")
        self.duplicates([c.identity() for c in out], [f"fitters.{c.table}" for c in out], "fitters")
        return tuple(out)

    def components(self, model: Any, point: dict, cond: DataCondition, where: str) -> None:
        """Every K a fitter will fit on data condition ``cond`` (n_components, each select_k
        entry, else the data's own K) against the data's n and the method's minimum K
        (``min_components`` of its settings model)."""
        n, _, k_data = self.shapes[_key(cond)]
        low, why = model.min_components if model is not None else (1, "")
        select = point.get("select_k")
        if isinstance(select, list) and select:
            ks = [("select_k", k) for k in select]
        elif isinstance(point.get("n_components"), int):
            ks = [("n_components", point["n_components"])]
        else:
            ks = [("n_components", k_data)]
        for key, k in ks:
            if not isinstance(k, int) or isinstance(k, bool):
                continue
            shown = point.get(key, k)
            if n is not None and k > n:
                self.fail(
                    f"{where}.{key}", shown, f"K = {k}: more components than points in "
                    f"{cond.block} {cond.label or cond.generator} (n = {n})"
                )  # fmt: skip
            if k < low:
                source = "" if key in point else f" (the K of {cond.block}, {cond.generator})"
                self.fail(f"{where}.{key}", shown, f"K = {k}{source}: {why}")

    def takes_missing(self, method: str, model: Any, cond: DataCondition, where: str) -> None:
        """Data with missing values go only to methods that fit them (``fits_missing`` of the
        method's settings model)."""
        if cond.settings.get("missing") is not None and not (model and model.fits_missing):
            able = ", ".join(m for m, s in FITTER_SETTINGS.items() if s.fits_missing)
            self.fail(
                f"{where}.method", method,
                f"cannot fit data with missing values ({cond.block} sets missing); methods "
                f"that can: {able} (or restrict the fitter with data = [...])",
            )  # fmt: skip

    def design_size(self, raw: dict, replicates: int, limit: int) -> None:
        """Refuse, before building anything, a design of more than ``limit`` cells; the count
        is arithmetic (grid sizes), so a billion-cell design is refused at once."""
        total = replicates * self.cells_per_replicate(raw)
        if total > limit:
            self.fail(
                "experiment.max_cells", limit,
                f"the design has {total:,} cells ({replicates:,} replicates), more than the limit;"
                " raise experiment.max_cells or pass --max-cells if you mean it",
            )  # fmt: skip

    def cells_per_replicate(self, raw: dict) -> int:
        """(data condition, fitter condition) pairs, counted from the grid sizes; 0 where the
        config is malformed (the full validation then says what is wrong)."""
        blocks = raw.get("data")
        blocks = blocks if isinstance(blocks, list) else [blocks]
        sizes: dict[str, int] = {}  # block position or name -> data conditions
        for i, block in enumerate(blocks):
            if not isinstance(block, dict):
                return 0
            where = "data" if isinstance(raw.get("data"), dict) else f"data[{i}]"
            settings = flatten_nested(
                {k: v for k, v in block.items() if k not in ("generator", "name")}
            )
            gens = block.get("generator")
            gens = gens["grid"] if isinstance(gens, dict) and set(gens) == {"grid"} else gens
            count = 0
            for gen in gens if isinstance(gens, list) else [gens]:
                if not isinstance(gen, str) or gen not in DATA_SETTINGS:
                    return 0
                count += grid_size(settings, list_valued(block_model(gen)), self.fail, where)
            sizes[where] = count
            if isinstance(block.get("name"), str):
                sizes[block["name"]] = count
        positions = [k for k in sizes if k.startswith("data")]
        tables = raw.get("fitters")
        if not isinstance(tables, dict):
            return 0
        total = 0
        for label, table in tables.items():
            if not isinstance(table, dict) or table.get("enabled", True) is False:
                continue
            method = table.get("method")
            if not isinstance(method, str) or method not in FITTERS:
                return 0
            model = FITTER_SETTINGS.get(method)
            listy = list_valued(model) if model is not None else {}
            settings = {k: v for k, v in table.items() if k not in ("method", "data", "enabled")}
            refs = table.get("data", positions)
            refs = [refs] if isinstance(refs, str) else refs
            if not isinstance(refs, list):
                return 0
            data = sum(sizes.get(r, 0) for r in dict.fromkeys(refs) if isinstance(r, str))
            total += data * grid_size(settings, listy, self.fail, f"fitters.{label}")
        return total

    def duplicates(self, identities: list[dict], where: list[str], what: str) -> None:
        seen: dict[str, str] = {}
        for ident, w in zip(identities, where, strict=True):
            key = json.dumps(ident, sort_keys=True)
            if key in seen:
                self.fail(w, ident, f"duplicates a condition already in {seen[key]}")
            seen[key] = w


def _key(cond: DataCondition) -> str:
    return json.dumps([cond.block, cond.identity()], sort_keys=True, default=str)

"""Validation of a parsed config: types from the generators' and fitters' signatures, ranges,
names, and a trial build of every data condition and fitter before anything runs."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from typing import Any, NoReturn

import numpy as np

from workbench.experiment.config import (
    DEFAULT_MAX_CELLS,
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    DEFAULT_POSTERIOR_DRAWS,
    DEFAULT_TIMEOUT,
    GENERIC_SECTIONS,
    NAME_RE,
    REPORT_SECTIONS,
    SAMPLE_N,
    SECTIONS,
    ConfigError,
    DataCondition,
    ExperimentSpec,
    FitterCondition,
    _varying_label,
    expand_grid,
    flatten_nested,
    grid_size,
    nest_flat,
    show,
)
from workbench.experiment.hints import (
    MISMATCH,
    coerce,
    describe,
    is_list_valued,
    load_factory,
    signature_hints,
)

EM_TRACES = ("all", "best", "none")
# Methods whose model needs more than one component, and why.
MIN_COMPONENTS = {"bayes": (2, "the Bayesian mixture model needs at least 2 components")}
# What a trial build of data or fitter may raise for settings it cannot use.
SETTING_ERRORS = (ValueError, TypeError, ArithmeticError, MemoryError)


# section -> key -> (type, default (... = required), check, rule for the message)
OPTIONS: dict[str, dict[str, tuple[Any, Any, Any, str]]] = {
    "experiment": {
        "name": (str, ..., NAME_RE.match, "a name of letters, digits, '_', '.' or '-'"),
        "description": (str, "", None, ""),
        "replicates": (int, ..., lambda v: v >= 1, "an integer >= 1"),
        "seed": (int, ..., lambda v: 0 <= v < 2**63, "an integer >= 0 and < 2**63"),
        "timeout": (float, DEFAULT_TIMEOUT, lambda v: 0 < v < math.inf, "a number of seconds > 0"),
        "max_consecutive_errors": (
            int, DEFAULT_MAX_CONSECUTIVE_ERRORS, lambda v: v >= 1, "an integer >= 1"
        ),
        "max_cells": (int, DEFAULT_MAX_CELLS, lambda v: v >= 1, "an integer >= 1"),
    },
    "report": {
        "sections": (list[str], list(GENERIC_SECTIONS), None, "a list of section names"),
        "title": (str, "", None, ""),
    },
    "store": {
        "em_traces": (str, "all", lambda v: v in EM_TRACES, f"one of {', '.join(EM_TRACES)}"),
        "posterior_draws": (
            int, DEFAULT_POSTERIOR_DRAWS, lambda v: v >= 0, "an integer >= 0 (draws per chain)"
        ),
    },
}  # fmt: skip


# ---- the validator -------------------------------------------------------------------------------
class Validator:
    """Checks one parsed config; every failure is a ConfigError naming file, key and value."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.shapes: dict[str, tuple[int, int, int]] = {}  # data condition -> (n, d, K to fit)

    def fail(self, key: str, value: Any, why: str) -> NoReturn:
        raise ConfigError(f"{self.path}: {key} = {show(value)}: {why}")

    def missing(self, key: str, what: str) -> NoReturn:
        raise ConfigError(f"{self.path}: {key}: missing ({what})")

    def table(self, parent: dict, key: str, where: str, required: bool = False) -> dict:
        value = parent.get(key)
        if value is None:
            if required:
                self.missing(where, "a table")
            return {}
        if not isinstance(value, dict):
            self.fail(where, value, "must be a table")
        return value

    def unknown(self, table: dict, known: typing.Iterable[str], where: str, what: str) -> None:
        known = list(known)
        for key, value in table.items():
            if key not in known:
                self.fail(
                    f"{where}.{key}", value, f"unknown {what} (expected one of {', '.join(known)})"
                )

    def typed(
        self,
        table: dict,
        key: str,
        where: str,
        ann: Any,
        default: Any = ...,
        check=None,
        rule: str = "",
    ) -> Any:
        if key not in table:
            if default is ...:
                self.missing(f"{where}.{key}", rule or describe(ann))
            return default
        value = coerce(table[key], ann)
        if value is MISMATCH or (check is not None and not check(value)):
            self.fail(f"{where}.{key}", table[key], f"must be {rule or describe(ann)}")
        return value

    # ---- sections ------------------------------------------------------------------------------
    def options(self, raw: dict, section: str, required: bool) -> dict[str, Any]:
        """The plain options of one section, typed and checked (OPTIONS)."""
        table = self.table(raw, section, section, required)
        self.unknown(table, OPTIONS[section], section, "key")
        return {k: self.typed(table, k, section, *rule) for k, rule in OPTIONS[section].items()}

    def spec(self, raw: dict, text: str, overrides: tuple[str, ...]) -> ExperimentSpec:
        for key, value in raw.items():
            if key not in SECTIONS:
                self.fail(key, value, f"unknown section (expected one of {', '.join(SECTIONS)})")
        exp = self.options(raw, "experiment", required=True)
        self.design_size(raw, exp["replicates"], exp["max_cells"])
        data = self.data(raw.get("data"))
        restrictions: list[tuple[str, ...]] = []
        tables = self.table(raw, "fitters", "fitters", required=True)
        fitters = self.fitters(tables, data, restrictions)
        self.every_block_fitted(data, restrictions)
        data = tuple(c for c in data if any(f.fits(c) for f in fitters))  # drop disabled-only
        report = self.options(raw, "report", required=False)
        for s in report["sections"]:
            if s not in REPORT_SECTIONS:
                known = ", ".join(REPORT_SECTIONS)
                self.fail("report.sections", s, f"unknown section (expected one of {known})")
        store = self.options(raw, "store", required=False)
        return ExperimentSpec(
            **exp,
            data=data,
            fitters=fitters,
            report_sections=tuple(report["sections"]),
            em_traces=store["em_traces"],
            posterior_draws=store["posterior_draws"],
            path=self.path,
            text=text,
            overrides=tuple(overrides),
            resolved=raw,
        )

    def data(self, raw: Any) -> tuple[DataCondition, ...]:
        from workbench.data import registry

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
                self.missing(f"{where}.generator", f"one of {', '.join(registry.GENERATORS)}")
            gens = block["generator"]
            gens = gens["grid"] if isinstance(gens, dict) and set(gens) == {"grid"} else gens
            for gen in gens if isinstance(gens, list) else [gens]:
                if not isinstance(gen, str) or gen not in registry.GENERATORS:
                    self.fail(
                        f"{where}.generator",
                        gen,
                        f"unknown generator (expected one of {', '.join(registry.GENERATORS)})",
                    )
                points = self.data_points(
                    gen, {k: v for k, v in block.items() if k != "generator"}, where, registry
                )
                out += [dataclasses.replace(p, block_name=name) for p in points]
        self.duplicates([c.identity() for c in out], [c.block for c in out], "data")
        labels = _varying_label([flatten_nested(c.identity()) for c in out])
        return tuple(
            dataclasses.replace(c, label=lab or c.generator)
            for c, lab in zip(out, labels, strict=True)
        )

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

    def data_points(self, gen: str, block: dict, where: str, registry: Any) -> list[DataCondition]:
        params = registry.data_settings(gen)
        hints = {k: p.annotation for k, p in params.items()}
        self.unknown(
            {k: v for k, v in block.items() if k != "zip"},
            hints,
            where,
            f"setting for generator {gen!r}",
        )
        listy = {k: is_list_valued(a) for k, a in hints.items()}
        out = []
        for point in expand_grid(flatten_nested(block), listy, self.fail, where):
            point = nest_flat(point)
            for key, value in point.items():
                point[key] = coerce(value, hints[key])
                if point[key] is MISMATCH:
                    self.fail(f"{where}.{key}", value, f"must be {describe(hints[key])}")
            self.ranges(point, where)
            n = point.get("n", params["n"].default if "n" in params else None)
            trial = dict(point)
            if isinstance(n, int) and n > SAMPLE_N:  # a sample checks the settings
                ks = [v for k, v in point.items() if k.startswith("K") and isinstance(v, int)]
                trial["n"] = max([SAMPLE_N, *ks])
            try:
                sample = registry.generate(gen, np.random.default_rng(0), **trial)
            except SETTING_ERRORS as err:
                text = str(err).removeprefix(f"generator {gen!r}").lstrip(": ")
                raise ConfigError(f"{self.path}: {where} (generator {gen!r}): {text}") from None
            cond = DataCondition(gen, point, where)
            n = n if isinstance(n, int) else sample.n
            self.shapes[_key(cond)] = (n, sample.d, sample.n_components_to_fit)
            out.append(cond)
        return out

    def ranges(self, point: dict, where: str) -> None:
        """The generic ranges that every generator shares, with their own messages."""

        def integer(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        for key, low in (("n", 1), ("K", 1), ("d", 1)):
            if key in point and not (integer(point[key]) and point[key] >= low):
                self.fail(f"{where}.{key}", point[key], f"must be an integer >= {low}")
        if (
            "separation" in point
            and isinstance(point["separation"], float)
            and not point["separation"] >= 0
        ):
            self.fail(f"{where}.separation", point["separation"], "must be >= 0")
        if "K" in point and "n" in point and point["K"] > point["n"]:
            self.fail(f"{where}.K", point["K"], f"more components than points (n = {point['n']})")

    def fitters(
        self, tables: dict, data: tuple[DataCondition, ...], restrictions: list[tuple[str, ...]]
    ) -> tuple[FitterCondition, ...]:
        """Every enabled fitter table's grid points; appends each table's data blocks (enabled
        or not; () = every block) to ``restrictions``."""
        from workbench.fitters import FITTERS, SETTINGS_SCHEMAS

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
            if not self.typed(table, "enabled", where, bool, True):
                continue
            table.pop("enabled", None)
            method = self.typed(table, "method", where, str, rule=f"one of {', '.join(FITTERS)}")
            if method not in FITTERS:
                self.fail(
                    f"{where}.method",
                    method,
                    f"unknown method (expected one of {', '.join(FITTERS)})",
                )
            settings = {k: v for k, v in table.items() if k != "method"}
            spec = FITTERS[method]
            try:
                factory = load_factory(SETTINGS_SCHEMAS.get(method, spec))
            except (ImportError, AttributeError) as err:
                raise ConfigError(
                    f"{self.path}: {where}.method = {show(method)}: cannot load {spec}: {err}"
                ) from None
            hints, var_kw = signature_hints(factory)
            if not var_kw:
                self.unknown(
                    {k: v for k, v in settings.items() if k != "zip"},
                    hints,
                    where,
                    f"setting for method {method!r}",
                )
            listy = {k: is_list_valued(a) for k, a in hints.items()}
            points = expand_grid(settings, listy, self.fail, where)
            labels = _varying_label(points, label)
            for point, plabel in zip(points, labels, strict=True):
                for key, value in point.items():
                    point[key] = coerce(value, hints.get(key, Any))
                    if point[key] is MISMATCH:
                        self.fail(f"{where}.{key}", value, f"must be {describe(hints[key])}")
                try:
                    factory(**point)
                except SETTING_ERRORS as err:
                    raise ConfigError(f"{self.path}: {where}: {err}") from None
                for cond in (c for c in data if not blocks or c.in_blocks(blocks)):
                    self.components(method, point, cond, where)
                    self.takes_missing(method, cond, where)
                out.append(FitterCondition(label, method, point, spec, plabel, blocks))
        if not out:
            self.missing("fitters", "at least one enabled [fitters.<name>] table")
        self.duplicates([c.identity() for c in out], [f"fitters.{c.table}" for c in out], "fitters")
        return tuple(out)

    def components(self, method: str, point: dict, cond: DataCondition, where: str) -> None:
        """Every K a fitter will fit on data condition ``cond`` (n_components, each select_k
        entry, else the data's own K) against the data's n and the method's minimum K."""
        n, _, k_data = self.shapes[_key(cond)]
        low, why = MIN_COMPONENTS.get(method, (1, ""))
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
            if k > n:
                self.fail(
                    f"{where}.{key}", shown, f"K = {k}: more components than points in "
                    f"{cond.block} {cond.label or cond.generator} (n = {n})"
                )  # fmt: skip
            if k < low:
                source = "" if key in point else f" (the K of {cond.block}, {cond.generator})"
                self.fail(f"{where}.{key}", shown, f"K = {k}{source}: {why}")

    def takes_missing(self, method: str, cond: DataCondition, where: str) -> None:
        """Data with missing values go only to methods that fit them (``MISSING_DATA_METHODS``
        of :mod:`workbench.fitters`)."""
        from workbench.fitters import MISSING_DATA_METHODS

        if cond.settings.get("missing") is not None and method not in MISSING_DATA_METHODS:
            self.fail(
                f"{where}.method", method,
                f"cannot fit data with missing values ({cond.block} sets missing); methods "
                f"that can: {', '.join(MISSING_DATA_METHODS)} (or restrict the fitter with "
                "data = [...])",
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
        from workbench.data import registry
        from workbench.fitters import FITTERS, SETTINGS_SCHEMAS

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
                if gen not in registry.GENERATORS:
                    return 0
                hints = registry.data_settings(gen)
                listy = {k: is_list_valued(p.annotation) for k, p in hints.items()}
                count += grid_size(settings, listy, self.fail, where)
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
            if table.get("method") not in FITTERS:
                return 0
            schema = SETTINGS_SCHEMAS.get(table["method"], FITTERS[table["method"]])
            hints, _ = signature_hints(load_factory(schema))
            listy = {k: is_list_valued(a) for k, a in hints.items()}
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

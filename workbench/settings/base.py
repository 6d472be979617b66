"""The one schema library for settings (pydantic v2) and its one-line errors.

Every settings model derives from :class:`Settings`: frozen, unknown keys refused, strict types
(an int is a float, nothing else is converted), no NaN or infinity. Built by :func:`build` (or,
for a fitter, by its constructor: :class:`OneLineErrors`) a model raises a one-line
``ValueError`` naming the setting, ``key=value: why``; a config validates the same model and
names the config key (:func:`problem` gives both the parts).

An error is reported in one of two ways:

- at a key: a wrong type, an unknown or a missing key, a declared bound (``Field(ge=1)``), or a
  :class:`SettingError` raised by a model's validator (a rule that points at one setting, e.g.
  ``K`` against ``n``): ``n=0: must be an integer >= 1`` (config: ``data.n = 0: ...``);
- in a rule's own words: any other ``ValueError`` a validator raises, whose text already names
  the settings it concerns (``weights=[0.2, 0.2]: must sum to 1``), and every error inside a
  nested table (``missing.fraction=1.5: must be a number in [0, 1)``).
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

# Text a field may declare (``Field(json_schema_extra={"rule": ...})``) to say what it must be.
RULE = "rule"
_MISSING = object()


class SettingError(ValueError):
    """A validator's verdict on one setting: ``key``, its ``value`` and ``why`` it is refused."""

    def __init__(self, key: str, value: Any, why: str) -> None:
        super().__init__(f"{key}={short(value)}: {why}")
        self.key, self.value, self.why = key, value, why


class Settings(BaseModel):
    """Base of every settings model (module docstring). ``unknown`` words the refusal of a key
    the model does not have; ``table_hint`` what a value of a nested table must look like."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        arbitrary_types_allowed=True,
    )
    unknown: ClassVar[str] = "unknown setting"
    table_hint: ClassVar[str] = "a table"

    @model_validator(mode="before")
    @classmethod
    def _plain_numbers(cls, data: Any) -> Any:
        """numpy scalars (``np.int64(3)``, ``np.float64(0.5)``) as the Python numbers they
        hold and tuples as lists, also inside lists, so that strict types accept what Python
        and numpy code pass (``select_k=(2, 3)``)."""
        if isinstance(data, dict):
            return {key: _plain(value) for key, value in data.items()}
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class OneLineErrors:
    """Mixin of a class users build from keywords that is a settings model (the fitters:
    ``class EMFitter(OneLineErrors, EMOptions)``): a bad setting is a one-line ValueError."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ValueError(problem(err, type(self), data).python()) from None


S = TypeVar("S", bound=Settings)


def build(model: type[S], data: dict[str, Any]) -> S:
    """``model`` validated from ``data``, or a one-line ValueError (the Python API's words)."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ValueError(problem(err, model, data).python()) from None


@dataclass(frozen=True)
class Problem:
    """The first error of a validation: the setting's ``key``, the offending ``value`` (absent:
    the key is missing) and ``why``; or ``text``, a rule's own message."""

    key: str = ""
    value: Any = _MISSING
    why: str = ""
    text: str = ""

    def python(self) -> str:
        """The Python API's line: ``key=value: why`` (or the rule's own message)."""
        if self.text:
            return self.text
        if self.value is _MISSING:
            return f"{self.key}: required ({self.why})"
        return f"{self.key}={short(self.value)}: {self.why}"

    def config(self, where: str) -> str:
        """The config's words after ``<file>: ``: ``where.key = value: why``, or ``where: rule``."""
        if self.text:
            return f"{where}: {self.text}"
        if self.value is _MISSING:
            return f"{where}.{self.key}: missing ({self.why})"
        return f"{where}.{self.key} = {show(self.value)}: {self.why}"


def problem(err: ValidationError, model: type[Settings], data: Any) -> Problem:
    """The :class:`Problem` of ``err`` (its first error), raised validating ``data`` (a dict)
    against ``model``."""
    e = err.errors()[0]
    if e["type"] == "value_error":
        cause = e.get("ctx", {}).get("error")
        if isinstance(cause, SettingError):
            return Problem(cause.key, cause.value, cause.why)
        text = str(cause) if cause is not None else e["msg"]
        inner = _nested(model, e["loc"])
        return Problem(text=f"{e['loc'][0]}.{text}" if inner and len(e["loc"]) > 1 else text)
    return _at(e, tuple(e["loc"]), model, data)


def _at(e: dict, loc: tuple, model: type[Settings], data: Any) -> Problem:
    """The Problem of built-in error ``e`` at ``loc`` inside ``model`` validating ``data``."""
    if not loc:
        return Problem(text=e["msg"])
    name = str(loc[0])
    field = model.model_fields.get(name)
    value = data.get(name, _MISSING) if isinstance(data, dict) else _MISSING
    if field is None:
        known = ", ".join(model.model_fields)
        return Problem(name, value, f"{model.unknown} (expected one of {known})")
    inner = _nested(model, loc)
    if inner is not None and len(loc) > 1 and isinstance(value, dict):
        return Problem(text=f"{name}.{_at(e, loc[1:], inner, value).python()}")
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    rule = extra.get(RULE)
    if e["type"] == "missing":
        return Problem(name, _MISSING, rule or describe(field.annotation))
    if inner is not None and e["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return Problem(name, value, f"must be {inner.table_hint}")
    return Problem(name, value, rule_text(e, field.annotation, rule))


def _nested(model: type[Settings], loc: tuple) -> type[Settings] | None:
    """The nested settings model of the field at ``loc[0]``, if it holds one."""
    field = model.model_fields.get(str(loc[0])) if loc else None
    if field is None:
        return None
    for arm in (field.annotation, *get_args(field.annotation)):
        if isinstance(arm, type) and issubclass(arm, Settings):
            return arm
    return None


_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def rule_text(e: dict, annotation: Any, rule: str | None) -> str:
    """Why a value is refused: ``must be <rule>`` when the field declares its rule, else the
    error's own kind in the project's words."""
    if rule:
        return f"must be {rule}"
    kind = e["type"]
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        value = e.get("input")
        what = (
            "an integer" if isinstance(value, int) and not isinstance(value, bool) else "a number"
        )
        return f"must be {what} {op} {e['ctx'][key]}"
    if kind == "finite_number":
        return "must be a finite number"
    if kind == "literal_error":
        return f"expected one of {', '.join(literal_values(annotation))}"
    if kind.endswith("_type") or kind in ("is_instance_of", "union_tag_invalid"):
        return f"must be {describe(annotation)}"
    return e["msg"][0].lower() + e["msg"][1:]


def literal_values(annotation: Any) -> list[str]:
    """The allowed values of a Literal (or Literal | None) annotation, as text."""
    values: list[str] = []
    for arm in (annotation, *get_args(annotation)):
        if get_origin(arm) is Literal:
            values += [str(a) for a in get_args(arm)]
        elif arm is type(None):
            values.append("none")
    return values


def describe(annotation: Any) -> str:
    """An annotation as short text: ``int``, ``str | list[float]``, ``none``."""
    if annotation is type(None) or annotation is None:
        return "none"
    origin = get_origin(annotation)
    if origin is Annotated:
        return describe(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return " | ".join(describe(a) for a in get_args(annotation))
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(annotation))
    if origin in (list, tuple):
        return f"a list of {describe(get_args(annotation)[0])}"
    if isinstance(annotation, type) and issubclass(annotation, Settings):
        return annotation.table_hint
    if isinstance(annotation, type) and origin is None:
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def is_list_valued(annotation: Any) -> bool:
    """True when a setting's own value may be a list (so a bare list is one value, not a grid)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(is_list_valued(a) for a in get_args(annotation))
    return origin in (list, tuple) or annotation in (list, tuple, np.ndarray)


def list_valued(model: type[Settings]) -> dict[str, bool]:
    """Setting name -> whether its own value may be a list, for every field of ``model``."""
    return {name: is_list_valued(f.annotation) for name, f in model.model_fields.items()}


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, truncated, for the Python API's messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def show(value: Any, limit: int = 60) -> str:
    """A value as TOML-ish text (JSON), truncated, for a config's messages."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_real(value: Any) -> bool:
    """A real number (bools excluded)."""
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)

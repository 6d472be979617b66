"""Settings typed from the generators' and fitters' signatures: a TOML value checked against a
type hint, list-valued hints (a bare list is then one value, not a grid axis) and factories."""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import types
from typing import Any, Literal, Union, get_args, get_origin

import numpy as np

MISMATCH = object()  # what coerce returns for a value that does not fit its hint
_SEQUENCES = (list, tuple, collections.abc.Sequence)


def coerce(value: Any, ann: Any) -> Any:
    """``value`` checked against annotation ``ann`` (ints widened to float where a float is
    expected), or MISMATCH. Unknown or unresolved annotations accept anything."""
    if ann is inspect.Parameter.empty or ann is Any or isinstance(ann, str):
        return value
    origin = get_origin(ann)
    if origin in (Union, types.UnionType):
        for arm in get_args(ann):
            out = coerce(value, arm)
            if out is not MISMATCH:
                return out
        return MISMATCH
    if origin is Literal:
        return (
            value if any(value == a and type(value) is type(a) for a in get_args(ann)) else MISMATCH
        )
    if ann is type(None) or ann is None:
        return None if value is None else MISMATCH
    if ann is bool:
        return value if isinstance(value, bool) else MISMATCH
    if ann is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else MISMATCH
    if ann is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else MISMATCH
    if ann is str:
        return value if isinstance(value, str) else MISMATCH
    if origin in _SEQUENCES or ann in (list, tuple) or ann is np.ndarray:
        if not isinstance(value, list):
            return MISMATCH
        args = [a for a in get_args(ann) if a is not Ellipsis]
        if origin is tuple and args and Ellipsis not in get_args(ann) and len(args) != len(value):
            return MISMATCH
        out = [coerce(v, args[min(i, len(args) - 1)] if args else Any) for i, v in enumerate(value)]
        return MISMATCH if any(o is MISMATCH for o in out) else out
    if origin is dict or ann is dict:
        return value if isinstance(value, dict) else MISMATCH
    return value  # a class TOML cannot produce: let the fitter or generator judge


def is_list_valued(ann: Any) -> bool:
    """True when a setting's own value may be a list (so a bare list is not a grid)."""
    if isinstance(ann, str):
        return any(s in ann for s in ("list", "tuple", "Sequence", "ndarray"))
    origin = get_origin(ann)
    if origin in (Union, types.UnionType):
        return any(is_list_valued(a) for a in get_args(ann))
    return origin in _SEQUENCES or ann in (list, tuple, np.ndarray)


def describe(ann: Any) -> str:
    """Annotation as short text: ``int``, ``str | list[float]``."""
    if isinstance(ann, type) and get_origin(ann) is None:
        return ann.__name__
    return str(ann).replace("typing.", "").replace("NoneType", "none")


def signature_hints(factory: Any) -> tuple[dict[str, Any], bool]:
    """(keyword name -> annotation, accepts **kwargs) of a callable, string hints resolved."""
    try:
        sig = inspect.signature(factory, eval_str=True)
    except Exception:  # noqa: BLE001 - unresolvable hints: use them unevaluated
        sig = inspect.signature(factory)
    hints, var_kw = {}, False
    for name, p in sig.parameters.items():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name not in ("self", "rng"):
            hints[name] = p.annotation
    return hints, var_kw


def load_factory(spec: str) -> Any:
    """The callable named by ``"module:attribute"``."""
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)

"""Numbers as the report writes them: 3 significant figures, "value ± se", rates with their
95% interval and counts, and ties named rather than one picked."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def fmt(value: Any) -> str:
    """A number to 3 significant figures; text as is; missing as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def plus_minus(value: float, se: float, spec: str = ".3g", se_spec: str = ".2g") -> str:
    """``"value ± se"`` for a sentence; the value alone when se is not finite, ``n/a`` when the
    value is not."""
    if not np.isfinite(value):
        return "n/a"
    return f"{value:{spec}} ± {se:{se_spec}}" if np.isfinite(se) else f"{value:{spec}}"


def with_se(frame: pd.DataFrame) -> pd.DataFrame:
    """Merge every ``<name>`` / ``<name> se`` column pair into ``<name>`` as "value ± se"."""
    out = pd.DataFrame(index=frame.index)
    for column in frame.columns:
        if column.endswith(" se") and column[:-3] in frame:
            continue
        if f"{column} se" in frame:
            out[f"{column} (± MC se)"] = [
                fmt(v) if fmt(s) == "–" else f"{fmt(v)} ± {s:.2g}"
                for v, s in zip(frame[column], frame[f"{column} se"], strict=True)
            ]
        else:
            out[column] = frame[column]
    return out


def rate_text(stats: dict | pd.Series, unit: str = "fits") -> str:
    """``"0.25 (95% CI 0.14-0.40; 10/40 fits)"``; the interval is Wilson's (effective n when
    clustered), so 0/n reads ``0 (95% CI 0-0.09; 0/40 fits)``, never ``0 ± 0``."""
    n = int(stats["n"])
    if not n:
        return f"n/a (0 {unit})"
    rate, lower, upper = stats["rate"], stats["lower"], stats["upper"]
    return f"{rate:.3g} (95% CI {lower:.2g}-{upper:.2g}; {int(round(stats['k']))}/{n} {unit})"


def tied_names(
    stats: pd.DataFrame, column: str, value: float, by: str = "rate", sep: str = ", "
) -> str:
    """Every row's ``column`` whose ``by`` equals ``value``: the one name, or ``"tied: a, b"``
    when several share it (an extreme among ties is never picked arbitrarily)."""
    tied = stats.loc[np.isclose(stats[by].astype(float), value), column].astype(str).tolist()
    return tied[0] if len(tied) == 1 else f"tied: {sep.join(tied)}"

"""Choice of the two data passes of an EM iteration: the numpy reference or fused kernels."""

from __future__ import annotations

from workbench.em.fit import NUMPY_ENGINE, Engine

ENGINE_NAMES = ("auto", "numpy", "numba")


def get(name: str) -> Engine:
    """``numpy``: the reference step functions. ``numba``: fused kernels (workbench.em.fast).
    ``auto``: numba where it is importable, else numpy."""
    if name == "numpy":
        return NUMPY_ENGINE
    try:
        from workbench.em.fast import FAST_ENGINE
    except ImportError:
        if name == "numba":
            raise
        return NUMPY_ENGINE
    return FAST_ENGINE

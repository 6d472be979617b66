"""Choice of the two data passes of an EM iteration: the numpy reference or fused kernels."""

from __future__ import annotations

from workbench.em.fit import NUMPY_ENGINE, Engine

ENGINE_NAMES = ("auto", "numpy", "numba")


def get(name: str) -> Engine:
    """``numpy``: the reference step functions. ``numba``: the compiled engine
    (:mod:`workbench.em.fast_engine`: the whole loop compiled for maximum likelihood, with or
    without fixed parameters; compiled data passes under the generic loop otherwise), the same
    numbers to round-off. ``auto``: numba wherever it can be imported (it is a dependency), else
    numpy. The first use compiles the kernels (about 20 s, once: they are cached on disk)."""
    if name == "numpy":
        return NUMPY_ENGINE
    try:
        from workbench.em.fast_engine import FAST_ENGINE
    except ImportError:
        if name == "numba":
            raise
        return NUMPY_ENGINE
    return FAST_ENGINE

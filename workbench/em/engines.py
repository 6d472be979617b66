"""Choice of the two data passes of an EM iteration: the numpy reference or fused kernels."""

from __future__ import annotations

import time

import numpy as np

from workbench.em.fit import NUMPY_ENGINE, EMSettings, Engine, init_state, run_em

ENGINE_NAMES = ("auto", "numpy", "numba")
_WARMED: set[int] = set()  # ids of the engines warmed in this process


def get(name: str) -> Engine:
    """The engine called ``name`` (see :func:`load`)."""
    return load(name)[0]


def load(name: str) -> tuple[Engine, float]:
    """(engine, seconds spent warming it in this call: 0 unless this was its first use in the
    process). ``numpy``: the reference step functions. ``numba``: the compiled engine
    (:mod:`workbench.em.fast_engine`: the whole loop compiled for maximum likelihood, with or
    without fixed parameters; compiled data passes under the generic loop otherwise), the same
    numbers to round-off. ``auto``: numba wherever it can be imported (it is a dependency), else
    numpy. The first use in a process warms the compiled engine (:func:`warm`)."""
    if name == "numpy":
        return NUMPY_ENGINE, 0.0
    try:
        from workbench.em.fast_engine import FAST_ENGINE
    except ImportError:
        if name == "numba":
            raise
        return NUMPY_ENGINE, 0.0
    return FAST_ENGINE, warm(FAST_ENGINE)


def warm(engine: Engine) -> float:
    """Load the engine's compiled kernels once per process (from numba's disk cache, or compile
    them, about 20 s the first time ever) with a tiny fit and one call of each data pass, so
    that no fit's wall time includes loading them. Returns the seconds spent (0 when warm)."""
    if id(engine) in _WARMED:
        return 0.0
    t0 = time.perf_counter()
    X = np.linspace(-1.0, 1.0, 16)[:, None]
    settings = EMSettings(max_iter=2)
    start = init_state(
        np.full((1, 2), 0.5), np.array([[[-0.5], [0.5]]]), np.ones((1, 2, 1, 1)), settings, X.var(0)
    )
    run_em(X, start, settings, engine)  # the fused loop
    stats = engine.e_step(X, np.log(start.weights), start.means, start.prec_chol, "full")
    engine.centred_scatter(X, stats.resp, start.means, "full")  # the passes, driven from Python
    _WARMED.add(id(engine))
    return time.perf_counter() - t0

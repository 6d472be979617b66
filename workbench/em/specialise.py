"""Compile a generic function for one model: the one way EM code is specialised.

The EM loop (:mod:`workbench.em.loop`) and the Gaussian mixture's data pass
(:mod:`workbench.em.gaussian_model`) are written once, as plain Python functions that call their
model's or strategy's pieces by global name (``e_step``, ``m_step``, ``features`` ...).
:func:`specialise` binds those names to one model's functions and compiles the result with
numba (or leaves it interpreted when the pieces are plain Python, as a model written in numpy
would be). numba caches it on disk under a name that carries a hash of the source of the
function and of every piece bound into it, so that editing a model recompiles its loop.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import types
from collections.abc import Callable, Mapping

# The split data passes run on numba's OpenMP threads (GNU libgomp). A waiting thread spins
# GOMP_SPINCOUNT rounds (about 0.2 ms here) before it sleeps: the passes of one fit follow each
# other within that time, so a pass finds its threads awake. Waking a sleeping thread costs as
# much as a small pass (a split pass of 20,000 points x 20 components: 0.72 ms with sleeping
# threads, 0.35 ms with spinning ones; 1e5 x 16 diag: 3.1 against 2.4 ms). The spin is short
# because on a machine shared with other jobs spinning threads steal the cores the work needs
# (OpenMP's default spins about 100 times longer; OMP_WAIT_POLICY=ACTIVE forever). Read by
# OpenMP when numba first starts its threads, after this import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "3000")

from numba import njit  # noqa: E402
from numba.core.registry import CPUDispatcher

# numpy's error model (IEEE inf and nan, no ZeroDivisionError); no reassociation (fastmath
# off), so that a loop sums in the order it is written; nogil so that restarts run in threads.
JIT_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True}
kernel = njit(**JIT_OPTIONS)
# For a reduction over a chunk's points, where a sum one add at a time would be the bottleneck:
# the compiler may split it into vector lanes and fuse multiply-adds. The order is then the
# compiled code's for this CPU, fixed for given inputs (as a BLAS kernel's is), never the
# threads': a chunk's sums do not depend on which thread computes them.
reassociating = njit(**JIT_OPTIONS, fastmath={"reassoc", "contract"})
# For a loop whose sums run in the order written but whose multiply and add may fuse into one
# rounding (the log joint's 4-term sums per point): the order is still the source's.
contracting = njit(**JIT_OPTIONS, fastmath={"contract"})


def is_compiled(function: Callable) -> bool:
    """Whether ``function`` is a numba-compiled function."""
    return isinstance(function, CPUDispatcher)


def _source_hash(functions: Mapping[str, Callable]) -> str:
    """A hash of the source of ``functions`` and of every compiled function they call by global
    name, transitively: numba's disk cache checks only the defining file, so a specialisation
    must name its callees' code too, or an edit to one (say of a matrix product) would leave
    the cached loop running the old code."""
    digest = hashlib.sha256()
    seen: set[int] = set()

    def add(name: str, function) -> None:
        python = getattr(function, "py_func", function)
        if id(python) in seen:
            return
        seen.add(id(python))
        try:
            source = inspect.getsource(python)
        except (OSError, TypeError):
            source = repr(python)
        digest.update(name.encode() + source.encode())
        namespace = getattr(python, "__globals__", {})
        for callee in getattr(getattr(python, "__code__", None), "co_names", ()):
            if is_compiled(namespace.get(callee)):
                add(callee, namespace[callee])

    for name in sorted(functions):
        add(name, functions[name])
    return digest.hexdigest()[:12]


def specialise(
    template: Callable, tag: str, bindings: Mapping[str, Callable], parallel: bool = False
) -> Callable:
    """``template`` with its global names ``bindings`` bound to the given functions, compiled
    when every bound function is compiled (``parallel``: numba's parallel=True, so that its
    ``prange`` loops run on threads), else interpreted. ``tag`` names the specialisation
    (for example ``"gaussian_full"``); the compiled code is cached under it."""
    namespace = dict(template.__globals__)
    namespace.update(bindings)
    function = types.FunctionType(
        template.__code__, namespace, template.__name__, template.__defaults__
    )
    compiled = all(is_compiled(f) for f in bindings.values())
    suffix = "_parallel" if parallel else ""
    function.__qualname__ = (
        f"{template.__name__}__{tag}{suffix}__{_source_hash({'': template, **bindings})}"
    )
    if not compiled:
        return function
    return njit(**JIT_OPTIONS, parallel=parallel)(function)

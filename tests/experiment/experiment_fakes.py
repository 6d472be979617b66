"""Test-only fitters for the experiment runner: crash, hang, raise, or EM slowed down.

Tests register them with ``monkeypatch.setitem(FITTERS, name, spec)`` (FITTERS of
workbench.settings.fitters); the spec travels with each task, so spawned and Dask workers
import this module by name (tests/experiment is on sys.path under pytest and on PYTHONPATH for
subprocesses).
"""

from __future__ import annotations

import os
import time

from workbench.em.fitter import EMFitter

CRASH = "experiment_fakes:CrashFitter"
SLEEP = "experiment_fakes:SleepFitter"
ERROR = "experiment_fakes:ErrorFitter"
SLOW_EM = "experiment_fakes:SlowEMFitter"

# A small EM experiment that the runner tests build on.
SMALL = """
[experiment]
name = "small"
replicates = 2
seed = 7

[data]
generator = "gaussian_mixture"
n = 120
K = 2
d = 1
separation = [1.5, 3.0]

[fitters.em]
method = "em"
init = ["kmeans++", "random_from_data"]
n_restarts = 2
"""


class CrashFitter:
    """Kills its process (os._exit) with probability ``crash_probability``, else fits EM."""

    method = "crash"

    def __init__(self, crash_probability: float = 1.0, **em) -> None:
        self.p = crash_probability
        self.em = EMFitter(**em)

    def fit(self, dataset, rng):
        if rng.random() < self.p:
            os._exit(3)
        return self.em.fit(dataset, rng)


class SleepFitter:
    """Busy in Python for ``seconds`` (a stand-in for a fit that never ends), then fits EM."""

    method = "sleep"

    def __init__(self, seconds: float = 3600.0, **em) -> None:
        self.seconds = seconds
        self.em = EMFitter(**em)

    def fit(self, dataset, rng):
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            time.sleep(0.01)
        return self.em.fit(dataset, rng)


class ErrorFitter:
    """Always raises."""

    method = "error"

    def __init__(self, message: str = "boom") -> None:
        self.message = message

    def fit(self, dataset, rng):
        raise RuntimeError(self.message)


class SlowEMFitter(SleepFitter):
    """EM after a short pause, so that a run lasts long enough to be killed mid-way."""

    method = "slow_em"

    def __init__(self, seconds: float = 0.15, **em) -> None:
        super().__init__(seconds, **em)

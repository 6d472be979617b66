"""Compile once per run, before the workers start: the phases a run shows before its cells.

Local workers are fresh interpreters, so each would compile on its own what it needs. Compiled
here first, the code is on disk when they start: numba's cache of the EM kernels
(``workbench.cache``: the user cache directory) and PyTensor's numba cache of each Bayes model
structure (``~/.pytensor``), which cuts a worker's compile of the 1-D model from about 40 s to
about 10 s. In the serial executor the cells run in this process and reuse what was compiled.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from workbench.experiment.design import Cell

EM_FACTORY = "workbench.em.fitter:EMFitter"
# Fitters that run EM's compiled kernels: EM and the baselines that impute or drop, then fit EM.
EM_FACTORIES = (
    EM_FACTORY,
    "workbench.baselines:CompleteCaseEM",
    "workbench.baselines:MeanImputeEM",
    "workbench.baselines:MiceEM",
)
BAYES_FACTORY = "workbench.bayes.fitter:BayesFitter"


@dataclass(frozen=True)
class Phase:
    """One compile step: what the display says, and the call that does it."""

    label: str
    run: Callable[[], Any]
    cells: int = 0  # cells that load the result in their worker (Bayes: each compiles a copy)
    marker: Path | None = None  # exists once this was compiled to the disk cache before
    script: str | None = None  # Python code that fills the disk cache in another process

    def on_disk(self) -> bool:
        """Whether an earlier run compiled this to the disk cache (its marker file exists)."""
        return self.marker is not None and self.marker.exists()

    def mark(self) -> None:
        """Note that the disk cache holds this now (best effort)."""
        if self.marker is not None:
            with contextlib.suppress(OSError):
                self.marker.parent.mkdir(parents=True, exist_ok=True)
                self.marker.touch()


def em_label() -> str:
    """'compiling ...' when numba's cache holds no EM kernels yet, else 'loading ...'."""
    import workbench.em
    from workbench.cache import numba_cache_holds

    cold = not numba_cache_holds(Path(workbench.em.__file__).parent, "loop")
    if cold:
        return "compiling the EM kernels (first run only, cached for later runs)"
    return "loading the compiled EM kernels"


def _em_phase(covariance_type: str) -> Phase:
    def run() -> Any:
        from workbench.em.run import warm

        return warm(covariance_type)

    label = em_label()
    script = None
    if label.startswith("compiling"):  # cold: another process can compile while we do Bayes
        script = f"from workbench.em.run import warm; warm({covariance_type!r})"
    return Phase(label, run, script=script)


def _bayes_phase(fitter: Any, dataset: Any) -> tuple[Any, Phase]:
    spec = fitter.model_spec(dataset)
    shape = f"K={spec.n_components} d={spec.n_features}"
    extra = "" if spec.identifiability == "ordered" else f", {spec.identifiability}"
    if spec.patterns is not None:
        extra += f", {len(spec.patterns)} missingness patterns"
    label = f"compiling the Bayes model {shape}{extra} ({fitter.sampler})"
    key = (spec, fitter.sampler)
    return key, Phase(label, lambda: fitter.compile(dataset), marker=_marker(key))


def _marker(key: Any) -> Path:
    """A file in the user cache named by the model structure, the library versions and the
    PyTensor flags: present once a run compiled that model into PyTensor's disk cache."""
    from workbench.cache import cache_dir

    versions = []
    for name in ("pymc", "pytensor", "nutpie", "numba"):
        try:
            versions.append(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            versions.append("-")
    flags = [os.environ.get(v, "") for v in ("PYTENSOR_FLAGS", "PYTENSORRC", "HOME")]
    text = repr((key, versions, flags))
    return cache_dir() / "compiled" / hashlib.sha256(text.encode()).hexdigest()[:24]


def compile_phases(cells: Iterable[Cell], dataset_of: Callable[[Cell], Any]) -> list[Phase]:
    """The compile phases the ``cells`` to run need, each once: the EM loop (for each
    covariance type used), and each Bayes model structure (K, d, constraints, priors) with its
    sampler. ``dataset_of(cell)`` gives a cell's data set (the structure depends on its K and
    d); one cell per (data, fitter) condition is asked."""
    from workbench.fitter_interface import build_fitter

    phases: dict[Any, Phase] = {}
    keys: dict[tuple[str, str], Any] = {}  # (data, fitter) condition -> Bayes structure key
    counts: dict[Any, int] = {}
    for cell in cells:
        factory, settings = cell.fitter.factory, cell.fitter.settings
        if factory in EM_FACTORIES:
            key = ("em", settings.get("covariance_type", "full"))
            if key not in phases:
                phases[key] = _em_phase(key[1])
        elif factory == BAYES_FACTORY:
            if cell.condition not in keys:
                keys[cell.condition] = None
                try:
                    key, phase = _bayes_phase(build_fitter("bayes", settings), dataset_of(cell))
                except Exception:  # noqa: BLE001 - the cell itself will record what is wrong
                    continue
                keys[cell.condition] = key
                phases.setdefault(key, phase)
            key = keys[cell.condition]
            if key is not None:
                counts[key] = counts.get(key, 0) + 1
    return [replace(p, cells=counts.get(k, 0)) for k, p in phases.items()]


def compile_first(cells: list[Cell], task: Any, progress: Any, in_workers: bool) -> None:
    """Compile, before any worker starts, what the ``cells`` will need (EM kernels, each Bayes
    model structure), each as a visible phase; the workers then load it from the disk caches.
    A Bayes model an earlier run compiled is left to the workers (``in_workers``): each builds
    its own copy anyway, and PyTensor's disk cache holds it. A phase that fails is noted and
    left to the cells, which record the error."""
    import warnings

    from workbench.experiment.runner import _dataset, library_logs

    lines: list[str] = []
    with warnings.catch_warnings(), library_logs(lines):
        warnings.simplefilter("ignore")
        phases = compile_phases(cells, lambda c: _dataset(task(c)))
        todo = [p for p in phases if not (in_workers and p.cells and p.on_disk())]
        for phase in phases:
            if phase not in todo:  # the workers build their copies from the disk cache
                progress.record(f"phase skipped: {phase.label} (in the disk cache already)")
        # a cold EM compile runs in another process meanwhile when there is more to compile
        aside = [p for p in todo if p.script] if len(todo) > 1 else []
        helpers = {id(p): _in_background(p.script) for p in aside}
        try:
            for phase in sorted(todo, key=lambda p: id(p) in helpers):
                label = phase.label
                if helpers and id(phase) not in helpers:
                    label += ", the EM kernels alongside"
                elif id(phase) in helpers:
                    label = "finishing the EM kernels, compiled alongside (first run only)"
                with progress.phase(label):
                    try:
                        if id(phase) in helpers:
                            helpers[id(phase)].wait()
                        phase.run()
                        phase.mark()
                    except Exception as err:  # noqa: BLE001 - the cells record the error
                        progress.note(f"note: {phase.label} failed ({err}); the cells retry")
        finally:
            for helper in helpers.values():
                if helper.poll() is None:
                    helper.kill()
                    helper.wait()
    for line in lines:
        progress.record(f"compile log: {line}")
    if in_workers:  # each worker process compiles its own copy of a Bayes model
        progress.expect_worker_compiles(sum(min(progress.slots, p.cells) for p in phases))


def _in_background(script: str | None) -> Any:
    """A Python process running ``script`` (this interpreter and sys.path), output discarded."""

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.Popen(
        [sys.executable, "-c", script or "pass"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

"""EM for any registered model (:mod:`workbench.em.model`): the fitter of method ``em_model``.

It gives a model restarts (batched through the one loop, in threads), statuses, traces,
SQUAREM, the rate theory (spectral radius of the EM map's Jacobian, and the rate measured from
the trace), standard errors and Wald intervals from the observed information, and a
:class:`workbench.fitter_interface.FitResult` that the runner evaluates and stores and the
report reads, without a line of the model's own. The Gaussian mixture's richer fitter
(:class:`workbench.em.fitter.EMFitter`: constraints, priors, the reference bank, BIC choice of
K) is method ``em``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy.special import ndtri

from workbench.data.dataset import Dataset
from workbench.em import derivatives, gaussian_family, loop
from workbench.em.model import get_model, registered
from workbench.em.theory import trace_rate
from workbench.fitter_interface import FitResult, RestartSummary
from workbench.settings.base import OneLineErrors
from workbench.settings.fitters import ModelEMOptions
from workbench.status import EMStatus

_PREPARED: set[tuple] = set()
__all__ = ["ModelEMFitter", "gaussian_family"]  # the Gaussian family registers on import


class ModelEMFitter(OneLineErrors, ModelEMOptions):
    """EM for the registered model ``model``; the settings and their checks:
    :class:`workbench.settings.fitters.ModelEMOptions`. Whether ``model`` is registered, with
    ``options`` it takes, is checked here, where the registry is (:mod:`workbench.em.model`)."""

    def model_post_init(self, context: Any) -> None:
        if self.model not in registered():
            raise ValueError(f"model={self.model!r}: expected one of {', '.join(registered())}")
        get_model(self.model, **self.options)  # unknown options fail here, named

    def prepare(self) -> float:
        """Compile (or load) the model's loop before a cell's clock starts: a two-iteration fit
        of a tiny data set. Returns the seconds spent (0 when done already in this process)."""
        key = (self.model, tuple(sorted(self.options.items())))
        if key in _PREPARED:
            return 0.0
        t0 = time.perf_counter()
        model = get_model(self.model, **self.options)
        X = np.arange(1.0, 9.0)[:, None]
        data, cfg = model.prepare(X, 2)
        params = model.init(X, 2, 1, np.random.default_rng(0), self.init)
        for squarem in (False, True):
            loop.run(model, data, params, cfg, loop.LoopSettings(max_iter=2, squarem=squarem))
        _PREPARED.add(key)
        return time.perf_counter() - t0

    def fit(self, dataset: Dataset, rng: np.random.Generator) -> FitResult:
        K = self.n_components or dataset.n_components_to_fit
        return self.fit_array(dataset.X, rng, K)

    def fit_array(self, X: np.ndarray, rng: np.random.Generator, n_components: int) -> FitResult:
        compile_time = self.prepare()
        model = get_model(self.model, **self.options)
        X = np.asarray(X, dtype=float).reshape(len(X), -1)
        K = int(n_components)
        data, cfg = model.prepare(X, K)
        start = model.init(X, K, self.n_restarts, rng, self.init)
        settings = loop.LoopSettings(self.max_iter, self.tol, 1e-9, self.acceleration == "squarem")
        run = loop.run(model, data, start, cfg, settings)
        best = loop.best_restart(run.status, run.objective)
        one = model.take(run.params, best)
        params = model.to_mixture(one, cfg)
        loglik = float(run.loglik[best])
        n_free = model.n_free(K, X.shape[1])
        diagnostics: dict[str, Any] = {
            "model": self.model,
            "compile_time": compile_time,
            "objective": float(run.objective[best]),
            **loop.restart_counts(run.status),
            "degenerate_kind": str(run.degenerate_kind[best]),
            "n_loglik_decreases": int(run.n_decreases[best]),
            "bic": float(-2 * loglik + n_free * np.log(len(X))),
        }
        status = str(run.status[best])
        if self.rate_diagnostics:
            diagnostics["rate_measured"] = trace_rate(run.traces[best])
            ok = status != EMStatus.DEGENERATE
            diagnostics["rate_theory"] = derivatives.rate(model, data, cfg, one) if ok else np.nan
        intervals = None
        if self.interval_level is not None and status != EMStatus.DEGENERATE and model.intervals:
            se = derivatives.standard_errors(model, data, cfg, one)
            z = ndtri(0.5 + self.interval_level / 2)
            intervals = model.intervals(one, se, z, cfg)
        return FitResult(
            method=self.method,
            status=status,
            params=params,
            loglik=loglik,
            n_iter=int(run.n_iter[best]),
            wall_time=run.wall_time,
            diagnostics=diagnostics,
            trace=run.traces[best],
            restarts=RestartSummary(
                run.loglik.copy(), run.status.copy(), run.n_iter.copy(), best, traces=run.traces
            ),
            intervals=intervals,
        )

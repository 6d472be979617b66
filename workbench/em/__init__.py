"""Hand-written EM for Gaussian mixtures: pure steps (steps.py), the loop (fit.py),
initialisation strategies (init.py) and the fitter (fitter.py)."""

from workbench.em.fitter import EMFitter

__all__ = ["EMFitter"]

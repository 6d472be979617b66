"""Hand-written EM: the one loop (loop.py), the model seam (model.py), the Gaussian mixture
(gaussian_model.py with its covariance strategies, covariance/), the records over them (fit.py),
initialisation strategies (init.py) and the fitter (fitter.py)."""

from workbench.em.fitter import EMFitter

__all__ = ["EMFitter"]

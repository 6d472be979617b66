"""Hand-written EM: the one loop (loop.py), the model seam (model.py), the Gaussian mixture
(gaussian_model.py with its covariance strategies, covariance/; registered as a family in
gaussian_family.py), the records over them (fit.py), initialisation strategies (init.py), the
Gaussian fitter (fitter.py) and the fitter for any registered model (model_fitter.py)."""

from workbench.em import gaussian_family  # noqa: F401 (registers the Gaussian family)
from workbench.em.fitter import EMFitter

__all__ = ["EMFitter"]

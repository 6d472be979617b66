"""Hand-written EM: the one loop (loop.py), the model seam (model.py), the Gaussian mixture
(gaussian_model.py with its covariance strategies, covariance/; registered as a family in
gaussian_family.py), the records over them and run_em (run.py), initialisation strategies
(init.py), the Gaussian fitter (fitter.py; its settings are declared in
workbench.settings.fitters) and the fitter for any registered model (model_fitter.py). Import
what you use from its module (``from workbench.em.fitter import EMFitter``): this package
imports nothing."""

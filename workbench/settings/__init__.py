"""Declared settings (pydantic): of the experiment config (:mod:`.experiment`), of every data
generator (:mod:`.data`) and of every fitter (:mod:`.fitters`), with their one-line errors
(:mod:`.base`). A low module: config, data and fitters all import it, and it imports nothing
heavy (no numba, PyMC or scipy), so ``workbench validate`` checks a config against it alone."""

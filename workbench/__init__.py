"""EM vs Bayes mixture workbench."""

__version__ = "0.1.0"

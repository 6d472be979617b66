"""EM vs Bayes mixture workbench."""

from workbench.cache import use_numba_cache

__version__ = "0.1.0"

use_numba_cache()  # compiled EM kernels live in the user cache, not in the installed package

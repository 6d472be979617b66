"""Report sections of the shipped studies (issue 6), one module per study.

Every module here registers its sections with :func:`workbench.report.register_section` when it
is imported; :func:`load_study_sections` imports them all.
"""

from __future__ import annotations

import importlib
import pkgutil


def load_study_sections() -> list[str]:
    """Import every study module in this package (each registers its sections)."""
    names = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    return names

"""The covariance strategies by name."""

from __future__ import annotations

from types import ModuleType

from workbench.em.covariance import COVARIANCE_TYPES, diag, full, spherical, tied

STRATEGIES: dict[str, ModuleType] = {m.NAME: m for m in (full, diag, spherical, tied)}
assert tuple(STRATEGIES) == COVARIANCE_TYPES


def strategy(covariance_type: str) -> ModuleType:
    """The strategy of ``covariance_type`` (ValueError naming it when unknown)."""
    if covariance_type not in STRATEGIES:
        raise ValueError(
            f"covariance_type={covariance_type!r}: expected one of {', '.join(STRATEGIES)}"
        )
    return STRATEGIES[covariance_type]

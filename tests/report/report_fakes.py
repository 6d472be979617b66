"""A test-only fitter that always raises, so a stored experiment holds error rows."""

from __future__ import annotations

BROKEN = "report_fakes:BrokenFitter"


class BrokenFitter:
    """Raises on every fit, like a fitter with a bug."""

    method = "broken"

    def __init__(self, message: str = "singular matrix in the test fitter") -> None:
        self.message = message

    def fit(self, dataset, rng):
        raise FloatingPointError(self.message)

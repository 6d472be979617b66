"""The settings of an experiment config's own sections: ``[experiment]``, ``[report]`` and
``[store]``, and the names of the report's sections (the report registers a builder for each;
a config may list them)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from workbench.settings.base import RULE, SettingError, Settings
from workbench.settings.data import Count

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
NAME_RE = re.compile(NAME_PATTERN)
NAME_RULE = "a name of letters, digits, '_', '.' or '-'"
# Largest design accepted unless experiment.max_cells (or --max-cells) raises it: building a
# design costs about 110 us and 1.3 KB per cell, so 100 000 cells take ~11 s and ~130 MB.
DEFAULT_MAX_CELLS = 100_000
DEFAULT_POSTERIOR_DRAWS = 500

# The report's sections: the generic ones (shown when a config lists none), the studies' own
# (issue 6) and the founding walkthrough.
GENERIC_SECTIONS = (
    "summary",
    "failure_rates",
    "recovery",
    "traces",
    "convergence",
    "coverage",
    "densities",
    "bayes",
    "failures",
    "findings",
)
STUDY_SECTIONS = (
    "local_optima",
    "slow_convergence",
    "misspecification",
    "em_vs_bayes",
    "scaling",
    "missing_data",
    "walkthrough",
)
REPORT_SECTIONS = GENERIC_SECTIONS + STUDY_SECTIONS


class ExperimentOptions(Settings):
    """``[experiment]``: the name (results go to reports/<name>/), replicates per data
    condition, master seed, per-cell timeout (seconds, enforced in the worker), errors in a row
    before the run stops, and the largest design accepted."""

    unknown = "unknown key"
    name: str = Field(pattern=NAME_PATTERN, json_schema_extra={RULE: NAME_RULE})
    description: str = ""
    replicates: Count = Field(json_schema_extra={RULE: "an integer >= 1"})
    seed: int = Field(ge=0, lt=2**63, json_schema_extra={RULE: "an integer >= 0 and < 2**63"})
    timeout: float = Field(600.0, gt=0, json_schema_extra={RULE: "a number of seconds > 0"})
    max_consecutive_errors: Count = 10
    max_cells: Count = DEFAULT_MAX_CELLS


class ReportOptions(Settings):
    """``[report]``: the sections to show (default: every generic one, as the report shows
    when a stored experiment lists none)."""

    unknown = "unknown key"
    sections: list[str] = Field(default_factory=lambda: list(GENERIC_SECTIONS))

    @field_validator("sections")
    @classmethod
    def _check_known(cls, sections: list[str]) -> list[str]:
        for name in sections:
            if name not in REPORT_SECTIONS:
                known = ", ".join(REPORT_SECTIONS)
                raise SettingError("sections", name, f"unknown section (expected one of {known})")
        return sections


class StoreOptions(Settings):
    """``[store]``: which EM traces to keep (every restart's, the best one's, none) and the
    posterior draws kept per chain."""

    unknown = "unknown key"
    em_traces: Literal["all", "best", "none"] = "all"
    posterior_draws: int = Field(
        DEFAULT_POSTERIOR_DRAWS, ge=0, json_schema_extra={RULE: "an integer >= 0 (draws per chain)"}
    )


SECTION_SETTINGS: dict[str, type[Settings]] = {
    "experiment": ExperimentOptions,
    "report": ReportOptions,
    "store": StoreOptions,
}

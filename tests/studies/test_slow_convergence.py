"""The slow-convergence study at CI scale, end to end through the CLI: the report section with
its figures and generated findings, and the study's robust claims on the stored results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from figure_layout import assert_readable
from study_pages import checked_section

from workbench.report.store_reader import ReportData, load_experiment, numbers
from workbench.report.studies.slow_convergence import (
    overspecified_fits,
    rate_fits,
    slope_table,
    squarem_pairs,
)

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "experiments" / "slow_convergence_quick.toml"
FIGURES = (
    "slow_convergence_vs_separation",
    "slow_convergence_vs_n",
    "slow_convergence_squarem",
    "slow_convergence_overspecified",
)


@pytest.fixture(scope="module")
def data(study) -> ReportData:
    return ReportData([load_experiment(study)])


def test_report_section_has_figures_tables_and_findings(study):
    html, findings = checked_section(study, "slow_convergence", FIGURES)
    assert "linear rate of plain EM by Delta and n" in html
    assert "over-specified fits: log-log slopes over n" in html
    assert any(f.startswith("Measured rate within 5%") for f in findings)
    assert any("ratio plain EM / SQUAREM" in f for f in findings)
    assert sum(f.startswith("Over-specified") for f in findings) == 2


@pytest.mark.parametrize("delta", [3.0, 4.0, 6.0])
def test_measured_rate_matches_the_dm_matrix_within_5_percent(data, delta):
    """The rate measured from each stored trace against the stored spectral radius of the EM
    map's Jacobian at the fit, for every plain-EM fit at this separation."""
    fits = rate_fits(data)
    fits = fits[fits["data.n"] == 1000]  # the Delta axis
    plain = fits[(fits["scheme"] == "plain EM") & (fits["data.separation"] == delta)]
    measured = numbers(plain, "diag.rate_measured").to_numpy()
    theory = numbers(plain, "diag.rate_theory").to_numpy()
    assert len(plain) >= 4 and np.isfinite(measured).all() and np.isfinite(theory).all()
    np.testing.assert_allclose(measured, theory, rtol=0.05)


def test_squarem_needs_far_fewer_map_evaluations_at_delta_2(study, data):
    pairs = squarem_pairs(load_experiment(study), rate_fits(data))
    close = pairs[(pairs["data.separation"] == 2.0) & (pairs["data.n"] == 1000)]
    assert len(close) == 4
    assert (close["squarem_final_gap"] <= 1e-6).all()  # equal accuracy: both within 1e-6 nats
    assert close["em_reached"].all()
    assert (close["squarem_low"] <= close["squarem_evaluations"]).all()
    assert close["ratio"].mean() >= 4


def test_equal_weights_converge_sublinearly_when_over_specified(data):
    """Dwivedi et al.: equal-weight EM at the singular point needs many more iterations than
    unequal-weight EM, more so as n grows."""
    over = overspecified_fits(data)
    assert over["error"].notna().all() and (over["status"] == "converged").all()
    largest = over[over["data.n"] == over["data.n"].max()]
    iterations = largest.groupby("weights")["n_iter"].mean()
    assert iterations["weights [0.5, 0.5]"] > 3 * iterations["weights [0.3, 0.7]"]
    slopes = slope_table(over).set_index("arm")
    assert np.isfinite(slopes["error slope"]).all()
    assert slopes.loc["weights [0.5, 0.5]", "iterations slope"] > 0.2


def test_every_figure_of_the_report_is_readable(study_figures):
    """No overlapping or cut-off text, every series in a legend (tests/report/figure_layout)."""
    assert_readable(study_figures)

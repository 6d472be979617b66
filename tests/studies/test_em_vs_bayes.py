"""The EM-vs-Bayes study at CI scale, end to end through the CLI: the report section with its
figures, tables and generated findings, and the study's robust claims on the stored data.

The run uses the serial executor, so its Bayes cells reuse the model (K = 2 in 1-D, ordered
means) that other tests of this session compiled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from figure_layout import assert_readable
from study_pages import checked_section

from workbench.params import MixtureParams
from workbench.report.studies.em_vs_bayes import (
    PARAMETERS,
    coverage_table,
    crosstab,
    findings,
    recovery_table,
    signed_errors,
    study_table,
)
from workbench.report.summary import ReportData, load_experiment, numbers

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "experiments" / "em_vs_bayes_quick.toml"
EXECUTOR = "serial"  # in process: reuse the compiled Bayes model
FIGURES = ("evb_bias", "evb_rmse", "evb_coverage", "evb_crosstab")
SERIES = ("em", "em_single", "bayes")


@pytest.fixture(scope="module")
def table(study):
    return study_table(ReportData([load_experiment(study)]))


def test_report_section_has_figures_tables_and_findings(study):
    html, sentences = checked_section(study, "em_vs_bayes", FIGURES)
    for caption in (
        "bias and RMSE (± MC se)",
        "interval coverage and width (± MC se)",
        "EM outcome against the Bayesian status, same data sets",
    ):
        assert caption in html
    assert len(sentences) >= 8
    assert sum("against a nominal 0.9" in s for s in sentences) == 3


def test_signed_errors_follow_their_definitions():
    truth = MixtureParams([0.3, 0.7], [[-1.0], [2.0]], [[[1.0]], [[4.0]]])
    # labels swapped; means pulled towards each other by 0.1; sds 1.2 and 1.8 (errors 0.2, -0.2)
    fitted = MixtureParams([0.75, 0.25], [[1.9], [-0.9]], [[[3.24]], [[1.44]]])
    errors = signed_errors(fitted, truth)
    assert errors["bias_weights"] == pytest.approx(0.25 - 0.3)
    assert errors["bias_means"] == pytest.approx(-0.1)
    assert errors["bias_scales"] == pytest.approx(0.0)


def test_bias_is_bounded_by_rmse_and_every_fit_is_scored(table):
    assert len(table) == 4 * 3 * 3 and set(table["series"]) == set(SERIES)
    for p in PARAMETERS:
        assert numbers(table, f"bias_{p}").notna().all(), p
    recovery = recovery_table(table)
    assert len(recovery) == 3 * 4 and (recovery["fits"] == 3).all()
    for p in PARAMETERS:  # |mean error| <= root mean squared error, cell by cell
        assert (recovery[f"{p} bias"].abs() <= recovery[f"{p} RMSE"] + 1e-12).all(), p


def test_intervals_narrow_with_n_and_credible_intervals_cover(table):
    """Well separated (regular asymptotics): every interval narrows as n grows. (Overlapping
    components at n = 100 can give EM overconfident, narrow intervals around a wrong fit.)"""
    coverage = coverage_table(table)
    for series, rows in coverage[coverage["separation"] == 4.0].groupby("series"):
        rows = rows.set_index("n")
        for p in PARAMETERS:
            assert rows.loc[400, f"{p} width"] < rows.loc[100, f"{p} width"], (series, p)
    bayes = table[table["series"] == "bayes"]
    pooled = bayes[[f"{p}_coverage" for p in PARAMETERS]].mean(axis=1)
    assert pooled.notna().all() and pooled.mean() >= 0.75
    assert ((coverage.filter(like="coverage") >= 0) & (coverage.filter(like="coverage") <= 1)).all(
        axis=None
    )


def test_crosstab_counts_every_paired_data_set(table):
    cross = crosstab(table)
    assert set(cross["EM fitter"]) == {"em", "em_single"} and set(cross["Bayes fitter"]) == {
        "bayes"
    }
    totals = cross.groupby("EM fitter")["data sets"].sum()
    assert (totals == 12).all()
    statuses = [c for c in cross.columns if c.startswith("Bayes ") and c != "Bayes fitter"]
    assert (cross[statuses].sum(axis=1) == cross["data sets"]).all()
    assert (cross["flagged"] <= cross["data sets"]).all()
    single = table[table["series"] == "em_single"]
    failed = int(numbers(single, "failed").sum())
    local = cross[(cross["EM fitter"] == "em_single") & (cross["EM returned"] == "local optimum")]
    assert int(local["data sets"].iloc[0]) == failed
    sentences = findings(table, cross)
    assert any(
        s.startswith(f"em_single returned a local optimum on {failed} of 12") for s in sentences
    )
    assert np.isfinite(coverage_table(table)["means coverage"]).all()


def test_every_figure_of_the_report_is_readable(study_figures):
    """No overlapping or cut-off text, every series in a legend (tests/report/figure_layout)."""
    assert_readable(study_figures)

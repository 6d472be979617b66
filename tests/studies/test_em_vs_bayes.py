"""The EM-vs-Bayes study at CI scale, end to end through the CLI: the report section with its
figures, tables and generated findings, and the study's robust claims on the stored data.

The run uses the serial executor, so its Bayes cells reuse the model (K = 2 in 1-D, ordered
means) that other tests of this session compiled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from figure_layout import assert_readable
from scipy.stats import binomtest
from study_pages import checked_section, wilson_text

from workbench.evaluate import signed_errors
from workbench.params import MixtureParams
from workbench.report.store_reader import ReportData, load_experiment, numbers
from workbench.report.studies.em_vs_bayes import (
    PARAMETERS,
    coverage_table,
    crosstab,
    findings,
    recovery_table,
    study_table,
)

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


def test_multimodality_rates_have_their_wilson_interval_and_count(study, table, study_figures):
    """Issue 10: the share of data sets the Bayesian chains flag is k/n with a 95% Wilson
    interval in the table, the findings and the figure's error bars, never "0 ± 0"."""
    html, sentences = checked_section(study, "em_vs_bayes", FIGURES)
    cross = crosstab(table)
    for _, row in cross[cross["data sets"] > 0].iterrows():
        text = wilson_text(int(row["flagged"]), int(row["data sets"]))
        assert row["flagged rate (95% CI)"] == text
        assert text in html
    for (a, _), rows in cross.groupby(["EM fitter", "Bayes fitter"], sort=False):
        (sentence,) = [s for s in sentences if s.startswith(f"{a} returned a local optimum")]
        assert "±" not in sentence, sentence
        for _, row in rows[rows["data sets"] > 0].iterrows():
            assert wilson_text(int(row["flagged"]), int(row["data sets"])) in sentence
    (fig,) = [f for key, f, _ in study_figures if key == "evb_crosstab"]
    (caption,) = [c for key, _, c in study_figures if key == "evb_crosstab"]
    assert "95% Wilson" in caption
    ax = fig.axes[0]
    bars = [c for c in ax.containers if hasattr(c, "errorbar")]
    assert len(bars) == 2
    for container, outcome in zip(bars, ("local optimum", "best known optimum"), strict=True):
        rows = cross[cross["EM returned"] == outcome]
        (segments,) = container.errorbar.lines[2]
        for segment, k, n in zip(segments.get_segments(), rows["flagged"], rows["data sets"],
                                 strict=True):  # fmt: skip
            if n == 0:  # no data set: no bar
                assert np.ptp(segment[:, 1]) == 0
                continue
            lower, upper = binomtest(int(k), int(n)).proportion_ci(method="wilson")
            assert sorted(segment[:, 1]) == pytest.approx([lower, upper], abs=1e-6)
    labels = {t.get_text() for t in ax.texts}
    assert {f"{k}/{n}" for k, n in zip(cross["flagged"], cross["data sets"], strict=True)} <= labels


def test_coverage_finding_lists_every_cell_tied_at_the_lowest(table):
    """When several (parameter, condition) cells share the lowest coverage, all are named."""
    even = table.copy()
    for p in PARAMETERS:
        even[f"{p}_coverage"] = 1.0
    sentences = findings(even, crosstab(even))
    covered = [s for s in sentences if "against a nominal 0.9" in s]
    assert len(covered) == 3
    for sentence in covered:
        assert "lowest: tied: weights 1 ± 0 at " in sentence, sentence
        assert all(f"{p} 1 ± 0 at " in sentence for p in PARAMETERS)

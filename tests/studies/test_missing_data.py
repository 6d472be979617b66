"""The missing-data study at CI scale, end to end through the CLI (``missing_data_quick.toml``):
exact EM for incomplete data beside complete-case analysis and mean imputation, the report's
section with its figures, table and findings, each number checked against the stored fits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from figure_layout import assert_readable
from study_pages import checked_section

from workbench.report.store_reader import ReportData, load_experiment, numbers
from workbench.report.studies.missing_data import missing_table, summary

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "experiments" / "missing_data_quick.toml"
EXECUTOR = "serial"
FIGURES = ("missing_data_recovery", "missing_data_rate")


def test_section_has_figures_table_and_findings(study, study_figures):
    html, sentences = checked_section(study, "missing_data", FIGURES)
    assert "per mechanism, fraction and method" in html
    assert any(
        s.startswith("MCAR, 0.3 of the values missing: RMSE of the means") for s in sentences
    )
    assert any("measured rate is" in s for s in sentences)
    assert_readable(study_figures)


def test_numbers_are_the_stored_fits_and_tell_the_known_story(study):
    rows = missing_table(ReportData([load_experiment(study)]).table)
    assert set(rows["method"]) == {"em", "complete_case", "mean_impute"}
    assert set(rows["mechanism"]) == {"mcar", "mnar"} and set(rows["fraction"]) == {0.0, 0.3}
    stats = summary(rows)
    one = stats[(stats["mechanism"] == "mcar") & (stats["fraction"] == 0.3)]
    by_method = one.set_index("method")["means_rmse"]
    stored = rows[(rows["mechanism"] == "mcar") & (rows["fraction"] == 0.3)]
    for method, value in by_method.items():
        assert value == numbers(stored[stored["method"] == method], "means_rmse").mean()
    # what the literature says: mean imputation biases the means most; EM at least as good as
    # dropping the incomplete rows
    assert by_method["mean_impute"] > by_method["em"]
    assert by_method["em"] <= by_method["complete_case"] * 1.05
    # with nothing missing every method fits the same complete data to the same optimum (from
    # its own starts, so equal to EM's stopping tolerance)
    zero = stats[stats["fraction"] == 0.0].groupby("method")["means_rmse"].first()
    assert np.allclose(zero.to_numpy(), zero.iloc[0], rtol=1e-4)
    em = rows[rows["method"] == "em"]
    ratio = numbers(em, "diag.rate_measured") / numbers(em, "diag.rate_theory")
    assert np.nanmedian(ratio) == pytest.approx(1.0, abs=0.05)

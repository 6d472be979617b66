"""The scaling study at CI scale, end to end through the CLI: one command runs the EM arms and
the Bayesian arm of ``scaling_quick.toml`` (each fitter table restricted to its own data blocks),
then the report's scaling section with its figures, slopes and findings.

The run uses the serial executor (one process: no second worker competing for the timings,
and the Bayes cells reuse the model that other tests of this session compiled). Timing claims
are deliberately wide: speed goals live in benchmarks/, not in timed unit tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from figure_layout import assert_readable
from study_pages import checked_section

from workbench.report.store_reader import ReportData, load_experiment, numbers
from workbench.report.studies.scaling import (
    arms,
    findings,
    means_table,
    slope_table,
    timing_table,
)

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "experiments" / "scaling_quick.toml"
EXECUTOR = "serial"  # one process: no second worker competing for the timings
FIGURES = ("scaling_n", "scaling_K", "scaling_d")


@pytest.fixture(scope="module")
def table(study):
    return timing_table(ReportData([load_experiment(study)]))


def test_report_section_has_figures_tables_and_findings(study):
    section, sentences = checked_section(study, "scaling", FIGURES)
    assert "log-log slopes (± regression se)" in section
    assert len(sentences) >= 6
    assert any("bayes, against n" in s for s in sentences)


def test_arms_are_found_from_the_stored_table(table):
    assert len(table) == 10 * 2 * 3 + 3 * 3  # restricted fitters: no EM on the Bayes arm's data
    # one warm-up fit per experiment, process and method: the first EM and the first Bayes fit
    assert int(table["warmup"].sum()) == 2
    found = {(series, size): group for series, size, _, group in arms(table)}
    for series in ("em", "em_fixed"):
        assert sorted(found[(series, "data.n")]["data.n"].unique()) == [100, 1000, 10000, 100000]
        assert sorted(found[(series, "data.K")]["data.K"].unique()) == [2, 3, 4, 8]
        assert sorted(found[(series, "data.d")]["data.d"].unique()) == [1, 2, 4, 8]
    assert sorted(found[("bayes", "data.n")]["data.n"].unique()) == [100, 300, 1000]
    assert set(table.loc[table["method"] == "bayes", "data.d"]) == {1}
    fixed = table[table["series"] == "em_fixed"]
    assert (fixed["n_iter"] == 30).all()


def test_slopes_match_an_independent_fit(table):
    slopes = slope_table(table)
    assert np.isfinite(slopes["slope"]).all() and (slopes["slope se"] > 0).all()
    row = slopes[
        (slopes["series"] == "em_fixed")
        & (slopes["against"] == "n")
        & (slopes["quantity"] == "time per iteration (s)")
        & (slopes["which"] == "all")
    ]
    rows = table[(table["series"] == "em_fixed") & ~table["warmup"]]
    rows = rows[numbers(rows, "data.K").eq(3) & numbers(rows, "data.d").eq(2)]
    reference = np.polyfit(np.log10(rows["data.n"]), np.log10(rows["per_iter"]), 1)[0]
    assert row["slope"].iloc[0] == pytest.approx(reference)
    # The slopes' values are wall-clock measurements: the study reports them (and
    # `workbench run experiments/scaling.toml` is the benchmark); no assertion on speed here.
    bayes = slopes[(slopes["series"] == "bayes")]
    assert set(bayes["quantity"]) == {"wall time (s)"}


def test_findings_quote_the_slopes(table):
    slopes, means = slope_table(table), means_table(table)
    sentences = findings(table, slopes, means)
    assert (
        sentences[0] == f"{len(table)} timed fits; 2 first-in-process fit(s) left out as warm-up."
    )
    for _, row in slopes.iterrows():
        quoted = f"{row['against']}^({row['slope']:.2f} ± {row['slope se']:.2f})"
        assert any(quoted in s for s in sentences), quoted


def test_every_figure_of_the_report_is_readable(study_figures):
    """No overlapping or cut-off text, every series in a legend (tests/report/figure_layout)."""
    assert_readable(study_figures)

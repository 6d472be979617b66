"""The misspecification study at CI scale, end to end through the CLI: the report section with
its figures, tables and generated findings, and the study's robust claims on the stored data.

The run uses the serial executor, so its Bayes cells reuse the model (K = 2 in 1-D, ordered
means) that other tests of this session compiled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from figure_layout import assert_readable
from study_pages import checked_section, wilson_text

from workbench.report.store_reader import ReportData, load_experiment
from workbench.report.studies.misspecification import (
    CONTROL,
    bic_table,
    findings,
    paired_table,
    recovery_table,
    study_table,
)

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "experiments" / "misspecification_quick.toml"
EXECUTOR = "serial"  # in process: reuse the compiled Bayes model
FIGURES = ("misspec_recovery", "misspec_paired", "misspec_bic_k")
FAMILIES = {
    CONTROL,
    "Student-t df=3",
    "Student-t df=10",
    "skew-normal alpha=5",
    "uniform",
    "wrong K (3 true, 2 fit)",
}


@pytest.fixture(scope="module")
def table(study):
    return study_table(ReportData([load_experiment(study)]))


def test_report_section_has_figures_tables_and_findings(study):
    html, sentences = checked_section(study, "misspecification", FIGURES)
    for caption in (
        "recovery and fit by family and fitter",
        "paired differences, Bayes minus EM",
        "K chosen by BIC against the true K",
    ):
        assert caption in html
    assert "What we found" in html
    assert len(sentences) >= 5
    assert any(s.startswith("BIC (em_bic), best to worst") for s in sentences)


def test_every_fitter_saw_the_same_data_sets(table):
    assert len(table) == 6 * 3 * 3  # families x fitters x replicates, none failed
    assert set(table["family"]) == FAMILIES
    assert table.groupby(["data_id", "replicate"])["fitter"].nunique().eq(3).all()
    assert set(table.loc[table["role"] == "bic", "fitter"]) == {"em_bic"}


def test_em_likelihood_is_at_least_the_posterior_means(table):
    """EM maximises the likelihood: the Bayesian posterior mean never scores higher."""
    pairs = paired_table(table)
    assert set(pairs["family"]) == FAMILIES
    assert (pairs["data sets"] == 3).all()
    assert pairs["EM loglik >= Bayes (95% CI)"].str.startswith("1 (95% CI ").all()
    assert pairs["EM loglik >= Bayes (95% CI)"].str.endswith("; 3/3 data sets)").all()
    assert (pairs["loglik/pt: Bayes - EM"] <= 0).all()


def test_bic_finds_gaussian_k_and_overfits_non_gaussian_components(table):
    bic = bic_table(table).set_index("family")
    assert bic.loc[CONTROL, "true K"] == 2 and bic.loc[CONTROL, "chose true K"] == 1.0
    wrong = bic.loc["wrong K (3 true, 2 fit)"]
    assert wrong["true K"] == 3 and wrong["chose true K"] == 1.0
    # heavy tails and flat tops are mimicked with extra Gaussian components
    for family in ("Student-t df=3", "uniform"):
        assert bic.loc[family, "mean chosen K"] > bic.loc[CONTROL, "mean chosen K"]
    counts = bic[[c for c in bic.columns if c.startswith("K=")]].sum(axis=1)
    assert (counts == bic["data sets"]).all()


def test_a_missing_component_costs_far_more_than_the_wrong_shape(table):
    recovery = recovery_table(table).set_index(["family", "series"])
    for series in ("em", "bayes"):
        control = recovery.loc[(CONTROL, series), "overall RMSE"]
        assert recovery.loc[("wrong K (3 true, 2 fit)", series), "overall RMSE"] > 5 * control
        assert recovery.loc[(CONTROL, series), "fits"] == 3


def test_findings_quote_the_tables(table):
    sentences = findings(table, paired_table(table), bic_table(table))
    bic = bic_table(table).set_index("family")
    row = bic.loc["uniform"]
    quoted = f"uniform: true K 2 chosen at a rate {row['chose true K (95% CI)']}"
    assert any(quoted in s for s in sentences), sentences
    mean = f"mean chosen K {row['mean chosen K']:.3g} ± {row['mean chosen K se']:.2g}"
    assert any(mean in s for s in sentences)
    assert any(s.startswith("em: overall RMSE") and "wrong K" in s for s in sentences)
    assert np.isfinite(recovery_table(table)["loglik per point"]).all()


def test_every_figure_of_the_report_is_readable(study_figures):
    """No overlapping or cut-off text, every series in a legend (tests/report/figure_layout)."""
    assert_readable(study_figures)


def test_every_rate_has_its_wilson_interval_and_count(study, table):
    """Issue 10: BIC's true-K rate and the share of data sets where EM's log-likelihood was at
    least Bayes' are shown as k/n with a 95% Wilson interval, in the tables and the findings,
    never as "rate ± binomial se" ("1 ± 0" from three data sets)."""
    html, sentences = checked_section(study, "misspecification", FIGURES)
    bic = bic_table(table)
    for _, row in bic.iterrows():
        chosen = table[(table["role"] == "bic") & (table["family"] == row["family"])]
        k = int((chosen["diag.chosen_k"].astype(float) == chosen["true_k"].astype(float)).sum())
        assert row["chose true K (95% CI)"] == wilson_text(k, len(chosen))
        assert row["chose true K (95% CI)"] in html
    assert "chose true K (± MC se)" not in html
    (bic_sentence,) = [s for s in sentences if s.startswith("BIC (em_bic), best to worst")]
    control = bic.set_index("family").loc[CONTROL, "chose true K (95% CI)"]
    assert f"{CONTROL}: true K 2 chosen at a rate {control}" in bic_sentence
    assert "chosen in 1 ± 0" not in bic_sentence and "chosen at a rate 1 ±" not in bic_sentence
    assert wilson_text(3, 3) in html  # EM's log-likelihood >= Bayes' on 3 of 3 per family
    assert "EM loglik &gt;= Bayes (95% CI)" in html and "EM loglik &gt;= Bayes (±" not in html
    pooled = [s for s in sentences if "posterior mean on a share" in s]
    assert pooled and all(wilson_text(18, 18) in s for s in pooled), pooled


def test_findings_name_every_family_tied_at_an_extreme(table):
    """A family tied with another at the worst (or lowest) RMSE is listed with it, not dropped
    for whichever comes first."""
    fixed = table[table["role"] == "fixed"]
    em = fixed[fixed["series"] == "em"]
    rmse = em.groupby("family")["overall_rmse"].mean()
    for family, where in ((rmse.idxmin(), "lowest under {} ("), (rmse.idxmax(), "under {} (the")):
        twin = fixed[fixed["family"] == family].assign(family="twin family")
        twin = twin.assign(data_id=twin["data_id"].astype(str) + "-twin")
        sentences = findings(pd.concat([table, twin]), pd.DataFrame(), pd.DataFrame())
        (sentence,) = [s for s in sentences if s.startswith("em: overall RMSE")]
        assert where.format(f"tied: {family}, twin family") in sentence, sentence

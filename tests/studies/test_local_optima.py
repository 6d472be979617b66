"""The local-optima study at CI scale, end to end through the CLI: the report section with its
figures and generated findings, and the study's robust claims on the stored results."""

from __future__ import annotations

from pathlib import Path

from figure_layout import assert_readable
from study_pages import checked_section

from workbench.evaluate import FAILURE_RULE, LOCAL_OPTIMUM_KINDS
from workbench.report.store_reader import load_experiment
from workbench.report.studies.local_optima import findings, rates, restart_outcomes

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "experiments" / "local_optima_quick.toml"
FIGURES = ("local_optima_vs_k_jin", "local_optima_vs_k_overlap", "local_optima_gaps",
           "local_optima_arms")  # fmt: skip
# replicates x (6 jin conditions x 2 inits x 10 restarts + 4 overlap conditions x 4 inits x 5
# restarts + 1 unequal-weight condition x 4 inits x 2 xhm tables x 5 restarts)
CELLS = 3 * (6 * 2 + 4 * 4 + 1 * 4 * 2)
RESTARTS = 3 * (6 * 2 * 10 + 4 * 4 * 5 + 1 * 4 * 2 * 5)


def test_report_section_has_figures_table_and_findings(study):
    html, found = checked_section(study, "local_optima", FIGURES)
    assert "local optima by arm, separation, init and K" in html
    assert f"judged by rule {FAILURE_RULE}" in html
    assert found[0].startswith(f"{RESTARTS} EM fits (restarts) in {CELLS} cells")
    assert any("K = 2 with unequal weights (Xu, Hsu" in f for f in found)
    assert not any("± 0" in f for f in found)  # rates carry intervals and counts instead
    assert all("95% CI" in f for f in found if "local optima per start" in f)


def test_verdicts_are_the_stored_ones_against_one_shared_reference(study):
    outcomes = restart_outcomes(load_experiment(study))
    assert len(outcomes) == RESTARTS
    assert (outcomes["failure_rule"] == FAILURE_RULE).all()
    assert outcomes["failure_kind"].notna().all()
    assert (outcomes["failed"] == outcomes["failure_kind"].isin(LOCAL_OPTIMUM_KINDS)).all()
    assert (outcomes.loc[outcomes["degenerate"] == 1, "failed"] == 0).all()
    # nothing beats the best known optimum by more than round-off
    slack = 1e-6 + 1e-8 * outcomes["diag.reference_loglik"].abs()
    assert (outcomes["gap"].fillna(0.0) >= -slack).all()
    # the bank is seeded by the data: every init of a table sees the same best known optimum
    cells = outcomes.drop_duplicates("cell_id")
    ref = cells.groupby(["data_id", "replicate", "fitter_name"])["diag.reference_loglik"]
    assert ((ref.max() - ref.min()) <= 1e-6 + 1e-8 * ref.max().abs()).all()


def test_jin_regime_shows_the_published_pattern(study):
    """Well-separated random centres, random data-point starts: no local optimum at K = 2, and at
    K = 10 with separation 50 a rate whose 95% interval lies wholly above K = 2's."""
    outcomes = restart_outcomes(load_experiment(study))
    jin = outcomes[
        (outcomes["fitter_name"] == "jin") & (outcomes["fit.init"] == "random_from_data")
    ]
    assert set(jin["data.placement"]) == {"random_box"}
    by = rates(jin, ["data.K", "data.separation"]).set_index(["data.K", "data.separation"])
    assert (by.xs(2, level="data.K")["rate"] == 0).all()
    far = by.loc[(10, 50.0)]
    assert far["lower"] > by.loc[(2, 50.0), "upper"]
    assert far["rate"] >= 0.5
    assert all(kind == "gross" for kind in jin.loc[jin["failed"] == 1, "failure_kind"])


def test_fixed_unequal_weights_fail_where_free_weights_do_not(study):
    """Xu, Hsu & Maleki's symmetric model (means +theta, -theta), K = 2 with weights 0.3 / 0.7:
    held fixed, a start on the wrong side converges to a spurious fixed point; with the weights
    free every start reaches the global optimum (random starts; small_em picks the better side
    from many short runs)."""
    outcomes = restart_outcomes(load_experiment(study))
    xhm = outcomes[~outcomes["equal_weights"]]
    assert set(xhm["fitter_name"]) == {"xhm_weights_known", "xhm_weights_free"}
    assert (xhm["fit.symmetric_means"] == True).all()  # noqa: E712 - a stored JSON boolean
    random = xhm[xhm["fit.init"] != "small_em"]
    by_arm = rates(random, ["fitter_name"]).set_index("fitter_name")
    assert by_arm.loc["xhm_weights_free", "k"] == 0
    assert by_arm.loc["xhm_weights_known", "lower"] > by_arm.loc["xhm_weights_free", "upper"]
    failed = xhm[(xhm["fitter_name"] == "xhm_weights_known") & (xhm["failed"] == 1)]
    assert (failed["gap"] > 1.0).all()  # a spurious fixed point, not slow convergence
    assert (failed["failure_kind"] == "gross").all()  # the weights sit on the wrong clusters


def test_findings_name_ties_as_ties(study):
    """Where several inits share the extreme rate, the sentence lists them all."""
    outcomes = restart_outcomes(load_experiment(study))
    tied = outcomes.copy()
    tied["cell_failed"] = 0.0  # every init equally good: no arbitrary 'lowest'
    sentences = [f for f in findings(tied) if "returned fit" in f]
    assert sentences and all("equally often for every init" in f for f in sentences)


def test_every_figure_of_the_report_is_readable(study_figures):
    """No overlapping or cut-off text, every series in a legend (tests/report/figure_layout)."""
    assert_readable(study_figures)

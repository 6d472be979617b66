"""The local-optima study at CI scale, end to end through the CLI: the report section with its
figures and generated findings, and the study's robust claims on the stored results."""

from __future__ import annotations

from pathlib import Path

from figure_layout import assert_readable
from study_pages import checked_section

from workbench.report.studies.local_optima import rates, reference_curve, restart_outcomes
from workbench.report.summary import load_experiment

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "experiments" / "local_optima_quick.toml"
FIGURES = ("local_optima_vs_k", "local_optima_vs_separation", "local_optima_vs_d",
           "local_optima_arms")  # fmt: skip
# replicates x (8 equal-weight data conditions x 4 inits of the jin table + 1 unequal-weight
# condition x 4 inits x 2 xhm tables): each table fits only its own data block
CELLS = 3 * (8 * 4 + 1 * 4 * 2)


def test_report_section_has_figures_table_and_findings(study):
    html, findings = checked_section(study, "local_optima", FIGURES)
    assert "failure rates by arm, init and K" in html
    assert len(findings) >= 4
    assert findings[0].startswith(f"{CELLS * 5} EM fits (restarts) in {CELLS} cells")
    assert any("K = 2 with unequal weights (Xu, Hsu" in f for f in findings)


def test_every_restart_is_judged_against_one_best_known_optimum(study):
    outcomes = restart_outcomes(load_experiment(study))
    assert len(outcomes) == CELLS * 5  # cells x restarts
    assert outcomes["failed"].notna().all()
    assert (outcomes["gap"] >= -1e-6 * outcomes["n"]).all()  # nothing beats the best known
    # the best known optimum is shared by all inits of a fitter table on one data set
    best = (outcomes["loglik"] + outcomes["gap"]).groupby(
        [outcomes[k] for k in ("data_id", "replicate", "fitter_name")]
    )
    assert ((best.max() - best.min()) <= 1e-9 * best.max().abs()).all()


def test_failures_are_rare_at_k2_and_rise_with_k(study):
    """Jin et al.'s arm on equal weights: about zero failures at K = 2, more at K = 5."""
    outcomes = restart_outcomes(load_experiment(study))
    assert set(outcomes.loc[outcomes["equal_weights"], "fitter_name"]) == {"jin"}
    jin = outcomes[outcomes["fitter_name"] == "jin"]
    by_k = rates(jin, ["data.K"]).set_index("data.K")
    assert by_k.loc[2, "value"] <= 0.02
    assert by_k.loc[5, "value"] > by_k.loc[2, "value"] + 2 * by_k.loc[5, "se"]
    assert (by_k["value"] < reference_curve(by_k.index.to_numpy())).all()


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
    by_arm = rates(random, ["fitter_name"]).set_index("fitter_name")["value"]
    assert by_arm["xhm_weights_free"] <= 0.02
    assert by_arm["xhm_weights_known"] >= 0.2
    failed = xhm[(xhm["fitter_name"] == "xhm_weights_known") & (xhm["failed"] == 1)]
    assert (failed["gap"] > 1.0).all()  # a spurious fixed point, not slow convergence


def test_every_figure_of_the_report_is_readable(study_figures):
    """No overlapping or cut-off text, every series in a legend (tests/report/figure_layout)."""
    assert_readable(study_figures)

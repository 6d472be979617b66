"""Every figure of the reports readable: no text element overlaps another or leaves the canvas,
every labelled series is in a legend, several coloured series have one (rules in
``figure_layout``). Drawn from the small stored experiments of the other report tests: EM and
Bayes over separation (the quickstart's design), EM over n in 2-D, the two overlaid, and the
walkthrough's figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
from figure_layout import assert_readable, layout_problems

from workbench.report import build_report


def drawn(dirs, out) -> list:
    figures: list = []
    build_report(dirs, out, collect=figures)
    return figures


def test_every_figure_of_an_em_and_bayes_report_is_readable(stored, tmp_path):
    figures = drawn([stored["tiny_separation"]], tmp_path / "sep" / "report.html")
    keys = {key for key, _, _ in figures}
    assert {"bayes_forest", "bayes_posterior_truth", "em_traces", "coverage_separation"} <= keys
    assert {"recovery_paired", "convergence_separation", "fitted_densities"} <= keys
    assert_readable(figures)
    by_key = {key: (fig, caption) for key, fig, caption in figures}
    # Coverage: EM (Wald, interval_level set) and Bayes both drawn and named, widths below.
    fig, caption = by_key["coverage_separation"]
    named = {t.get_text() for leg in fig.legends for t in leg.get_texts()}
    assert {"bayes", "em(init=kmeans++)", "em(init=random_params)"} <= named, named
    titles = {ax.get_title() for ax in fig.axes}
    assert {"means: coverage", "means: interval width", "weights: interval width"} <= titles
    assert "EM: Wald intervals" in caption and "Bayes: equal-tailed credible" in caption
    # Every series of the convergence figure in its legend, Bayes included.
    fig, _ = by_key["convergence_separation"]
    assert "bayes" in {t.get_text() for leg in fig.legends for t in leg.get_texts()}
    # Paired recovery: axes named by the fitters.
    fig, _ = by_key["recovery_paired"]
    assert "bayes" in fig.axes[0].get_ylabel() and "em(init=" in fig.axes[0].get_xlabel()


def test_the_forest_names_parameters_and_marks_every_truth(stored, tmp_path):
    """One row per Bayesian cell (all 6 here) named by its condition, panels weight / mean /
    sd, and a truth cross beside every interval."""
    figures = drawn([stored["tiny_separation"]], tmp_path / "sep" / "report.html")
    forest = next(fig for key, fig, _ in figures if key == "bayes_forest")
    panels = [ax for ax in forest.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["weight", "mean", "sd"]
    rows = [t.get_text() for t in panels[0].get_yticklabels()]
    assert len(rows) == 6 and all("separation=" in r and "| rep " in r for r in rows), rows
    for ax in panels:  # K = 2: two intervals and two truth crosses per row
        intervals = [line for line in ax.lines if len(line.get_xdata()) == 2]
        crosses = [c for c in ax.collections if len(c.get_offsets())]
        assert len(intervals) == 2 * len(rows) and len(crosses) == len(intervals)


def test_every_figure_of_a_2d_report_over_n_is_readable(stored, tmp_path):
    assert_readable(drawn([stored["tiny_sizes"]], tmp_path / "sizes" / "report.html"))


def test_every_figure_of_an_overlay_of_two_designs_is_readable(stored, tmp_path):
    dirs = [stored["tiny_separation"], stored["tiny_sizes"]]
    assert_readable(drawn(dirs, tmp_path / "overlay" / "report.html"))


def test_the_walkthrough_figures_are_readable(tmp_path, monkeypatch):
    import workbench.walkthrough as story

    figures, save = [], story._save

    def keep(fig, path):
        figures.append((path.stem, fig, ""))
        return save(fig, path)

    monkeypatch.setattr(story, "_save", keep)
    story.build_walkthrough(tmp_path)
    assert {key for key, _, _ in figures} >= {"founding_2_e_step", "local_2_stuck"}
    assert_readable(figures)


def test_the_checks_catch_overlap_off_canvas_and_missing_legends():
    """The rules fire on figures built to break them (so a passing report means something)."""
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1], label="first")
    ax.plot([0, 1], [1, 0], color="tab:orange")
    ax.set_title("a title long enough to run off the canvas of this small figure, surely")
    ax.annotate("here", (0.5, 0.5))
    ax.annotate("here too", (0.5, 0.5))
    problems = layout_problems("broken", fig)
    plt.close(fig)
    assert any("leaves the canvas" in p for p in problems), problems
    assert any("'here' overlaps" in p for p in problems), problems
    assert any("'first' is in no legend" in p for p in problems), problems
    assert any("2 coloured series, no legend" in p for p in problems), problems
    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    ax.plot([0, 1], [0, 1], label="first")
    ax.plot([0, 1], [1, 0], label="second")
    ax.legend()
    ax.set_title("fits")
    assert layout_problems("fine", fig) == []
    plt.close(fig)

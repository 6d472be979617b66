"""The report: built from a small stored experiment, every figure written and referenced, generic
over grid variables, overlays of several experiments, and the store as its only input."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from workbench.montecarlo import rate_interval
from workbench.report import build_report
from workbench.report.bayes_figures import converged_ok, diagnostics_table
from workbench.report.plotting import collecting
from workbench.report.store_reader import ReportData, completed, load_experiment
from workbench.report.summaries import (
    condition_summary,
    failures_table,
    fixed_budget,
    paired,
    pairs,
)

ROOT = Path(__file__).resolve().parents[2]
# The generic report and figure code (a study's own section module may name its experiment).
REPORT_CODE = [
    ROOT / "workbench" / "report" / name
    for name in (
        "__init__.py",
        "figures.py",
        "example_figures.py",
        "bayes_figures.py",
        "bayes_parameters.py",
        "html.py",
        "plotting.py",
        "store_reader.py",
        "summaries.py",
        "text.py",
    )
]

EM_FIGURES = {"failure_rate", "recovery", "convergence", "coverage"}
BAYES_FIGURES = {
    "bayes_trace_worst",
    "bayes_rank_worst",
    "bayes_posterior_truth",
    "bayes_forest",
    "bayes_pair_chains",
}


def figures_of(page: Path) -> dict[str, Path]:
    return {p.name: p for p in (page.parent / "figures").iterdir()}


def check_page(page: Path) -> str:
    """Every figure file is non-empty, embedded and linked; every reference resolves."""
    text = page.read_text()
    files = figures_of(page)
    assert files, "no figures written"
    stems = {Path(n).stem for n in files}
    for stem in stems:
        png, pdf = files.get(f"{stem}.png"), files.get(f"{stem}.pdf")
        assert png is not None and pdf is not None, stem
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, stem
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000, stem
        assert f'data-figure="{stem}.png"' in text, f"{stem} not in the page"
        assert f'href="figures/{stem}.pdf"' in text and f'href="figures/{stem}.png"' in text
    referenced = set(re.findall(r'data-figure="([^"]+)"', text))
    assert referenced == {f"{s}.png" for s in stems}
    assert text.count("data:image/png;base64,") == len(stems)
    assert "could not be built" not in text
    return text


def test_report_of_an_em_and_bayes_experiment(separation_report):
    page = separation_report
    assert page.name == "report.html" and page.parent.name == "tiny_separation"
    text = check_page(page)
    stems = {Path(n).stem for n in figures_of(page)}
    for kind in EM_FIGURES:
        assert f"{kind}_separation" in stems
    assert {"recovery_paired", "em_traces", "fitted_densities"} <= stems
    assert BAYES_FIGURES <= stems
    # the "ok" example is a fit that meets its convergence thresholds; when none does, the
    # lowest-R-hat fit is shown under another name and says so
    table = load_experiment(page.parent).table
    example = "ok" if converged_ok(table[table["method"] == "bayes"]).any() else "best"
    assert {f"bayes_trace_{example}", f"bayes_rank_{example}"} <= stems
    assert not {"bayes_trace_ok", "bayes_trace_best"} <= stems
    if example == "best":
        assert "no fit is ok" in text
    for heading in (
        "Config and provenance",
        "Summary",
        "Failure rates",
        "Parameter recovery",
        "EM log-likelihood traces",
        "Iterations and wall time",
        "Interval coverage",
        "Fitted densities",
        "Bayesian cells",
        "Failures and errors",
        "What we found",
    ):
        assert f">{heading}</h2>" in text, heading
    assert "[fitters.bayes]" in text  # the config text
    assert "numpy" in text and "platform" in text.lower()  # versions and platform
    assert "± MC se" in text


def test_report_follows_the_grid_and_the_config_sections(stored, tmp_path):
    """Another experiment, gridded over n instead of separation, 2-D: figures follow its grid
    variable and the page holds only the sections its config lists."""
    page = build_report([stored["tiny_sizes"]], tmp_path / "sizes" / "report.html")
    text = check_page(page)
    stems = {Path(n).stem for n in figures_of(page)}
    assert {"failure_rate_n", "convergence_n", "em_traces", "fitted_densities"} <= stems
    assert not any("separation" in s for s in stems)
    assert not any(s.startswith("bayes") or s.startswith("coverage") for s in stems)
    assert ">Bayesian cells</h2>" not in text and ">Interval coverage</h2>" not in text


def test_overlaid_experiments(stored):
    dirs = [stored["tiny_sizes"], stored["tiny_sizes_again"]]
    page = build_report(dirs)
    assert page == dirs[0].parent / "tiny_sizes_vs_tiny_sizes_again" / "report.html"
    text = check_page(page)
    stems = {Path(n).stem for n in figures_of(page)}
    assert {"failure_rate_n", "convergence_n", "em_traces", "fitted_densities"} <= stems
    assert "<h3>tiny_sizes</h3>" in text and "<h3>tiny_sizes_again</h3>" in text
    data = ReportData([load_experiment(d) for d in dirs])
    series = set(data.table["series"])  # the legend labels carry the experiment
    assert {"tiny_sizes: em(init=kmeans++)", "tiny_sizes_again: em"} <= series
    assert ">tiny_sizes_again</td>" in text  # the summary tables name the experiment
    # The failures table lists every errored fit with its message.
    failures = text[text.index('id="failures"') : text.index('id="findings"')]
    assert failures.count("singular matrix in the test fitter") == 4
    assert "4 fit(s) ended in an error" in failures


def test_an_experiment_of_errors_only_still_gets_its_report(stored):
    page = build_report([stored["tiny_broken"]])
    text = page.read_text()
    assert "could not be built" not in text
    assert "2 fit(s) ended in an error" in text
    assert text.count("singular matrix in the test fitter") == 2
    assert ">Summary</h2>" in text and ">What we found</h2>" in text


def test_a_config_can_ask_for_the_walkthrough_section(stored, tmp_path, monkeypatch):
    import workbench.walkthrough
    from workbench.report import store_reader

    monkeypatch.setattr(
        workbench.walkthrough, "walkthrough_fragment", lambda out: "<p>EM story</p>"
    )
    monkeypatch.setattr(store_reader, "_sections", lambda runs: ("summary", "walkthrough"))
    page = build_report([stored["tiny_sizes"]], tmp_path / "r" / "report.html")
    text = page.read_text()
    assert ">The founding walkthrough</h2><p>EM story</p>" in text
    assert ">Summary</h2>" in text and ">Failure rates</h2>" not in text


def test_no_figure_code_names_an_experiment():
    names = {
        "quickstart",
        "tiny_separation",
        "tiny_sizes",
        "local_optima",
        "slow_convergence",
        "misspecification",
        "em_vs_bayes",
        "scaling",
    }
    names |= {p.stem for p in (ROOT / "experiments").glob("*.toml")}
    for path in REPORT_CODE:
        source = path.read_text()
        for name in names:
            assert name not in source, f"{path.name} names experiment {name!r}"


def test_summaries_come_from_replicate_rows_with_mc_errors(stored):
    data = ReportData([load_experiment(stored["tiny_sizes"])])
    table = data.table
    summary = condition_summary(table)
    for _, row in summary.iterrows():
        rows = table[(table["fitter"] == row["fitter"]) & (table["data"] == row["data"])]
        flags = rows["failed"].astype(float).to_numpy()
        p = flags.mean()
        assert row["local-optimum rate"] == pytest.approx(p)
        lower, upper = binomtest(int(flags.sum()), len(flags)).proportion_ci(method="wilson")
        stats = rate_interval(flags)
        assert (stats["lower"], stats["upper"]) == pytest.approx((lower, upper), abs=1e-6)
        assert f"; {int(flags.sum())}/{len(flags)} fits)" in row["local-optimum rate (95% CI)"]
        assert "failure rate se" not in row  # never "0 ± 0" from a handful of replicates
        rmse = rows["overall_rmse"].to_numpy(dtype=float)
        got = row[["overall RMSE", "overall RMSE se"]].to_numpy(dtype=float)
        np.testing.assert_allclose(got, [rmse.mean(), rmse.std(ddof=1) / np.sqrt(len(rmse))])


def wilson(p: float, n_eff: float, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval in closed form (Wilson 1927), for a non-integer n."""
    centre = (p + z**2 / (2 * n_eff)) / (1 + z**2 / n_eff)
    half = z / (1 + z**2 / n_eff) * np.sqrt(p * (1 - p) / n_eff + z**2 / (4 * n_eff**2))
    return centre - half, centre + half


def test_failure_rate_bars_are_wilson_intervals(stored, tmp_path):
    """Both local-optimum rates are drawn with their 95% Wilson interval (scipy's binomtest):
    the returned fit's over fits, the per-start rate over every start with each fit's restarts
    a cluster (one per fit here: effective n = n - 1); 0/n shows a bar above 0, never a
    zero-width "0 ± 0" bar."""
    drawn: list = []
    with collecting(drawn):
        build_report([stored["tiny_sizes"]], tmp_path / "sizes" / "report.html")
    fig = next(f for key, f, _ in drawn if key == "failure_rate_n")
    caption = next(c for key, _, c in drawn if key == "failure_rate_n")
    assert "95% Wilson intervals" in caption and "one Monte Carlo standard error" not in caption
    table = completed(ReportData([load_experiment(stored["tiny_sizes"])]).table)
    assert (table["diag.n_restarts"].astype(float) == 1).all()
    checked = 0
    for title, column in (("returned fit", "failed"), ("single start", "restart_failure_rate")):
        ax = next(a for a in fig.axes if a.get_title().startswith(title))
        for container in ax.containers:
            rows = table[table["series"] == container.get_label()]
            data_line, _caps, (bars,) = container.lines
            for (x, y), segment in zip(data_line.get_xydata(), bars.get_segments(), strict=True):
                near = np.isclose(rows["data.n"], x, rtol=0.05) & rows[column].notna()
                flags = rows.loc[near, column].astype(float)
                k, n = int(round(flags.sum())), len(flags)
                if column == "failed":
                    lower, upper = binomtest(k, n).proportion_ci(method="wilson")
                else:  # each fit's one start its own cluster: CR1 design effect n / (n - 1)
                    lower, upper = wilson(k / n, n - 1 if 0 < k < n else n)
                assert y == pytest.approx(k / n)
                assert sorted(segment[:, 1]) == pytest.approx([lower, upper], abs=1e-6)
                assert upper > 0
                checked += 1
    assert checked >= 8


def test_bayes_diagnostics_table_covers_every_condition(stored):
    """One row per Bayesian condition with the sampler-health columns chosen by name (not the
    first columns found): worst and mean ± se R-hat / ESS, summed divergences and tree-depth
    hits, ESS per second of sampling."""
    data = ReportData([load_experiment(stored["tiny_separation"])])
    table = diagnostics_table(data)
    bayes = data.table[data.table["method"] == "bayes"]
    assert list(table["data"]) == list(dict.fromkeys(bayes["data"])) and len(table) == 2
    for column in (
        "statuses",
        "converged ok",
        "max R-hat",
        "min bulk ESS",
        "min tail ESS",
        "bulk ESS per s of sampling",
        "divergences",
        "tree-depth hits",
        "sampling time (s, compile excluded)",
        "compile time (s)",
    ):
        assert column in table, column
    for _, row in table.iterrows():
        group = bayes[bayes["data"] == row["data"]]
        assert row["divergences"] == int(group["diag.n_divergences"].sum())
        assert row["tree-depth hits"] == int(group["diag.n_max_treedepth"].sum())
        assert row["max R-hat"].endswith(f"(worst {group['diag.rhat_max'].max():.3g})")
        assert row["min tail ESS"].endswith(f"(worst {group['diag.ess_tail_min'].min():.3g})")
        assert row["converged ok"] == int(converged_ok(group).sum())
        assert sum(int(n) for n in re.findall(r"\d+", row["statuses"])) == len(group)


def test_converged_ok_checks_the_stored_thresholds():
    good = {"status": "ok", "diag.rhat_max": 1.005, "diag.ess_bulk_min": 450.0}
    good |= {"diag.ess_tail_min": 410.0, "diag.n_chains": 4}
    good |= {"diag.threshold_rhat_max": 1.01, "diag.threshold_ess_per_chain_min": 100.0}
    rows = pd.DataFrame(
        [
            good,
            {**good, "status": "not_converged"},
            {**good, "diag.rhat_max": 1.02},
            {**good, "diag.ess_tail_min": 390.0},
            {**good, "diag.threshold_ess_per_chain_min": 120.0},
            {**good, "diag.threshold_rhat_max": None},  # stored by code without thresholds
        ]
    )
    assert converged_ok(rows).tolist() == [True, False, False, False, False, False]


def test_pairs_are_on_the_same_data_sets(stored):
    data = ReportData([load_experiment(stored["tiny_separation"])])
    comparisons = pairs(data.table)
    assert ("em(init=random_params)", "bayes") in comparisons
    rows = paired(data.table, "em(init=random_params)", "bayes", "overall_rmse")
    assert len(rows) == 6  # 2 data conditions x 3 replicates, one data set each
    assert not rows.duplicated(["data_id", "replicate"]).any()
    assert isinstance(rows, pd.DataFrame) and np.isfinite(rows["difference"]).all()


def test_regenerated_data_match_the_stored_truth(stored):
    exp = load_experiment(stored["tiny_sizes"])
    for row in exp.table.head(4).itertuples():
        dataset = exp.dataset(row.cell_id)
        truth = exp.truth(row.data_id, row.replicate)
        np.testing.assert_array_equal(dataset.truth.means, truth.means)
        np.testing.assert_array_equal(dataset.truth.covariances, truth.covariances)
        stored_n = exp.datasets.set_index(["data_id", "replicate"]).loc[
            (row.data_id, row.replicate), "n"
        ]
        assert dataset.n == stored_n


def test_regenerated_data_are_checked_against_the_runs_fingerprint(stored, tmp_path, monkeypatch):
    """The run stores a fingerprint of every data set; one regenerated by changed generator
    code is refused with a one-line reason, and the page is written without that figure."""
    from dataclasses import replace

    from workbench.experiment.runner import data_fingerprint
    from workbench.report import ReportError, store_reader

    exp = load_experiment(stored["tiny_sizes"])
    assert exp.datasets["fingerprint"].notna().all()
    row = exp.table.iloc[0]
    dataset = exp.dataset(row["cell_id"])
    keys = exp.datasets.set_index(["data_id", "replicate"])
    expected = keys.loc[(row["data_id"], row["replicate"]), "fingerprint"]
    assert data_fingerprint(dataset.X, dataset.labels) == expected

    real = store_reader.generate
    drifted = lambda *args, **kw: replace(real(*args, **kw), X=real(*args, **kw).X + 1e-12)  # noqa: E731
    monkeypatch.setattr(store_reader, "generate", drifted)
    with pytest.raises(store_reader.DataMismatch, match="not the one the run fitted"):
        exp.dataset(row["cell_id"])
    page = tmp_path / "r" / "report.html"
    with pytest.raises(ReportError, match="densities"):
        build_report([stored["tiny_sizes"]], page)
    assert "not the one the run fitted" in page.read_text()


def test_the_report_loads_no_fitter(stored, tmp_path):
    """Built in a fresh process, the report never imports EM, Bayes or the fitter modules."""
    code = (
        "import sys\nfrom pathlib import Path\nfrom workbench.report import build_report\n"
        f"build_report([Path({str(stored['tiny_sizes'])!r})], Path({str(tmp_path)!r}) / 'r.html')\n"
        "bad = [m for m in sys.modules if m.startswith(('workbench.em', 'workbench.bayes'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, timeout=300)
    assert (tmp_path / "r.html").is_file()


def test_failures_table_skips_fixed_budget_runs_only():
    """A max_iter fit with tol = 0 ran its budget by design; with tol > 0 it is a failure."""
    table = pd.DataFrame(
        {
            "status": ["max_iter", "max_iter", "converged", "degenerate", "error"],
            "fit.tol": [0.0, 1e-8, 0.0, 0.0, np.nan],
            "failed": [0.0, 0.0, 1.0, 0.0, np.nan],
            "fitter": list("abcde"),
        }
    )
    assert fixed_budget(table).tolist() == [True, False, False, False, False]
    rows, total = failures_table(table)
    assert total == 4 and rows["fitter"].tolist() == ["b", "c", "d", "e"]


def test_an_overlay_of_different_designs_draws_what_is_comparable(stored, tmp_path, capsys):
    """tiny_sizes has no ``weights`` setting, tiny_weights is gridded over it: figures against
    weights draw tiny_weights alone and say so; the page and one terminal line note the skip."""
    from workbench.cli import main

    out = tmp_path / "overlay" / "report.html"
    dirs = [str(stored["tiny_sizes"]), str(stored["tiny_weights"])]
    assert main(["report", *dirs, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "weights" in notes[0] and "tiny_sizes" in notes[0], err
    text = check_page(out)
    assert "Traceback" not in text and "<pre>Traceback" not in text
    assert (
        "weights is a grid axis of only some experiments; tiny_sizes has no weights setting" in text
    )
    stems = {Path(n).stem for n in figures_of(out)}
    assert {"failure_rate_weights", "failure_rate_n", "convergence_weights"} <= stems
    caption = re.search(r'id="fig-failure_rate_weights".*?</figcaption>', text, re.S).group(0)
    assert "Not drawn: tiny_sizes (no weights in its grid)." in caption


def test_a_failing_section_exits_non_zero_with_one_line_and_no_traceback(
    stored, tmp_path, capsys, monkeypatch
):
    from workbench import report
    from workbench.cli import main

    def broken(ctx, section):
        raise KeyError("'nan' is not in list")

    monkeypatch.setitem(report.SECTIONS, "failure_rates", ("Failure rates", broken))
    out = tmp_path / "r" / "report.html"
    assert main(["report", str(stored["tiny_sizes"]), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # stderr holds the progress lines (one per section) and exactly one error line
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: report ")
    assert "failure_rates" in errors[0]
    text = out.read_text()  # the page is still written, with every other section
    assert "Traceback" not in text and "<pre>" not in text.split('id="summary"')[1]
    assert "This section could not be built (KeyError" in text
    assert ">Iterations and wall time</h2>" in text


def test_long_tables_are_not_clipped_and_say_how_many_rows(stored):
    """The page scrolls, not a fixed-height box (a 520 px box once hid most failures)."""
    from workbench.report.html import CSS

    rule = re.search(r"\.scroll \{([^}]*)\}", CSS).group(1)
    assert "max-height" not in rule and "overflow-x" in rule
    text = build_report([stored["tiny_broken"]]).read_text()
    assert "<caption>failures and errors: 2 of 2 listed</caption>" in text


def test_report_templates_ship_with_the_package():
    """Every template of the page is package data in pyproject.toml, so that a non-editable
    install (a wheel) carries them, and Jinja2 is a dependency."""
    import fnmatch
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["workbench.report"]
    folder = ROOT / "workbench" / "report" / "templates"
    files = [p.relative_to(folder.parent).as_posix() for p in folder.iterdir()]
    assert {"templates/page.html", "templates/report.css"} <= set(files)
    assert all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), (files, globs)
    assert any(d.startswith("jinja2") for d in config["project"]["dependencies"])


def test_text_from_a_store_is_escaped_in_every_part():
    """Paragraphs, lines, headings and tables escape their text (autoescaping); only the
    HTML the templates build is markup."""
    from workbench.report.html import Section

    section = Section("key", "title")
    section.text("a <script>x</script> & b", "finding")
    section.lines(["<i>one</i>", "two"])
    section.heading("<h1>")
    section.table(pd.DataFrame({"<th>": ["<td>"], "n": [1.23456]}), caption="<cap>")
    page = "".join(section.parts)
    assert "<script>" not in page and "<i>" not in page and "<h1>" not in page
    assert '<p class="finding">a &lt;script&gt;x&lt;/script&gt; &amp; b</p>' in page
    assert '<p class="note">&lt;i&gt;one&lt;/i&gt;<br>two</p>' in page
    assert "<h3>&lt;h1&gt;</h3>" in page
    assert "<caption>&lt;cap&gt;</caption>" in page and '<th class="text">&lt;th&gt;</th>' in page
    assert '<td class="text">&lt;td&gt;</td><td class="">1.23</td>' in page

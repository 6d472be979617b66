"""The report of one experiment, or several overlaid, built from the results store alone.

``build_report([dir])`` writes ``<dir>/report.html`` (one self-contained page, images embedded)
and ``<dir>/figures/*.png`` and ``*.pdf``. Sections come from a registry keyed by the names a
config lists under ``[report] sections``; a study adds its own with::

    @register_section("my_study", "My study")
    def my_study(ctx: ReportContext, section: Section) -> None:
        section.figures(my_figures(ctx.data, ctx.figures_dir))
        section.text(...)

Figures are generic over the grid variables of the stored table; nothing here knows an
experiment by name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt

from workbench.montecarlo import mean_se, rate_interval
from workbench.report import bayes_figures as bayes_fig
from workbench.report import figures as fig
from workbench.report.example_figures import density_figures, trace_figures
from workbench.report.html import Section, provenance_section, render_page
from workbench.report.plotting import Figure, collecting
from workbench.report.store_reader import (
    ReportData,
    completed,
    grid_variables,
    load_experiment,
    numbers,
    short_name,
)
from workbench.report.summaries import (
    condition_summary,
    coverage_columns,
    failures_table,
    fixed_budget,
    nominal_level,
    paired,
    pairs,
    status_counts,
)
from workbench.report.text import rate_text, with_se
from workbench.settings.experiment import GENERIC_SECTIONS
from workbench.status import FAILED_STATUSES

LOG = logging.getLogger(__name__)

__all__ = [
    "ReportContext",
    "ReportError",
    "SECTIONS",
    "Section",
    "build_report",
    "register_section",
]


@dataclass
class ReportContext:
    """What a section builder gets: the data and where to save figures."""

    data: ReportData
    figures_dir: Path


Builder = Callable[[ReportContext, Section], None]
Drawer = Callable[[ReportData, Path], list[Figure]]
SECTIONS: dict[str, tuple[str, Builder]] = {}


def register_section(key: str, title: str) -> Callable[[Builder], Builder]:
    """Register ``builder(ctx, section)`` as report section ``key`` (a config section name)."""

    def wrap(builder: Builder) -> Builder:
        SECTIONS[key] = (title, builder)
        return builder

    return wrap


def _figure_section(key: str, draw: Drawer, title: str, intro: str, empty: str) -> None:
    """Register section ``key``: an introduction and the figures ``draw`` returns."""

    def builder(ctx: ReportContext, section: Section) -> None:
        section.text(intro)
        drawn = draw(ctx.data, ctx.figures_dir)
        section.figures(drawn)
        if not drawn:
            section.note(empty)

    register_section(key, title)(builder)


_figure_section(
    "failure_rates",
    fig.failure_rate_figures,
    "Failure rates",
    "How often EM returns a local optimum, by grid variable and fitter.",
    "No fit has a failure flag (no reference optimum was computed).",
)
_figure_section(
    "traces",
    trace_figures,
    "EM log-likelihood traces",
    "Per-iteration log-likelihood of every EM restart, by outcome.",
    "No EM traces are stored for this experiment.",
)
_figure_section(
    "convergence",
    fig.convergence_figures,
    "Iterations and wall time",
    "Cost of a fit against the grid: EM iterations and the fit's wall time (EM: fitting; "
    "Bayes: sampling), compile time excluded (it has its own column in the summary).",
    "No iteration counts or times are stored.",
)
_figure_section(
    "coverage",
    fig.coverage_figures,
    "Interval coverage",
    "Whether intervals cover the truth as often as their nominal level promises.",
    "No fit stored intervals (set interval_level for EM; Bayes gives credible intervals).",
)
_figure_section(
    "densities",
    density_figures,
    "Fitted densities",
    "What successes and failures look like on their data.",
    "No finished fit with parameters to draw.",
)


@register_section("summary", "Summary")
def _summary(ctx: ReportContext, section: Section) -> None:
    table = ctx.data.table
    section.text(
        "Per fitter and data condition, from the per-replicate rows: rates with their 95% Wilson "
        "interval and counts (the per-start rate treats the restarts of one fit as correlated), "
        "means ± their Monte Carlo standard error sd/sqrt(m)."
    )
    drop = ["experiment"] if len(ctx.data.experiments) == 1 else []
    summary = condition_summary(table)
    section.table(with_se(summary.drop(columns=drop, errors="ignore")), "condition summary", True)
    section.table(status_counts(table).drop(columns=drop, errors="ignore"), "fits by status")


@register_section("recovery", "Parameter recovery")
def _recovery(ctx: ReportContext, section: Section) -> None:
    section.text(
        "Error of the matched fitted parameters against the truth, and paired "
        "comparisons of fitters on the very same data sets."
    )
    section.figures(fig.recovery_figures(ctx.data, ctx.figures_dir))
    rows = []
    for a, b in pairs(ctx.data.table):
        diffs = paired(ctx.data.table, a, b, "overall_rmse")
        mean, se, m = mean_se(diffs["difference"].to_numpy())
        if m:
            rows.append(
                {
                    "first": a,
                    "second": b,
                    "data sets": m,
                    "mean difference (second - first)": mean,
                    "mean difference se": se,
                }
            )
    if rows:
        section.table(with_se(pd.DataFrame(rows)), "paired overall RMSE differences")


@register_section("bayes", "Bayesian cells")
def _bayes(ctx: ReportContext, section: Section) -> None:
    drawn = bayes_fig.bayes_figures(ctx.data, ctx.figures_dir)
    if not drawn:
        section.note("No Bayesian cell with a stored posterior in this experiment.")
        return
    section.text(
        "Sampler health and posterior shape of the Bayesian fits (ArviZ), from the "
        "stored posterior draws. A fit is ok only when no mode problem or divergence is found "
        "and every reported parameter has rank-normalised split R-hat <= 1.01 and bulk and "
        "tail ESS >= 100 per chain (Vehtari et al. 2021; the thresholds are fitter settings, "
        "stored with each fit); otherwise, without a mode verdict or divergences, it is "
        "not_converged."
    )
    table = bayes_fig.diagnostics_table(ctx.data)
    if len(ctx.data.experiments) == 1:
        table = table.drop(columns=["experiment"], errors="ignore")
    section.table(
        table,
        "Bayesian diagnostics per condition: per-fit values as mean ± MC se (worst fit); "
        "divergences and tree-depth hits summed over the fits",
        scroll=True,
    )
    section.figures(drawn)


@register_section("failures", "Failures and errors")
def _failures(ctx: ReportContext, section: Section) -> None:
    rows, total = failures_table(ctx.data.table)
    errors = int(ctx.data.table["status"].isin(FAILED_STATUSES).sum())
    budget = int(fixed_budget(ctx.data.table).sum())
    section.text(
        f"{errors} fit(s) ended in an error, timeout, crash or skip; {total - errors} returned a "
        "local optimum or a status other than converged / ok."
        + (f" The first {len(rows)} of {total} are listed." if total > len(rows) else "")
        + (
            f" Not listed: {budget} fixed-budget fit(s) (tol = 0) that ran to max_iter by design."
            if budget
            else ""
        )
    )
    if total:
        section.table(rows, f"failures and errors: {len(rows)} of {total} listed", scroll=True)


@register_section("findings", "What we found")
def _findings(ctx: ReportContext, section: Section) -> None:
    for sentence in findings(ctx.data):
        section.text(sentence, "finding")


def findings(data: ReportData) -> list[str]:
    """Sentences generated from the numbers: errors, failure rates, paired recovery, coverage."""
    table, out = data.table, []
    ok = completed(table)
    out.append(f"{len(table)} fits stored, {len(table) - len(ok)} with an error, timeout or skip.")
    flags = numbers(ok, "failed")
    with_flags = ok[flags.notna()]
    if not with_flags.empty:
        rates = []
        for (series, cond), group in with_flags.groupby(["series", "data"], sort=False):
            stats = rate_interval(pd.to_numeric(group["failed"]).to_numpy(dtype=float))
            rates.append((stats, f"{series} on {cond}"))
        high = max(r[0]["rate"] for r in rates)
        low = min(r[0]["rate"] for r in rates)
        if high == low:
            out.append(
                f"Local-optimum rate of the returned fit {high:.3g} in every condition: "
                + "; ".join(f"{name}: {rate_text(stats)}" for stats, name in rates)
                + "."
            )
        else:
            out.append(
                f"Highest local-optimum rate of the returned fit: {_extreme(rates, high)}; lowest: "
                f"{_extreme(rates, low)}."
            )
    for a, b in pairs(table):
        mean, se, m = mean_se(paired(table, a, b, "overall_rmse")["difference"].to_numpy())
        if not m:
            continue
        if np.isfinite(se) and abs(mean) > 2 * se:
            better = b if mean < 0 else a
            verdict = f"{better} recovered the truth better"
        else:
            verdict = "no difference beyond twice its Monte Carlo error"
        out.append(
            f"{b} vs {a} on the same {m} data sets: mean overall-RMSE difference "
            f"{mean:.3g} ± {se:.2g}: {verdict}."
        )
    for series, group in ok[ok["method"] != "em"].groupby("series", sort=False):
        counts = ", ".join(f"{v} {k}" for k, v in group["status"].value_counts().items())
        out.append(f"{series}: {len(group)} fits, status {counts}.")
    columns = coverage_columns(ok)
    if columns:
        level = nominal_level(ok)
        for series, group in ok.groupby("series", sort=False):
            values = group[columns].mean(axis=1)
            mean, se, m = mean_se(values.to_numpy())
            if m:
                nominal = float(level[group.index].iloc[0])
                out.append(
                    f"{series}: intervals covered the truth {mean:.3g} ± {se:.2g} of the "
                    f"time against a nominal {nominal:g} ({m} fits)."
                )
    return out


def _extreme(rates: list[tuple[dict, str]], value: float) -> str:
    """Every condition whose rate equals ``value``, with its interval (ties listed, none
    picked arbitrarily)."""
    tied = [f"{rate_text(stats)} ({name})" for stats, name in rates if stats["rate"] == value]
    return tied[0] if len(tied) == 1 else f"tied between {len(tied)}: " + "; ".join(tied)


@register_section("walkthrough", "The founding walkthrough")
def _walkthrough(ctx: ReportContext, section: Section) -> None:
    # A demonstration of EM's own steps, not a result of the store. Imported here, when a config
    # asks for it (a plain import the architecture test sees): the walkthrough runs EM itself,
    # and the report otherwise never loads a fitter (test_the_report_loads_no_fitter).
    from workbench import walkthrough

    section.html(walkthrough.walkthrough_fragment(ctx.figures_dir.parent / "walkthrough"))


DEFAULT_SECTIONS = GENERIC_SECTIONS


def _sections(data: ReportData) -> list[str]:
    """The union, in order, of the experiments' ``[report] sections`` (default: every generic
    section)."""
    names: list[str] = []
    for exp in data.experiments:
        names += [s for s in (exp.sections or DEFAULT_SECTIONS) if s not in names]
    return names


class ReportError(RuntimeError):
    """Some report sections could not be built; the page was written without them."""


def overlay_notes(data: ReportData) -> list[str]:
    """What an overlay of experiments with different designs cannot compare: one sentence per
    grid variable that some experiment has no value of (figures against it leave those out)."""
    if len(data.experiments) < 2:
        return []
    notes = []
    for variable in grid_variables(data.table):
        missing = [e.name for e in data.experiments if not _has_values(e.table, variable)]
        if missing:
            name = short_name(variable)
            notes.append(
                f"{name} is a grid axis of only some experiments; {', '.join(missing)} "
                f"{'has' if len(missing) == 1 else 'have'} no {name} setting, so figures "
                f"against {name} leave {'its' if len(missing) == 1 else 'their'} fits out."
            )
    return notes


def _has_values(table: pd.DataFrame, column: str) -> bool:
    return column in table and bool(table[column].notna().any())


def build_report(dirs: list[Path], out: Path | None = None, collect: list | None = None) -> Path:
    """Build the HTML report of the experiments in ``dirs`` (several are overlaid) and return
    its path: ``out``, or ``<dir>/report.html`` (``<parent>/<a>_vs_<b>/report.html`` for
    several). Figures go to ``figures/`` beside it as PNG and PDF. ``collect``, when given,
    receives every matplotlib figure before it is closed (for tests).

    A section that raises is replaced by a one-line note (no traceback) and, after the page is
    written, :class:`ReportError` names the failed sections."""
    with collecting(collect):
        return _build(dirs, out)


def _build(dirs: list[Path], out: Path | None) -> Path:
    data = ReportData([load_experiment(d) for d in dirs])
    if out is None:
        first = Path(dirs[0])
        out = (first if len(dirs) == 1 else first.parent / data.name) / "report.html"
    out = Path(out)
    figures_dir = out.parent / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*figures_dir.glob("*.png"), *figures_dir.glob("*.pdf")]:
        stale.unlink()
    ctx = ReportContext(data, figures_dir)
    notes = overlay_notes(data)
    if notes:
        LOG.warning("note: overlay of different designs: %s", " ".join(notes))
    sections = [provenance_section(data, notes)]
    failed: list[str] = []
    for key in _sections(data):
        title, builder = SECTIONS.get(key, (key.replace("_", " ").capitalize(), None))
        LOG.info("section: %s", title)  # progress for `workbench report`
        section = Section(key, title)
        if builder is None:
            section.note(f"No report builder is registered for section {key!r}.")
        else:
            try:
                builder(ctx, section)
            except Exception as err:  # noqa: BLE001 - one broken section must not lose the rest
                reason = f"{type(err).__name__}: {err}".splitlines()[0][:300]
                section.parts = []
                section.note(f"This section could not be built ({reason}).")
                failed.append(f"{key} ({reason})")
                plt.close("all")
        sections.append(section)
    out.write_text(render_page(data, sections, out), encoding="utf-8")
    if failed:
        raise ReportError(f"{out}: written without {len(failed)} section(s): {'; '.join(failed)}")
    return out


def _load_studies() -> None:
    from workbench.report.studies import load_study_sections

    load_study_sections()


_load_studies()

"""Report figures drawn from single fits rather than from the grid: EM log-likelihood traces
coloured by outcome, and fitted densities of example successes and failures over their data
(regenerated from the stored seeds)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse

from workbench.report.figures import OUTCOME_COLOURS
from workbench.report.plotting import Figure, save, wrap_label
from workbench.report.store_reader import ReportData, completed
from workbench.report.summaries import example_cells
from workbench.status import LOCAL_OPTIMUM_KINDS, FailureKind


def trace_figures(data: ReportData, out: Path, max_panels: int = 4, per_panel: int = 40):
    """EM log-likelihood traces (gap to the best known optimum per iteration), coloured by the
    outcome of each restart: global optimum, local optimum or degenerate."""
    panels = []
    for number, exp in enumerate(data.experiments):
        em = completed(exp.table)
        em = em[em["method"] == "em"]
        if em.empty:
            continue
        restarts = exp.restarts(em["cell_id"].tolist()).merge(
            em[["cell_id", "data", "diag.reference_loglik"]], on="cell_id", how="left"
        )
        order = list(dict.fromkeys(exp.table["data"]))
        for data_label, group in restarts.groupby("data", sort=False):
            share = float(group["failed"].fillna(0).astype(bool).mean())
            position = (number, order.index(data_label))
            panels.append((-int(0 < share < 1), -share, position, exp, data_label, group))
    if not panels:
        return []
    # The conditions with the most mixed outcomes, shown in design order.
    panels = sorted(sorted(panels, key=lambda p: p[:3])[:max_panels], key=lambda p: p[2])
    size = (4.6 * len(panels), 4.6)
    fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False, layout="constrained")
    drawn: dict[str, int] = {}
    for ax, (_, _, _, exp, label, group) in zip(axes[0], panels, strict=True):
        failed = group[group["failed"].fillna(0).astype(bool)]
        chosen = pd.concat([failed.head(per_panel // 2), group.drop(failed.index)]).head(per_panel)
        traces = exp.traces(chosen["cell_id"].unique().tolist())
        best_known = group.groupby("cell_id")["loglik"].max()
        reference = group.groupby("cell_id")["diag.reference_loglik"].first()
        final = traces.groupby("cell_id")["loglik"].max()
        counts: dict[str, int] = {}
        stops: list[tuple[float, float]] = []
        for row in chosen.itertuples():
            t = traces[(traces["cell_id"] == row.cell_id) & (traces["restart"] == row.restart)]
            if t.empty:
                continue
            y = t["loglik"].to_numpy(dtype=float)
            best = np.nanmax([best_known[row.cell_id], reference[row.cell_id], final[row.cell_id]])
            outcome = restart_outcome(row)
            counts[outcome] = counts.get(outcome, 0) + 1
            gap = np.maximum(best - y, GAP_FLOOR)
            _trace_line(ax, t["iteration"].to_numpy(), gap, outcome)
            if outcome == "local optimum":
                stops.append((float(t["iteration"].iloc[-1]), float(gap[-1])))
        right = max(ax.get_xlim()[1], 1.0)
        for at, level in stops:  # where a local optimum stays: dotted to the panel's edge
            ax.hlines(level, at, right, color=OUTCOME_COLOURS["local optimum"], ls=":", lw=1.5)
        ax.set_xlim(right=right)
        ax.set_yscale("log")
        ax.set_xlabel("EM iteration")
        ax.set_ylabel("nats below best known optimum")
        name = f"{exp.name}: " if len(data.experiments) > 1 else ""
        tally = ", ".join(f"{counts[o]} {SHORT[o]}" for o in OUTCOME_COLOURS if o in counts)
        ax.set_title(f"{wrap_label(f'{name}{label}', 40)}\n({tally})", fontsize=9)
        ax.grid(alpha=0.3)
        for outcome, count in counts.items():
            drawn[outcome] = drawn.get(outcome, 0) + count
    handles = [_outcome_handle(o, drawn[o]) for o in OUTCOME_COLOURS if o in drawn]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9)
    caption = (
        "Each line is one EM restart (at most 40 per panel, local optima first, up to 20): the "
        "distance of its log-likelihood to the best known optimum of its data set (truth-started "
        "fit and all restarts), in nats on a log scale, floored at 1e-10, per iteration. Blue: "
        "restarts judged to reach the best known optimum (rule fixed-point-v1, at the polished "
        "fixed point); they fall towards the floor, or stop at max_iter while still falling, "
        "and a straight descent is linear convergence. A blue line that runs level and then "
        "falls again passed a saddle: a plateau alone is not a local optimum. Red, drawn on top: "
        "local optima (another fixed point, below the best known optimum); the dot marks where "
        "EM stopped and the dotted line carries that level to the panel's edge (the run never "
        "gets closer). Orange: saddle points and runs still moving after polishing "
        "(unresolved). Grey: degenerate. Panel titles count the "
        "restarts drawn by outcome, the legend all panels together. Panels: the data conditions "
        "with the most mixed outcomes."
    )
    return [save(fig, out, "em_traces", "EM log-likelihood traces by outcome", caption)]


GAP_FLOOR = 1e-10
SHORT = {
    "global optimum": "global",
    "saddle or unresolved": "saddle/unresolved",
    "local optimum": "local",
    FailureKind.DEGENERATE: "degenerate",
}
TRACE_STYLE = {
    "global optimum": {"lw": 1.0, "alpha": 0.6, "zorder": 2},
    "saddle or unresolved": {"lw": 1.2, "alpha": 0.8, "zorder": 3},
    FailureKind.DEGENERATE: {"lw": 1.0, "alpha": 0.7, "zorder": 3},
    "local optimum": {"lw": 2.2, "alpha": 0.95, "zorder": 4},
}


def restart_outcome(row) -> str:
    """A stored restart's outcome under the failure rule it was judged by (its stored
    ``failure_kind``): global optimum, local optimum, degenerate, or saddle or unresolved."""
    kind = row.failure_kind
    if kind == FailureKind.DEGENERATE:
        return FailureKind.DEGENERATE
    if kind in LOCAL_OPTIMUM_KINDS:
        return "local optimum"
    return "global optimum" if kind == FailureKind.BEST else "saddle or unresolved"


def _trace_line(ax: plt.Axes, iteration: np.ndarray, gap: np.ndarray, outcome: str) -> None:
    """One restart's gap trace in its outcome's style; a local optimum ends in a dot."""
    colour = OUTCOME_COLOURS[outcome]
    ax.plot(iteration, gap, color=colour, **TRACE_STYLE[outcome])
    if outcome == "local optimum":
        ax.plot(iteration[-1], gap[-1], "o", color=colour, ms=6, zorder=5)


def _outcome_handle(outcome: str, count: int) -> Line2D:
    style = TRACE_STYLE[outcome]
    marker = "o" if outcome == "local optimum" else ""
    colour = OUTCOME_COLOURS[outcome]
    label = f"{outcome} ({count}; dotted: its level after it stopped)" if marker else None
    label = label or f"{outcome} ({count})"
    return Line2D([], [], color=colour, lw=style["lw"], marker=marker, label=label)


def density_figures(data: ReportData, out: Path) -> list[Figure]:
    """Fitted densities over the data (histogram in 1-D, scatter in 2-D or more, first two
    coordinates) for a success and a failure of each method; the truth dashed."""
    examples = example_cells(data)
    if not examples:
        return []
    ncols = min(3, len(examples))
    nrows = math.ceil(len(examples) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.ravel()[len(examples) :]:
        ax.set_visible(False)
    for ax, (exp, row, kind) in zip(axes.ravel(), examples, strict=False):
        dataset = exp.dataset(row["cell_id"])
        fitted = exp.params(row["cell_id"])
        truth = exp.truth(row["data_id"], int(row["replicate"])) or dataset.truth
        if dataset.d == 1:
            _density_1d(ax, dataset.X[:, 0], fitted, truth)
        else:
            _scatter_2d(ax, dataset.X, dataset.labels, fitted, truth)
        gap = row.get("gap")
        gap_text = f", gap {gap:.3g} nats" if isinstance(gap, float) and np.isfinite(gap) else ""
        title = f"{kind}: {row['fitter']} | {row['data']} | rep {row['replicate']} | "
        ax.set_title(wrap_label(f"{title}{row['status']}{gap_text}", 46), fontsize=8)
        ax.legend(fontsize=7, loc="best")
    caption = (
        "Example cells: for each method the best-scoring success and the worst failure (largest "
        "gap to the best known optimum, or a non-ok status). Data regenerated from the stored "
        "seed; fitted mixture solid, truth dashed. In 2-D and higher: ellipses at 2 standard "
        "deviations in the first two coordinates, points coloured by their true component."
    )
    return [save(fig, out, "fitted_densities", "Fitted densities: successes and failures", caption)]


def _density_1d(ax: plt.Axes, x: np.ndarray, fitted, truth) -> None:
    ax.hist(x, bins=min(60, max(10, x.size // 8)), density=True, color="0.8", label="data")
    grid = np.linspace(x.min() - 0.5 * x.std(), x.max() + 0.5 * x.std(), 400)
    if fitted is not None:
        joint = np.exp(fitted.log_joint(grid))
        ax.plot(grid, joint.sum(axis=1), color="tab:blue", lw=2, label="fitted mixture")
        ax.plot(grid, joint, color="tab:blue", lw=0.8, alpha=0.6)
    ax.plot(grid, np.exp(truth.score_samples(grid)), "k--", lw=1.2, label="truth")
    ax.set_xlabel("x")
    ax.set_ylabel("density")


def _scatter_2d(ax: plt.Axes, X: np.ndarray, labels: np.ndarray, fitted, truth) -> None:
    ax.scatter(X[:, 0], X[:, 1], c=labels, cmap="tab10", s=6, alpha=0.5, vmin=0, vmax=9)
    for params, style, name in ((truth, "--", "truth"), (fitted, "-", "fitted")):
        if params is None:
            continue
        covs = params.full_covariances()[:, :2, :2]
        for k, (mean, cov) in enumerate(zip(params.means[:, :2], covs, strict=True)):
            vals, vecs = np.linalg.eigh(cov)
            angle = math.degrees(math.atan2(vecs[1, -1], vecs[0, -1]))
            w, h = 4 * np.sqrt(np.maximum(vals[::-1], 0))
            kw = {"fill": False, "ls": style, "lw": 1.5, "label": name if k == 0 else None}
            colour = "k" if name == "truth" else "tab:blue"
            ax.add_patch(Ellipse(mean, w, h, angle=angle, color=colour, **kw))
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")

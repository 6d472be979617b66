"""Figures of the Bayesian cells, from the posterior netCDF files of the store: ArviZ trace,
rank and pair plots of an ok fit and of the chains least in agreement, and the per-parameter
posterior-vs-truth and forest figures of :mod:`workbench.report.bayes_parameters`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import MatplotlibDeprecationWarning

from workbench.montecarlo import mean_se
from workbench.report.bayes_parameters import (
    MAX_FOREST_ROWS,
    PARAMETER_NAMES,
    PREFERRED_VARS,
    Scalar,
    forest_figure,
    posterior_vs_truth_figure,
    scalars,
)
from workbench.report.plotting import Figure, save
from workbench.report.store_reader import Experiment, ReportData, completed, numbers
from workbench.status import BAYES_PROBLEMS, BayesStatus

PROBLEM_STATUSES = BAYES_PROBLEMS  # multimodal, label_switching, divergent


def bayes_cells(data: ReportData) -> list[tuple[Experiment, pd.Series]]:
    """(experiment, row) of every finished cell with a stored posterior, in design order."""
    out = []
    for exp in data.experiments:
        rows = completed(exp.table)
        for _, row in rows[rows["posterior_path"].notna()].iterrows():
            if exp.posterior_file(row["cell_id"]) is not None:
                out.append((exp, row))
    return out


def load_posterior(exp: Experiment, cell_id: str) -> az.InferenceData:
    """The cell's stored InferenceData (posterior and sample_stats), loaded into memory."""
    idata = az.from_netcdf(str(exp.posterior_file(cell_id)))
    for group in idata.groups():
        idata[group].load()
    return idata


def plot_vars(idata: az.InferenceData) -> list[str]:
    """The component parameters to plot: w, mu, sigma when present, else every variable."""
    names = list(idata.posterior.data_vars)
    chosen = [v for v in PREFERRED_VARS if v in names]
    return chosen or names[:4]


def converged_ok(rows: pd.DataFrame) -> pd.Series:
    """Which fits are ``ok`` and meet the convergence thresholds stored with them (max R-hat <=
    ``threshold_rhat_max``, bulk and tail ESS >= ``threshold_ess_per_chain_min`` per chain).
    Fits stored without thresholds (older code) are not counted as converged."""
    need = numbers(rows, "diag.threshold_ess_per_chain_min") * numbers(rows, "diag.n_chains")
    return (
        (rows["status"] == BayesStatus.OK)
        & (numbers(rows, "diag.rhat_max") <= numbers(rows, "diag.threshold_rhat_max"))
        & (numbers(rows, "diag.ess_bulk_min") >= need)
        & (numbers(rows, "diag.ess_tail_min") >= need)
    )


def _examples(cells: list[tuple[Experiment, pd.Series]]) -> dict[str, tuple]:
    """The ``ok`` example (an ``ok`` fit meeting its convergence thresholds) or, when no fit is
    ok, the ``best``-converged one (lowest max R-hat), and the ``worst``: a multimodal or
    label-switching fit, else the other cell with the highest R-hat (the chains least in
    agreement)."""
    rows = pd.DataFrame([row for _, row in cells])
    good = converged_ok(rows).to_numpy()
    if good.any():
        examples = {"ok": cells[int(np.argmax(good))]}
    else:
        rhat = numbers(rows, "diag.rhat_max").fillna(np.inf).to_numpy()
        examples = {"best": cells[int(np.argmin(rhat))]}
    ok = next(iter(examples.values()))
    worst = next((c for c in cells if c[1]["status"] in PROBLEM_STATUSES[:2]), None)
    others = [c for c in cells if c[1]["cell_id"] != ok[1]["cell_id"]] or cells
    if worst is None:
        scored = []
        for exp, row in others[:30]:
            idata = load_posterior(exp, row["cell_id"])
            rhat = az.rhat(idata, var_names=plot_vars(idata))
            value = max(float(np.nanmax(v.values)) for v in rhat.data_vars.values())
            scored.append((value, len(scored), (exp, row)))
        worst = max(scored)[2]
    return {**examples, "worst": worst}


def _label(exp: Experiment, row: pd.Series, several: bool) -> str:
    head = f"{exp.name}: " if several else ""
    return f"{head}{row['fitter']} | {row['data']} | rep {row['replicate']} | {row['status']}"


def _grid_size(idata: az.InferenceData, names: list[str]) -> tuple[float, float]:
    """A figure size for one panel per scalar parameter, three panels a row."""
    count = sum(int(np.prod(idata.posterior[v].shape[2:])) for v in names)
    return 12.0, 2.6 * max(1, -(-count // 3))


def bayes_figures(data: ReportData, out: Path) -> list[Figure]:
    """Trace, rank, posterior-vs-truth, forest and chain-coloured pair plots."""
    with warnings.catch_warnings():  # ArviZ 0.23 uses API matplotlib 3.11 deprecates
        warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
        return _bayes_figures(data, out)


def _bayes_figures(data: ReportData, out: Path) -> list[Figure]:
    cells = bayes_cells(data)
    if not cells:
        return []
    several = len(data.experiments) > 1
    examples = _examples(cells)
    figures = []
    seen: set[str] = set()
    titles = {
        "ok": "an ok fit",
        "best": "no fit is ok: the lowest R-hat",
        "worst": "the chains least in agreement",
    }
    for kind, (exp, row) in examples.items():
        if row["cell_id"] in seen:
            continue
        seen.add(row["cell_id"])
        idata = load_posterior(exp, row["cell_id"])
        names = plot_vars(idata)
        label = _label(exp, row, several)
        style = {"chain_prop": {"linestyle": CHAIN_STYLES}}
        axes = az.plot_trace(idata, var_names=names, compact=True, **style)
        fig = np.atleast_2d(axes)[0, 0].figure
        _trace_legend(fig, idata, names)
        _readable_titles(fig, idata)
        caption = (
            f"ArviZ trace plot of {label}: per-chain marginal densities (left) and draws "
            "(right), one colour per component, one line style per chain. Chains that settle "
            "on different values mean different modes."
        )
        figures.append(
            save(fig, out, f"bayes_trace_{kind}", f"Trace plot ({titles[kind]})", caption)
        )
        axes = az.plot_rank(idata, var_names=names, figsize=_grid_size(idata, names))
        fig = np.atleast_1d(axes).ravel()[0].figure
        _chain_legend(fig, idata)
        _readable_titles(fig, idata)
        caption = (
            f"ArviZ rank plot of {label}: ranks of each chain's draws among all chains; "
            "near-uniform histograms mean the chains sample the same distribution."
        )
        figures.append(save(fig, out, f"bayes_rank_{kind}", f"Rank plot ({titles[kind]})", caption))
    figures.append(_posterior_vs_truth(*examples.get("ok", examples.get("best")), several, out))
    forest = _forest(cells, several, out)
    if forest is not None:
        figures.append(forest)
    figures.append(_pair_by_chain(*examples["worst"], several, out))
    return figures


CHAIN_STYLES = ("solid", "dotted", "dashed", "dashdot")  # ArviZ's compact chain_prop


def _trace_legend(fig: plt.Figure, idata: az.InferenceData, names: list[str]) -> None:
    """ArviZ's per-panel legends replaced by one figure legend below the panels: the chains'
    line styles and the components' colours (C0, C1, ... in compact mode)."""
    for ax in fig.axes:
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    chains = idata.posterior["chain"].values
    handles = [plt.Line2D([], [], color="k", ls=CHAIN_STYLES[i % 4], label=f"chain {c}")
               for i, c in enumerate(chains)]  # fmt: skip
    sizes = [idata.posterior[v].shape[2] if idata.posterior[v].ndim > 2 else 1 for v in names]
    handles += [plt.Line2D([], [], color=f"C{k}", lw=2, label=f"component {k + 1}")
                for k in range(max(sizes))]  # fmt: skip
    fig.set_layout_engine("constrained")
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 6), fontsize=9)


def _readable_titles(fig: plt.Figure, idata: az.InferenceData) -> None:
    """ArviZ's panel titles (``mu\n1, 0``: 0-based coordinates) as the report's parameter
    labels (``mean[2]``; ``mean[2, x1]`` in d > 1)."""
    d = int(idata.posterior.sizes.get("dim", 1))
    for ax in fig.axes:
        name, _, coords = ax.get_title().partition("\n")
        if name not in PARAMETER_NAMES:
            continue
        index = [int(c) for c in coords.split(",") if c.strip().isdigit()]
        label = PARAMETER_NAMES[name]
        if index:
            label += f"[{index[0] + 1}" + (
                f", x{index[1] + 1}]" if d > 1 and len(index) > 1 else "]"
            )
        ax.set_title(label, fontsize=10)


def _chain_legend(fig: plt.Figure, idata: az.InferenceData) -> None:
    """A figure legend naming ArviZ's chain colours (C0, C1, ...), above the panels."""
    chains = idata.posterior["chain"].values
    handles = [plt.Rectangle((0, 0), 1, 1, color=f"C{i}", label=f"chain {c}")
               for i, c in enumerate(chains)]  # fmt: skip
    fig.set_layout_engine("constrained")
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9)


def _forest_cells(cells: list) -> tuple[list, str]:
    """The cells of the forest plot and a sentence saying which they are: all of them, or the
    first replicate of each (experiment, fitter, data) condition when there are too many."""

    def order(cell: tuple) -> tuple:  # by experiment, fitter, data condition, replicate
        exp, row = cell
        conditions = list(dict.fromkeys(exp.table["data"]))
        return (exp.name, str(row["fitter"]), conditions.index(row["data"]), row["replicate"])

    cells = sorted(cells, key=order)
    if len(cells) <= MAX_FOREST_ROWS:
        return cells, f"all {len(cells)} Bayesian cells"
    seen, chosen = set(), []
    for exp, row in cells:
        key = (exp.name, row["fitter"], row["data"])
        if key not in seen:
            seen.add(key)
            chosen.append((exp, row))
    chosen = chosen[:MAX_FOREST_ROWS]
    return chosen, (
        f"{len(chosen)} of {len(cells)} Bayesian cells: the first stored replicate of each "
        "fitter and data condition"
    )


def _posterior_vs_truth(exp: Experiment, row: pd.Series, several: bool, out: Path) -> Figure:
    entries = _scalars(exp, row)
    return posterior_vs_truth_figure(entries, _label(exp, row, several), out)


def _scalars(exp: Experiment, row: pd.Series) -> list[Scalar]:
    idata = load_posterior(exp, row["cell_id"])
    truth = exp.truth(row["data_id"], int(row["replicate"]))
    matching = row.get("matching")
    return scalars(idata, truth, matching if isinstance(matching, str) else None)


def _forest(cells: list, several: bool, out: Path) -> Figure | None:
    chosen, which = _forest_cells(cells)
    rows = []
    for exp, row in chosen:
        head = f"{exp.name}: " if several else ""
        label = f"{head}{row['fitter']} | {row['data']} | rep {row['replicate']}"
        rows.append((label, _scalars(exp, row)))
    return forest_figure(rows, which, out)


def _pair_coords(idata: az.InferenceData) -> tuple[list[str], dict[str, list[int]], int]:
    """Variables and coordinates of the pair plot: the means of up to three components (and
    their scales when K = 2), first coordinate only. Returns (var_names, coords, scalars)."""
    post = idata.posterior
    names = [v for v in ("mu", "sigma") if v in post] or list(post.data_vars)[:2]
    first = [d for d in post[names[0]].dims if d not in ("chain", "draw")]
    K = post.sizes[first[0]] if first else 1
    names = names[:1] if K >= 3 or len(names) == 1 else names[:2]
    coords: dict[str, list[int]] = {}
    for name in names:
        dims = [d for d in post[name].dims if d not in ("chain", "draw")]
        for i, dim in enumerate(dims):
            coords[dim] = list(range(min(3, post.sizes[dim]))) if i == 0 else [0]
    count = sum(int(np.prod([len(coords[d]) for d in post[v].dims if d in coords])) for v in names)
    return names, coords, count


def _pair_by_chain(exp: Experiment, row: pd.Series, several: bool, out: Path) -> Figure:
    idata = load_posterior(exp, row["cell_id"])
    var_names, coords, count = _pair_coords(idata)
    size = max(count - 1, 1)
    fig, axes = plt.subplots(size, size, figsize=(3.2 * size + 1, 3.2 * size), squeeze=False)
    chains = idata.posterior["chain"].values
    for i, chain in enumerate(chains):
        az.plot_pair(
            idata.sel(chain=[chain]),
            var_names=var_names,
            coords=coords,
            kind="scatter",
            ax=axes if count > 2 else axes[0, 0],
            marginals=False,
            scatter_kwargs={"color": f"C{i}", "alpha": 0.4, "label": f"chain {chain}"},
        )
    for r in range(size):
        for c in range(r + 1, size):
            axes[r, c].set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=9, markerscale=2)
    caption = (
        f"Posterior draws of {_label(exp, row, several)}, one colour per chain. Chains in "
        "separate clouds are stuck in different modes (multimodality or label switching), "
        "which EM would report as one optimum without warning."
    )
    return save(fig, out, "bayes_pair_chains", "Pair plot coloured by chain", caption)


# (column, label, how): per condition "mean ± se (worst)", "total", or the "mean ± se"
DIAGNOSTIC_COLUMNS = (
    ("diag.rhat_max", "max R-hat", "max"),
    ("diag.ess_bulk_min", "min bulk ESS", "min"),
    ("diag.ess_tail_min", "min tail ESS", "min"),
    ("diag.ess_bulk_per_second", "bulk ESS per s of sampling", "min"),
    ("diag.n_divergences", "divergences", "total"),
    ("diag.n_max_treedepth", "tree-depth hits", "total"),
    ("diag.sample_seconds", "sampling time (s, compile excluded)", "mean"),
    ("diag.compile_time", "compile time (s)", "mean"),
)


def diagnostics_table(data: ReportData) -> pd.DataFrame:
    """One row per Bayesian (experiment, fitter, data) condition: fits by status, how many are
    ok under their convergence thresholds, and per fit the max R-hat, min bulk and tail ESS
    (over every reported parameter), bulk ESS per second of sampling (mean ± MC se, with the
    worst fit's value in brackets), total divergences and tree-depth hits, and the mean
    sampling and compile times."""
    table = data.table[data.table["method"] == "bayes"]
    if table.empty:
        return pd.DataFrame()
    rows = []
    for (exp, fitter, cond), group in table.groupby(["experiment", "fitter", "data"], sort=False):
        row: dict[str, Any] = {"experiment": exp, "fitter": fitter, "data": cond}
        row["fits"] = len(group)
        row["statuses"] = ", ".join(f"{k} {v}" for k, v in group["status"].value_counts().items())
        row["converged ok"] = int(converged_ok(group).sum())
        done = completed(group)
        for column, label, how in DIAGNOSTIC_COLUMNS:
            values = numbers(done, column).to_numpy()
            finite = values[np.isfinite(values)]
            if not finite.size:
                row[label] = "–"
            elif how == "total":
                row[label] = int(finite.sum())
            else:
                mean, se, _ = mean_se(finite)
                text = f"{mean:.3g} ± {se:.2g}" if se == se else f"{mean:.3g}"
                worst = {"max": np.max, "min": np.min}.get(how)
                row[label] = text if worst is None else f"{text} (worst {worst(finite):.3g})"
        rows.append(row)
    return pd.DataFrame(rows)

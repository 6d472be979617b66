"""ArviZ figures of the Bayesian cells, from the posterior netCDF files of the store.

Posterior variables are the model's (``w`` weights, ``mu`` means, ``sigma`` scales, ...). When
the posterior group carries ``loc`` and ``scale`` attributes (JSON lists, the standardisation
``z = (x - loc) / scale``) truths are mapped into those units; otherwise the draws are taken to
be in data units. Components are matched to the truth through the stored fitted parameters
(posterior means) with the Hungarian algorithm.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import MatplotlibDeprecationWarning

from workbench.evaluate import matched_truth_index
from workbench.params import MixtureParams
from workbench.report.figures import Figure, save
from workbench.report.summary import Experiment, ReportData, completed

PROBLEM_STATUSES = ("multimodal", "label_switching", "divergent")
PREFERRED_VARS = ("w", "mu", "sigma")


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


def _units(idata: az.InferenceData, d: int) -> tuple[np.ndarray, np.ndarray]:
    attrs = idata.posterior.attrs
    try:
        loc = np.asarray(
            json.loads(attrs["loc"]) if isinstance(attrs["loc"], str) else attrs["loc"], dtype=float
        ).reshape(-1)
        scale = np.asarray(
            json.loads(attrs["scale"]) if isinstance(attrs["scale"], str) else attrs["scale"],
            dtype=float,
        ).reshape(-1)
        return np.broadcast_to(loc, (d,)), np.broadcast_to(scale, (d,))
    except (KeyError, ValueError, TypeError):
        return np.zeros(d), np.ones(d)


def reference_values(
    idata: az.InferenceData, truth: MixtureParams, fitted: MixtureParams | None
) -> dict[str, list[dict[str, Any]]]:
    """ArviZ ``ref_val`` entries: the true w, mu and sigma of the component each posterior
    component is matched to, in the posterior's units."""
    K = truth.n_components
    order = {k: k for k in range(K)}
    if fitted is not None:
        fit_idx, true_idx = matched_truth_index(fitted, truth)
        order = {int(f): int(t) for f, t in zip(fit_idx, true_idx, strict=True)}
    loc, scale = _units(idata, truth.n_features)
    values = {
        "w": truth.weights[:, None],
        "mu": (truth.means - loc) / scale,
        "sigma": truth.scales() / scale,
    }
    out: dict[str, list[dict[str, Any]]] = {}
    for name, true in values.items():
        if name not in idata.posterior:
            continue
        dims = [d for d in idata.posterior[name].dims if d not in ("chain", "draw")]
        if not dims or len(dims) > 2:
            continue
        entries = []
        for index in np.ndindex(*idata.posterior[name].shape[2:]):
            k, j = index[0], (index[1] if len(index) > 1 else 0)
            if k in order and order[k] < true.shape[0] and j < true.shape[1]:
                coords = {
                    dim: idata.posterior[dim].values[i] for dim, i in zip(dims, index, strict=False)
                }
                entries.append({**coords, "ref_val": float(true[order[k], j])})
        if entries:
            out[name] = entries
    return out


def _examples(cells: list[tuple[Experiment, pd.Series]]) -> dict[str, tuple]:
    """An ``ok`` example and the ``worst``: a multimodal or label-switching fit, else the
    other cell with the highest R-hat (the chains least in agreement)."""
    ok = next((c for c in cells if c[1]["status"] == "ok"), cells[0])
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
    return {"ok": ok, "worst": worst}


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
    titles = {"ok": "an ok fit", "worst": "the chains least in agreement"}
    for kind, (exp, row) in examples.items():
        if row["cell_id"] in seen:
            continue
        seen.add(row["cell_id"])
        idata = load_posterior(exp, row["cell_id"])
        names = plot_vars(idata)
        label = _label(exp, row, several)
        style = {"chain_prop": ("linestyle", CHAIN_STYLES)}
        axes = az.plot_trace(idata, var_names=names, compact=True, **style)
        fig = np.atleast_2d(axes)[0, 0].figure
        _trace_legend(fig, idata, names)
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
        caption = (
            f"ArviZ rank plot of {label}: ranks of each chain's draws among all chains; "
            "near-uniform histograms mean the chains sample the same distribution."
        )
        figures.append(save(fig, out, f"bayes_rank_{kind}", f"Rank plot ({titles[kind]})", caption))
    figures.append(_posterior_vs_truth(*examples["ok"], several, out))
    forest = _forest(cells, several, out)
    if forest is not None:
        figures.append(forest)
    figures.append(_pair_by_chain(*examples["worst"], several, out))
    return figures


PARAMETER_NAMES = {"w": "weight", "mu": "mean", "sigma": "sd"}
COMPONENT_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")
TRUTH_STYLE = {"color": "k", "marker": "x", "s": 36, "zorder": 5, "linewidths": 1.6}
HDI_PROB = 0.9
MAX_FOREST_ROWS = 24  # cells; more are reduced to the first replicate of each condition


@dataclass(frozen=True)
class Scalar:
    """One scalar parameter of a posterior: a readable label (``mean[1]``, ``sd[2, x1]``), its
    component (0-based), its draws (chains pooled) and the matched true value (or NaN)."""

    label: str
    kind: str  # weight | mean | sd
    component: int
    draws: np.ndarray  # (chains * draws,)
    truth: float


def scalars(idata: az.InferenceData, truth: MixtureParams | None, fitted) -> list[Scalar]:
    """Every scalar of w, mu and sigma (first two coordinates in d > 1) with its truth."""
    post = idata.posterior
    refs = reference_values(idata, truth, fitted) if truth is not None else {}
    out = []
    for name in [v for v in PREFERRED_VARS if v in post]:
        values = np.asarray(post[name].values, dtype=float)
        dims = [d for d in post[name].dims if d not in ("chain", "draw")]
        for index in np.ndindex(*values.shape[2:]):
            k, j = index[0] if index else 0, index[1] if len(index) > 1 else 0
            d = values.shape[3] if values.ndim > 3 else 1
            if j >= 2:
                continue
            coords = {dim: post[dim].values[i] for dim, i in zip(dims, index, strict=False)}
            matches = [e["ref_val"] for e in refs.get(name, []) if _same(e, coords)]
            label = f"{PARAMETER_NAMES[name]}[{k + 1}" + (f", x{j + 1}]" if d > 1 else "]")
            draws = values[(slice(None), slice(None), *index)].reshape(-1)
            true = matches[0] if matches else math.nan
            out.append(Scalar(label, PARAMETER_NAMES[name], k, draws, float(true)))
    return out


def _same(entry: dict[str, Any], coords: dict[str, Any]) -> bool:
    return all(entry.get(dim) == value for dim, value in coords.items())


def sig3(value: float) -> str:
    """A number to three significant digits (``nan`` as a dash)."""
    return "–" if not np.isfinite(value) else f"{value:.3g}"


def _hdi(draws: np.ndarray) -> tuple[float, float]:
    low, high = az.hdi(draws, hdi_prob=HDI_PROB)
    return float(low), float(high)


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


def _chain_legend(fig: plt.Figure, idata: az.InferenceData) -> None:
    """A figure legend naming ArviZ's chain colours (C0, C1, ...), above the panels."""
    chains = idata.posterior["chain"].values
    handles = [plt.Rectangle((0, 0), 1, 1, color=f"C{i}", label=f"chain {c}")
               for i, c in enumerate(chains)]  # fmt: skip
    fig.set_layout_engine("constrained")
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9)


def _posterior_vs_truth(exp: Experiment, row: pd.Series, several: bool, out: Path) -> Figure:
    idata = load_posterior(exp, row["cell_id"])
    truth = exp.truth(row["data_id"], int(row["replicate"]))
    entries = scalars(idata, truth, exp.params(row["cell_id"]))
    ncols = min(3, len(entries))
    nrows = -(-len(entries) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 2.9 * nrows + 0.6), squeeze=False, layout="constrained"
    )
    for ax in axes.ravel()[len(entries) :]:
        ax.set_visible(False)
    for ax, entry in zip(axes.ravel(), entries, strict=False):
        colour = COMPONENT_COLOURS[entry.component % len(COMPONENT_COLOURS)]
        ax.hist(
            entry.draws, bins=40, density=True, color=colour, alpha=0.45, label="posterior draws"
        )
        low, high = _hdi(entry.draws)
        ax.plot([low, high], [0, 0], color="k", lw=5, solid_capstyle="butt",
                label=f"{HDI_PROB:.0%} HDI", clip_on=False)  # fmt: skip
        if np.isfinite(entry.truth):
            ax.axvline(entry.truth, color="tab:red", lw=2, label="truth")
        median = sig3(float(np.median(entry.draws)))
        ax.set_title(
            f"{entry.label}: truth {sig3(entry.truth)}\n"
            f"{HDI_PROB:.0%} HDI [{sig3(low)}, {sig3(high)}], median {median}",
            fontsize=9,
        )
        ax.set_yticks([])
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(plt.MaxNLocator(4))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=9)
    caption = (
        f"Posterior marginals of {_label(exp, row, several)} (chains pooled, data units; the "
        f"first two coordinates in d > 1): histogram of the draws, the {HDI_PROB:.0%} "
        "highest-density interval (black bar) and the true value of the matched component (red "
        "line). Each panel's title gives the truth, the HDI and the median to 3 significant "
        "digits."
    )
    return save(fig, out, "bayes_posterior_truth", "Posterior against truth", caption)


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


def _forest(cells: list, several: bool, out: Path) -> Figure | None:
    chosen, which = _forest_cells(cells)
    rows = []
    for exp, row in chosen:
        idata = load_posterior(exp, row["cell_id"])
        truth = exp.truth(row["data_id"], int(row["replicate"]))
        entries = scalars(idata, truth, exp.params(row["cell_id"]))
        head = f"{exp.name}: " if several else ""
        rows.append((f"{head}{row['fitter']} | {row['data']} | rep {row['replicate']}", entries))
    kinds = [k for k in ("weight", "mean", "sd") if any(e.kind == k for _, es in rows for e in es)]
    if not rows or not kinds:
        return None
    height = 1.4 + 0.42 * len(rows) * max(1, max(len(es) for _, es in rows) // len(kinds))
    fig, axes = plt.subplots(
        1, len(kinds), figsize=(4.0 * len(kinds) + 3.2, height), sharey=True, squeeze=False,
        layout="constrained",
    )  # fmt: skip
    components = set()
    for ax, kind in zip(axes[0], kinds, strict=True):
        for r, (_, entries) in enumerate(rows):
            mine = [e for e in entries if e.kind == kind]
            for i, entry in enumerate(mine):
                y = r + 0.6 * ((i + 0.5) / len(mine) - 0.5)
                colour = COMPONENT_COLOURS[entry.component % len(COMPONENT_COLOURS)]
                components.add(entry.component)
                low, high = _hdi(entry.draws)
                ax.plot([low, high], [y, y], color=colour, lw=2)
                ax.plot(np.median(entry.draws), y, "o", color=colour, ms=4)
                if np.isfinite(entry.truth):
                    ax.scatter(entry.truth, y, **TRUTH_STYLE)
        ax.set_title(kind, fontsize=10)
        ax.grid(alpha=0.3, axis="x")
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(plt.MaxNLocator(4))
    axes[0, 0].set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    axes[0, 0].set_ylim(len(rows) - 0.5, -0.5)
    handles = [
        plt.Line2D([], [], color=COMPONENT_COLOURS[k % len(COMPONENT_COLOURS)], lw=2, marker="o",
                   ms=4, label=f"component {k + 1}: {HDI_PROB:.0%} HDI and median")
        for k in sorted(components)
    ]  # fmt: skip
    handles.append(plt.Line2D([], [], color="k", marker="x", ls="", label="truth"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8)
    caption = (
        f"Posterior {HDI_PROB:.0%} highest-density intervals (lines), medians (points) and the "
        f"true values (crosses) of every weight, mean and sd, for {which}; one row per cell, one "
        "colour per fitted component (labelled in order of their means), data units, chains "
        "pooled; the first two coordinates in d > 1. How the posterior moves across the grid."
    )
    return save(fig, out, "bayes_forest", "Forest plot across cells", caption)


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


def diagnostics_table(data: ReportData) -> pd.DataFrame:
    """Per Bayesian (experiment, fitter, data): counts by status and the mean of each numeric
    diagnostic with its MC standard error, as "mean ± se" text."""
    from workbench.report.summary import mean_se

    table = completed(data.table)
    table = table[table["posterior_path"].notna() | (table["method"] == "bayes")]
    if table.empty:
        return pd.DataFrame()
    diag = [
        c
        for c in table.columns
        if c.startswith("diag.") and pd.to_numeric(table[c], errors="coerce").notna().any()
    ][:10]
    rows = []
    for (exp, fitter, cond), group in table.groupby(["experiment", "fitter", "data"], sort=False):
        row: dict[str, Any] = {"experiment": exp, "fitter": fitter, "data": cond}
        row["statuses"] = ", ".join(f"{k} {v}" for k, v in group["status"].value_counts().items())
        for column in diag:
            mean, se, _ = mean_se(group[column].to_numpy())
            row[column.removeprefix("diag.")] = (
                f"{mean:.3g} ± {se:.2g}" if se == se else (f"{mean:.3g}")
            )
        rows.append(row)
    return pd.DataFrame(rows)

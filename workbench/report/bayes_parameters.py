"""Per-parameter figures of Bayesian fits: the posterior of every weight, mean and sd against
its true value, one fit (histograms) or many (a forest of HDIs), in data units.

Posterior variables are the model's (``w`` weights, ``mu`` means, ``sigma`` scales). When the
posterior group carries ``loc`` and ``scale`` attributes (JSON lists, the standardisation
``z = (x - loc) / scale``) truths are mapped into those units; otherwise the draws are taken to
be in data units. Components are matched to the truth as the run matched them at evaluation
(the stored ``matching`` of the fit: Hungarian algorithm on the posterior means). Labels are
1-based: ``weight[1]``, ``mean[2]``, ``sd[1, x2]`` (d > 1).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arviz as az
import matplotlib.pyplot as plt
import numpy as np

from workbench.params import MixtureParams
from workbench.report.plotting import Figure, save

PREFERRED_VARS = ("w", "mu", "sigma")


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


def scalars(
    idata: az.InferenceData, truth: MixtureParams | None, matching: str | None
) -> list[Scalar]:
    """Every scalar of w, mu and sigma (first two coordinates in d > 1) with its truth
    (``matching``: the fit's stored matching, see :func:`reference_values`)."""
    post = idata.posterior
    refs = reference_values(idata, truth, matching) if truth is not None else {}
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
    idata: az.InferenceData, truth: MixtureParams, matching: str | None
) -> dict[str, list[dict[str, Any]]]:
    """ArviZ ``ref_val`` entries: the true w, mu and sigma of the component each posterior
    component is matched to, in the posterior's units. ``matching``: the fit's stored
    ``[[fitted, true], ...]`` pairs (JSON, judged at evaluation); None: component k is k."""
    K = truth.n_components
    order = {k: k for k in range(K)}
    if isinstance(matching, str):
        order = {int(f): int(t) for f, t in json.loads(matching)}
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


def posterior_vs_truth_figure(entries: list[Scalar], label: str, out: Path) -> Figure:
    """One panel per scalar parameter of one fit: histogram of its draws, the HDI, the truth;
    the numbers (3 significant digits) in the panel's title, one legend below the panels."""
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
        f"Posterior marginals of {label} (chains pooled, data units; the "
        f"first two coordinates in d > 1): histogram of the draws, the {HDI_PROB:.0%} "
        "highest-density interval (black bar) and the true value of the matched component (red "
        "line). Each panel's title gives the truth, the HDI and the median to 3 significant "
        "digits."
    )
    return save(fig, out, "bayes_posterior_truth", "Posterior against truth", caption)


def forest_figure(rows: list[tuple[str, list[Scalar]]], which: str, out: Path) -> Figure | None:
    """One row per fit (``(label, scalars)``), one panel per kind (weight, mean, sd): each
    component's HDI and median in its colour and the truth as a cross; ``which`` says in the
    caption which fits these are."""
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
        f"true values (crosses) of every weight, mean and sd, for {which}; one row per cell, "
        "one colour per fitted component (numbered as fitted, each matched to a true "
        "component), data units, chains pooled; the first two coordinates in d > 1. How the "
        "posterior moves across the grid."
    )
    return save(fig, out, "bayes_forest", "Forest plot across cells", caption)

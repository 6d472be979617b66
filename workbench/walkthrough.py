"""The founding document's story of EM, told with the workbench's own EM steps.

Part 1, the founding example (nine points on a line from a red and a green Gaussian):
1. random initialisation: both Gaussians drawn over the data points;
2. the E-step: each point's responsibility for the first (red) component, by Bayes' rule;
3. the M-step: new means and standard deviations as responsibility-weighted averages;
4. an animated GIF of EM running to convergence.

Part 2, the same story for K=3 from a poor start: two components begin inside one cluster and
one straddles the other two; EM converges, monotonically, to a local optimum well below the
optimum reached from the truth.

``run_walkthrough(out_dir)`` writes ``walkthrough.html`` (self-contained) and its PNG and GIF
files under ``out_dir``.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from pathlib import Path

import jinja2
import matplotlib
from markupsafe import Markup

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.animation import FuncAnimation, PillowWriter  # noqa: E402

from workbench.data import generate  # noqa: E402
from workbench.em.init import random_params  # noqa: E402
from workbench.em.run import EMSettings, EMState, converged, em_map, init_state  # noqa: E402
from workbench.params import MixtureParams  # noqa: E402

LOG = logging.getLogger(__name__)  # progress lines for `workbench walkthrough`

COLOURS = ("tab:red", "tab:green", "tab:blue")
FOUNDING_SEED = 2  # data and random start of part 1
LOCAL_SEED = 2  # data of part 2
MAX_FRAMES = 40


@dataclass
class Run:
    """Every EM iterate of one start: states[t] has log-likelihood logliks[t]."""

    X: np.ndarray  # (n, 1)
    states: list[MixtureParams]
    logliks: list[float]

    @property
    def final(self) -> MixtureParams:
        return self.states[-1]


def iterate_em(X: np.ndarray, start: MixtureParams, tol: float = 1e-8, max_iter: int = 2000) -> Run:
    """Run the workbench's EM loop one iteration at a time from ``start`` (so that every iterate
    can be drawn) until the log-likelihood changes by less than ``tol`` nats per point (the
    loop's own rule, :func:`workbench.em.run.converged`); keep every iterate."""
    settings = EMSettings(tol=tol, max_iter=max_iter)
    cov = start.full_covariances()
    state = init_state(start.weights[None], start.means[None], cov[None], settings, X.var(axis=0))
    states, logliks = [], []
    for _ in range(max_iter + 1):
        new, objective, degenerate = em_map(X, state, settings)
        states.append(_params(state))
        logliks.append(float(objective[0]))
        if len(logliks) > 1 and converged(logliks[-1] - logliks[-2], X.shape[0], tol):
            break
        if degenerate[0]:
            break
        state = new
    return Run(X, states, logliks)


def _params(state: EMState) -> MixtureParams:
    return MixtureParams(state.weights[0], state.means[0], state.covariances[0])


# ---- drawing -------------------------------------------------------------------------------------
def _grid(X: np.ndarray) -> np.ndarray:
    lo, hi = X.min(), X.max()
    pad = 0.25 * (hi - lo) + 1.0
    return np.linspace(lo - pad, hi + pad, 500)


def _components(
    ax, grid, params: MixtureParams, style="-", alpha=1.0, label="", lw: float = 2.0
) -> None:
    """Each component's weighted density w_k N(x | mu_k, s_k) in its colour."""
    dens = np.exp(params.log_joint(grid))  # weighted component densities (n, K)
    for k in range(params.n_components):
        kw = {"color": COLOURS[k % 3], "alpha": alpha, "lw": lw}
        ax.plot(grid, dens[:, k], style, label=f"{label}component {k + 1}", **kw)


def _points(ax: plt.Axes, X: np.ndarray, resp: np.ndarray | None = None) -> None:
    colour = "k" if resp is None else _blend(resp)
    kw = {"s": 60, "edgecolor": "k", "zorder": 5}
    ax.scatter(X[:, 0], np.zeros(len(X)), c=colour, label="data points", **kw)


def _blend(resp: np.ndarray) -> np.ndarray:
    """Point colours mixed from the component colours by responsibility, (n, 4)."""
    rgba = np.array([matplotlib.colors.to_rgba(COLOURS[k % 3]) for k in range(resp.shape[1])])
    return np.clip(resp @ rgba, 0, 1)


def _finish(ax: plt.Axes, title: str, ylabel: str = "weighted density", legend=True) -> None:
    ax.set_title(title)
    ax.set_xlabel("x")
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def figure_start(run: Run, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(8, 3.8))
    grid = _grid(run.X)
    _components(ax, grid, run.states[0])
    _points(ax, run.X)
    _finish(ax, title)
    return _save(fig, path)


def figure_e_step(run: Run, path: Path) -> Path:
    start = run.states[0]
    resp = start.responsibilities(run.X)
    grid = _grid(run.X)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    curve = r"$r_1(x) = w_1 N(x|\mu_1,\sigma_1) \,/\, \sum_k w_k N(x|\mu_k,\sigma_k)$"
    ax.plot(grid, start.responsibilities(grid)[:, 0], color=COLOURS[0], lw=1.5, label=curve)
    ax.vlines(run.X[:, 0], 0, resp[:, 0], color=COLOURS[0], lw=3, alpha=0.6)
    kw = {"s": 60, "edgecolor": "k", "zorder": 5, "label": r"$r_{i1}$ of each point $z_i$"}
    ax.scatter(run.X[:, 0], resp[:, 0], c=_blend(resp), **kw)
    levels = label_levels(run.X[:, 0], min_gap=0.045 * np.ptp(grid))
    for x, r, level in zip(run.X[:, 0], resp[:, 0], levels, strict=True):
        kw = {"textcoords": "offset points", "ha": "center", "fontsize": 8}
        ax.annotate(f"{r:.2f}", (x, r), xytext=(0, 7 + 11 * level), **kw)
    ax.set_ylim(-0.05, 1.25)
    title = "Step 2, the E-step: probability that each point belongs to the red component"
    _finish(ax, title, r"responsibility $r_1$")
    return _save(fig, path)


def label_levels(x: np.ndarray, min_gap: float) -> np.ndarray:
    """A stacking level (0, 1, ...) per point so that labels on one level are at least
    ``min_gap`` apart in x: labels of close points go one above the other."""
    levels = np.zeros(len(x), dtype=int)
    last: list[float] = []  # the x of the last label on each level
    for i in np.argsort(x):
        level = next((j for j, at in enumerate(last) if x[i] - at >= min_gap), len(last))
        if level == len(last):
            last.append(x[i])
        last[level] = x[i]
        levels[i] = level
    return levels


def figure_m_step(run: Run, path: Path) -> Path:
    old, new = run.states[0], run.states[1]
    grid = _grid(run.X)
    fig, ax = plt.subplots(figsize=(8, 3.8))
    _components(ax, grid, old, "--", 0.5, "before: ")
    _components(ax, grid, new, "-", 1.0, "after: ")
    top = np.exp(new.log_joint(grid)).max()
    for k in range(new.n_components):  # arrows from the old mean to the new one
        arrow = {"arrowstyle": "->", "color": COLOURS[k], "lw": 2}
        ends = {"xy": (new.means[k, 0], 1.05 * top), "xytext": (old.means[k, 0], 1.05 * top)}
        ax.annotate("", arrowprops=arrow, **ends)
    _points(ax, run.X, old.responsibilities(run.X))
    title = r"Step 3, the M-step: $\mu_1 = \sum_i r_{i1} z_i \,/\, \sum_i r_{i1}$, "
    _finish(ax, title + r"likewise $\sigma_1$, $w_1$ and component 2")
    return _save(fig, path)


def figure_end(run: Run, reference: Run, truth: MixtureParams, path: Path, title: str) -> Path:
    grid = _grid(run.X)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    if len(run.X) >= 50:
        kw = {"bins": min(40, len(run.X) // 8), "density": True, "color": "0.9", "zorder": 0}
        left.hist(run.X[:, 0], label="data histogram", **kw)
    _components(left, grid, run.final, alpha=0.8, lw=1.4)
    mixture = np.exp(run.final.score_samples(grid))
    left.plot(grid, mixture, color="k", lw=2.4, zorder=4, label="fitted mixture")
    truth_line = {"color": "0.35", "ls": "--", "lw": 1.4, "zorder": 3}
    left.plot(grid, np.exp(truth.score_samples(grid)), label="truth mixture", **truth_line)
    _points(left, run.X, run.final.responsibilities(run.X))
    _finish(left, "where EM stopped", legend=False)
    left.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)
    for r, style, label in ((run, "-", "this start"), (reference, "--", "started from the truth")):
        lls = np.array(r.logliks) / len(run.X)
        colour = "k" if r is reference else "tab:purple"
        right.plot(np.arange(len(lls)), lls, style, label=label, color=colour)
    right.set(xlabel="EM iteration", ylabel="log-likelihood per point (nats)")
    right.set_title("log-likelihood: never decreases")
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    right.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


def animate(run: Run, path: Path, title: str) -> Path:
    """An animated GIF of the run: densities and points coloured by responsibility, and the
    log-likelihood so far. At most MAX_FRAMES frames, denser at the start."""
    total = len(run.states)
    frames = np.arange(total)
    if total > MAX_FRAMES:  # denser at the start, where the picture changes most
        frames = np.unique(np.geomspace(1, total, MAX_FRAMES).round().astype(int) - 1)
    grid, X, n = _grid(run.X), run.X, len(run.X)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.28)
    dens = [np.exp(s.log_joint(grid)) for s in run.states]
    top = max(d.max() for d in dens)
    _components(left, grid, run.states[0])
    _points(left, X, run.states[0].responsibilities(X))
    lines, dots = left.get_lines(), left.collections[-1]
    left.set_ylim(-0.03 * top, 1.1 * top)
    _finish(left, title)
    lls = np.array(run.logliks) / n
    (trace,) = right.plot([], [], color="tab:purple")
    pad = 0.05 * np.ptp(lls) + 1e-9
    right.set(xlim=(0, total), ylim=(lls.min() - pad, lls.max() + pad))
    right.set(xlabel="EM iteration", ylabel="log-likelihood per point")
    right.grid(alpha=0.3)

    def draw(t: int) -> None:
        for k, line in enumerate(lines):
            line.set_ydata(dens[t][:, k])
        dots.set_facecolors(_blend(run.states[t].responsibilities(X)))
        trace.set_data(np.arange(t + 1), lls[: t + 1])
        left.set_title(f"{title}: iteration {t}")
        right.set_title(f"L/n = {lls[t]:.4f}")

    anim = FuncAnimation(fig, draw, frames=[*frames, *[frames[-1]] * 6], repeat=False)
    anim.save(path, writer=PillowWriter(fps=5), dpi=80)
    plt.close(fig)
    return path


# ---- the two stories -----------------------------------------------------------------------------
def _animate_logged(run: Run, path: Path, title: str) -> Path:
    LOG.info("animating %d iterations to %s", len(run.states) - 1, path.name)
    return animate(run, path, title)


def founding_story(out: Path) -> dict[str, object]:
    """Part 1: the founding example from the document's random start."""
    rng = np.random.default_rng(FOUNDING_SEED)
    data = generate("founding", rng)
    weights, means, covs = random_params(data.X, 2, 1, rng)
    order = np.argsort(means[0, :, 0])  # the red component starts on the left
    start = MixtureParams(weights[0][order], means[0][order], covs[0][order])
    LOG.info("part 1, the founding example: EM from a random start")
    run, reference = iterate_em(data.X, start), iterate_em(data.X, data.truth)
    title = "Step 1: a random start, both Gaussians over the data points"
    done = f"Converged after {len(run.states) - 1} iterations"
    files = {
        "start": figure_start(run, out / "founding_1_init.png", title),
        "e_step": figure_e_step(run, out / "founding_2_e_step.png"),
        "m_step": figure_m_step(run, out / "founding_3_m_step.png"),
        "end": figure_end(run, reference, data.truth, out / "founding_4_converged.png", done),
        "gif": _animate_logged(run, out / "founding_em.gif", "founding example"),
    }
    return {"run": run, "reference": reference, "files": files, "truth": data.truth}


def poor_start(X: np.ndarray, truth: MixtureParams) -> MixtureParams:
    """Two narrow components inside the leftmost cluster, one wide one straddling the others."""
    mu = np.sort(truth.means[:, 0])
    means = np.array([[mu[0] - 0.5], [mu[0] + 0.5], [(mu[1] + mu[2]) / 2]])
    sds = np.array([0.5, 0.5, (mu[2] - mu[1]) / 2 + 1.0])
    return MixtureParams(np.full(3, 1 / 3), means, (sds**2)[:, None, None])


def local_optimum_story(out: Path) -> dict[str, object]:
    """Part 2: K=3, well separated, a poor start: EM ends in a local optimum."""
    rng = np.random.default_rng(LOCAL_SEED)
    data = generate("gaussian_mixture", rng, n=300, K=3, d=1, separation=4.0)
    LOG.info("part 2, K=3 from a poor start: EM to a local optimum")
    run, reference = (
        iterate_em(data.X, poor_start(data.X, data.truth)),
        iterate_em(data.X, data.truth),
    )
    gap = reference.logliks[-1] - run.logliks[-1]
    title = "A poor start: two components in one cluster"
    stuck = f"Stuck: {gap:.1f} nats below the optimum reached from the truth"
    files = {
        "start": figure_start(run, out / "local_1_init.png", title),
        "end": figure_end(run, reference, data.truth, out / "local_2_stuck.png", stuck),
        "gif": _animate_logged(run, out / "local_optimum_em.gif", "K=3, poor start"),
    }
    return {"run": run, "reference": reference, "files": files, "gap": gap, "truth": data.truth}


# ---- the page ------------------------------------------------------------------------------------
TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("workbench", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def _image(path: Path) -> dict[str, str]:
    """What the template embeds of a PNG or GIF file: its name, stem, kind and base64 bytes."""
    kind = "gif" if path.suffix == ".gif" else "png"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"name": path.name, "stem": path.stem, "kind": kind, "data": data}


def _describe(params: MixtureParams) -> str:
    parts = [
        f"mu{k + 1} = {params.means[k, 0]:.2f}, s{k + 1} = {params.scales()[k, 0]:.2f}, "
        f"w{k + 1} = {params.weights[k]:.2f}"
        for k in range(params.n_components)
    ]
    return "; ".join(parts)


def _fragment(one: dict, two: dict) -> str:
    """The story as HTML (headings, text, embedded images), without the page around it: the
    template ``templates/walkthrough_story.html`` filled with both parts' numbers."""
    run, ref = one["run"], one["reference"]
    first = run.states[0]
    local, local_ref = two["run"], two["reference"]
    founding = {
        "first": _describe(first),
        "responsibilities": ", ".join(f"{r:.2f}" for r in first.responsibilities(run.X)[:, 0]),
        "second": _describe(run.states[1]),
        "iterations": len(run.states) - 1,
        "final": _describe(run.final),
        "loglik": f"{run.logliks[-1]:.4f}",
        "reference_loglik": f"{ref.logliks[-1]:.4f}",
        "truth": _describe(one["truth"]),
        "images": {name: _image(path) for name, path in one["files"].items()},
    }
    stuck = {
        "iterations": len(local.states) - 1,
        "final": _describe(local.final),
        "loglik": f"{local.logliks[-1]:.2f}",
        "gap": f"{two['gap']:.1f}",
        "reference_loglik": f"{local_ref.logliks[-1]:.2f}",
        "images": {name: _image(path) for name, path in two["files"].items()},
    }
    return TEMPLATES.get_template("walkthrough_story.html").render(one=founding, two=stuck)


@dataclass
class Walkthrough:
    """The written walkthrough: its page, and both stories' runs, numbers and files."""

    page: Path
    fragment: str
    founding: dict
    local: dict


def build_walkthrough(out_dir: Path) -> Walkthrough:
    """Run both stories, write their figures and the page ``walkthrough.html`` to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    one, two = founding_story(out_dir), local_optimum_story(out_dir)
    fragment = _fragment(one, two)
    page = out_dir / "walkthrough.html"
    story = Markup(fragment)  # rendered by the story template, which escaped its own text
    page.write_text(TEMPLATES.get_template("walkthrough.html").render(story=story), "utf-8")
    return Walkthrough(page, fragment, one, two)


def walkthrough_fragment(out_dir: Path) -> str:
    """The story as an HTML fragment (for a report section); files go to ``out_dir``."""
    return build_walkthrough(out_dir).fragment


def run_walkthrough(out_dir: Path) -> Path:
    """Write the walkthrough (HTML page, PNG figures, GIF animations) to ``out_dir`` and
    return the path of ``walkthrough.html``."""
    return build_walkthrough(out_dir).page

"""Readability checks of drawn matplotlib figures, shared by the report and study tests.

The rules, checked on a figure after ``fig.canvas.draw()`` (so every text has its final place):

1. **Text elements** are the figure's suptitle and texts, and of every visible axes: its titles
   (left, centre, right), axis labels, visible non-empty tick labels, offset texts and
   annotations/texts; every legend (of an axes or of the figure) is one element, its frame.
2. **No overlap**: the window extents of two text elements intersect by at most ``TOLERANCE``
   pixels in width or height. Tick labels of one axis may not overlap each other either.
3. **On the canvas**: every text element lies inside the figure, within ``TOLERANCE`` pixels;
   a text placed in an axes (``ax.texts``: annotations, reference labels) lies inside its
   panel.
4. **Legends name every labelled series**: each line, collection, patch or container of an
   axes whose label does not start with ``_`` has that label (whitespace normalised, so a
   wrapped legend label counts) among the texts of some legend of the figure.
5. **Several coloured series get a legend**: an axes whose data artists (lines of two or more
   points, collections, containers and patches; each counted once by its single colour, greys
   and black excluded as references) show more than one colour must have its own legend, or
   the figure a figure legend, or every one of those colours must be the colour of a handle in
   some legend of the figure (one legend serving several panels), unless the figure is in
   ``EXEMPT`` with the reason its caption names the colours directly.
6. **Legends outside the data**: a legend drawn inside an axes contains none of that axes' data
   points (line vertices, line-collection segment ends, scatter offsets) in its frame, by more
   than 2 pixels.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import Collection, LineCollection
from matplotlib.colors import to_rgba
from matplotlib.container import Container
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text

TOLERANCE = 1.0  # pixels

# Figures whose colours are named by the caption or the panel titles instead of a legend.
EXEMPT: dict[str, str] = {}


def _text_ok(text: Text) -> bool:
    return text.get_visible() and bool(text.get_text().strip())


def text_elements(fig: Figure) -> list[tuple[str, object]]:
    """(description, artist) of every text element of ``fig`` (rule 1)."""
    out: list[tuple[str, object]] = []
    if fig._suptitle is not None and _text_ok(fig._suptitle):  # noqa: SLF001
        out.append(("suptitle", fig._suptitle))  # noqa: SLF001
    texts = [t for t in fig.texts if t is not fig._suptitle and _text_ok(t)]  # noqa: SLF001
    out += [(f"figure text {t.get_text()!r}", t) for t in texts]
    out += [(f"figure legend {i}", leg) for i, leg in enumerate(fig.legends) if leg.get_visible()]
    for a, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.axison and not ax.get_title():
            continue
        name = f"axes {a}"
        for loc in ("left", "center", "right"):
            title = ax.get_title(loc) and getattr(ax, {"left": "_left_title", "center": "title",
                                                      "right": "_right_title"}[loc])  # fmt: skip
            if title and _text_ok(title):
                out.append((f"{name} title {title.get_text()!r}", title))
        if ax.axison:
            for axis, label in ((ax.xaxis, "x"), (ax.yaxis, "y")):
                if axis.get_visible() and _text_ok(axis.label):
                    out.append((f"{name} {label}label {axis.label.get_text()!r}", axis.label))
                if axis.get_visible() and _text_ok(axis.get_offset_text()):
                    out.append((f"{name} {label} offset", axis.get_offset_text()))
                for tick in _tick_labels(ax, axis):
                    out.append((f"{name} {label}tick {tick.get_text()!r}", tick))
        out += [(f"{name} text {t.get_text()!r}", t) for t in ax.texts if _text_ok(t)]
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            out.append((f"{name} legend", legend))
    return out


def _tick_labels(ax: Axes, axis) -> list[Text]:
    """The tick labels matplotlib draws: visible, non-empty and inside the view interval."""
    if not axis.get_visible():
        return []
    low, high = sorted(axis.get_view_interval())
    span = (high - low) or 1.0
    out = []
    for tick in axis.get_major_ticks() + axis.get_minor_ticks():
        if not tick.get_visible():
            continue
        location = tick.get_loc()
        if location is None or not (low - 1e-9 * span <= location <= high + 1e-9 * span):
            continue
        for label in (tick.label1, tick.label2):
            if _text_ok(label):
                out.append(label)
    return out


def layout_problems(key: str, fig: Figure) -> list[str]:
    """Every violated rule of ``fig`` as one sentence (an empty list: readable)."""
    if not isinstance(fig.canvas, FigureCanvasAgg):  # a closed pyplot figure lost its canvas
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    elements = [(name, artist, artist.get_window_extent(renderer)) for name, artist in
                text_elements(fig)]  # fmt: skip
    canvas = fig.bbox
    for name, _, box in elements:
        if (
            box.x0 < canvas.x0 - TOLERANCE
            or box.y0 < canvas.y0 - TOLERANCE
            or box.x1 > canvas.x1 + TOLERANCE
            or box.y1 > canvas.y1 + TOLERANCE
        ):
            problems.append(f"{key}: {name} leaves the canvas")
    for i, (name_a, _, a) in enumerate(elements):
        for name_b, _, b in elements[i + 1 :]:
            width = min(a.x1, b.x1) - max(a.x0, b.x0)
            height = min(a.y1, b.y1) - max(a.y0, b.y0)
            if width > TOLERANCE and height > TOLERANCE:
                problems.append(f"{key}: {name_a} overlaps {name_b}")
    for a, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        panel = ax.get_window_extent(renderer)
        for text in ax.texts:
            if _text_ok(text) and not _within(text.get_window_extent(renderer), panel):
                problems.append(f"{key}: axes {a} text {text.get_text()!r} runs off its panel")
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            covered = _covered_points(ax, legend.get_window_extent(renderer))
            if covered:
                problems.append(f"{key}: axes {a} legend covers {covered} data point(s)")
    problems += _legend_problems(key, fig)
    return problems


def _within(box, panel) -> bool:
    return (
        box.x0 >= panel.x0 - TOLERANCE
        and box.x1 <= panel.x1 + TOLERANCE
        and box.y0 >= panel.y0 - TOLERANCE
        and box.y1 <= panel.y1 + TOLERANCE
    )


def _covered_points(ax: Axes, box) -> int:
    """How many data points of the axes' lines (vertices) and collections (offsets), in
    display coordinates, fall strictly inside ``box`` (a legend's frame)."""
    count = 0
    for line in ax.lines:
        if line.get_label() == "_nolegend_" and not line.get_visible():
            continue
        xy = np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float)
        count += _inside(line.get_transform().transform(xy), box)
    for collection in ax.collections:
        offsets = np.asarray(collection.get_offsets(), dtype=float)
        if offsets.size and not isinstance(collection, LineCollection):
            count += _inside(collection.get_offset_transform().transform(offsets), box)
        if isinstance(collection, LineCollection) and collection.get_segments():
            vertices = np.concatenate(
                [np.asarray(s, dtype=float) for s in collection.get_segments()]
            )
            count += _inside(collection.get_transform().transform(vertices), box)
    return count


def _inside(points: np.ndarray, box) -> int:
    points = points[np.isfinite(points).all(axis=1)]
    x, y = points[:, 0], points[:, 1]
    pad = 2.0
    hit = (x > box.x0 + pad) & (x < box.x1 - pad) & (y > box.y0 + pad) & (y < box.y1 - pad)
    return int(hit.sum())


def _legend_texts(fig: Figure) -> set[str]:
    legends = [ax.get_legend() for ax in fig.axes] + list(fig.legends)
    return {_norm(t.get_text()) for leg in legends if leg is not None for t in leg.get_texts()}


def _norm(text: str) -> str:
    return " ".join(text.split())


def _series(ax: Axes) -> Iterable[tuple[object, str]]:
    """(artist, label) of the axes' data artists: lines, collections, patches, containers."""
    inside = {id(child) for c in ax.containers for child in _children(c)}
    for artist in [*ax.lines, *ax.collections, *ax.patches]:
        if id(artist) not in inside:
            yield artist, str(artist.get_label())
    for container in ax.containers:
        yield container, str(container.get_label())


def _children(container: Container) -> list:
    out = []
    for child in container:
        if isinstance(child, Container | tuple | list):
            out += _children(child) if isinstance(child, Container) else list(child)
        elif child is not None:
            out.append(child)
    return out


def _colour(artist, handle: bool = False) -> tuple | None:
    """The single colour of a data artist or legend handle (None: several, or not a series)."""
    if isinstance(artist, Container):
        children = _children(artist)
        return _colour(children[0], handle) if children else None
    if isinstance(artist, Line2D):
        points = len(np.atleast_1d(artist.get_xdata()))
        if not handle and points < 2 and artist.get_marker() in ("None", None, ""):
            return None
        colour = artist.get_color()
    elif isinstance(artist, Collection):
        faces = np.atleast_2d(artist.get_facecolor())
        if not len(faces) or not np.any(faces[:, 3] > 0):  # unfilled (line collections)
            faces = artist.get_edgecolor()
        unique = {tuple(np.round(c, 3)) for c in np.atleast_2d(faces)}
        if len(unique) != 1:
            return None
        colour = next(iter(unique))
    elif isinstance(artist, Patch):
        colour = artist.get_facecolor() if artist.get_fill() else artist.get_edgecolor()
    else:
        return None
    r, g, b, _ = to_rgba(colour)
    if max(r, g, b) - min(r, g, b) < 0.05:  # black, greys and white: references, frames
        return None
    return (round(r, 2), round(g, 2), round(b, 2))


def _legend_problems(key: str, fig: Figure) -> list[str]:
    texts = _legend_texts(fig)
    legends = [ax.get_legend() for ax in fig.axes] + list(fig.legends)
    handles = [h for leg in legends if leg is not None for h in leg.legend_handles]
    legend_colours = {c for h in handles if (c := _colour(h, handle=True)) is not None}
    problems = []
    for a, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        colours = set()
        for artist, label in _series(ax):
            if (
                label not in ("", "None")
                and not label.startswith("_")
                and _norm(label) not in texts
            ):
                problems.append(f"{key}: axes {a} series {label!r} is in no legend")
            colour = _colour(artist)
            if colour is not None:
                colours.add(colour)
        has_legend = ax.get_legend() is not None or bool(fig.legends)
        unexplained = colours - legend_colours
        if len(colours) > 1 and not has_legend and unexplained and key not in EXEMPT:
            problems.append(f"{key}: axes {a} draws {len(colours)} coloured series, no legend")
    return problems


def assert_readable(figures: list[tuple[str, Figure, str]]) -> None:
    """Fail with every problem of every figure (``(key, figure, caption)`` triples)."""
    assert figures, "no figure was drawn"
    problems = [p for key, fig, _ in figures for p in layout_problems(key, fig)]
    assert not problems, f"{len(problems)} layout problem(s):\n" + "\n".join(problems)


__all__ = ["EXEMPT", "assert_readable", "layout_problems", "text_elements"]

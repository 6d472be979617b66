"""The self-contained HTML page: sections of text, tables and figures (PNG embedded as base64,
linked to their PNG and PDF files), the config and the provenance of every run.

The markup lives in Jinja2 templates (``templates/``: the page, its parts as macros, the
provenance block and the style sheet), rendered with autoescaping: every text from a store or a
config is escaped; only HTML rendered by the templates themselves (and the walkthrough's
fragment, which escapes its own text) is passed on as safe."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from workbench.report.plotting import Figure
from workbench.report.store_reader import Experiment, ReportData
from workbench.report.text import fmt

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("workbench.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
PARTS = TEMPLATES.get_template("parts.html").module
CSS = files("workbench.report").joinpath("templates", "report.css").read_text(encoding="utf-8")
RUN_COLUMNS = (
    "run_id", "started_at", "ended_at", "outcome", "executor", "workers", "timeout", "cells_run",
    "argv",
)  # fmt: skip


@dataclass
class Section:
    """A report section: a title and its parts in order (rendered HTML or figures)."""

    key: str
    title: str
    parts: list[Markup | Figure] = field(default_factory=list)

    def text(self, text: str, css: str = "") -> None:
        """A paragraph (``css``: its class, e.g. ``finding`` or ``note``)."""
        self.parts.append(PARTS.paragraph(text, css))

    def note(self, text: str) -> None:
        self.text(text, "note")

    def lines(self, texts: list[str], css: str = "note") -> None:
        """One paragraph of several lines."""
        self.parts.append(PARTS.lines(texts, css))

    def heading(self, text: str) -> None:
        """A sub-heading (``<h3>``) within the section."""
        self.parts.append(PARTS.heading(text))

    def table(self, frame: pd.DataFrame, caption: str = "", scroll: bool = False) -> None:
        self.parts.append(table_html(frame, caption, scroll))

    def figures(self, figures: list[Figure]) -> None:
        self.parts.extend(figures)

    def html(self, fragment: Markup) -> None:
        """A fragment of trusted HTML (built by code that escapes its own text)."""
        self.parts.append(Markup(fragment))


def table_html(frame: pd.DataFrame, caption: str = "", scroll: bool = False) -> Markup:
    """A plain HTML table, numbers to 3 significant figures; text columns left-aligned."""
    if frame.empty:
        return PARTS.paragraph(f"{caption or 'table'}: no rows.", "note")
    header = [(str(c), not pd.api.types.is_numeric_dtype(frame[c])) for c in frame.columns]
    rows = [
        [(fmt(v), isinstance(v, str)) for v in values] for values in frame.itertuples(index=False)
    ]
    return PARTS.table(header, rows, caption, scroll)


def figure_html(figure: Figure, page: Path) -> Markup:
    """The figure embedded as a base64 PNG, with links to its PNG and PDF files."""
    return PARTS.figure(
        {
            "key": figure.key,
            "title": figure.title,
            "caption": figure.caption,
            "png_data": base64.b64encode(figure.png.read_bytes()).decode("ascii"),
            "png_href": _relative(figure.png, page),
            "png_name": figure.png.name,
            "pdf_href": _relative(figure.pdf, page),
            "pdf_name": figure.pdf.name,
        }
    )


def _relative(path: Path, page: Path) -> str:
    try:
        return path.resolve().relative_to(page.parent.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_uri()


def provenance_section(data: ReportData, notes: list[str] | None = None) -> Section:
    """Config text, overrides, runs, package versions and platform of every experiment, after
    ``notes`` (e.g. what an overlay of different designs cannot compare) when given."""
    section = Section("provenance", "Config and provenance")
    if notes:
        section.lines(notes)
    for exp in data.experiments:
        if len(data.experiments) > 1:
            section.heading(exp.name)
        section.html(TEMPLATES.get_template("provenance.html").render(**_provenance(exp)))
    return section


def _provenance(exp: Experiment) -> dict[str, Any]:
    """What the provenance template shows of one experiment."""
    meta = pd.DataFrame({"key": list(exp.meta), "value": list(exp.meta.values())})
    meta.loc[len(meta)] = ["directory", str(exp.directory)]
    out: dict[str, Any] = {"meta_table": table_html(meta, "experiment"), "runs_table": None}
    if exp.runs.empty:
        return out
    runs = exp.runs[[c for c in RUN_COLUMNS if c in exp.runs]]
    last = exp.runs.iloc[-1]
    details = []
    for title, key in (("Package versions", "versions"), ("Platform", "platform")):
        values = _json(last.get(key)) or {}
        frame = pd.DataFrame({"name": list(values), "value": [str(v) for v in values.values()]})
        details.append((title, table_html(frame)))
    out.update(
        runs_table=table_html(runs.astype(object), "runs (one per invocation)"),
        config_path=last.get("config_path") or "",
        config_text=last.get("config_text") or "",
        overrides=[str(o) for o in _json(last.get("overrides")) or []],
        detail_tables=details,
        notes=_json(last.get("notes")) or [],
    )
    return out


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def render_page(data: ReportData, sections: list[Section], page: Path) -> str:
    """The whole page: header, contents, then every section."""
    shown = [
        {
            "key": s.key,
            "title": s.title,
            "parts": [figure_html(p, page) if isinstance(p, Figure) else p for p in s.parts],
        }
        for s in sections
    ]
    return TEMPLATES.get_template("page.html").render(
        title=f"Report: {', '.join(e.name for e in data.experiments)}",
        fits=len(data.table),
        directories=[str(e.directory) for e in data.experiments],
        stamp=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        sections=shown,
    )

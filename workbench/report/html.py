"""The self-contained HTML page: sections of text, tables and figures (PNG embedded as base64,
linked to their PNG and PDF files), the config and the provenance of every run."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.report.plotting import Figure
from workbench.report.store_reader import Experiment, ReportData
from workbench.report.text import fmt

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  color: #1d2329; background: #f6f7f9; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #dde3ea;
  padding-bottom: 4px; margin-top: 2em; } h3 { margin-top: 1.4em; }
.meta { color: #5b6570; font-size: 0.92em; }
nav { background: #eef2f6; padding: 10px 16px; border-radius: 6px; font-size: 0.92em; }
nav a { margin-right: 14px; white-space: nowrap; }
table { border-collapse: collapse; font-size: 0.84em; margin: 10px 0 18px; }
th, td { border: 1px solid #d5dbe1; padding: 4px 8px; text-align: right; vertical-align: top; }
th { background: #eef2f6; } td.text, th.text { text-align: left; }
tr:nth-child(even) td { background: #fafbfc; }
figure { margin: 18px 0 28px; } figure img { max-width: 100%; border: 1px solid #e3e7eb; }
figcaption { font-size: 0.9em; color: #39424b; margin-top: 6px; max-width: 1000px; }
pre { background: #f3f5f7; padding: 10px; overflow-x: auto; font-size: 0.85em; }
.note { color: #7a5c00; background: #fff8e1; padding: 6px 10px; border-radius: 4px; }
.finding { background: #eef7ee; padding: 10px 14px; border-left: 4px solid #4c9a4c; }
.scroll { overflow-x: auto; } /* wide tables scroll sideways; the page scrolls down */
"""


@dataclass
class Section:
    """A report section: a title and its parts in order (HTML fragments or figures)."""

    key: str
    title: str
    parts: list[str | Figure] = field(default_factory=list)

    def text(self, text: str, css: str = "") -> None:
        cls = f' class="{css}"' if css else ""
        self.parts.append(f"<p{cls}>{esc(text)}</p>")

    def note(self, text: str) -> None:
        self.text(text, "note")

    def table(self, frame: pd.DataFrame, caption: str = "", scroll: bool = False) -> None:
        self.parts.append(table_html(frame, caption, scroll))

    def figures(self, figures: list[Figure]) -> None:
        self.parts.extend(figures)


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def table_html(frame: pd.DataFrame, caption: str = "", scroll: bool = False) -> str:
    """A plain HTML table; text columns left-aligned."""
    if frame.empty:
        return f'<p class="note">{esc(caption or "table")}: no rows.</p>'
    text = {c: not pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns}
    head = "".join(f'<th class="{"text" if text[c] else ""}">{esc(c)}</th>' for c in frame)
    rows = []
    for values in frame.itertuples(index=False):
        cells = "".join(
            f'<td class="{"text" if isinstance(v, str) else ""}">{esc(fmt(v))}</td>' for v in values
        )
        rows.append(f"<tr>{cells}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    body = f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f'<div class="scroll">{body}</div>' if scroll else body


def figure_html(figure: Figure, page: Path) -> str:
    """The figure embedded as a base64 PNG, with links to its PNG and PDF files."""
    data = base64.b64encode(figure.png.read_bytes()).decode("ascii")
    png = _relative(figure.png, page)
    pdf = _relative(figure.pdf, page)
    return (
        f'<figure id="fig-{esc(figure.key)}" data-figure="{esc(figure.png.name)}">'
        f'<img alt="{esc(figure.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{esc(figure.title)}.</b> {esc(figure.caption)} "
        f'[<a href="{esc(png)}">{esc(figure.png.name)}</a> · '
        f'<a href="{esc(pdf)}">{esc(figure.pdf.name)}</a>]</figcaption></figure>'
    )


def _relative(path: Path, page: Path) -> str:
    try:
        return path.resolve().relative_to(page.parent.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_uri()


def provenance_section(data: ReportData) -> Section:
    """Config text, overrides, runs, package versions and platform of every experiment."""
    section = Section("provenance", "Config and provenance")
    for exp in data.experiments:
        if len(data.experiments) > 1:
            section.parts.append(f"<h3>{esc(exp.name)}</h3>")
        section.parts.append(_provenance(exp))
    return section


def _provenance(exp: Experiment) -> str:
    meta = pd.DataFrame({"key": list(exp.meta), "value": list(exp.meta.values())})
    meta.loc[len(meta)] = ["directory", str(exp.directory)]
    parts = [table_html(meta, "experiment")]
    if exp.runs.empty:
        return parts[0] + '<p class="note">No run recorded.</p>'
    runs = exp.runs[
        [
            c
            for c in (
                "run_id",
                "started_at",
                "ended_at",
                "outcome",
                "executor",
                "workers",
                "timeout",
                "cells_run",
                "argv",
            )
            if c in exp.runs
        ]
    ]
    parts.append(table_html(runs.astype(object), "runs (one per invocation)"))
    last = exp.runs.iloc[-1]
    overrides = _json(last.get("overrides")) or []
    parts.append(f"<h4>Config ({esc(last.get('config_path') or '')})</h4>")
    parts.append(f"<pre>{esc(last.get('config_text') or '')}</pre>")
    if overrides:
        parts.append(f"<p>Overrides: <code>{esc(' '.join(map(str, overrides)))}</code></p>")
    for title, key in (("Package versions", "versions"), ("Platform", "platform")):
        values = _json(last.get(key)) or {}
        frame = pd.DataFrame({"name": list(values), "value": [str(v) for v in values.values()]})
        parts.append(f"<details><summary>{title}</summary>{table_html(frame)}</details>")
    notes = _json(last.get("notes")) or []
    if notes:
        parts.append("<p class='note'>" + "<br>".join(esc(n) for n in notes) + "</p>")
    return "".join(parts)


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def render_page(data: ReportData, sections: list[Section], page: Path) -> str:
    """The whole page: header, contents, then every section."""
    names = ", ".join(e.name for e in data.experiments)
    title = f"Report: {names}"
    toc = " ".join(f'<a href="#{esc(s.key)}">{esc(s.title)}</a>' for s in sections)
    fits = len(data.table)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        f"<h1>{esc(title)}</h1>",
        f'<p class="meta">{fits} fits from {len(data.experiments)} experiment(s): '
        + ", ".join(esc(e.directory) for e in data.experiments)
        + f". Built {stamp} from the results store(s) alone.</p>",
        f"<nav>{toc}</nav>",
    ]
    for section in sections:
        body.append(f'<section id="{esc(section.key)}"><h2>{esc(section.title)}</h2>')
        for part in section.parts:
            body.append(figure_html(part, page) if isinstance(part, Figure) else part)
        body.append("</section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )

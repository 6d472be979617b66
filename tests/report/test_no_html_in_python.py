"""HTML is written by the Jinja2 templates alone: no Python file in ``workbench/`` builds HTML
from strings (docstrings, which may name a tag, aside)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "workbench"
ELEMENTS = (
    "a abbr b body br caption code details div em figcaption figure h1 h2 h3 h4 h5 h6 head hr "
    "html i img li main meta nav ol p pre section small span strong style sub summary sup table "
    "tbody td th thead title tr ul"
).split()
TAG = re.compile(rf"</?({'|'.join(ELEMENTS)})(\s[^<>]*)?/?>|<!DOCTYPE", re.IGNORECASE)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the constant nodes that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(id(value))
    return found


def html_literals(path: Path) -> list[str]:
    """The string literals (and f-string pieces) of ``path`` that hold an HTML tag."""
    tree = ast.parse(path.read_text())
    skip = _docstrings(tree)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if TAG.search(node.value):
                hits.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value[:60]!r}")
    return hits


def test_the_pattern_finds_a_tag_and_not_a_comparison():
    assert TAG.search("<h3>What we found</h3>") and TAG.search('<figure data-file="a.png">')
    assert not TAG.search("x < 3 and y > 2") and not TAG.search("n<K> components")


def test_no_python_file_builds_html_from_strings():
    hits = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in html_literals(path)]
    assert not hits, hits

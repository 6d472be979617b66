"""The data path runs one way, in the README's order, without import cycles: a stage never
imports a later one, and workbench never imports scikit-learn (a test and benchmark reference
only)."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"
README = PACKAGE.parent / "README.md"

# Stage order, the README's data path; a module may import only its own stage and earlier ones.
STAGES = [
    (  # what every stage may use: arrays, densities, matching, Monte Carlo errors, settings
        "workbench.cache",
        "workbench.gaussian",
        "workbench.params",
        "workbench.matching",
        "workbench.theory",
        "workbench.montecarlo",
        "workbench.patterns",
        "workbench.settings",
    ),
    (
        "workbench.experiment.config",
        "workbench.experiment.validate",
        "workbench.experiment.spec",
        "workbench.experiment.grid",
    ),
    ("workbench.experiment.design",),
    ("workbench.data",),
    ("workbench.fitters", "workbench.em", "workbench.bayes", "workbench.baselines"),
    ("workbench.evaluate",),
    (
        "workbench.experiment.runner",
        "workbench.experiment.executors",
        "workbench.experiment.warmup",
    ),
    ("workbench.experiment.store", "workbench.experiment.tables"),
    ("workbench.report", "workbench.walkthrough"),
    ("workbench.experiment.console", "workbench.cli"),
]
# The README's names of the stages after the shared modules, in its data path's order.
README_PATH = [
    "experiment.config",
    "experiment.design",
    "data",
    "fitters",
    "evaluate",
    "experiment.runner",
    "experiment.store",
    "report",
    "cli",
]


def stage_of(module: str) -> int | None:
    for index, prefixes in enumerate(STAGES):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def imports(path: Path) -> set[str]:
    """Every module an import statement of ``path`` names, in functions too."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def module_name(path: Path) -> str:
    module = "workbench." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    return module.removesuffix(".__init__")


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported_modules(path: Path) -> set[str]:
    """The workbench modules ``path`` imports (``from pkg import name`` imports ``pkg.name``
    when that is a module, else ``pkg``), in functions too: a lazy import is an edge."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            targets = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module
                for a in node.names
            ]
        else:
            continue
        out.update(t for t in targets if t in MODULES)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (or a module importing
    itself), each sorted (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_stage_imports_a_later_stage():
    bad = []
    for module, path in MODULES.items():
        own = stage_of(module)
        for name in imports(path):
            other = stage_of(name)
            if own is not None and other is not None and other > own:
                bad.append(f"{module} imports {name}")
    assert not bad, bad


def test_every_module_has_a_stage():
    """Every module but the two package markers sits in a stage, so the order covers it."""
    assert sorted(m for m in MODULES if stage_of(m) is None) == [
        "workbench",
        "workbench.experiment",
    ]


def test_the_readme_draws_the_stages_in_this_order():
    """The README's data path names the stages in the order STAGES checks."""
    text = README.read_text()
    block = text[text.index("experiments/*.toml -> ") :].split("```")[0]
    drawn = [m for m in re.findall(r"[a-z_.]+", block) if m in README_PATH]
    assert drawn == README_PATH, drawn
    staged = [stage_of(f"workbench.{name}") for name in README_PATH]
    assert staged == sorted(staged) and len(set(staged)) == len(staged), staged


def test_the_import_graph_has_no_cycles():
    """No module imports, even inside a function, a module that imports it back (directly or
    through others): a lazy import or a module ``__getattr__`` that hides a cycle counts."""
    graph = {module: imported_modules(path) for module, path in MODULES.items()}
    assert not cycles(graph), cycles(graph)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_em_and_bayes_do_not_import_each_other():
    for path in (PACKAGE / "em").rglob("*.py"):
        assert not any(n.startswith("workbench.bayes") for n in imports(path)), path
    for path in (PACKAGE / "bayes").rglob("*.py"):
        assert not any(n.startswith("workbench.em") for n in imports(path)), path


# The one exception: the MICE baseline imports scikit-learn's IterativeImputer (an optional
# extra, imported when a mice fit runs).
SKLEARN_ALLOWED = {PACKAGE / "baselines.py"}


def test_workbench_never_imports_sklearn():
    for path in PACKAGE.rglob("*.py"):
        if path not in SKLEARN_ALLOWED:
            assert not any(n.split(".")[0] == "sklearn" for n in imports(path)), path


def test_sklearn_only_imported_lazily():
    """The MICE baseline imports scikit-learn inside a function, never at module level."""
    for path in SKLEARN_ALLOWED:
        tree = ast.parse(path.read_text())
        top = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
        top |= {n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(name.split(".")[0] == "sklearn" for name in top), path


def test_report_reads_the_store_only():
    """The report never imports the fitters: it is built from the results store alone."""
    forbidden = ("workbench.em", "workbench.bayes", "workbench.fitters")
    for path in (PACKAGE / "report").rglob("*.py"):
        names = imports(path)
        assert not any(n == f or n.startswith(f + ".") for n in names for f in forbidden), path

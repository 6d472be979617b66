"""The data path runs one way: a stage never imports a later one, and workbench never
imports scikit-learn (a test and benchmark reference only)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "workbench"

# Stage order; a module may import only its own stage and earlier ones.
STAGES = [
    (
        "workbench.cache",
        "workbench.densities",
        "workbench.params",
        "workbench.matching",
        "workbench.population_theory",
        "workbench.montecarlo",
        "workbench.patterns",
    ),
    ("workbench.data",),
    ("workbench.fitters", "workbench.em", "workbench.bayes", "workbench.baselines"),
    ("workbench.evaluate",),
    ("workbench.experiment",),
    ("workbench.report", "workbench.walkthrough"),
    ("workbench.cli",),
]


def stage_of(module: str) -> int | None:
    for index, prefixes in enumerate(STAGES):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_stage_imports_a_later_stage():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        module = "workbench." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        own = stage_of(module)
        for name in imports(path):
            other = stage_of(name)
            if own is not None and other is not None and other > own:
                bad.append(f"{module} imports {name}")
    assert not bad, bad


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

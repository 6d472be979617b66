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
        "workbench.densities",
        "workbench.params",
        "workbench.matching",
        "workbench.population_theory",
        "workbench.montecarlo",
        "workbench.patterns",
        "workbench.settings",
        "workbench.status",
    ),
    (
        "workbench.experiment.config",
        "workbench.experiment.validate",
        "workbench.experiment.spec",
        "workbench.experiment.grid",
    ),
    ("workbench.experiment.design",),
    ("workbench.data",),
    ("workbench.fitter_interface", "workbench.em", "workbench.bayes", "workbench.baselines"),
    ("workbench.evaluate", "workbench.experiment.record"),
    (
        "workbench.experiment.runner",
        "workbench.experiment.executors",
        "workbench.experiment.warmup",
    ),
    ("workbench.experiment.store", "workbench.experiment.tables", "workbench.experiment.summary"),
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
    module = {"fitters": "fitter_interface"}  # the README's name of that stage
    staged = [stage_of(f"workbench.{module.get(name, name)}") for name in README_PATH]
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
    forbidden = ("workbench.em", "workbench.bayes", "workbench.fitter_interface")
    for path in (PACKAGE / "report").rglob("*.py"):
        names = imports(path)
        assert not any(n == f or n.startswith(f + ".") for n in names for f in forbidden), path


# ---- one enum of statuses ------------------------------------------------------------------------
STATUS_MODULE = PACKAGE / "status.py"
# Other libraries' strings that happen to equal one of ours.
FOREIGN_STRINGS = {
    ("experiment/executors.py", "finished"),  # a Dask future's status
    ("experiment/store.py", "ok"),  # SQLite's answer to PRAGMA quick_check
}
METHODS_OF_MEMBERSHIP = {"isin", "eq", "ne", "where"}


def status_enums() -> list[set[str]]:
    """The values of each StrEnum in workbench/status.py (the empty value left out)."""
    from enum import StrEnum

    from workbench import status

    enums = [v for v in vars(status).values() if isinstance(v, type) and issubclass(v, StrEnum)]
    enums = [e for e in enums if e is not StrEnum]
    return [{m.value for m in e if m.value} for e in enums]


def _strings(node: ast.AST) -> list[ast.Constant]:
    """String constants of ``node`` itself or of a tuple/list/set literal it is."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [e for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def status_literals(tree: ast.AST, enums: list[set[str]]) -> list[tuple[int, str]]:
    """(line, value) of every status or verdict name spelt as a string literal where it is used
    as one: an operand of a comparison (==, !=, in, not in), an argument of ``isin``/``eq``/
    ``ne``/``np.where``, a returned value, a ``status=`` keyword, or two or more names of one
    enum in one tuple/list/set/dict-key literal."""
    values = set().union(*enums)
    found: list[ast.Constant] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                found += _strings(operand)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in METHODS_OF_MEMBERSHIP:
                for arg in node.args:
                    found += _strings(arg)
            found += [c for k in node.keywords if k.arg == "status" for c in _strings(k.value)]
        elif isinstance(node, ast.Return) and node.value is not None:
            found += _strings(node.value)
        elif isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            consts = [k for k in items if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            if any(len({c.value for c in consts} & e) >= 2 for e in enums):
                found += consts
    return sorted({(c.lineno, c.value) for c in found if c.value in values})


def test_status_names_are_spelt_only_in_the_status_module():
    """Every status (EM, Bayes, cell, run), degenerate kind and failure kind is an enum member
    of workbench/status.py; no other module compares against, returns or lists the bare string."""
    enums = status_enums()
    assert {"converged", "degenerate", "multimodal", "timeout", "unjudged"} <= set().union(*enums)
    bad = []
    for path in PACKAGE.rglob("*.py"):
        if path != STATUS_MODULE:
            tree = ast.parse(path.read_text())
            name = str(path.relative_to(PACKAGE))
            found = status_literals(tree, enums)
            bad += [f"{name}:{n}: {v!r}" for n, v in found if (name, v) not in FOREIGN_STRINGS]
    assert not bad, bad


def test_the_status_scan_finds_literals():
    """The scan above flags each way a status literal was used before the enum existed."""
    enums = status_enums()
    source = """
if status == "degenerate": pass
ok = table["status"].isin(("converged", "ok"))
def f(): return "multimodal"
r = FitResult(status="error")
KINDS = ("minor", "gross", "below")
colours = {"gross": 1, "minor": 2}
"""
    lines = {line for line, _ in status_literals(ast.parse(source), enums)}
    assert lines == {2, 3, 4, 5, 6, 7}
    clean = 'label = "degenerate (95% CI)"\nkey = "error"\nx = d.get("ok")\n'
    assert status_literals(ast.parse(clean), enums) == []


# ---- the report reads the store through one reader -----------------------------------------------
READER = PACKAGE / "experiment" / "tables.py"
SQL_WORDS = ("SELECT ", "read_sql", ".execute(", "sqlite3")


def calls(tree: ast.AST, name: str) -> list[int]:
    """Lines calling a method or function ``name``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called == name:
                out.append(node.lineno)
    return out


def test_no_report_module_runs_sql():
    """Report sections and studies get DataFrames from the store's one reader
    (workbench/experiment/tables.py); none queries the store itself."""
    bad = []
    for path in (PACKAGE / "report").rglob("*.py"):
        source = path.read_text()
        tree = ast.parse(source)
        bad += [f"{path.name}:{line} calls .query(" for line in calls(tree, "query")]
        bad += [f"{path.name}: {w!r}" for w in SQL_WORDS if w in source]
        bad += [f"{path.name} imports {n}" for n in imports(path) if n.endswith(".store")]
    assert not bad, bad


def test_only_the_store_reader_regenerates_data():
    """The report regenerates a data set in one place, ``store_reader.Experiment.dataset``,
    which checks it against the run's fingerprint; no other report module imports a
    generator."""
    importers = [
        path.name
        for path in (PACKAGE / "report").rglob("*.py")
        if any(n == "workbench.data" or n.startswith("workbench.data.") for n in imports(path))
        and "generate" in path.read_text()
    ]
    assert importers == ["store_reader.py"], importers


JUDGING = {
    "matched_truth_index", "match_components", "matching_cost", "judge", "restart_verdicts",
    "evaluate_fit", "loglik_gap", "signed_errors", "parameter_distance", "cluster_change",
    "recovery_errors", "is_failure",
}  # fmt: skip


def test_the_report_never_judges_or_matches_again():
    """Failure verdicts, gaps and component matchings are computed once, at evaluation, and
    stored; the report reads them and imports none of the functions that compute them."""
    bad = []
    for path in (PACKAGE / "report").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in (
                "workbench.evaluate",
                "workbench.matching",
            ):
                bad += [f"{path.name} imports {a.name}" for a in node.names if a.name in JUDGING]
        bad += [f"{path.name} imports workbench.matching" for n in imports(path)
                if n == "workbench.matching"]  # fmt: skip
    assert not bad, bad

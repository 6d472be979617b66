"""The ``workbench`` command: run, validate, status, export, list and report experiments.

Every user error (bad config, bad override, changed design, missing store) prints one line to
stderr and exits with code 2, with no traceback and nothing written.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import os
import signal
import sqlite3
import sys
import time
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from workbench.experiment.config import derived_name, load_config
from workbench.experiment.console import Progress, print_summary, steps
from workbench.experiment.design import build_design, canonical, design_hash
from workbench.experiment.executors import ExecutorError, make_executor
from workbench.experiment.runner import execute, make_task
from workbench.experiment.spec import ConfigError
from workbench.experiment.store import (
    STORE_FILE,
    DesignMismatch,
    Store,
    StoreError,
    StoreWriteError,
    source_hash,
)
from workbench.experiment.warmup import compile_first
from workbench.settings.experiment import NAME_RE
from workbench.status import FAILED_STATUSES, RunOutcome

# OS errors about a path the user chose (exit 2); any other OS error is the environment's (1).
PATH_ERRNOS = (
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
    errno.ENOENT, errno.ENAMETOOLONG, errno.ELOOP,
)  # fmt: skip


USER_ERRORS = (ConfigError, StoreError, ExecutorError)


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that a run ends as after Ctrl-C."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def experiments_dirs() -> list[Path]:
    """Where shipped experiments live: ./experiments, then the source tree's experiments/."""
    here = Path(__file__).resolve().parents[1] / "experiments"
    return [p for p in (Path.cwd() / "experiments", here) if p.is_dir()]


def resolve_config(name: str) -> Path:
    """A config path, or the name of a shipped experiment (``quickstart``)."""
    path = Path(name)
    if path.exists() or path.suffix == ".toml" or "/" in name:
        return path
    for folder in experiments_dirs():
        if (folder / f"{name}.toml").is_file():
            return folder / f"{name}.toml"
    return path


# ---- commands ------------------------------------------------------------------------------------
def overrides(args: argparse.Namespace, sets: bool = True) -> list[str]:
    """The ``--set`` overrides (unless not ``sets``), plus ``--max-cells`` as
    experiment.max_cells."""
    extra = [] if args.max_cells is None else [f"experiment.max_cells={args.max_cells}"]
    return [*(args.set if sets else []), *extra]


def cmd_run(args: argparse.Namespace) -> int:
    spec = load_config(resolve_config(args.config), overrides(args))
    if args.timeout is not None:
        spec = replace(spec, timeout=args.timeout)
    cells = build_design(spec)
    name = run_name(args, spec, cells)
    directory = Path(args.reports_dir) / name
    if name != spec.name:
        why = "" if args.name else "--set changes the design, so "
        kept = Path(args.reports_dir) / spec.name
        print(f"{why}results go to {directory} ({kept} is left as it is)", file=sys.stderr)
        spec = replace(spec, name=name)
    if not args.fresh:
        Store.check(directory, cells)
    kind = "dask" if args.scheduler else args.executor
    executor = make_executor(kind, args.jobs, args.scheduler, directory / "run.log")
    try:
        store = Store.open_for_run(directory, spec, cells, args.fresh)
        progress = Progress(args_mode(args), directory / "run.log", executor.slots)
    except BaseException:
        executor.close()
        raise
    try:
        run_id = store.start_run(spec, sys.argv, kind, executor.slots)
    except BaseException:
        executor.close()
        progress.close()
        store.close()
        raise
    previous = store.previous_source()
    if previous and previous != source_hash() and store.finished_ids():
        progress.note(
            "note: the workbench source changed since stored cells were computed; "
            "results mix code versions (use --fresh to rerun everything)"
        )
    outcome, counts, t0 = RunOutcome.INTERRUPTED, {}, time.monotonic()
    failure: BaseException | None = None
    saved = _set_signals(_raise_terminated, None)
    task = lambda c: make_task(c, spec.timeout, spec.em_traces, spec.posterior_draws)  # noqa: E731
    try:
        finished = store.finished_ids()
        pending = [c for c in cells if c.cell_id not in finished]
        progress.plan(pending)
        if not args.scheduler:  # a remote cluster has its own caches
            compile_first(pending, task, progress, kind != "serial")
        counts = execute(
            cells,
            finished,
            task,
            executor,
            lambda c, o: store.write(c, o, run_id),
            progress,
            spec.max_consecutive_errors,
            store.n_failed(),
        )
        outcome = RunOutcome.FINISHED
    except KeyboardInterrupt:
        outcome = f"{RunOutcome.INTERRUPTED} (Ctrl-C)"
    except Terminated:
        outcome = f"{RunOutcome.INTERRUPTED} (SIGTERM)"
    except StoreWriteError as err:
        outcome, failure = f"failed: {err}", err
    finally:
        # From here a second Ctrl-C (or SIGTERM) exits at once, quietly; a run it leaves
        # marked running is marked interrupted by the next run.
        _set_signals(_exit_now, _exit_now)
        progress.stop()
        executor.close()
        progress.close()
        totals = _close_run(store, run_id, outcome, sum(counts.values()), progress.notes)
        if outcome == RunOutcome.FINISHED:
            _set_signals(*saved)
        else:  # a further Ctrl-C keeps exiting quietly (130), also while Python exits
            atexit.register(_ignore_signals)
    if failure is not None:
        raise failure
    wall = time.monotonic() - t0
    pending = totals.pop("pending")
    total = totals.pop("total")
    failed = sum(v for k, v in totals.items() if k in FAILED_STATUSES)
    if outcome != RunOutcome.FINISHED:
        print(
            f"{outcome}: {total - pending} of {total} cells stored; "
            "rerun the same command to resume",
            file=sys.stderr,
        )
        return 143 if "SIGTERM" in outcome else 130
    print(
        f"{spec.name}: {total} cells, {total - pending} done ({failed} failed), "
        f"{sum(counts.values())} run now in {wall:.1f} s -> {directory / STORE_FILE}"
    )
    if not args.quiet:
        print_summary(directory)
    if not args.no_report:
        return _report([directory], None, args.quiet)
    return 0


def run_name(args: argparse.Namespace, spec: Any, cells: list) -> str:
    """The experiment folder's name: ``--name``; else, when ``--set`` changes the design, a
    derived name (``quickstart-n500``; with a short hash when that folder holds yet another
    design), so that a variation never touches the stored results of the config itself."""
    if args.name:
        if not NAME_RE.match(args.name):
            raise ConfigError(f"--name {args.name!r}: use letters, digits, '_', '.' or '-'")
        return args.name
    if not args.set or any(o.partition("=")[0].strip() == "experiment.name" for o in args.set):
        return spec.name
    try:
        base = build_design(load_config(resolve_config(args.config), overrides(args, sets=False)))
    except ConfigError:  # the config alone is invalid: the overrides make the design
        base = []
    if base and design_hash(base) == design_hash(cells):
        return spec.name
    name = derived_name(spec.name, args.set)
    if args.fresh:
        return name
    try:
        Store.check(Path(args.reports_dir) / name, cells)
    except DesignMismatch:
        return derived_name(name, [canonical(sorted(args.set))])
    return name


def args_mode(args: argparse.Namespace) -> str:
    return "quiet" if args.quiet else ("rich" if sys.stderr.isatty() else "plain")


def _set_signals(on_term: Any, on_int: Any) -> tuple[Any, Any]:
    """Install SIGTERM and (unless None) SIGINT handlers; returns the previous ones. Outside the
    main thread (where Python allows no handlers) nothing changes."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None, None
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    if on_term is not None:
        signal.signal(signal.SIGTERM, on_term)
    if on_int is not None:
        signal.signal(signal.SIGINT, on_int)
    return previous


def _ignore_signals() -> None:
    """At interpreter exit after an interrupted run: ignore SIGINT and SIGTERM, which Python
    would otherwise turn into a death by signal while it shuts down (exit code -2, not 130)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, signal.SIG_IGN)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def _exit_now(signum: int, frame: Any) -> None:
    print("interrupted again: exiting now; rerun the same command to resume", file=sys.stderr)
    sys.stderr.flush()
    os._exit(130 if signum == signal.SIGINT else 143)


def _close_run(
    store: Store, run_id: int, outcome: str, cells_run: int, notes: list[str]
) -> dict[str, int]:
    """Record the run's end and read the counts; a store that refuses the write (disk full)
    keeps the run marked running, which the next run marks interrupted."""
    try:
        store.end_run(run_id, outcome, cells_run, notes)
    except StoreWriteError as err:
        print(f"warning: {err}", file=sys.stderr)
    try:
        return store.counts()
    except StoreError:
        return {"total": 0, "pending": 0}
    finally:
        store.close()


def write_report(dirs: list[Path], out: Path | None, quiet: bool = False) -> Path:
    """build_report, a line per section on stderr (unless ``quiet``), and an unwritable
    output path as one line naming it."""
    with steps("building the report (figures: matplotlib, ArviZ)", quiet):
        from workbench.report import build_report

        try:
            return build_report(dirs, out)
        except OSError as err:
            where = err.filename or out or dirs[0]
            raise StoreError(f"{where}: cannot write the report ({err.strerror or err})") from None


def cmd_validate(args: argparse.Namespace) -> int:
    spec = load_config(resolve_config(args.config), overrides(args))
    cells = build_design(spec)
    pairs = sum(f.fits(d) for d in spec.data for f in spec.fitters)
    crossed = pairs == len(spec.data) * len(spec.fitters)
    shape = "x" if crossed else f"-> {pairs} (data, fitter) pairs x"
    print(
        f"ok: {spec.path}: {len(spec.data)} data conditions x {len(spec.fitters)} fitter "
        f"conditions {shape} {spec.replicates} replicates = {len(cells)} cells"
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    store = Store.open(Path(args.dir), thorough=True)
    try:
        counts = store.counts()
        last = store.last_run()
    finally:
        store.close()
    total, pending = counts.pop("total"), counts.pop("pending")
    failed = sum(v for k, v in counts.items() if k in FAILED_STATUSES)
    print(f"{args.dir}: {total} cells: {total - pending} done, {failed} failed, {pending} pending")
    if counts:
        print("  by status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if last:
        print(f"  last run: {last[0]} -> {last[1] or '?'} ({last[2]}, {last[3]} x {last[4]})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from workbench.experiment.tables import export_table

    Store.open(Path(args.dir), thorough=True).close()
    for path in export_table(args.dir, args.out):
        print(path)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    seen = set()
    for folder in experiments_dirs():
        for path in sorted(folder.glob("*.toml")):
            if path.name in seen:
                continue
            seen.add(path.name)
            try:
                exp = tomllib.loads(path.read_text()).get("experiment", {})
            except (tomllib.TOMLDecodeError, OSError):
                exp = {}
            print(f"{path.stem:<24} {exp.get('description', '')}  [{path}]")
    if not seen:
        print("no shipped experiments found", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    dirs = [Path(d) for d in args.dirs]
    for directory in dirs:
        Store.open(directory, thorough=True).close()
        print_summary(directory)
    return _report(dirs, Path(args.out) if args.out else None)


def _report(dirs: list[Path], out: Path | None, quiet: bool = False) -> int:
    """Build the report; a section that failed is one line on stderr and exit code 1."""
    from workbench.report import ReportError

    try:
        print(f"report: {write_report(dirs, out, quiet)}")
    except ReportError as err:
        print(f"error: report {err}", file=sys.stderr)
        return 1
    return 0


def cmd_walkthrough(args: argparse.Namespace) -> int:
    from workbench.walkthrough import run_walkthrough  # matplotlib: its own import time

    with steps("the walkthrough: two EM runs, figures and animations"):
        page = run_walkthrough(Path(args.out))
    print(f"walkthrough: {page}")
    return 0


# ---- parser --------------------------------------------------------------------------------------
def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value

    return parse


MAX_CELLS_HELP = "accept a design of up to this many cells (default: experiment.max_cells)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="workbench", description="EM vs Bayes mixture workbench.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    p = sub.add_parser("run", help="run an experiment (resumes an interrupted one)")
    p.add_argument("config", help="a TOML config, or the name of a shipped experiment")
    p.add_argument(
        "-j", "--jobs", type=_positive(int), help="worker processes (default: all cores)"
    )
    p.add_argument("--executor", choices=("serial", "local", "dask"), default="local")
    p.add_argument("--scheduler", help="address of a running Dask scheduler, tcp://host:port")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. data.n=500",
    )
    p.add_argument(
        "--name",
        help="the experiment folder under --reports-dir (default: the config's name; a --set "
        "that changes the design goes to a derived folder, e.g. quickstart-n500)",
    )
    p.add_argument("--fresh", action="store_true", help="discard stored results and start over")
    p.add_argument("--quiet", action="store_true", help="no progress output (for CI)")
    p.add_argument("--timeout", type=_positive(float), help="per-cell timeout in seconds")
    p.add_argument("--reports-dir", default="reports", help="where <name>/ goes (default: reports)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report at the end")
    p.add_argument("--max-cells", type=_positive(int), help=MAX_CELLS_HELP)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("validate", help="check a config without running anything")
    p.add_argument("config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--max-cells", type=_positive(int), help=MAX_CELLS_HELP)
    p.set_defaults(func=cmd_validate)
    for name, func, text in (
        ("status", cmd_status, "counts of done, failed and pending cells"),
        ("export", cmd_export, "write results.csv (and .parquet) - one row per fit"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("dir", help="an experiment's results directory, e.g. reports/quickstart")
        if name == "export":
            p.add_argument("--out", help="output directory (default: DIR)")
        p.set_defaults(func=func)
    p = sub.add_parser("report", help="build the HTML report of one or more experiments")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="results directories (several overlay)")
    p.add_argument("--out", help="the HTML file (default: DIR/report.html)")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("walkthrough", help="the founding document's EM story (HTML, PNG, GIF)")
    p.add_argument("--out", default="reports/walkthrough", help="default: reports/walkthrough")
    p.set_defaults(func=cmd_walkthrough)
    p = sub.add_parser("list", help="the shipped experiments")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. A user error is one line and exit 2, an environmental failure (disk
    full, I/O error) one line and exit 1, an interrupt one line and exit 130; no traceback."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a usage error already printed as one line
        return done.code if isinstance(done.code, int) else 2
    try:
        return int(args.func(args))
    except USER_ERRORS as err:
        return _fail(str(err), 2)
    except StoreWriteError as err:
        return _fail(str(err), 1)
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        code = 2 if err.errno in PATH_ERRNOS else 1
        return _fail(f"{where}{err.strerror or err}", code)
    except sqlite3.DatabaseError as err:
        return _fail(f"results store: {err}", 1)
    except MemoryError:
        return _fail("out of memory (a smaller design, data set or --jobs may fit)", 1)
    except (KeyboardInterrupt, Terminated):
        print("interrupted", file=sys.stderr)
        return 130


def _fail(message: str, code: int) -> int:
    text = message.strip().splitlines()
    print(f"error: {text[0] if text else 'failed'}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

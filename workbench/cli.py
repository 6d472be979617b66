"""The ``workbench`` command: run, validate, status, export, list and report experiments.

Every user error (bad config, bad override, changed design, missing store) prints one line to
stderr and exits with code 2, with no traceback and nothing written.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

from workbench.experiment.config import ConfigError, load_config
from workbench.experiment.design import build_design
from workbench.experiment.executors import ExecutorError, make_executor
from workbench.experiment.runner import FAILED_STATUSES, CellOutcome, execute, make_task
from workbench.experiment.store import STORE_FILE, Store, StoreError, source_hash

USER_ERRORS = (ConfigError, StoreError, ExecutorError)


class UserError(Exception):
    """A command-line mistake reported as one line."""


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


# ---- progress ------------------------------------------------------------------------------------
class Progress:
    """Rich progress bar (a terminal), periodic plain lines (a pipe) or quiet; always a plain
    log of every cell in ``run.log``."""

    def __init__(self, mode: str, log_path: Path) -> None:
        self.mode, self.log = mode, open(log_path, "a", encoding="utf-8")  # noqa: SIM115
        self.bar: Any = None
        self.done = self.failed = self.new = self.total = 0
        self.t0 = self.last = time.monotonic()

    def start(self, total: int, done: int, failed: int) -> None:
        self.total, self.done, self.failed = total, done, failed
        self._log(f"start: {total} cells, {done} already done")
        if self.mode == "rich" and done < total:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self.bar = RichProgress(
                TextColumn("[bold]cells"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("failed [red]{task.fields[failed]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.bar.start()
            self.task = self.bar.add_task("cells", total=total, completed=done, failed=failed)
        elif self.mode != "quiet":
            print(f"running {total - done} of {total} cells ({done} done before)", file=sys.stderr)

    def advance(self, cell: Any, outcome: CellOutcome) -> None:
        self.done += 1
        self.new += 1
        self.failed += outcome.status in FAILED_STATUSES
        extra = f" {outcome.message}" if outcome.message else ""
        self._log(
            f"{outcome.cell_id} {cell.fitter.label} | {cell.data.label} | rep {cell.replicate}: "
            f"{outcome.status} ({outcome.total_time:.2f} s){extra}"
        )
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, failed=self.failed)
        elif self.mode == "plain" and (
            time.monotonic() - self.last > 10 or self.done == self.total
        ):
            self.last = time.monotonic()
            rate = (self.last - self.t0) / self.new
            eta = rate * (self.total - self.done)
            print(
                f"{self.done}/{self.total} cells, {self.failed} failed, ETA {eta:.0f} s",
                file=sys.stderr,
            )

    def note(self, text: str) -> None:
        self._log(text)
        if self.bar is not None:
            self.bar.console.print(text, markup=False)
        else:
            print(text, file=sys.stderr)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def close(self) -> None:
        self.stop()
        self.log.close()

    def _log(self, text: str) -> None:
        self.log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}\n")
        self.log.flush()


# ---- commands ------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    spec = load_config(resolve_config(args.config), args.set)
    if args.timeout is not None:
        spec = replace(spec, timeout=args.timeout)
    cells = build_design(spec)
    directory = Path(args.reports_dir) / spec.name
    if not args.fresh:
        Store.check(directory, cells)
    kind = "dask" if args.scheduler else args.executor
    executor = make_executor(kind, args.jobs, args.scheduler)
    try:
        store = Store.open_for_run(directory, spec, cells, args.fresh)
    except BaseException:
        executor.close()
        raise
    mode = "quiet" if args.quiet else ("rich" if sys.stderr.isatty() else "plain")
    progress = Progress(mode, directory / "run.log")
    run_id = store.start_run(spec, sys.argv, kind, executor.slots)
    notes: list[str] = []
    original_note = progress.note

    def note(text: str) -> None:
        notes.append(text)
        original_note(text)

    progress.note = note  # type: ignore[method-assign]
    previous = store.previous_source()
    if previous and previous != source_hash() and store.finished_ids():
        note(
            "note: the workbench source changed since stored cells were computed; "
            "results mix code versions (use --fresh to rerun everything)"
        )
    outcome, counts, t0 = "interrupted", {}, time.monotonic()
    try:
        counts = execute(
            cells,
            store.finished_ids(),
            lambda c: make_task(c, spec.timeout, spec.em_traces, spec.posterior_draws),
            executor,
            lambda c, o: store.write(c, o, run_id),
            progress,
            spec.max_consecutive_errors,
            store.n_failed(),
        )
        outcome = "finished"
    except KeyboardInterrupt:
        progress.stop()
    finally:
        executor.close()
        progress.close()
        store.end_run(run_id, outcome, sum(counts.values()), notes)
        totals = store.counts()
        store.close()
    wall = time.monotonic() - t0
    pending = totals.pop("pending")
    total = totals.pop("total")
    failed = sum(v for k, v in totals.items() if k in FAILED_STATUSES)
    if outcome == "interrupted":
        print(
            f"interrupted: {total - pending} of {total} cells stored; "
            "rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    print(
        f"{spec.name}: {total} cells, {total - pending} done ({failed} failed), "
        f"{sum(counts.values())} run now in {wall:.1f} s -> {directory / STORE_FILE}"
    )
    if not args.quiet:
        print_summary(directory)
    if not args.no_report:
        return _report([directory], None)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    spec = load_config(resolve_config(args.config), args.set)
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
    store = Store.open(Path(args.dir))
    try:
        counts = store.counts()
        last = store.conn.execute(
            "SELECT started_at, ended_at, outcome, executor, workers FROM runs"
            " ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
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

    Store.open(Path(args.dir)).close()
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


def _fmt(value: Any, se: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:.3g}"
    return (
        text if se is None or (isinstance(se, float) and math.isnan(se)) else f"{text} ± {se:.2g}"
    )


def print_summary(directory: Path) -> None:
    """Failure rate and mean metrics per fitter x data condition, with MC standard errors."""
    from rich.console import Console
    from rich.table import Table

    from workbench.experiment.tables import load_table, summary_table

    summary = summary_table(load_table(directory))
    if summary.empty:
        print("no finished fits yet")
        return
    table = Table(title=f"{directory}: mean ± Monte Carlo standard error over replicates")
    metrics = [c for c in summary.columns if c not in ("fitter", "data", "fits", "errors")]
    metrics = [c for c in metrics if not c.endswith("_se")]
    for column in ("fitter", "data", "fits", "errors", *metrics):
        table.add_column(column, justify="left" if column in ("fitter", "data") else "right")
    for _, row in summary.iterrows():
        cells = [str(row["fitter"]), str(row["data"]), str(row["fits"]), str(row["errors"])]
        cells += [_fmt(row.get(m), row.get(f"{m}_se")) for m in metrics]
        table.add_row(*cells)
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def cmd_report(args: argparse.Namespace) -> int:
    dirs = [Path(d) for d in args.dirs]
    for directory in dirs:
        Store.open(directory).close()
        print_summary(directory)
    return _report(dirs, Path(args.out) if args.out else None)


def _report(dirs: list[Path], out: Path | None) -> int:
    """Build the report; a section that failed is one line on stderr and exit code 1."""
    from workbench.report import ReportError, build_report

    try:
        print(f"report: {build_report(dirs, out)}")
    except ReportError as err:
        print(f"error: report {err}", file=sys.stderr)
        return 1
    return 0


def cmd_walkthrough(args: argparse.Namespace) -> int:
    from workbench.walkthrough import run_walkthrough

    print(f"walkthrough: {run_walkthrough(Path(args.out))}")
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
    p.add_argument("--fresh", action="store_true", help="discard stored results and start over")
    p.add_argument("--quiet", action="store_true", help="no progress output (for CI)")
    p.add_argument("--timeout", type=_positive(float), help="per-cell timeout in seconds")
    p.add_argument("--reports-dir", default="reports", help="where <name>/ goes (default: reports)")
    p.add_argument("--no-report", action="store_true", help="skip the HTML report at the end")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("validate", help="check a config without running anything")
    p.add_argument("config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
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
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

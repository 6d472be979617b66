"""The quickstart's first run, phase by phase: cold caches, then warm, in fresh processes.

Runs ``workbench run experiments/quickstart.toml`` twice in a temporary reports folder: first with
empty compile caches (a fresh ``XDG_CACHE_HOME`` for numba's EM kernels and a fresh PyTensor
``base_compiledir`` for the Bayes model), then again with ``--fresh`` on the now warm caches. From
each run's ``run.log`` it prints the compile phases (EM kernels, Bayes model, in the parent), the
cell phase (first to last cell: the workers' own copy of the Bayes model included) and the
seconds of compilation the cells recorded. Goal (issue 12): the cell phase of the cold run at
most 60 s on a quiet 2-core machine. Also times ``validate``, ``list`` and ``--help`` (goal:
under 1 s each).

    python benchmarks/first_run_phases.py [--jobs 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^(\S+) (.*)$")


def run(args: list[str], env: dict[str, str]) -> float:
    """Seconds of ``python -m workbench.cli ARGS`` (output discarded; failure raises)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - start


def phases(log: Path) -> list[tuple[str, float]]:
    """(name, seconds) of each compile phase and of the cell phase in the last run of ``log``."""
    events = []
    for line in log.read_text().splitlines():
        match = STAMP.match(line)
        if match:
            events.append((datetime.fromisoformat(match[1]), match[2]))
    starts = [i for i, (_, text) in enumerate(events) if text.startswith("phase: ")]
    first = starts[0] if starts else next(i for i, (_, t) in enumerate(events) if "start:" in t)
    events = events[first:]
    out = []
    for _, text in events:
        if text.startswith("phase done: "):
            name, seconds = re.match(r"phase done: (.*) \(([\d.]+) s\)$", text).groups()
            out.append((name, float(seconds)))
    begin = next(t for t, text in events if text.startswith("start:"))
    cells = [t for t, text in events if re.match(r"^[0-9a-f]{20} ", text)]
    out.append(
        ("cell phase (first to last cell, 1 s resolution)", (cells[-1] - begin).total_seconds())
    )
    return out


def recorded_compile(store: Path) -> float:
    """Seconds of compilation the cells recorded (diag compile_time, summed)."""
    with sqlite3.connect(store) as conn:
        row = conn.execute(
            "SELECT SUM(value) FROM diagnostics WHERE name = 'compile_time'"
        ).fetchone()
    return float(row[0] or 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", help="keep the caches and reports in this folder")
    args = parser.parse_args()
    print(__doc__.split("\n\n")[0])
    print(f"load average before: {os.getloadavg()[0]:.2f}, jobs: {args.jobs}")
    base = Path(args.keep or tempfile.mkdtemp(prefix="first_run_"))
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(
        PYTHONPATH=str(ROOT),
        XDG_CACHE_HOME=str(base / "cache"),
        PYTENSOR_FLAGS=f"base_compiledir={base / 'pytensor'}",
    )
    for argv in (["validate", "experiments/quickstart.toml"], ["list"], ["--help"]):
        print(f"workbench {' '.join(argv):<40} {run(argv, env):6.2f} s")
    reports = base / "reports"
    command = ["run", "experiments/quickstart.toml", "--reports-dir", str(reports), "--no-report"]
    command += ["-j", str(args.jobs), "--quiet"]
    for label, extra in (("cold caches", []), ("warm caches", ["--fresh"])):
        total = run([*command, *extra], env)
        print(f"\n{label}: the run command took {total:.1f} s")
        for name, seconds in phases(reports / "quickstart" / "run.log"):
            print(f"  {name:<60} {seconds:6.1f} s")
        store = reports / "quickstart" / "results.sqlite"
        print(f"  {'compile time the cells recorded (workers, summed)':<60} "
              f"{recorded_compile(store):6.1f} s")  # fmt: skip
    print(f"\nload average after: {os.getloadavg()[0]:.2f}; files under {base}")


if __name__ == "__main__":
    main()

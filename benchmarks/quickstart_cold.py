"""Wall time of the README's main command's run step, from a cold reports directory.

Runs ``workbench run experiments/quickstart.toml`` (all cores, report included) in a fresh
temporary reports directory and prints its seconds. It reuses the current virtual environment
(the install step of the README command is not timed) but nothing else: no stored cells, a new
process, so numba and PyTensor load or compile their caches as a user's first run does. The goal
(README): about 2-4 minutes on a quiet 2-core machine including the install. Run::

    python benchmarks/quickstart_cold.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "experiments" / "quickstart.toml"


def main() -> int:
    print(__doc__.split("\n\n")[0])
    print(f"load average before: {os.getloadavg()[0]:.2f}, cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "workbench.cli", "run", str(QUICKSTART), "--quiet"]
        command += ["--reports-dir", str(Path(tmp) / "reports")]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=tmp, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return done.returncode
    print(f"quickstart run + report, cold reports dir: {seconds:.1f} s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

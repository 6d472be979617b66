"""Shared fixtures of the report tests: two tiny stored experiments, made once per session by
the runner's own command (serial executor, in process, so the Bayes cells reuse the model the
Bayes tests compiled: same structure, K=2 in 1-D with ordered means)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # for report_fakes, imported by name by the runner
    sys.path.insert(0, str(HERE))

# 1-D, two separations, EM with two inits and a short NUTS run, paired on the same data sets.
SEPARATION = """
[experiment]
name = "tiny_separation"
replicates = 3
seed = 11

[data]
generator = "gaussian_mixture"
n = 150
K = 2
d = 1
separation = [2.0, 4.0]

[fitters.em]
method = "em"
init = ["random_params", "kmeans++"]
n_restarts = 3
interval_level = 0.9

[fitters.bayes]
method = "bayes"
chains = 2
draws = 200
tune = 200
cores = 1
"""

# 2-D, K=3, two sample sizes, EM only, single starts: local optima happen.
SIZES = """
[experiment]
name = "tiny_sizes"
replicates = 4
seed = 5

[data]
generator = "gaussian_mixture"
n = [80, 200]
K = 3
d = 2
separation = 3.0

[fitters.em]
method = "em"
init = ["random_params", "kmeans++"]
n_restarts = 1

[report]
sections = ["summary", "failure_rates", "traces", "convergence", "densities", "failures",
            "findings"]
"""


# A second experiment over n, to overlay with the first; its second fitter always errors.
SIZES_AGAIN = (
    SIZES.replace('name = "tiny_sizes"', 'name = "tiny_sizes_again"')
    .replace("seed = 5", "seed = 6")
    .replace("replicates = 4", "replicates = 2")
    .replace('init = ["random_params", "kmeans++"]', 'init = "small_em"')
    .replace("[report]", '[fitters.broken]\nmethod = "broken"\n\n[report]')
)

# A design the others lack: two data blocks that differ in the weights setting, EM only.
# Overlaid with tiny_sizes, whose rows have no weights value, figures against weights must
# leave those out.
WEIGHTS = """
[experiment]
name = "tiny_weights"
replicates = 2
seed = 9

[[data]]
generator = "gaussian_mixture"
n = 100
K = 2
d = 1
separation = 3.0
weights = "equal"

[[data]]
generator = "gaussian_mixture"
n = 100
K = 2
d = 1
separation = 3.0
weights = [0.3, 0.7]

[fitters.em]
method = "em"
init = "kmeans++"
n_restarts = 2
"""

# Nothing but errors: the report must still build, with its failures table.
BROKEN = """
[experiment]
name = "tiny_broken"
replicates = 2
seed = 3

[data]
generator = "gaussian_mixture"
n = 50
K = 2
d = 1
separation = 3.0

[fitters.broken]
method = "broken"
"""


def run_experiment(config: Path, reports: Path) -> Path:
    from workbench.cli import main

    code = main(
        ["run", str(config), "--executor", "serial", "--quiet", "--reports-dir", str(reports)]
    )
    assert code == 0
    return reports / config.stem


@pytest.fixture(scope="session")
def stored(tmp_path_factory) -> dict[str, Path]:
    """Directories of the two stored experiments, keyed by name."""
    import report_fakes

    from workbench.settings import fitters

    root = tmp_path_factory.mktemp("report_store")
    out = {}
    experiments = (
        ("tiny_separation", SEPARATION),
        ("tiny_sizes", SIZES),
        ("tiny_sizes_again", SIZES_AGAIN),
        ("tiny_broken", BROKEN),
        ("tiny_weights", WEIGHTS),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(fitters.FITTERS, "broken", report_fakes.BROKEN)
        for name, text in experiments:
            config = root / f"{name}.toml"
            config.write_text(text)
            out[name] = run_experiment(config, root / "reports")
    return out


@pytest.fixture(scope="session")
def separation_report(stored) -> Path:
    """The report of the EM + Bayes experiment, built once."""
    from workbench.report import build_report

    return build_report([stored["tiny_separation"]])

"""The declared settings (workbench.settings): a config is checked against them alone, before
any data or fitter exists, and every bad value is one line naming the key, the value and, from
a config, the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.data.registry import generate, register_generator
from workbench.em.fitter import EMFitter
from workbench.experiment.config import parse_config
from workbench.experiment.spec import ConfigError
from workbench.settings.base import build
from workbench.settings.data import DATA_SETTINGS
from workbench.settings.fitters import FITTER_SETTINGS, BayesOptions, EMOptions, MiceOptions

ROOT = Path(__file__).resolve().parents[2]

BASE = """
[experiment]
name = "s"
replicates = 1
seed = 1

[data]
generator = "gaussian_mixture"
n = 100
K = 2

[fitters.em]
method = "em"
"""

# What reading and validating every shipped config must not load: the generators, the fitters,
# the evaluation and their libraries.
HEAVY = (
    "workbench.data",
    "workbench.em",
    "workbench.bayes",
    "workbench.fitter_interface",
    "workbench.baselines",
    "workbench.evaluate",
    "numba",
    "pymc",
    "pytensor",
    "arviz",
    "scipy",
)


def test_config_validation_imports_no_generator_and_no_fitter():
    """Validating every shipped experiment loads the settings alone (it used to import the
    generators and fitters and trial-run them)."""
    script = (
        "import sys; from pathlib import Path\n"
        "from workbench.experiment.config import load_config\n"
        f"paths = sorted(Path({str(ROOT / 'experiments')!r}).glob('*.toml'))\n"
        "assert paths\n"
        "for p in paths: load_config(p)\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {h.split('.')[0] for h in heavy}"
        " and any(m == h or m.startswith(h + '.') for h in heavy)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


# (case, (a line of BASE, the line to add after it[, the method]), fragments of the error)
CONFIG_CASES = [
    ("em_interval_level", ("[fitters.em]", "interval_level = 1.5"),
     ["fitters.em.interval_level = 1.5", "strictly between 0 and 1"]),
    ("em_symmetric_means_k3", ("[fitters.em]", "symmetric_means = true\nn_components = 3"),
     ["fitters.em", "symmetric_means=True", "n_components=2"]),
    ("em_select_k_float", ("[fitters.em]", "select_k = [2, 2.5]"),
     ["fitters.em.select_k = [2, 2.5]"]),
    ("em_prior_key", ("[fitters.em]", "prior = { shrink = 1.0 }"), ["fitters.em", "prior="]),
    ("bayes_chains_bool", ("[fitters.em]", "chains = true", "bayes"),
     ["fitters.em.chains = true", "must be int"]),
    ("data_placement", ("[data]", 'placement = "grid"'),
     ['data.placement = "grid"', "expected one of compact, random_box"]),
    ("data_wrong_k_fit", ("[data]", "K_fit = 3"), ["data.K_fit = 3", "unknown setting"]),
    ("data_dirichlet_alpha", ("[data]", "dirichlet_alpha = 0.0"), ["data.dirichlet_alpha = 0.0"]),
    ("data_variances_shape", ("[data]", "variances = [1.0, 2.0, 3.0]"),
     ["data: variances=[1.0, 2.0, 3.0]", "expected 2 variances"]),
    ("data_max_variance_below_min", ("[data]", "max_variance = 0.1"),
     ["data.max_variance = 0.1", "min_variance"]),
    ("experiment_timeout_text", ("[experiment]", 'timeout = "1h"'),
     ['experiment.timeout = "1h"', "seconds"]),
    ("store_traces_value", ('method = "em"', '\n[store]\nem_traces = "some"'),
     ['store.em_traces = "some"', "expected one of all, best, none"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "fragments"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES]
)
def test_config_errors_are_one_line_at_the_key(edit, fragments):
    table, line, *method = edit
    text = BASE.replace(table, f"{table}\n{line}", 1)
    if method:
        text = text.replace('method = "em"', f'method = "{method[0]}"')
    with pytest.raises(ConfigError) as err:
        parse_config(text, "s.toml")
    message = str(err.value)
    assert "\n" not in message and message.startswith("s.toml: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# (case, call, fragments): the Python API's words, key=value: why
API_CASES = [
    ("em_interval_level", lambda: EMFitter(interval_level=2.0),
     ["interval_level=2.0: must be a number strictly between 0 and 1"]),
    ("em_symmetric_means", lambda: EMFitter(symmetric_means=True, select_k=[2, 3]),
     ["symmetric_means=True: needs n_components=2, not 3"]),
    ("em_unknown", lambda: EMFitter(n_restart=3), ["n_restart=3: unknown setting for method 'em'"]),
    ("em_bool_text", lambda: EMFitter(reference="yes"), ["reference='yes': must be bool"]),
    ("bayes_cores", lambda: build(BayesOptions, {"cores": 0}), ["cores=0: must be an integer"]),
    ("mice_m", lambda: build(MiceOptions, {"m": 1}), ["m=1: must be an integer >= 2"]),
    ("gaussian_overflow", lambda: generate("gaussian_mixture", np.random.default_rng(0),
     max_variance=1e250), ["max_variance=1e+250", "overflows float64", "rescale"]),
    ("wrong_k_fit_above_n", lambda: generate("wrong_k", np.random.default_rng(0), n=5, K_fit=6),
     ["K_fit=6: more components than points (n = 5)"]),
    ("founding_weight", lambda: generate("founding", np.random.default_rng(0), weight1=0.0),
     ["weight1=0.0: must be a number strictly between 0 and 1"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "fragments"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES]
)
def test_python_errors_are_one_line_naming_the_key(call, fragments):
    with pytest.raises(ValueError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_every_model_builds_with_its_defaults():
    """Every declared default satisfies its own model (no default a check would refuse)."""
    for model in (*DATA_SETTINGS.values(), *FITTER_SETTINGS.values()):
        assert model.model_validate({}) is not None, model
    assert EMFitter().model_dump() == EMOptions().model_dump()


def test_a_generator_registered_by_signature_is_checked_by_its_settings():
    def counts(rng, *, n: int = 10, rate: float = 2.0):
        from workbench.data.dataset import Dataset
        from workbench.params import MixtureParams

        X = rng.poisson(rate, size=(n, 1)).astype(float)
        truth = MixtureParams(np.ones(1), np.array([[rate]]), np.array([rate]), "spherical")
        return Dataset(X, np.zeros(n, int), truth, 1, {"generator": "counts_test"})

    register_generator("counts_test", counts)
    try:
        assert generate("counts_test", np.random.default_rng(0), n=7).n == 7
        with pytest.raises(ValueError, match=r"^rate='x': must be float"):
            generate("counts_test", np.random.default_rng(0), rate="x")
        text = BASE.replace('generator = "gaussian_mixture"\nn = 100\nK = 2', (
            'generator = "counts_test"\nn = 20\nrat = 1.0'))  # fmt: skip
        with pytest.raises(ConfigError, match=r"data\.rat = 1\.0: unknown setting for generator"):
            parse_config(text, "s.toml")
    finally:
        register_generator("counts_test", None)
    assert "counts_test" not in DATA_SETTINGS


def test_declared_names_are_the_implementations():
    """The choices a settings model declares are the ones the code implements."""
    from typing import get_args

    from workbench.em.covariance import COVARIANCE_TYPES
    from workbench.em.init import INITS
    from workbench.settings.fitters import INIT_NAMES

    assert get_args(EMOptions.model_fields["covariance_type"].annotation) == COVARIANCE_TYPES
    assert (*INITS, "truth") == INIT_NAMES


def test_list_valued_settings_come_from_the_declarations():
    """A bare list is one value where the declared setting is list-valued (Bayes' fixed
    weights, EM's select_k), a grid axis elsewhere."""
    text = BASE.replace('method = "em"', 'method = "bayes"\nfixed_weights = [0.4, 0.6]')
    assert [f.settings for f in parse_config(text).fitters] == [{"fixed_weights": [0.4, 0.6]}]
    text = BASE.replace('method = "em"', 'method = "em"\nselect_k = [1, 2]\ntol = [1e-6, 1e-8]')
    assert [f.settings for f in parse_config(text).fitters] == [
        {"select_k": [1, 2], "tol": 1e-6},
        {"select_k": [1, 2], "tol": 1e-8},
    ]


def test_numpy_scalars_are_accepted_as_the_numbers_they_hold():
    """Strict types, but numpy code passes numpy scalars: np.int64(3) is an integer setting,
    also as a fit's n_components (the checks the schema replaced accepted them)."""
    fitter = EMFitter(n_restarts=np.int64(3), tol=np.float64(1e-6), select_k=[np.int64(2), 3])
    assert fitter.n_restarts == 3 and type(fitter.n_restarts) is int
    assert EMFitter(select_k=(2, 3)).select_k == [2, 3]
    X = np.random.default_rng(0).normal(size=(100, 1))
    fit = EMFitter().fit_array(X, np.random.default_rng(0), n_components=np.int64(2))
    assert fit.params.n_components == 2


def test_a_list_setting_is_described_in_words():
    with pytest.raises(ValueError, match=r"^select_k=\[1.5, 2\]: must be a list of int \| none$"):
        EMFitter(select_k=[1.5, 2])

"""Missing-value masks on any generator (issue 14): fractions, MAR/MNAR dependence, excluded
rows, unchanged data without ``missing``, one-line errors, and the config path.

Fractions are checked to 5 binomial standard errors, sqrt(p (1 - p) / N) over N coordinates.
"""

import numpy as np
import pytest

from workbench.data import GENERATORS, generate
from workbench.data.missing import calibrated_probabilities
from workbench.experiment.config import parse_config
from workbench.experiment.design import build_design
from workbench.experiment.spec import ConfigError


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def drawn_mask(ds) -> np.ndarray:
    """Missing indicators of every drawn coordinate, the excluded rows counted as missing."""
    return np.concatenate([ds.mask.ravel(), np.ones(ds.n_rows_excluded * ds.d, bool)])


def within_binomial(observed: float, p: float, count: int) -> bool:
    return abs(observed - p) <= 5 * np.sqrt(p * (1 - p) / count)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.6])
def test_mcar_fraction_and_independence(fraction):
    ds = generate("gaussian_mixture", rng(1), n=3000, K=2, d=3, missing={"mechanism": "mcar",
                  "fraction": fraction})  # fmt: skip
    drawn = drawn_mask(ds)
    assert within_binomial(drawn.mean(), fraction, drawn.size)
    assert ds.info["missing"]["fraction_drawn"] == pytest.approx(drawn.mean())
    # independent of the values: the rate is the same below and above each feature's median
    for j in range(3):
        low = ds.X_complete[:, j] < np.median(ds.X_complete[:, j])
        a, b = ds.mask[low, (j + 1) % 3].mean(), ds.mask[~low, (j + 1) % 3].mean()
        assert abs(a - b) < 5 * np.sqrt(2 * fraction * (1 - fraction) / (ds.n / 2))


def test_mask_x_and_complete_values_agree():
    ds = generate("student_t", rng(2), n=500, K=3, d=4, missing={"mechanism": "mcar",
                  "fraction": 0.4})  # fmt: skip
    assert ds.mask.dtype == bool and ds.mask.shape == ds.X.shape == ds.X_complete.shape
    np.testing.assert_array_equal(np.isnan(ds.X), ds.mask)
    np.testing.assert_array_equal(ds.X[~ds.mask], ds.X_complete[~ds.mask])
    assert np.all(np.isfinite(ds.X_complete)) and ds.labels.shape == (ds.n,)
    assert ds.has_missing
    # the complete values are the generator's own data, excluded rows removed, order kept
    full = generate("student_t", rng(2), n=500, K=3, d=4)
    rows = np.flatnonzero(np.isin(full.X[:, 0], ds.X_complete[:, 0]))
    assert ds.n + ds.n_rows_excluded == 500 == len(rows) + ds.n_rows_excluded
    np.testing.assert_array_equal(full.X[rows], ds.X_complete)
    np.testing.assert_array_equal(full.labels[rows], ds.labels)


def test_all_missing_rows_excluded_and_counted():
    # d = 1 MCAR: a row is excluded exactly when its only value is missing
    ds = generate("gaussian_mixture", rng(3), n=2000, K=2, d=1, missing={"mechanism": "mcar",
                  "fraction": 0.3})  # fmt: skip
    assert not ds.mask.any() and not np.isnan(ds.X).any()
    assert ds.n_rows_excluded == 2000 - ds.n == ds.info["missing"]["rows_excluded"]
    assert within_binomial(ds.n_rows_excluded / 2000, 0.3, 2000)
    # d = 2: excluded rows are the both-missing ones, about fraction^2 of them
    ds = generate("gaussian_mixture", rng(4), n=4000, K=2, d=2, missing={"mechanism": "mcar",
                  "fraction": 0.5})  # fmt: skip
    assert not ds.mask.all(axis=1).any()
    assert within_binomial(ds.n_rows_excluded / 4000, 0.25, 4000)


def test_mar_depends_on_observed_feature_0():
    ds = generate("gaussian_mixture", rng(5), n=4000, K=2, d=3, missing={"mechanism": "mar",
                  "fraction": 0.3})  # fmt: skip
    assert not ds.mask[:, 0].any() and ds.n_rows_excluded == 0
    others = ds.mask[:, 1:]
    assert within_binomial(others.mean(), 0.3, others.size)
    x0 = ds.X[:, 0]  # always observed
    low, high = x0 < np.quantile(x0, 0.25), x0 > np.quantile(x0, 0.75)
    assert others[high].mean() > others[low].mean() + 0.3
    # given x_0, feature 1's own value does not matter (MAR): compare within x_0 bins
    bins = np.digitize(x0, np.quantile(x0, [0.2, 0.4, 0.6, 0.8]))
    diffs = []
    for b in range(5):
        rows = bins == b
        own = ds.X_complete[rows, 1] > np.median(ds.X_complete[rows, 1])
        diffs.append(ds.mask[rows, 1][own].mean() - ds.mask[rows, 1][~own].mean())
    assert abs(np.mean(diffs)) < 0.05


def test_mnar_depends_on_own_value():
    ds = generate("gaussian_mixture", rng(6), n=4000, K=2, d=2, separation=0.5,
                  missing={"mechanism": "mnar", "fraction": 0.3})  # fmt: skip
    drawn = drawn_mask(ds)
    assert within_binomial(drawn.mean(), 0.3, drawn.size)
    for j in range(2):
        own = ds.X_complete[:, j]
        high = own > np.median(own)
        assert ds.mask[high, j].mean() > ds.mask[~high, j].mean() + 0.2
    # negative strength reverses the direction
    rev = generate("gaussian_mixture", rng(6), n=4000, K=2, d=2, separation=0.5,
                   missing={"mechanism": "mnar", "fraction": 0.3, "strength": -2.0})  # fmt: skip
    own = rev.X_complete[:, 0]
    assert rev.mask[own > np.median(own), 0].mean() < rev.mask[own <= np.median(own), 0].mean()


def test_calibration_hits_the_fraction_exactly():
    score = rng(7).standard_normal(1000)
    for fraction, strength in [(0.05, 3.0), (0.3, 2.0), (0.9, -1.0), (0.5, 0.0)]:
        p = calibrated_probabilities(score, fraction, strength)
        assert p.mean() == pytest.approx(fraction, abs=1e-9)
        assert np.all(np.diff(p[np.argsort(score)]) * np.sign(strength) >= 0)
    assert not calibrated_probabilities(score, 0.0, 2.0).any()


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_data_unchanged_without_missing(name):
    """No ``missing``: the same numbers as before (no extra draw); ``missing = None`` too."""
    extra = {} if name == "founding" else {"d": 2}
    a = GENERATORS[name](rng(8), **extra)
    b = generate(name, rng(8), **extra)
    c = generate(name, rng(8), missing=None, **extra)
    for ds in (b, c):
        np.testing.assert_array_equal(a.X, ds.X)
        assert ds.mask is None and ds.X_complete is None and ds.n_rows_excluded == 0
        assert "missing" not in ds.info and not ds.has_missing
    # the mask draws after the data: the complete values equal the unmasked data set's
    m = generate(name, rng(8), missing={"mechanism": "mcar", "fraction": 0.2}, **extra)
    keep = np.isin(a.X[:, 0], m.X_complete[:, 0])
    np.testing.assert_array_equal(a.X[keep], m.X_complete)


def test_deterministic_given_rng():
    kw = {"n": 300, "K": 2, "d": 3, "missing": {"mechanism": "mnar", "fraction": 0.4}}
    a, b = generate("skew_normal", rng(9), **kw), generate("skew_normal", rng(9), **kw)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.X, b.X)


BAD = [
    ({"mechanism": "mcra", "fraction": 0.3}, r"^missing\.mechanism='mcra': expected one of"),
    ({"mechanism": "mcar", "fraction": 1.0}, r"^missing\.fraction=1\.0: must be a number in"),
    ({"mechanism": "mcar", "fraction": -0.1}, r"^missing\.fraction=-0\.1: must be"),
    ({"mechanism": "mcar", "fraction": "x"}, r"^missing\.fraction='x': must be"),
    ({"mechanism": "mcar"}, r"^missing\.fraction: required"),
    ({"fraction": 0.2}, r"^missing\.mechanism: required"),
    ({"mechanism": "mar", "fraction": 0.2, "strenght": 1}, r"^missing\.strenght=1: unknown key"),
    ({"mechanism": "mnar", "fraction": 0.2, "strength": float("inf")}, r"^missing\.strength="),
    ("mcar", r"^missing='mcar': must be a table"),
]


@pytest.mark.parametrize("missing,message", BAD)
def test_bad_settings_one_line(missing, message):
    with pytest.raises(ValueError, match=message) as err:
        generate("gaussian_mixture", rng(), d=2, missing=missing)
    assert "\n" not in str(err.value)


def test_mar_needs_two_dimensions():
    with pytest.raises(ValueError, match=r"^missing\.mechanism='mar': needs d >= 2") as err:
        generate("gaussian_mixture", rng(), d=1, missing={"mechanism": "mar", "fraction": 0.2})
    assert "\n" not in str(err.value)


# ---- the config path -----------------------------------------------------------------------------
CONFIG = """
[experiment]
name = "m"
replicates = 2
seed = 1

[data]
generator = "gaussian_mixture"
n = 100
K = 2
d = 2
{missing}

[fitters.cc]
method = "{method}"
"""


def spec(missing: str, method: str = "complete_case"):
    return parse_config(CONFIG.format(missing=missing, method=method), "m.toml")


def test_config_grids_inside_the_missing_table():
    s = spec('missing = { mechanism = ["mcar", "mnar"], fraction = [0.1, 0.3, 0.5] }')
    assert len(s.data) == 6
    settings = [c.settings["missing"] for c in s.data]
    assert {(m["mechanism"], m["fraction"]) for m in settings} == {
        (a, b) for a in ("mcar", "mnar") for b in (0.1, 0.3, 0.5)
    }
    assert all("missing.fraction=" in c.label for c in s.data)
    text = CONFIG.format(
        missing='missing = { mechanism = "mcar", fraction = [0.1, 0.3] }\n'
        'zip = [["missing.fraction", "n"]]',
        method="complete_case",
    ).replace("n = 100", "n = [100, 200]")
    zipped = parse_config(text, "m.toml").data
    assert [(c.settings["n"], c.settings["missing"]["fraction"]) for c in zipped] == [
        (100, 0.1),
        (200, 0.3),
    ]
    one = spec('missing = { grid = [{ mechanism = "mcar", fraction = 0.1 }, '
               '{ mechanism = "mar", fraction = 0.2 }] }')  # fmt: skip
    assert [c.settings["missing"]["mechanism"] for c in one.data] == ["mcar", "mar"]


def test_config_seeds_of_plain_blocks_unchanged():
    """A block without ``missing`` keeps its identity, so its seeds and cell ids."""
    plain = build_design(spec(""))
    assert all("missing" not in c.data.settings for c in plain)
    masked = build_design(spec('missing = { mechanism = "mcar", fraction = 0.2 }'))
    assert {c.data_id for c in plain}.isdisjoint({c.data_id for c in masked})


@pytest.mark.parametrize(
    "missing,key",
    [
        ('missing = { mechanism = "mcra", fraction = 0.2 }', "missing.mechanism='mcra'"),
        ('missing = { mechanism = "mcar", fraction = 1.5 }', "missing.fraction=1.5"),
        ('missing = { mechanism = "mar", fraction = 0.2 }\nd = 1', "missing.mechanism='mar'"),
        ('missing = "mcar"', "data.missing"),
    ],
)
def test_config_errors_name_the_key(missing, key):
    text = CONFIG.format(missing=missing, method="complete_case")
    if "d = 1" in missing:
        text = text.replace("d = 2\n", "")
    with pytest.raises(ConfigError) as err:
        parse_config(text, "m.toml")
    assert key in str(err.value) and "m.toml" in str(err.value) and "\n" not in str(err.value)


def test_config_refuses_methods_without_missing_data_support():
    """The generic model fitter (em_model) does not take missing values; the Gaussian EM
    fitter does (exact EM for incomplete data)."""
    with pytest.raises(ConfigError, match=r"fitters\.cc\.method = \"em_model\": cannot fit "
                       r"data with missing values") as err:  # fmt: skip
        spec('missing = { mechanism = "mcar", fraction = 0.2 }', method="em_model")
    assert "\n" not in str(err.value)
    assert len(spec("", method="em_model").data) == 1  # complete data: as before
    assert len(spec('missing = { mechanism = "mcar", fraction = 0.2 }', method="em").data) == 1


def test_cli_validate_exits_2(tmp_path, capsys):
    from workbench.cli import main

    path = tmp_path / "m.toml"
    path.write_text(CONFIG.format(missing='missing = { mechanism = "xx", fraction = 0.2 }',
                                  method="mean_impute"))  # fmt: skip
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.mechanism='xx'" in err[0]


def test_baselines_get_the_em_kernel_phase():
    """The baselines run EM's compiled kernels: the run compiles them up front as for EM."""
    from workbench.experiment.warmup import compile_phases

    for method in ("complete_case", "mean_impute", "mice"):
        cells = build_design(spec('missing = { mechanism = "mcar", fraction = 0.2 }', method))
        phases = compile_phases(cells, lambda cell: None)
        assert len(phases) == 1 and "EM kernels" in phases[0].label

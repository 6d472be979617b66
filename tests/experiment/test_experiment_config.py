"""Config parsing and validation: every bad config is one line naming file, key and value,
exit code 2, and nothing written; grids (cartesian, zipped, {grid}/{value}) and overrides."""

from __future__ import annotations

import pytest

from workbench.cli import main
from workbench.experiment.config import (
    apply_overrides,
    load_config,
    parse_config,
    parse_override,
)
from workbench.experiment.grid import expand_grid
from workbench.experiment.spec import ConfigError

BASE = """
[experiment]
name = "bad"
replicates = 2
seed = 1

[data]
generator = "gaussian_mixture"
n = 100
K = 2
separation = 2.0

[fitters.em]
method = "em"
init = "kmeans++"
"""


def edit(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new)


# (id, config text, overrides, fragments the one-line message must contain)
BAD = [
    ("not_toml", "[experiment\nname = 1", [], ["not valid TOML"]),
    ("unknown_section", BASE + "\n[dataa]\nn = 1\n", [], ["dataa", "unknown section"]),
    (
        "unknown_experiment_key",
        edit("seed = 1", "seed = 1\nreplicate = 3"),
        [],
        ["experiment.replicate = 3"],
    ),
    ("missing_name", edit('name = "bad"\n', ""), [], ["experiment.name: missing"]),
    ("name_type", edit('name = "bad"', "name = 5"), [], ["experiment.name = 5"]),
    ("name_chars", edit('name = "bad"', 'name = "a/b"'), [], ['experiment.name = "a/b"']),
    (
        "replicates_zero",
        edit("replicates = 2", "replicates = 0"),
        [],
        ["experiment.replicates = 0"],
    ),
    ("seed_negative", edit("seed = 1", "seed = -1"), [], ["experiment.seed = -1"]),
    ("seed_float", edit("seed = 1", "seed = 1.5"), [], ["experiment.seed = 1.5"]),
    (
        "timeout_negative",
        edit("seed = 1", "seed = 1\ntimeout = -5"),
        [],
        ["experiment.timeout = -5"],
    ),
    (
        "missing_generator",
        edit('generator = "gaussian_mixture"\n', ""),
        [],
        ["data.generator: missing"],
    ),
    (
        "unknown_generator",
        edit('"gaussian_mixture"', '"gausian"'),
        [],
        ['data.generator = "gausian"', "unknown generator"],
    ),
    (
        "unknown_data_key",
        edit("separation = 2.0", "sepration = 2.0"),
        [],
        ["data.sepration = 2.0", "unknown setting"],
    ),
    ("n_zero", edit("n = 100", "n = 0"), [], ["data.n = 0"]),
    ("n_negative_in_grid", edit("n = 100", "n = [100, -5]"), [], ["data.n = -5"]),
    ("K_zero", edit("K = 2", "K = 0"), [], ["data.K = 0"]),
    ("K_exceeds_n", edit("n = 100\nK = 2", "n = 5\nK = 10"), [], ["data.K = 10", "n = 5"]),
    (
        "separation_negative",
        edit("separation = 2.0", "separation = -1.0"),
        [],
        ["data.separation = -1.0"],
    ),
    ("n_wrong_type", edit("n = 100", 'n = "100"'), [], ['data.n = "100"', "must be int"]),
    ("n_float", edit("n = 100", "n = 100.5"), [], ["data.n = 100.5"]),
    (
        "empty_grid",
        edit("separation = 2.0", "separation = []"),
        [],
        ["data.separation = []", "empty grid"],
    ),
    (
        "zip_lengths",
        edit("n = 100", 'n = [100, 200]\nzip = [["n", "separation"]]').replace(
            "separation = 2.0", "separation = [1.0, 2.0, 3.0]"
        ),
        [],
        ["data.zip", "differ in length"],
    ),
    ("zip_unknown_key", edit("n = 100", 'n = 100\nzip = [["n", "foo"]]'), [], ["data.zip", "foo"]),
    (
        "weights_sum",
        edit("K = 2", "K = 2\nweights = [0.2, 0.2]"),
        [],
        ["data", "weights=[0.2, 0.2]", "sum to 1"],
    ),
    ("no_fitters", BASE.split("[fitters.em]")[0], [], ["fitters: missing"]),
    ("fitter_missing_method", edit('method = "em"\n', ""), [], ["fitters.em.method: missing"]),
    (
        "unknown_method",
        edit('method = "em"', 'method = "emm"'),
        [],
        ['fitters.em.method = "emm"', "unknown method"],
    ),
    (
        "unknown_init",
        edit('init = "kmeans++"', 'init = "kmeans+++"'),
        [],
        ["fitters.em", "init='kmeans+++'"],
    ),
    (
        "unknown_fitter_key",
        edit('init = "kmeans++"', 'inits = "kmeans"'),
        [],
        ['fitters.em.inits = "kmeans"'],
    ),
    (
        "fitter_type",
        edit('init = "kmeans++"', 'n_restarts = "3"'),
        [],
        ['fitters.em.n_restarts = "3"'],
    ),
    (
        "n_components_exceeds_n",
        edit('init = "kmeans++"', "n_components = 500"),
        [],
        ["fitters.em.n_components = 500"],
    ),
    (
        "unknown_sampler",
        BASE + '\n[fitters.bayes]\nmethod = "bayes"\nsampler = "stan"\n',
        [],
        ["fitters.bayes", "sampler", "stan"],
    ),
    (
        "unknown_report_section",
        BASE + '\n[report]\nsections = ["summry"]\n',
        [],
        ['report.sections = "summry"'],
    ),
    ("store_key", BASE + "\n[store]\ntraces = 1\n", [], ["store.traces = 1"]),
    (
        "duplicate_fitter",
        BASE + '\n[fitters.em2]\nmethod = "em"\ninit = "kmeans++"\n',
        [],
        ["fitters.em2", "duplicates"],
    ),
    (
        "fitter_data_unknown_block",
        edit('init = "kmeans++"', 'init = "kmeans++"\ndata = ["data[3]"]'),
        [],
        ['fitters.em.data = "data[3]"', "no such data block", "known: data"],
    ),
    (
        "fitter_data_not_a_list_of_names",
        edit('init = "kmeans++"', 'init = "kmeans++"\ndata = [1]'),
        [],
        ["fitters.em.data = [1]", "list of data blocks"],
    ),
    (
        "data_block_name_chars",
        edit("separation = 2.0", 'separation = 2.0\nname = "a b"'),
        [],
        ['data.name = "a b"'],
    ),
    (
        "data_block_name_twice",
        BASE.replace("[data]", "[[data]]").replace("2.0", '2.0\nname = "x"')
        + '\n[[data]]\ngenerator = "uniform"\nname = "x"\n',
        [],
        ['data[1].name = "x"', "already names data[0]"],
    ),
    (
        "data_block_fitted_by_no_fitter",
        BASE.replace("[data]", "[[data]]") + '\n[[data]]\ngenerator = "uniform"\nname = "flat"\n',
        ['fitters.em.data=["data[0]"]'],
        ['data[1] = "flat"', "no fitter fits this block", "data[0]"],
    ),
    ("bad_override", BASE, ["data.n"], ["--set 'data.n'", "KEY=VALUE"]),
    ("override_unknown_key", BASE, ["data.nn=5"], ["data.nn = 5", "unknown setting"]),
    ("override_bad_value", BASE, ["data.n=-3"], ["data.n = -3"]),
]


def run_cli(capsys, args):
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_config_is_one_line_exit_2_and_writes_nothing(case, tmp_path, capsys, write_config):
    name, text, overrides, fragments = case
    path = write_config(text, name)
    sets = [a for o in overrides for a in ("--set", o)]
    for command in (
        ["validate", str(path)],
        ["run", str(path), "--no-report", "--reports-dir", str(tmp_path / "r")],
    ):
        code, out, err = run_cli(capsys, command + sets)
        assert code == 2, (name, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "Traceback" not in err
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])
        if name not in ("bad_override",):
            assert str(path) in lines[0]
    assert not (tmp_path / "r").exists()


def test_every_bad_config_has_its_own_message(capsys, write_config):
    messages = set()
    for _name, text, overrides, _ in BAD:
        sets = [a for o in overrides for a in ("--set", o)]
        messages.add(run_cli(capsys, ["validate", str(write_config(text, "same")), *sets])[2])
    assert len(BAD) >= 15
    assert len(messages) == len(BAD)


def test_missing_file_is_a_user_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, ["validate", str(tmp_path / "nope.toml")])
    assert code == 2 and "nope.toml: no such config file" in err


def test_cartesian_grid():
    spec = parse_config(
        BASE.replace("n = 100", "n = [100, 200, 300]").replace("K = 2", "K = [1, 2]")
    )
    assert len(spec.data) == 6
    assert {(c.settings["n"], c.settings["K"]) for c in spec.data} == {
        (n, k) for n in (100, 200, 300) for k in (1, 2)
    }
    assert spec.data[0].label == "n=100, K=1"


def test_zipped_grid_and_broadcast_scalar():
    text = BASE.replace("n = 100", 'n = [100, 200]\nzip = [["n", "K", "separation"]]').replace(
        "K = 2", "K = [2, 3]"
    )
    spec = parse_config(text)
    assert [(c.settings["n"], c.settings["K"], c.settings["separation"]) for c in spec.data] == [
        (100, 2, 2.0),
        (200, 3, 2.0),
    ]


def test_list_valued_settings_and_grid_value_escapes():
    text = BASE.replace("K = 2", "K = 2\nweights = [0.3, 0.7]")
    assert parse_config(text).data[0].settings["weights"] == [0.3, 0.7]  # one value, not a grid
    text = BASE.replace("K = 2", 'K = 2\nweights = { grid = [[0.3, 0.7], [0.5, 0.5], "equal"] }')
    assert [c.settings["weights"] for c in parse_config(text).data] == [
        [0.3, 0.7],
        [0.5, 0.5],
        "equal",
    ]
    text = BASE.replace('init = "kmeans++"', "fixed_weights = { value = [0.5, 0.5] }")
    assert parse_config(text).fitters[0].settings["fixed_weights"] == [0.5, 0.5]


def test_fitter_grid_labels_and_disabled_fitters():
    text = BASE.replace('init = "kmeans++"', 'init = ["kmeans++", "random_params"]')
    text += '\n[fitters.other]\nmethod = "em"\nmax_iter = 5\nenabled = false\n'
    spec = parse_config(text)
    assert [f.label for f in spec.fitters] == ["em(init=kmeans++)", "em(init=random_params)"]
    assert all(f.table == "em" for f in spec.fitters)


def test_expand_grid_counts():
    def fail(*args):
        raise AssertionError(args)

    points = expand_grid({"a": [1, 2], "b": [3, 4, 5], "c": "x", "zip": []}, {}, fail, "t")
    assert len(points) == 6 and points[0] == {"a": 1, "b": 3, "c": "x"}
    points = expand_grid(
        {"a": [1, 2], "b": [3, 4], "c": [0, 9], "zip": [["a", "b"]]}, {}, fail, "t"
    )
    assert [(p["a"], p["b"], p["c"]) for p in points] == [
        (1, 3, 0),
        (1, 3, 9),
        (2, 4, 0),
        (2, 4, 9),
    ]


def test_overrides_parse_and_apply():
    assert parse_override("data.n=500") == (["data", "n"], 500)
    assert parse_override("data.generator=student_t") == (["data", "generator"], "student_t")
    assert parse_override("data.separation=[1, 2]") == (["data", "separation"], [1, 2])
    raw = {"data": [{"n": 1}, {"n": 2}], "experiment": {"name": "x"}}
    assert apply_overrides(raw, ["data.n=5"])["data"] == [{"n": 5}, {"n": 5}]
    assert apply_overrides(raw, ["data.1.n=7"])["data"] == [{"n": 1}, {"n": 7}]
    assert raw["data"] == [{"n": 1}, {"n": 2}]  # not modified in place
    with pytest.raises(ConfigError, match="experiment.name is not a table"):
        apply_overrides(raw, ["experiment.name.x=1"])


def test_overrides_are_applied_and_recorded(write_config):
    path = write_config(BASE)
    spec = load_config(
        path, ["data.n=500", "fitters.em.init=random_params", "experiment.replicates=3"]
    )
    assert spec.data[0].settings["n"] == 500
    assert spec.fitters[0].settings["init"] == "random_params"
    assert spec.replicates == 3
    assert spec.overrides == (
        "data.n=500",
        "fitters.em.init=random_params",
        "experiment.replicates=3",
    )
    assert spec.resolved["data"]["n"] == 500 and spec.text == BASE


def test_data_blocks_expand_separately():
    text = BASE.replace("[data]", "[[data]]") + (
        '\n[[data]]\ngenerator = "student_t"\nn = 100\ndf = [3.0, 10.0]\n'
    )
    spec = parse_config(text)
    assert [c.generator for c in spec.data] == ["gaussian_mixture", "student_t", "student_t"]
    assert [c.block for c in spec.data] == ["data[0]", "data[1]", "data[1]"]


def test_shipped_experiments_validate(capsys):
    from workbench.cli import experiments_dirs

    paths = [p for d in experiments_dirs() for p in d.glob("*.toml")]
    assert any(p.stem == "quickstart" for p in paths)
    for path in paths:
        code, out, err = run_cli(capsys, ["validate", str(path)])
        assert code == 0, err
        assert out.startswith("ok: ")


def test_labels_tell_apart_points_whose_keys_differ():
    """A key missing from the first point still distinguishes the others (no merged labels)."""
    from workbench.experiment.grid import varying_label as _varying_label

    points = [
        {"generator": "gaussian_mixture", "K": 2},
        {"generator": "student_t", "K": 2, "df": 3.0},
        {"generator": "student_t", "K": 2, "df": 10.0},
    ]
    labels = _varying_label(points)
    assert len(set(labels)) == 3, labels


def test_report_sections_are_the_reports_own(write_config):
    """The section names a config may list are exactly those the report registers, and a
    config without ``[report] sections`` gets the sections the report then shows (every
    generic one), not a default nobody reads."""
    from workbench import report
    from workbench.settings.experiment import REPORT_SECTIONS

    assert set(REPORT_SECTIONS) == set(report.SECTIONS)
    assert load_config(write_config(BASE)).report_sections == tuple(report.DEFAULT_SECTIONS)

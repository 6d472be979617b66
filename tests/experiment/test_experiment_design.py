"""Cells and seeds: content-hashed, independent of config order, data apart from fitters."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.experiment.config import parse_config
from workbench.experiment.design import build_design, design_hash

CONFIG = """
[experiment]
name = "seeds"
replicates = 3
seed = 11

[data]
generator = "gaussian_mixture"
n = [100, 200]
K = 2
separation = [1.0, 3.0]

[fitters.em]
method = "em"
init = ["kmeans++", "random_params"]

[fitters.em_small]
method = "em"
init = "small_em"
max_iter = 50
"""

# Same experiment: sections, keys, fitter tables and grid values all reordered; 3 -> 3.0.
REORDERED = """
[fitters.em_small]
max_iter = 50
init = "small_em"
method = "em"

[fitters.em]
init = ["random_params", "kmeans++"]
method = "em"

[data]
separation = [3, 1.0]
K = 2
n = [200, 100]
generator = "gaussian_mixture"

[experiment]
seed = 11
replicates = 3
name = "seeds"
"""


def seeds(text: str) -> dict[str, tuple]:
    return {c.cell_id: (c.data_entropy, c.fit_entropy) for c in build_design(parse_config(text))}


def test_seeds_and_ids_are_stable_under_reordering():
    first, second = seeds(CONFIG), seeds(REORDERED)
    assert len(first) == 2 * 2 * 3 * 3
    assert first == second
    assert design_hash(build_design(parse_config(CONFIG))) == design_hash(
        build_design(parse_config(REORDERED))
    )


def test_adding_a_fitter_changes_no_data_and_no_existing_cell():
    before = build_design(parse_config(CONFIG))
    after = build_design(parse_config(CONFIG + '\n[fitters.new]\nmethod = "em"\ninit = "kmeans"\n'))
    old = {c.cell_id: c for c in before}
    assert len(after) == len(before) + 12
    for cell in after:
        if cell.cell_id in old:
            assert cell.fit_entropy == old[cell.cell_id].fit_entropy
    data_seeds = {(c.data_id, c.replicate): c.data_entropy for c in before}
    assert all(data_seeds[(c.data_id, c.replicate)] == c.data_entropy for c in after)


def test_paired_design_one_data_stream_per_data_cell():
    cells = build_design(parse_config(CONFIG))
    by_data: dict = {}
    for cell in cells:
        by_data.setdefault((cell.data_id, cell.replicate), set()).add(cell.data_entropy)
    assert all(len(v) == 1 for v in by_data.values())
    assert len({c.fit_entropy for c in cells}) == len(cells)
    assert len({c.data_entropy for c in cells}) == 4 * 3


def test_data_and_fitter_streams_differ():
    cell = build_design(parse_config(CONFIG))[0]
    a = np.random.default_rng(cell.data_seed()).random(4)
    b = np.random.default_rng(cell.fit_seed()).random(4)
    assert not np.allclose(a, b)
    again = np.random.default_rng(cell.data_seed()).random(4)
    assert np.array_equal(a, again)


def test_master_seed_changes_every_cell():
    other = seeds(CONFIG.replace("seed = 11", "seed = 12"))
    assert not set(other) & set(seeds(CONFIG))


@settings(max_examples=30, deadline=None)
@given(st.permutations([1.0, 2.0, 3.0, 4.0]), st.permutations([50, 60, 70]))
def test_grid_value_order_never_changes_ids(separations, ns):
    text = CONFIG.replace("n = [100, 200]", f"n = {list(ns)}").replace(
        "separation = [1.0, 3.0]", f"separation = {list(separations)}"
    )
    base = CONFIG.replace("n = [100, 200]", "n = [50, 60, 70]").replace(
        "separation = [1.0, 3.0]", "separation = [1.0, 2.0, 3.0, 4.0]"
    )
    assert seeds(text) == seeds(base)


RESTRICTED = (
    CONFIG.replace("[data]", "[[data]]")
    + """
[[data]]
name = "heavy_tails"
generator = "student_t"
n = 100
df = 3.0
"""
)
ONLY = ('fitters.em.data=["data[0]"]', 'fitters.em_small.data=["heavy_tails"]')


def test_a_fitter_restricted_to_blocks_gets_cells_on_those_blocks_only():
    """``data = [...]`` (a position or a block name) drops cells; the cells that remain are the
    same cells, with the same ids and seeds, as in the full cross product."""
    full = build_design(parse_config(RESTRICTED))
    restricted = build_design(parse_config(RESTRICTED, overrides=ONLY))
    assert len(full) == (4 + 1) * (2 + 1) * 3
    assert len(restricted) == (4 * 2 + 1 * 1) * 3
    for cell in restricted:
        assert cell.data.block == ("data[0]" if cell.fitter.table == "em" else "data[1]")
    by_id = {c.cell_id: c for c in full}
    for cell in restricted:
        twin = by_id[cell.cell_id]
        assert (cell.data_entropy, cell.fit_entropy) == (twin.data_entropy, twin.fit_entropy)


def test_validate_reports_the_restricted_design(capsys, tmp_path):
    from workbench.cli import main

    path = tmp_path / "restricted.toml"
    path.write_text(RESTRICTED, encoding="utf-8")
    assert main(["validate", str(path), *[a for o in ONLY for a in ("--set", o)]]) == 0
    out = capsys.readouterr().out
    assert "5 data conditions x 3 fitter conditions -> 9 (data, fitter) pairs x 3" in out
    assert out.strip().endswith("= 27 cells")


def test_a_block_only_disabled_fitters_fit_is_left_out():
    text = (
        RESTRICTED + '\n[fitters.t_only]\nmethod = "em"\nenabled = false\ndata = ["heavy_tails"]\n'
    )
    both_on_first = ('fitters.em.data=["data[0]"]', 'fitters.em_small.data=["data[0]"]')
    spec = parse_config(text, overrides=both_on_first)
    assert {c.block for c in spec.data} == {"data[0]"}
    assert len(build_design(spec)) == 4 * 3 * 3
    cells = build_design(
        parse_config(text, overrides=(*both_on_first, "fitters.t_only.enabled=true"))
    )
    assert sum(c.data.block_name == "heavy_tails" for c in cells) == 3
    assert all(c.fitter.table == "t_only" for c in cells if c.data.block == "data[1]")

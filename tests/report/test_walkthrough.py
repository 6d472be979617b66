"""The founding walkthrough: the document's story told with the workbench's EM steps."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from workbench.walkthrough import build_walkthrough


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory):
    return build_walkthrough(tmp_path_factory.mktemp("walkthrough"))


def test_walkthrough_page_embeds_every_file(walkthrough):
    page = walkthrough.page
    assert page.name == "walkthrough.html"
    text = page.read_text()
    files = sorted(p for p in page.parent.iterdir() if p.suffix in (".png", ".gif"))
    assert {p.name for p in files} >= {
        "founding_1_init.png",
        "founding_2_e_step.png",
        "founding_3_m_step.png",
        "founding_4_converged.png",
        "founding_em.gif",
        "local_1_init.png",
        "local_2_stuck.png",
        "local_optimum_em.gif",
    }
    for path in files:
        assert path.stat().st_size > 5000, path.name
        assert f'data-file="{path.name}"' in text
    assert text.count("data:image/gif;base64,") == 2
    for path in page.parent.glob("*.gif"):
        with Image.open(path) as gif:
            assert gif.n_frames >= 10, path.name


def test_founding_story_reaches_the_optimum(walkthrough):
    story = walkthrough.founding
    run, reference = story["run"], story["reference"]
    lls = np.array(run.logliks)
    assert len(run.states[0].weights) == 2
    assert np.all(np.diff(lls) >= -1e-9 * np.abs(lls[1:]))  # EM never decreases L
    assert lls[-1] == pytest.approx(reference.logliks[-1], abs=1e-5)  # the global optimum
    first, second = run.states[0], run.states[1]
    r1 = first.responsibilities(run.X)[:, 0]
    # The M-step shown: the new mean is the responsibility-weighted average of the points.
    assert second.means[0, 0] == pytest.approx(np.sum(r1 * run.X[:, 0]) / np.sum(r1))


def test_local_optimum_story_gets_stuck(walkthrough):
    story = walkthrough.local
    run, reference = story["run"], story["reference"]
    lls = np.array(run.logliks)
    assert np.all(np.diff(lls) >= -1e-9 * np.abs(lls[1:]))
    assert story["gap"] > 10.0  # nats below the optimum reached from the truth
    assert story["gap"] == pytest.approx(reference.logliks[-1] - lls[-1])

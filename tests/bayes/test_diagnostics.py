"""Relabelling, mode classification and the other diagnostics on synthetic draws (no sampling)."""

from __future__ import annotations

import itertools

import arviz as az
import numpy as np
import pytest
import xarray as xr
from scipy.optimize import linear_sum_assignment

from workbench.bayes import diagnostics as dg
from workbench.bayes.fitter import BayesFitter
from workbench.bayes.models import Draws, ModelSpec
from workbench.params import MixtureParams


def synthetic_draws(rng, C=4, S=500, perms=None, shift_chain=None) -> Draws:
    """Draws of a 3-component 1-D posterior, optionally with per-draw label permutations."""
    K = 3
    w = rng.dirichlet([200, 300, 500], size=(C, S))
    mu = np.array([-3.0, 0.0, 3.0]) + 0.1 * rng.standard_normal((C, S, K))
    sd = np.array([1.0, 0.5, 2.0]) * np.exp(0.05 * rng.standard_normal((C, S, K)))
    if shift_chain is not None:  # that chain sits in another mode
        mu[shift_chain, :, 0] += 2.0
    draws = Draws(w, mu[..., None], sd[..., None, None] ** 2)
    return draws if perms is None else draws.permuted(perms)


def random_perms(rng, C, S, K):
    return np.stack([rng.permutation(K) for _ in range(C * S)]).reshape(C, S, K)


@pytest.mark.parametrize("K", [2, 3, 5, 7])
def test_assign_matches_hungarian(K):
    rng = np.random.default_rng(K)
    cost = rng.random((50, K, K))
    perms = dg.assign(cost)
    for c, p in zip(cost, perms, strict=True):
        rows, cols = linear_sum_assignment(c)
        assert np.isclose(c[np.arange(K), p].sum(), c[rows, cols].sum())


def test_relabel_undoes_random_permutations():
    rng = np.random.default_rng(0)
    clean = synthetic_draws(rng)
    shuffled = clean.permuted(random_perms(rng, 4, 500, 3))
    feats = dg.component_features(shuffled, np.zeros(1), np.ones(1))
    perms, pivot = dg.relabel(feats)
    fixed = shuffled.permuted(perms)
    # labels are identified up to one global permutation: the pivot's own order
    order = np.argsort(pivot[:, 0])
    np.testing.assert_array_equal(fixed.means[..., order, 0], clean.means[..., 0])
    assert dg.switched_fraction(perms) > 0.5


def test_identity_and_switched_fraction():
    perms = dg.identity_perms(2, 10, 3)
    assert dg.switched_fraction(perms) == 0.0
    perms[0, :3] = [1, 0, 2]
    assert dg.switched_fraction(perms) == pytest.approx(3 / 20)


def test_chain_groups_flags_the_chain_in_another_mode():
    rng = np.random.default_rng(1)
    lp = rng.standard_normal((4, 500))
    good = dg.component_features(synthetic_draws(rng), np.zeros(1), np.ones(1))
    assert dg.chain_groups(good, lp)[0] == [[0, 1, 2, 3]]
    bad = dg.component_features(synthetic_draws(rng, shift_chain=2), np.zeros(1), np.ones(1))
    groups, distance = dg.chain_groups(bad, lp)
    assert groups == [[0, 1, 3], [2]] and distance > 5


def test_chain_groups_tolerates_slow_mixing_in_one_mode():
    """Strongly autocorrelated chains of one distribution differ by Monte Carlo error only."""
    rng = np.random.default_rng(2)
    C, S = 4, 400
    x = np.zeros((C, S))
    for s in range(1, S):
        x[:, s] = 0.97 * x[:, s - 1] + np.sqrt(1 - 0.97**2) * rng.standard_normal(C)
    features = x[:, :, None, None]
    assert len(dg.chain_groups(features, np.zeros((C, S)))[0]) == 1


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"n_divergences": 3}, "divergent"),
        ({"groups": [[0, 1], [2, 3]]}, "multimodal"),
        ({"groups": [[0, 1], [2, 3]], "n_divergences": 3}, "multimodal"),  # not hidden
        ({"switched": 0.25, "n_divergences": 3}, "divergent"),
        ({"switched": 0.25}, "label_switching"),
        ({"exchangeable": True}, "label_switching"),
        ({"exchangeable": True, "n_components": 1}, "ok"),
        ({}, "ok"),
        ({"failed_checks": ["rhat"]}, "not_converged"),
        ({"failed_checks": ["ess_tail"], "n_components": 1}, "not_converged"),
        # a mode verdict or divergences explain poor R-hat / ESS: they come first
        ({"failed_checks": ["rhat"], "groups": [[0, 1], [2, 3]]}, "multimodal"),
        ({"failed_checks": ["rhat"], "n_divergences": 3}, "divergent"),
        ({"failed_checks": ["ess_bulk"], "exchangeable": True}, "label_switching"),
    ],
)
def test_classify_rules(kwargs, status):
    base = {
        "n_divergences": 0,
        "n_draws_total": 4000,
        "groups": [[0, 1, 2, 3]],
        "switched": 0.0,
        "exchangeable": False,
        "n_components": 2,
        "failed_checks": [],
    }
    result = dg.classify(**{**base, **kwargs})
    assert result == status and result in dg.STATUSES


def test_classify_divergence_tolerance():
    args = {"n_draws_total": 4000, "groups": [[0]], "switched": 0.0, "exchangeable": False}
    args["failed_checks"] = []
    assert dg.classify(n_divergences=3, n_components=2, divergence_tolerance=0.001, **args) == "ok"


def _verdict(arrays: dict[str, np.ndarray], **thresholds) -> tuple[str, list[str]]:
    """Status of healthy-looking sampler output (one group, no divergence, no switching) whose
    draws are ``arrays`` (name -> (C, S, ...)), and the failed convergence checks."""
    C, S = next(iter(arrays.values())).shape[:2]
    failed = dg.failed_convergence_checks(dg.convergence(arrays), C, **thresholds)
    status = dg.classify(
        n_divergences=0,
        n_draws_total=C * S,
        groups=[list(range(C))],
        switched=0.0,
        exchangeable=False,
        n_components=2,
        failed_checks=failed,
    )
    return status, failed


def test_well_mixed_iid_draws_are_ok():
    rng = np.random.default_rng(10)
    status, failed = _verdict({"mu": rng.standard_normal((4, 1000, 2)), "w": rng.random((4, 1000))})
    assert (status, failed) == ("ok", [])


def test_drifting_chains_are_not_converged():
    """Each chain drifts upward (a trend over the draws, as in a chain still moving towards
    its typical set): split R-hat sees the halves disagree."""
    rng = np.random.default_rng(11)
    drift = np.linspace(0.0, 1.5, 1000)[None, :, None]
    draws = rng.standard_normal((4, 1000, 2)) + drift
    status, failed = _verdict({"mu": draws})
    assert status == "not_converged" and "rhat" in failed
    assert dg.convergence({"mu": draws})["rhat_max"] > dg.RHAT_MAX


def test_one_slow_parameter_among_fast_ones_is_not_converged():
    """AR(1) chains with phi = 0.99 for one scalar: R-hat may look fine, ESS does not; the
    minimum over parameters decides, so the other, iid scalars cannot hide it."""
    rng = np.random.default_rng(12)
    C, S, phi = 4, 1000, 0.99
    slow = np.zeros((C, S))
    slow[:, 0] = rng.standard_normal(C)
    for s in range(1, S):
        slow[:, s] = phi * slow[:, s - 1] + np.sqrt(1 - phi**2) * rng.standard_normal(C)
    status, failed = _verdict({"fast": rng.standard_normal((C, S, 3)), "slow": slow})
    assert status == "not_converged" and "ess_bulk" in failed


def test_thresholds_are_honoured():
    """Thresholds just on either side of the measured values flip each check."""
    rng = np.random.default_rng(13)
    arrays = {"mu": rng.standard_normal((4, 200, 2))}
    summary = dg.convergence(arrays)
    C = 4
    rhat, bulk, tail = summary["rhat_max"], summary["ess_bulk_min"], summary["ess_tail_min"]
    loose = {"rhat_max": rhat + 1e-9, "ess_per_chain_min": min(bulk, tail) / C - 1e-6}
    assert _verdict(arrays, **loose) == ("ok", [])
    assert _verdict(arrays, **{**loose, "rhat_max": rhat - 1e-9}) == ("not_converged", ["rhat"])
    strict = max(bulk, tail) / C + 1e-6
    assert _verdict(arrays, **{**loose, "ess_per_chain_min": strict}) == (
        "not_converged",
        ["ess_bulk", "ess_tail"],
    )
    between = (bulk + tail) / 2 / C  # fails only the smaller of the two ESS
    smaller = "ess_bulk" if bulk < tail else "ess_tail"
    assert _verdict(arrays, **{**loose, "ess_per_chain_min": between})[1] == [smaller]
    # per chain: the same draws seen as 4 chains need 4x the ESS of one chain's threshold
    assert dg.failed_convergence_checks(summary, 1, rhat + 1, bulk / 2) == []
    assert "ess_bulk" in dg.failed_convergence_checks(summary, 4, rhat + 1, bulk / 2)


def test_nan_convergence_numbers_fail_their_checks():
    nan = float("nan")
    summary = {"rhat_max": nan, "ess_bulk_min": nan, "ess_tail_min": nan}
    assert dg.failed_convergence_checks(summary, 4) == ["rhat", "ess_bulk", "ess_tail"]


def test_summarise_end_to_end_on_synthetic_draws():
    """The fitter's summary relabels, classifies and names the disagreeing chain."""
    rng = np.random.default_rng(3)
    C, S, K = 4, 500, 3
    fitter = BayesFitter(identifiability="none")
    spec = ModelSpec(K, 1, identifiability="none")
    X = np.linspace(-5, 5, 50)[:, None]
    stats = xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.zeros((C, S), bool)),
            "energy": (("chain", "draw"), rng.standard_normal((C, S))),
            "logp": (("chain", "draw"), rng.standard_normal((C, S))),
        }
    )
    chain_perms = np.stack([np.broadcast_to(rng.permutation(K), (S, K)) for _ in range(C)])
    ok = synthetic_draws(rng, perms=chain_perms)
    params, intervals, diag, idata = fitter._summarise(X, spec, ok, stats, {}, 0.0, 1.0, None)
    assert diag["status"] == "label_switching" and diag["disagreeing_chains"] == ""
    assert diag["rhat_max"] < 1.01 < diag["rhat_max_raw"]
    np.testing.assert_allclose(np.sort(params.means[:, 0]), [-3, 0, 3], atol=0.02)
    assert set(idata.groups()) == {"posterior", "sample_stats", "observed_data"}
    stuck = synthetic_draws(rng, perms=chain_perms, shift_chain=1)
    diag = fitter._summarise(X, spec, stuck, stats, {}, 0.0, 1.0, None)[2]
    assert diag["status"] == "multimodal" and diag["disagreeing_chains"] == "1"
    stats["diverging"][0, 0] = True
    diag = fitter._summarise(X, spec, ok, stats, {}, 0.0, 1.0, None)[2]
    assert diag["status"] == "divergent" and diag["n_divergences"] == 1


def test_summarise_applies_and_records_the_convergence_thresholds():
    """Ordered, well-mixed synthetic draws are ok under the default thresholds and
    not_converged under a stricter ESS threshold; the thresholds travel with the diagnostics."""
    rng = np.random.default_rng(6)
    C, S, K = 4, 500, 3
    spec = ModelSpec(K, 1)
    X = np.linspace(-5, 5, 50)[:, None]
    stats = xr.Dataset(
        {
            "diverging": (("chain", "draw"), np.zeros((C, S), bool)),
            "energy": (("chain", "draw"), rng.standard_normal((C, S))),
            "logp": (("chain", "draw"), rng.standard_normal((C, S))),
        }
    )
    draws = synthetic_draws(rng, C, S)
    diag = BayesFitter()._summarise(X, spec, draws, stats, {}, 0.0, 1.0, None)[2]
    assert diag["status"] == "ok" and diag["convergence_failed"] == ""
    assert diag["threshold_rhat_max"] == dg.RHAT_MAX == 1.01
    assert diag["threshold_ess_per_chain_min"] == dg.ESS_PER_CHAIN_MIN == 100
    assert diag["n_chains"] == C and diag["ess_bulk_min"] >= 100 * C
    strict = BayesFitter(ess_per_chain_min=S)  # more ESS than draws per chain
    diag = strict._summarise(X, spec, draws, stats, {}, 0.0, 1.0, None)[2]
    assert diag["status"] == "not_converged" and "ess_tail" in diag["convergence_failed"]
    assert diag["threshold_ess_per_chain_min"] == S


def test_convergence_ignores_constants_and_matches_arviz():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((4, 300, 2))
    out = dg.convergence({"a": a, "fixed": np.ones((4, 300, 2))})
    ds = az.convert_to_dataset({"a": a})
    assert out["rhat_max"] == pytest.approx(float(az.rhat(ds)["a"].max()))
    assert out["ess_bulk_min"] == pytest.approx(float(az.ess(ds)["a"].min()))
    a[0] += 3.0
    assert dg.convergence({"a": a})["rhat_max"] > 1.3


def test_sampler_stats_both_namings_and_ebfmi():
    rng = np.random.default_rng(5)
    energy = rng.standard_normal((2, 200)).cumsum(axis=1)
    for depth_name in ("maxdepth_reached", "reached_max_treedepth"):
        hits = np.zeros((2, 200), bool)
        hits[1, :4] = True
        stats = xr.Dataset(
            {
                "diverging": (("chain", "draw"), hits),
                "energy": (("chain", "draw"), energy),
                depth_name: (("chain", "draw"), hits),
            }
        )
        out = dg.sampler_stats(stats)
        assert out["n_divergences"] == 4 and out["n_max_treedepth"] == 4
    manual = [np.sum(np.diff(e) ** 2) / len(e) / np.var(e) for e in energy]
    assert out["ebfmi_min"] == pytest.approx(min(manual))


def test_intervals_truth_comparison_and_sbc_rank():
    rng = np.random.default_rng(6)
    draws = synthetic_draws(rng)
    params = dg.posterior_means(draws)
    intervals = dg.credible_intervals(draws, 0.8)
    lo, hi = intervals["means"]
    np.testing.assert_allclose(lo, np.quantile(draws.means, 0.1, axis=(0, 1)))
    np.testing.assert_allclose(hi, np.quantile(draws.means, 0.9, axis=(0, 1)))
    truth = MixtureParams([0.5, 0.3, 0.2], [[3.0], [0.0], [-3.0]], [4.0, 0.25, 1.0])
    comparison = dg.truth_comparison(params, intervals, truth)
    assert comparison["means"]["covered"].all()  # matched despite the reversed order
    np.testing.assert_allclose(comparison["weights"]["error"], [0, 0, 0], atol=0.02)
    summary = dg.truth_summary(comparison)
    assert summary["truth_coverage_scales"] == 1.0 and summary["truth_width_means"] > 0
    assert dg.sbc_rank(np.arange(10.0), 4.5) == 5


def test_assign_small_k_is_exhaustive_over_all_permutations():
    cost = np.random.default_rng(7).random((1, 4, 4))
    best = min(itertools.permutations(range(4)), key=lambda p: cost[0, range(4), p].sum())
    np.testing.assert_array_equal(dg.assign(cost)[0], best)


def test_sbc_machinery_on_an_exact_posterior():
    """Normal mean with known sd: exact posterior draws give uniform ranks; a posterior that is
    too narrow does not (the check SBC relies on)."""
    rng = np.random.default_rng(8)
    n_sims, L, n_obs = 300, 99, 20
    good, bad = [], []
    for _ in range(n_sims):
        theta = rng.normal(0.0, 2.0)
        y = rng.normal(theta, 1.0, n_obs)
        precision = 1 / 4 + n_obs
        mean, sd = y.sum() / precision, precision**-0.5
        good.append(dg.sbc_rank(rng.normal(mean, sd, L), theta))
        bad.append(dg.sbc_rank(rng.normal(mean, sd / 2, L), theta))
    assert min(dg.sbc_uniformity(np.array(good), L).values()) > 0.001
    assert max(dg.sbc_uniformity(np.array(bad), L).values()) < 1e-6
    with pytest.raises(ValueError, match="bins"):
        dg.sbc_uniformity(np.array(good), 98)

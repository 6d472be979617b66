"""The model seam proved by a second model (poisson_model.py): a Poisson mixture written only
as its EM pieces gets restarts, statuses, traces, SQUAREM, rate theory, standard errors, the
runner, the store and the report, and each is checked against scipy or a closed form."""

from __future__ import annotations

import sqlite3

import numpy as np
import poisson_model
import pytest
from scipy import optimize, stats

from workbench.cli import main
from workbench.data.registry import generate
from workbench.em import derivatives, loop
from workbench.em.model import get_model
from workbench.em.model_fitter import ModelEMFitter
from workbench.experiment.store import STORE_FILE


@pytest.fixture(autouse=True, scope="module")
def registered():
    """The Poisson model and its generator, registered by name for this module's tests only."""
    poisson_model.register_all()
    yield
    poisson_model.register_all(on=False)


def counts(seed=0, n=800, rates=(2.0, 9.0)):
    return generate("poisson_counts", np.random.default_rng(seed), n=n, rates=list(rates))


def mixture_loglik(x, weights, rates):
    """The observed-data log-likelihood, straight from scipy."""
    dens = np.sum(
        [w * stats.poisson.pmf(x, lam) for w, lam in zip(weights, rates, strict=True)], axis=0
    )
    return float(np.sum(np.log(dens)))


def test_one_component_is_the_closed_form():
    """K = 1: lambda = mean(x), loglik = sum log Poisson(x | mean), se = sqrt(mean / n)."""
    data = counts(1)
    fit = ModelEMFitter(model="poisson_mixture", n_components=1, interval_level=0.95).fit(
        data, np.random.default_rng(0)
    )
    x = data.X[:, 0]
    assert fit.status == "converged"
    assert fit.params.means[0, 0] == pytest.approx(x.mean(), rel=1e-12)
    assert fit.loglik == pytest.approx(stats.poisson.logpmf(x, x.mean()).sum(), rel=1e-12)
    lo, hi = fit.intervals["means"]
    se = (hi[0, 0] - lo[0, 0]) / (2 * stats.norm.ppf(0.975))
    assert se == pytest.approx(np.sqrt(x.mean() / len(x)), rel=1e-4)


def test_two_components_reach_scipys_maximum_and_never_decrease():
    data = counts(2)
    x = data.X[:, 0]
    fit = ModelEMFitter(model="poisson_mixture", n_restarts=5, tol=1e-12).fit(
        data, np.random.default_rng(1)
    )
    assert fit.status == "converged"
    order = np.argsort(fit.params.means[:, 0])
    rates, weights = fit.params.means[order, 0], fit.params.weights[order]
    assert fit.loglik == pytest.approx(mixture_loglik(x, weights, rates), rel=1e-12)

    def negative(theta):  # logit weight, log rates
        w = 1 / (1 + np.exp(-theta[0]))
        return -mixture_loglik(x, [w, 1 - w], np.exp(theta[1:]))

    start = [0.0, np.log(1.5), np.log(10.0)]
    tight = {"xatol": 1e-10, "fatol": 1e-10, "maxiter": 20000}
    best = optimize.minimize(negative, start, method="Nelder-Mead", options=tight)
    assert -best.fun == pytest.approx(fit.loglik, abs=1e-6)
    np.testing.assert_allclose(np.sort(np.exp(best.x[1:])), rates, rtol=1e-4)
    for trace in fit.restarts.traces:
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))


def test_squarem_reaches_the_same_optimum_in_fewer_evaluations():
    data = counts(3, n=2000, rates=(3.0, 5.0))  # overlapping: plain EM is slow
    kwargs = dict(model="poisson_mixture", tol=1e-13, max_iter=100_000, init="random_from_data")
    plain = ModelEMFitter(**kwargs).fit(data, np.random.default_rng(4))
    fast = ModelEMFitter(acceleration="squarem", **kwargs).fit(data, np.random.default_rng(4))
    assert plain.status == fast.status == "converged"
    assert fast.loglik == pytest.approx(plain.loglik, abs=1e-6)
    assert plain.n_iter > 3 * fast.n_iter


def test_rate_theory_matches_the_measured_rate():
    """The spectral radius of the EM map's Jacobian equals the rate read off the trace."""
    data = counts(5, n=5000, rates=(3.0, 6.0))
    fit = ModelEMFitter(model="poisson_mixture", tol=1e-14, max_iter=100_000,
                        rate_diagnostics=True).fit(data, np.random.default_rng(6))  # fmt: skip
    theory, measured = fit.diagnostics["rate_theory"], fit.diagnostics["rate_measured"]
    assert 0.5 < theory < 1.0
    assert measured == pytest.approx(theory, rel=0.05)


def test_an_emptied_component_is_a_degenerate_status():
    model = get_model("poisson_mixture")
    x, cfg = model.prepare(counts(7).X, 2)
    start = (np.array([[0.5, 0.5]]), np.array([[4.0, 1e4]]))  # no point near 1e4
    run = loop.run(model, x, start, cfg, loop.LoopSettings(max_iter=50))
    assert run.status[0] == "degenerate" and run.degenerate_kind[0] == "empty"
    assert run.degenerate_component[0] == 1


def test_jacobian_of_the_one_component_map_is_zero():
    """K = 1: the map jumps to the mean from anywhere, so its Jacobian is 0 (closed form)."""
    model = get_model("poisson_mixture")
    x, cfg = model.prepare(counts(8).X, 1)
    params = (np.array([1.0]), np.array([3.0]))
    np.testing.assert_allclose(derivatives.map_jacobian(model, x, cfg, params), 0.0, atol=1e-6)


CONFIG = """
[experiment]
name = "poisson_seam"
replicates = 2
seed = 11

[data]
generator = "poisson_counts"
n = 300
rates = [2.0, 9.0]

[fitters.poisson]
method = "em_model"
model = "poisson_mixture"
n_restarts = 3
rate_diagnostics = true
"""


def test_the_runner_store_and_report_take_the_model(tmp_path, capsys):
    config = tmp_path / "poisson_seam.toml"
    config.write_text(CONFIG)
    assert main(["run", str(config), "--executor", "serial", "--quiet", "--no-report",
                 "--reports-dir", str(tmp_path)]) == 0  # fmt: skip
    folder = tmp_path / "poisson_seam"
    with sqlite3.connect(folder / STORE_FILE) as conn:
        rows = conn.execute(
            "SELECT f.method, fits.status, fits.params FROM fits JOIN cells USING (cell_id) "
            "JOIN fitter_conditions f USING (fitter_id)"
        ).fetchall()
        rates = conn.execute("SELECT value FROM diagnostics WHERE name = 'rate_theory'").fetchall()
    assert [r[:2] for r in rows] == [("em_model", "converged")] * 2
    assert all("means" in r[2] for r in rows) and len(rates) == 2
    assert main(["report", str(folder)]) == 0
    page = (folder / "report.html").read_text()
    assert "em_model" in page and "poisson" in page


def test_the_gaussian_family_through_the_generic_fitter_is_the_em_fitter():
    """The Gaussian mixture registered as a family gives, through method em_model, the fit of
    the Gaussian EMFitter from the same starts."""
    from workbench.em.fitter import EMFitter

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(4, 1, (200, 2))])
    generic = ModelEMFitter(model="gaussian", init="kmeans++").fit_array(
        X, np.random.default_rng(1), 2
    )
    own = EMFitter(n_components=2, reference=False).fit_array(X, np.random.default_rng(1))
    assert generic.loglik == pytest.approx(own.loglik, rel=1e-12)
    np.testing.assert_allclose(generic.params.means, own.params.means, rtol=1e-10)

"""RELAX (train only): unbiased for every control-variate parameter, its hand-derived
derivatives against finite differences, its noise against the kernels', REBAR when the
surrogate is zero, and what ``gradvar train`` does with it.

Ground truth is independent of the package: the exact gradient of E[(b - t)^2] is
(1 - 2t) p (1 - p), and the exact mean and variance of one estimate come from a product
Gauss-Legendre rule over (u, v) on the two pieces u < 1 - p (b = 0) and u > 1 - p (b = 1).
"""

import math

import numpy as np
import pytest
from helpers import Z_TOL, make_cell

from gradvar import truth
from gradvar.kernels import rng
from gradvar.model import OBJECTIVES, registry, relax
from gradvar.studies import train as training

AT = OBJECTIVES[("bernoulli", "squared")].derivatives_at


def random_theta(seed, tau=0.4, eta=0.8, scale=0.5):
    theta = relax.initial(0, tau, eta)
    theta[2:] = np.random.default_rng(seed).normal(size=len(theta) - 2) * scale
    return theta


def wrong_estimates(phi, theta, u, v, at, values):
    """RELAX without the - dc(zt)/dphi term: biased."""
    b, z, zt, dzt, score = relax.conditional(phi, u, v)
    _, hz, _, _ = relax.control_variate(z, theta, at, values)
    ct, _, _, _ = relax.control_variate(zt, theta, at, values)
    return (at(b, values)[0] - ct) * score + hz, None


def quadrature(phi, theta, t, estimates=relax.estimates, nodes=100):
    """Exact (mean, variance) of one estimate by Gauss-Legendre over (u, v), split at u = q."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    x, w = (x + 1) / 2, w / 2
    q = 1.0 / (1.0 + math.exp(phi))
    first = second = 0.0
    for lo, hi in ((0.0, q), (q, 1.0)):
        u, v = np.meshgrid(lo + (hi - lo) * x, x, indexing="ij")
        weight = np.outer(w * (hi - lo), w)
        g, _ = estimates(phi, theta, u, v, AT, {"t": t})
        first += (weight * g).sum()
        second += (weight * g * g).sum()
    return first, second - first**2


def exact_gradient(phi, t):
    p = 1.0 / (1.0 + math.exp(-phi))
    return (1.0 - 2.0 * t) * p * (1.0 - p)


@pytest.mark.parametrize("phi,t", [(0.0, 0.3), (0.7, 0.499), (-1.5, 0.8)])
def test_relax_is_unbiased_for_any_control_variate_parameters(phi, t):
    for seed in range(3):
        theta = random_theta(seed)
        mean, _ = quadrature(phi, theta, t)
        assert mean == pytest.approx(exact_gradient(phi, t), rel=1e-9, abs=1e-12)
        wrong, _ = quadrature(phi, theta, t, estimates=wrong_estimates)
        assert abs(wrong - exact_gradient(phi, t)) > 1e-3


def _z_check(g, exact_mean, exact_var, powered=True):
    """The Monte Carlo mean and variance of ``g`` within Z_TOL standard errors (the variance's
    from the fourth central moment); raises AssertionError otherwise."""
    n = len(g)
    mean, var = g.mean(), g.var(ddof=1)
    sem = math.sqrt(var / n)
    var_se = math.sqrt((np.mean((g - mean) ** 4) - var**2) / n)
    if powered:
        assert Z_TOL * sem <= 0.5 * abs(exact_mean) and Z_TOL * var_se <= 0.5 * exact_var
    assert abs(mean - exact_mean) < Z_TOL * sem, (mean, exact_mean, sem)
    assert abs(var - exact_var) < Z_TOL * var_se, (var, exact_var, var_se)


def test_relax_monte_carlo_mean_and_variance_match_the_quadrature():
    """The noise of train's relax (its own v stream) gives the exact moments; the estimator
    without its - dc(zt)/dphi term fails the same check."""
    phi, t, theta = 0.4, 0.2, random_theta(7)
    u, v = relax.noise(rng.stream_key(11, rng.MAIN), 200_000, 1)
    exact_mean, exact_var = quadrature(phi, theta, t)
    assert exact_mean == pytest.approx(exact_gradient(phi, t), rel=1e-9)
    g, _ = relax.estimates(phi, theta, u, v, AT, {"t": t})
    _z_check(g.ravel(), exact_mean, exact_var)
    bad, _ = wrong_estimates(phi, theta, u, v, AT, {"t": t})
    with pytest.raises(AssertionError):
        _z_check(bad.ravel(), exact_mean, exact_var, powered=False)


def test_dg_dtheta_matches_central_finite_differences():
    phi, t, theta = -0.3, 0.35, random_theta(5, tau=0.3, eta=1.3, scale=0.8)
    gen = np.random.default_rng(2)
    u, v = gen.uniform(size=40), gen.uniform(size=40)
    _, dg = relax.estimates(phi, theta, u, v, AT, {"t": t})
    h = 1e-6
    for j in range(len(theta)):
        e = np.zeros_like(theta)
        e[j] = h
        up, _ = relax.estimates(phi, theta + e, u, v, AT, {"t": t})
        down, _ = relax.estimates(phi, theta - e, u, v, AT, {"t": t})
        np.testing.assert_allclose(dg[:, j], (up - down) / (2 * h), rtol=1e-5, atol=1e-7)


def test_with_a_zero_surrogate_relax_has_rebars_exact_moments():
    """At its start (r = 0) RELAX is REBAR with independent v: the library's REBAR exact mean
    and variance (1-D quadrature over z given b) equal the 2-D quadrature here."""
    phi, t, tau, eta = 0.6, 0.3, 0.7, 0.9
    theta = relax.initial(3, tau, eta)
    mean, var = quadrature(phi, theta, t)
    cell = make_cell("bernoulli", "squared", logit=phi, t=t, tau=tau, options={"eta": eta})
    rebar_mean, rebar_var, note = truth.exact(cell, registry.ESTIMATORS["rebar"])
    assert note == ""
    assert mean == pytest.approx(rebar_mean[0], rel=1e-9)
    assert var == pytest.approx(rebar_var[0], rel=1e-8)


def test_noise_is_the_family_noise_and_an_own_stream():
    """u is the engine's uniform of estimate c, sample m (counter c M + m), v the same counter
    of RELAX's own stream; the NumPy twins equal the kernels bit for bit."""
    key = rng.stream_key(5, rng.MAIN)
    u, v = relax.noise(key, 3, 2)
    vkey = rng.substream(key, rng.stream_id("relax"))
    for c in range(3):
        for m in range(2):
            assert u[c, m] == rng.uniform(key, c * 2 + m)
            assert v[c, m] == rng.uniform(vkey, c * 2 + m)


def test_relax_is_train_only_and_listed_so(cli):
    result = cli("compare", "--family", "bernoulli", "--estimator", "relax", "--samples", "10")
    assert result.exit_code == 2 and "gradvar train" in result.output
    listing = cli("list").output
    line = listing[listing.index("  relax ") :].splitlines()[1]
    assert "families: bernoulli;" in line and "train only" in line


def test_train_relax_starts_at_the_initial_tau_and_eta_and_trains_them():
    df = training.train("bernoulli-toy", estimator="rebar,relax", seed="0", steps=30, tau=0.4)
    rebar, rel = (df[df["estimator"] == name].set_index("step") for name in ("rebar", "relax"))
    assert (rebar["cv_tau"] == 0.4).all() and (rebar["cv_eta"] == 1.0).all()
    assert (rel["tau"] == 0.4).all() and (rel["eta"] == 1.0).all()
    assert rel.loc[0, "cv_tau"] == pytest.approx(0.4, rel=1e-15) and rel.loc[0, "cv_eta"] == 1.0
    assert rel.loc[30, "cv_tau"] != 0.4 and rel.loc[30, "cv_eta"] != 1.0
    # the first estimate of step 0 is RELAX at the initial theta on the step's noise
    u, v = relax.noise(rng.stream_key(training.step_seed(0, 0), rng.MAIN), 1, 1)
    g, _ = relax.estimates(0.0, relax.initial(0, 0.4, 1.0), u, v, AT, {"t": 0.499})
    assert rel.loc[0, "grad"] == g[0, 0]
    assert np.isnan(df[df["estimator"] == "rebar"]["grad_var"].iloc[-1])


@pytest.mark.slow
def test_relax_variance_falls_below_rebars_on_the_toy():
    """The RELAX paper's toy: after training, its variance is well below REBAR's (fixed
    eta = 1, tau = 0.5), over three seeds."""
    df = training.train("bernoulli-toy", estimator="rebar,relax", seed="0,1,2", steps=1000)
    late = df[(df["step"] >= 800) & (df["step"] < 1000)]
    var = late.groupby("estimator")["grad_var"].mean()
    assert var["relax"] < 0.2 * var["rebar"]


def test_relax_stays_unbiased_at_a_trained_control_variate():
    """After 300 steps of train's variance training the exact mean is still the gradient,
    and the exact variance has fallen far below the start's."""
    state = training.RelaxState(0, 0.5, 1.0, "adam", 0.01)
    cell = make_cell("bernoulli", "squared", logit=0.0, t=0.499, options={"eta": 1.0})
    start = quadrature(0.0, state.params["theta"], 0.499)[1]
    for step in range(300):
        state.estimates(cell, training.step_seed(0, step), 1)
        state.step()
    for phi in (0.0, -1.0):
        mean, var = quadrature(phi, state.params["theta"], 0.499)
        assert mean == pytest.approx(exact_gradient(phi, 0.499), rel=1e-9)
    assert quadrature(0.0, state.params["theta"], 0.499)[1] < 0.1 * start


@pytest.mark.parametrize("phi", [0.0, 30.0, 1e3, -1e3])
@pytest.mark.parametrize("tau", [1e-3, 100.0])
def test_relax_is_finite_at_extremes(phi, tau):
    u, v = relax.noise(rng.stream_key(1, rng.MAIN), 5000, 1)
    g, dg = relax.estimates(phi, random_theta(0, tau=tau, scale=1.0), u, v, AT, {"t": 0.499})
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(dg))

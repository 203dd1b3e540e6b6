"""ARM, DisARM, REBAR and REBAR-tied on the Bernoulli family, against ground truth derived
here: brute-force Gauss-Legendre over the uniforms (u, v) of docs/math.md §7, written
from the formulas and independent of gradvar/model/bernoulli.py, with sympy for REBAR's
derivatives at fixed (u, v, b); the Monte Carlo columns are checked against the library's
exact values, and a deliberately wrong variant of each fails the same check.
"""

import numpy as np
import pytest
import sympy as sp
from helpers import check_mean, check_variance, make_cell, rejects, simulate
from scipy.special import expit
from wrong_bernoulli import WRONG_ARM, WRONG_DISARM, WRONG_REBAR

from gradvar import engine, truth
from gradvar.model import registry

EST = registry.ESTIMATORS
BITS = ["arm", "disarm", "rebar", "rebar-tied"]


# --- independent references ------------------------------------------------------------------
def squared(t, w=None):
    """f(b) = (w.b - t)^2 on rows of b (N, D)."""

    def f(b):
        ww = np.full(b.shape[1], 1.0 / b.shape[1]) if w is None else np.asarray(w)
        return (b @ ww - t) ** 2

    return f


def arm_at(phi, f, u):
    """ARM at uniforms u (N, D): (f(b1) - f(b2)) (u - 1/2), b1 = 1[u > 1 - p], b2 = 1[u < p]."""
    p = expit(phi)
    b1, b2 = (u > 1 - p).astype(float), (u < p).astype(float)
    return (f(b1) - f(b2))[:, None] * (u - 0.5)


def disarm_at(phi, f, u):
    """DisARM at u: 1/2 (f(b1) - f(b2)) 1[b1 != b2] (-1)^b2 sigmoid(|phi|)."""
    p = expit(phi)
    b1, b2 = (u > 1 - p).astype(float), (u < p).astype(float)
    return 0.5 * (f(b1) - f(b2))[:, None] * (b1 != b2) * (-1.0) ** b2 * expit(np.abs(phi))


def tensor_gauss_legendre(cuts_per_dim, nodes):
    """Points and weights of a tensor Gauss-Legendre rule on [0, 1]^D, split at the cuts."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    axes = []
    for cuts in cuts_per_dim:
        edges = np.unique(np.clip([0.0, *cuts, 1.0], 0.0, 1.0))
        a, b = edges[:-1, None], edges[1:, None]
        axes.append((((a + b) / 2 + (b - a) / 2 * x).ravel(), ((b - a) / 2 * w).ravel()))
    grids = np.meshgrid(*[a[0] for a in axes], indexing="ij")
    weights = np.meshgrid(*[a[1] for a in axes], indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1), np.prod([w.ravel() for w in weights], 0)


def moments_over_u(at, phi, f):
    """E and Var of an estimate that is piecewise polynomial (degree <= 2 squared) in each u_i
    between the cuts p_i, 1 - p_i: exact with 3 Gauss-Legendre nodes per piece."""
    phi = np.atleast_1d(phi)
    p = expit(phi)
    u, w = tensor_gauss_legendre([(pi, 1 - pi) for pi in p], 3)
    g = at(phi, f, u)
    mean = w @ g
    return mean, w @ (g - mean) ** 2


def _rebar_symbolic(t, tau, eta, tied):
    """REBAR for one bit, f(y) = (y - t)^2, as NumPy functions of (phi, u, v) per value of b,
    each derivative taken by sympy at fixed u, v, b."""
    phi, u, v = sp.symbols("phi u v", real=True)
    p = 1 / (1 + sp.exp(-phi))

    def F(y):
        return (y - t) ** 2

    def s(x):
        return 1 / (1 + sp.exp(-x / tau))

    z = phi + sp.log(u) - sp.log(1 - u)
    out = {}
    for b, up in ((1, (1 - p) + p * v), (0, (1 - p) * v)):
        zt = phi + sp.log(up) - sp.log(1 - up)
        g = (
            (F(b) - eta * F(s(zt))) * (b - p)
            + eta * sp.diff(F(s(z)), phi)
            - eta * sp.diff(F(s(zt)), phi)
        )
        out[b] = sp.lambdify((phi, u, v), g, "numpy")
    return out


def rebar_reference(phi, t, tau, eta, tied, nodes):
    """(mean, variance) of one-bit REBAR by tensor Gauss-Legendre over (u, v) (tied: over u,
    with v = (u - q) / p or u / q), u split at q = 1 - p."""
    funcs = _rebar_symbolic(t, tau, eta, tied)
    q = expit(-phi)
    if tied:
        pts, w = tensor_gauss_legendre([(q,)], nodes)
        u = pts[:, 0]
        v = np.where(u > q, (u - q) / expit(phi), u / q)
    else:
        pts, w = tensor_gauss_legendre([(q,), ()], nodes)
        u, v = pts[:, 0], pts[:, 1]
    with np.errstate(all="ignore"):
        g = np.where(u > q, funcs[1](phi, u, v), funcs[0](phi, u, v))
    mean = w @ g
    return mean, w @ (g - mean) ** 2


def bernoulli_cell(logit, t, tau=0.5, eta=1.0, batch=1):
    return make_cell(
        "bernoulli", "squared", logit=logit, t=t, tau=tau, batch=batch, options={"eta": eta}
    )


# --- exact values against the independent references ----------------------------------------
@pytest.mark.parametrize("logit,t", [(0.0, 0.499), (0.7, 0.3), (-2.5, 0.9), (4.0, 0.1)])
@pytest.mark.parametrize("name,at", [("arm", arm_at), ("disarm", disarm_at)])
def test_arm_disarm_exact_matches_integration_over_u(name, at, logit, t):
    mean, var = moments_over_u(at, logit, squared(t))
    cell = bernoulli_cell(logit, t)
    lib_mean, lib_var, note = truth.exact(cell, EST[name])
    assert note == ""
    np.testing.assert_allclose(lib_mean, mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(lib_var, var, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(lib_mean, truth.exact_gradient(cell), rtol=1e-12, atol=1e-15)


def test_arm_closed_form_at_phi_zero():
    """At phi = 0: ARM is (f(1) - f(0)) |u - 1/2| (variance (f(1) - f(0))^2 / 48) and DisARM
    the constant (f(1) - f(0)) / 4 (variance 0)."""
    t = 0.3
    delta = (1 - t) ** 2 - t**2
    cell = bernoulli_cell(0.0, t)
    mean, var, _ = truth.exact(cell, EST["arm"])
    np.testing.assert_allclose([mean[0], var[0]], [delta / 4, delta**2 / 48], rtol=1e-13)
    mean, var, _ = truth.exact(cell, EST["disarm"])
    np.testing.assert_allclose([mean[0], var[0]], [delta / 4, 0.0], rtol=1e-13, atol=1e-18)


@pytest.mark.parametrize("tied", [False, True], ids=["rebar", "rebar-tied"])
@pytest.mark.parametrize(
    "logit,t,tau,eta",
    [
        (0.7, 0.3, 0.5, 1.0),
        pytest.param(-1.2, 0.499, 0.2, 0.6, marks=pytest.mark.slow),
        pytest.param(2.0, 0.8, 1.5, -0.5, marks=pytest.mark.slow),
    ],
)
def test_rebar_exact_matches_integration_over_u_and_v(tied, logit, t, tau, eta):
    ref = rebar_reference(logit, t, tau, eta, tied, 400)
    finer = rebar_reference(logit, t, tau, eta, tied, 800)
    np.testing.assert_allclose(ref, finer, rtol=1e-7)  # the reference has converged
    cell = bernoulli_cell(logit, t, tau=tau, eta=eta)
    mean, var, note = truth.exact(cell, EST["rebar-tied" if tied else "rebar"])
    assert note == ""
    np.testing.assert_allclose(mean, ref[0], rtol=1e-7)
    np.testing.assert_allclose(var, ref[1], rtol=1e-7)
    np.testing.assert_allclose(mean, truth.exact_gradient(cell), rtol=1e-9)  # unbiased


def test_rebar_couplings_have_different_variances():
    cell = bernoulli_cell(0.7, 0.3)
    _, independent, _ = truth.exact(cell, EST["rebar"])
    _, tied, _ = truth.exact(cell, EST["rebar-tied"])
    assert abs(independent[0] - tied[0]) > 1e-3 * tied[0]


@pytest.mark.parametrize("logit", np.linspace(-4.0, 4.0, 17))
@pytest.mark.parametrize("t", [0.1, 0.499, 0.9])
def test_disarm_variance_never_exceeds_arm(logit, t):
    cell = bernoulli_cell(logit, t)
    _, arm, _ = truth.exact(cell, EST["arm"])
    _, disarm, _ = truth.exact(cell, EST["disarm"])
    assert disarm[0] <= arm[0] * (1 + 1e-12)


def test_rebar_exact_is_finite_at_small_tau_and_extreme_logits():
    """Unbiased to 1e-7 relative even where p (1 - p) = e^-30: (f(1) - f(0)) p (1 - p)."""
    t = 0.499
    for logit, tau in [(0.3, 1e-3), (30.0, 0.5), (-30.0, 0.5), (1e3, 0.5)]:
        for name in ("rebar", "rebar-tied"):
            mean, var, note = truth.exact(bernoulli_cell(logit, t, tau=tau), EST[name])
            assert note == "" and np.isfinite(mean).all() and np.isfinite(var).all(), logit
            closed = ((1 - t) ** 2 - t**2) * expit(logit) * expit(-logit)
            np.testing.assert_allclose(mean, closed, rtol=1e-7, atol=1e-300)


# --- Monte Carlo against the exact values, and the wrong variants ---------------------------
@pytest.mark.parametrize("name", BITS)
def test_monte_carlo_matches_the_exact_moments(name):
    cell = bernoulli_cell(0.7, 0.3, tau=0.5, eta=0.8)
    run = simulate(cell, name, 400_000, seed=31)
    check_mean(run, powered=True)
    check_variance(run, powered=True)


@pytest.mark.parametrize("name", BITS)
def test_batch_divides_the_exact_variance(name):
    one = truth.exact(bernoulli_cell(-0.4, 0.2), EST[name])[1]
    three = truth.exact(bernoulli_cell(-0.4, 0.2, batch=3), EST[name])[1]
    np.testing.assert_allclose(three, one / 3, rtol=1e-12)


def test_wrong_arm_is_rejected_by_the_variance_check():
    cell = bernoulli_cell(0.7, 0.3)
    run = simulate(cell, WRONG_ARM, 400_000, seed=32)
    _, arm_var, _ = truth.exact(cell, EST["arm"])
    check_mean(run)  # u - 1 keeps the mean: E f(b1) = E f(b2)
    assert rejects(check_variance, run, arm_var)


def test_wrong_disarm_is_rejected_by_the_mean_check():
    run = simulate(bernoulli_cell(0.7, 0.3), WRONG_DISARM, 400_000, seed=33)
    assert rejects(check_mean, run)


def test_wrong_rebar_is_rejected_by_the_mean_check():
    run = simulate(bernoulli_cell(0.7, 0.3, eta=0.8), WRONG_REBAR, 400_000, seed=34)
    assert rejects(check_mean, run)


def test_rebar_with_eta_zero_is_sf_on_the_same_noise():
    """eta = 0 leaves f(b) (b - p): the score-function estimate, sample for sample (REBAR's b
    is the family's sample; its own noise v then has no effect)."""
    cell = bernoulli_cell(0.7, 0.3, eta=0.0)
    sf = engine.estimates(cell, EST["sf"], 1000, seed=5)
    for name in ("rebar", "rebar-tied"):
        np.testing.assert_allclose(engine.estimates(cell, EST[name], 1000, seed=5), sf, rtol=1e-12)


def test_the_couplings_differ_sample_by_sample():
    cell = bernoulli_cell(0.7, 0.3)
    a = engine.estimates(cell, EST["rebar"], 200, seed=6)
    tied = engine.estimates(cell, EST["rebar-tied"], 200, seed=6)
    np.testing.assert_array_equal(a, engine.estimates(cell, EST["rebar"], 200, seed=6))
    assert not np.allclose(a, tied)


def test_cost_and_options_are_declared():
    assert [EST[n].evals({}) for n in BITS] == [2.0, 2.0, 3.0, 3.0]
    assert EST["rebar"].stream == "rebar" and EST["rebar-tied"].stream is None
    assert registry.OPTIONS["eta"].default == 1.0
    for name in BITS:
        assert registry.applicable(EST[name], registry.FAMILIES["bernoulli"])
        assert not registry.applicable(EST[name], registry.FAMILIES["categorical"])


def test_arm_shares_the_family_noise_with_sf():
    """b1 = 1[u > 1 - p] is sf's sample b.  With f(b) = b and p > 1/2, ARM is 0 exactly when
    1 - p < u < p, where b = 1 and sf = b (b - p) > 0."""
    cell = bernoulli_cell(0.3, 0.0)  # f(b) = (b - 0)^2 = b
    sf = engine.estimates(cell, EST["sf"], 2000, seed=7)[:, 0]
    arm = engine.estimates(cell, EST["arm"], 2000, seed=7)[:, 0]
    assert (arm == 0).sum() > 100 and np.all(sf[arm == 0] > 0)
    assert np.all(arm >= 0)


# --- the command line ----------------------------------------------------------------------
def test_compare_sweeps_eta(cli, tmp_path):
    out = tmp_path / "run"
    result = cli(
        "compare",
        "--family",
        "bernoulli",
        "--logit",
        "0.5",
        "--estimator",
        "sf,arm,rebar",
        "--eta",
        "0.5,1",
        "--samples",
        "20000",
        "--out",
        str(out),
        "--no-plot",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    assert "at equal cost" in result.output  # the eta sweep's grid, times f-evals
    import pandas as pd

    rows = pd.read_csv(out / "results.csv")
    rebar = rows[rows.estimator == "rebar"]
    assert sorted(rebar.eta) == [0.5, 1.0]
    arm = rows[rows.estimator == "arm"]
    assert arm.eta.isna().all() and (arm.f_evals == 2.0).all() and arm.grad_var.nunique() == 1
    assert list(rebar.f_evals) == [3.0, 3.0]
    assert np.isfinite(rebar.exact_var).all()


@pytest.mark.parametrize("eta", ["nan", "inf", "x"])
def test_bad_eta_is_a_usage_error(cli, eta):
    result = cli("compare", "--family", "bernoulli", "--estimator", "rebar", "--eta", eta)
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_point_table_has_the_equal_cost_column(cli, tmp_path):
    args = ["compare", "--family", "bernoulli", "--logit", "0.5", "--estimator", "sf,disarm"]
    result = cli(*args, "--samples", "2000", "--batch", "2", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert "variance × f-evals" in result.output
    import pandas as pd

    rows = pd.read_csv(tmp_path / "r" / "results.csv")
    np.testing.assert_allclose(rows.var_f_evals, rows.grad_var * [2.0, 4.0])


def test_train_runs_the_bernoulli_estimators():
    """REBAR reads eta: train gives it the registered default (1), so its steps are finite."""
    from gradvar.studies.train import train

    rows = train(problem="bernoulli-toy", estimator="arm,disarm,rebar", steps=3, seed="0")
    assert np.isfinite(rows.grad.dropna()).all() and len(rows.dropna(subset=["grad"])) == 9
    assert np.isfinite(rows.grad_var.dropna()).all()

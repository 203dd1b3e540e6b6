"""st, reinmax and gumbel-rao (REFERENCE section 7), and the ground truth that came with them:
three-class relaxed variances and the leave-one-out U-statistic.

Ground truth is derived here independently of gradvar.truth: the REFERENCE formulas
enumerated by hand in NumPy, SciPy quadrature over the logistic noise, and brute-force
enumeration of whole batches.  Every statistical check is Z_TOL = 5 standard errors with a
fixed seed and powered (a factor 2 would fail), and the wrong estimators of
``wrong_categorical.py`` fail the same checks.
"""

import dataclasses
import itertools

import numpy as np
import pytest
from helpers import check_mean, check_variance, make_cell, rejects, simulate
from scipy import integrate, special
from wrong_categorical import WRONG_RAO, WRONG_REINMAX, WRONG_ST

from gradvar import engine, truth
from gradvar.kernels import rng
from gradvar.model import ESTIMATORS
from gradvar.model.categorical import RAO_BLOCK, RAO_ROWS

N = 200_000
LOGITS = (2.0, 0.5, 0.1)
T = 0.499


def with_options(cell, **options):
    return dataclasses.replace(cell, options={**cell.options, **options})


# --- independent ground truth --------------------------------------------------------------
def A(x):
    return np.diag(x) - np.outer(x, x)


def grad_f(logits, objective, d):
    """df/dD at the one-hot D of the categorical (w = 1..K, t = 0.499)."""
    w = np.arange(1.0, len(logits) + 1)
    return w if objective == "linear" else 2.0 * (w @ d - T) * w


def literal(name, logits, tau, objective="squared"):
    """Per class: the estimate of ``st`` / ``reinmax`` as REFERENCE section 7 writes it."""
    o = np.asarray(logits, dtype=float)
    pi, s = special.softmax(o), special.softmax(o / tau)
    rows = []
    for i in range(len(o)):
        d = np.eye(len(o))[i]
        v = grad_f(o, objective, d)
        if name == "st":
            rows.append(A(s) @ v / tau)
        else:
            rows.append((2 * A((d + s) / 2) - 0.5 * A(pi)) @ v)
    return pi, np.array(rows)


def enum_moments(pi, rows):
    mean = pi @ rows
    return mean, pi @ (rows - mean) ** 2


def bernoulli_literal(name, phi, tau):
    """The two-class view with logits (phi, 0): class 0 is b = 1, f = (b - t)^2."""
    pi, rows = [], []
    for b in (1.0, 0.0):
        o = np.array([phi, 0.0])
        d = np.array([b, 1 - b])
        v = np.array([2 * (b - T), 0.0])
        s = special.softmax(o / tau)
        g = (
            A(s) @ v / tau
            if name == "st"
            else (2 * A((d + s) / 2) - 0.5 * A(special.softmax(o))) @ v
        )
        rows.append(g[:1])
        pi.append(special.expit(phi) if b else special.expit(-phi))
    return np.array(pi), np.array(rows)


# --- st and reinmax: enumeration -------------------------------------------------------------
@pytest.mark.parametrize("name", ["st", "reinmax"])
def test_st_reinmax_exact_is_the_enumerated_formula(name):
    for objective in ("linear", "squared"):
        cell = make_cell("categorical", objective, logits=LOGITS, tau=0.5)
        mean, var, note = truth.exact(cell, ESTIMATORS[name])
        want = enum_moments(*literal(name, LOGITS, 0.5, objective))
        np.testing.assert_allclose(mean, want[0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(var, want[1], rtol=1e-12, atol=1e-15)
        assert note == ""
    cell = make_cell("bernoulli", "squared", logit=0.7, tau=0.5)
    mean, var, _ = truth.exact(cell, ESTIMATORS[name])
    want = enum_moments(*bernoulli_literal(name, 0.7, 0.5))
    np.testing.assert_allclose(mean, want[0], rtol=1e-12)
    np.testing.assert_allclose(var, want[1], rtol=1e-12)


@pytest.mark.parametrize(
    "name,wrong", [("st", WRONG_ST), ("reinmax", WRONG_REINMAX)], ids=["st", "reinmax"]
)
def test_st_reinmax_monte_carlo(name, wrong):
    cell = make_cell("categorical", "squared", logits=LOGITS, tau=0.5)
    mean, var = enum_moments(*literal(name, LOGITS, 0.5))
    run = simulate(cell, name, N, seed=3)
    check_mean(run, exact=mean, powered=True)
    check_variance(run, exact_var=var)
    bad = simulate(cell, wrong, N, seed=3)
    assert rejects(check_mean, bad, exact=mean) or rejects(check_variance, bad, exact_var=var)


def test_reinmax_unbiased_at_tau_one_for_quadratics():
    # three classes (the shape the other tests compile); two classes are the bernoulli's below
    for objective, logits in itertools.product(("linear", "squared"), [LOGITS, (-1.0, 3.0, 0.5)]):
        cell = make_cell("categorical", objective, logits=logits, tau=1.0)
        mean, _, _ = truth.exact(cell, ESTIMATORS["reinmax"])
        np.testing.assert_allclose(mean, truth.exact_gradient(cell), rtol=1e-12, atol=1e-15)
    for phi in (-2.0, 0.0, 1.3):
        cell = make_cell("bernoulli", "squared", logit=phi, tau=1.0)
        mean, _, _ = truth.exact(cell, ESTIMATORS["reinmax"])
        np.testing.assert_allclose(mean, truth.exact_gradient(cell), rtol=1e-12)


def test_reinmax_unbiasedness_test_passes_at_tau_1_fails_at_tau_2():
    good = simulate(make_cell("categorical", "squared", tau=1.0), "reinmax", N, seed=5)
    check_mean(good, powered=True)  # against the exact gradient
    biased = simulate(make_cell("categorical", "squared", tau=2.0), "reinmax", N, seed=5)
    assert rejects(check_mean, biased)


def test_reinmax_on_bernoulli_at_phi_0_ignores_tau():
    moments = [
        truth.exact(make_cell("bernoulli", "squared", logit=0.0, tau=tau), ESTIMATORS["reinmax"])
        for tau in (0.1, 0.5, 1.0, 2.0, 7.0)
    ]
    for mean, var, _ in moments[1:]:
        assert mean == pytest.approx(moments[0][0], rel=1e-14)
        assert var == pytest.approx(moments[0][1], rel=1e-14)


# --- gumbel-rao: conditional moments ----------------------------------------------------------
def bernoulli_rao(phi, tau, rao):
    """Independent: given the class, one inner draw is st-gumbel given the class, a function
    of L ~ Logistic restricted to the class's half-line (scipy.integrate.quad)."""
    a = lambda L: (phi + L) / tau  # noqa: E731
    g = lambda L, b: special.expit(a(L)) * special.expit(-a(L)) / tau * 2 * (b - T)  # noqa: E731
    pdf = lambda L: special.expit(L) * special.expit(-L)  # noqa: E731
    parts = []
    for b, (lo, hi) in ((1.0, (-phi, np.inf)), (0.0, (-np.inf, -phi))):
        mass = integrate.quad(pdf, lo, hi, epsabs=0, epsrel=1e-12)[0]
        m1 = integrate.quad(lambda L, b=b: g(L, b) * pdf(L), lo, hi, epsabs=0, epsrel=1e-12)[0]
        m2 = integrate.quad(lambda L, b=b: g(L, b) ** 2 * pdf(L), lo, hi, epsabs=0, epsrel=1e-12)[0]
        parts.append((mass, m1 / mass, m2 / mass - (m1 / mass) ** 2))
    pi, means, variances = (np.array(x) for x in zip(*parts, strict=True))
    mean = pi @ means
    return mean, pi @ variances / rao + pi @ (means - mean) ** 2


@pytest.mark.parametrize("phi,tau,rao", [(0.0, 0.5, 10), (1.5, 0.3, 3)])
def test_gumbel_rao_exact_bernoulli_against_quad(phi, tau, rao):
    cell = with_options(make_cell("bernoulli", "squared", logit=phi, tau=tau), rao_samples=rao)
    mean, var, note = truth.exact(cell, ESTIMATORS["gumbel-rao"])
    want = bernoulli_rao(phi, tau, rao)
    assert note == ""
    np.testing.assert_allclose(mean, want[0], rtol=1e-8)
    np.testing.assert_allclose(var, want[1], rtol=1e-8)


def test_gumbel_rao_monte_carlo_categorical_and_wrong_unconditional():
    cell = with_options(make_cell("categorical", "squared", tau=0.5), rao_samples=10)
    mean, var, note = truth.exact(cell, ESTIMATORS["gumbel-rao"])
    assert note == "" and np.all(np.isfinite(var))
    run = simulate(cell, "gumbel-rao", N, seed=7)
    check_mean(run, exact=mean, powered=True)
    check_variance(run, exact_var=var)
    bad = simulate(cell, WRONG_RAO, N, seed=7)
    assert rejects(check_mean, bad, exact=mean)
    # Rao-Blackwellisation: below st-gumbel's variance, above Var(E[g | D])
    _, st_var, _ = truth.exact(cell, ESTIMATORS["st-gumbel"])
    assert np.all(var < st_var)


def test_gumbel_rao_with_one_sample_is_st_gumbel():
    for cell in (make_cell("categorical", "squared", tau=0.5), make_cell("bernoulli", "squared")):
        cell = with_options(cell, rao_samples=1)
        rao = truth.exact(cell, ESTIMATORS["gumbel-rao"])
        st = truth.exact(cell, ESTIMATORS["st-gumbel"])
        # two quadratures (the bernoulli's st-gumbel integrates over L) agree to ~1e-12
        np.testing.assert_allclose(rao[0], st[0], rtol=1e-10)
        np.testing.assert_allclose(rao[1], st[1], rtol=1e-10)
    run = simulate(cell, "gumbel-rao", N, seed=11)  # the bernoulli cell: K' = 1
    check_mean(run, exact=st[0])
    check_variance(run, exact_var=st[1])


def gumbel_rao_twin(cell, n, seed, row_offset=None):
    """The first n gumbel-rao estimates in NumPy, transcribed from REFERENCE section 7 on the
    kernel's uniforms: D by Gumbel-Max on the MAIN stream (counters K c + j), E = -log U from
    the estimator's stream (counters c K' K + r K + j), gaps z_j - z_i = -log1p(E_j / (pi_j
    E_i)), the mean over r of J(softmax(gaps / tau))^T grad f(D).  ``row_offset(r)``: a
    wrong twin that numbers its rows r as a blocked kernel forgetting the block's start would."""
    o = np.asarray(cell.family_values["logits"], dtype=float)
    k, rao, tau = len(o), int(cell.options["rao_samples"]), cell.options["tau"]
    pi = special.softmax(o)
    key = rng.stream_key(seed, rng.MAIN)
    c = np.arange(n)[:, None]
    gumbels = -np.log(-np.log(rng.uniform_array(key, c * k + np.arange(k))))
    d = np.eye(k)[np.argmax(o + gumbels, axis=1)]
    w = np.arange(1.0, k + 1)
    v = 2.0 * (d @ w - T)[:, None] * w  # grad f(D), (n, K)
    own = rng.substream_key(key, rng.stream_id("gumbel-rao"))
    r = np.arange(rao) if row_offset is None else row_offset(np.arange(rao))
    counters = c[:, :, None] * rao * k + r[None, :, None] * k + np.arange(k)
    e = -np.log(rng.uniform_array(own, counters))  # (n, K', K)
    ei = np.take_along_axis(e, np.argmax(d, axis=1)[:, None, None], axis=2)
    gaps = np.where(d[:, None, :] == 1, 0.0, -np.log1p(e / (pi * ei)))  # z_i - z_i = 0
    y = special.softmax(gaps / tau, axis=2)
    vs = v[:, None, :]
    return (y * (vs - np.sum(y * vs, axis=2, keepdims=True)) / tau).mean(axis=1)


@pytest.mark.parametrize("k", [3, 17, 300])  # stack scratch; heap; blocks cut by RAO_BLOCK
def test_gumbel_rao_kernel_is_its_formula_across_blocks(k):
    """The blocked kernel against :func:`gumbel_rao_twin` on the same uniforms, with K' = 2 B
    + 1 for B rows per block: two whole blocks and one of one row (K' and K divide no block)."""
    rows = max(1, min(RAO_ROWS // 2 * k, RAO_BLOCK) // k)
    rao = 2 * rows + 1
    logits = np.cos(np.arange(k)) - 0.1 * np.arange(k) / k
    cell = make_cell("categorical", "squared", logits=logits, tau=0.7)
    cell = with_options(cell, rao_samples=rao)
    n = 40 if k == 300 else 200
    got = engine.estimates(cell, ESTIMATORS["gumbel-rao"], n, 5)
    # inline log/log1p/exp (1 ulp) against libm, amplified by 1/tau in the exponent
    np.testing.assert_allclose(got, gumbel_rao_twin(cell, n, 5), rtol=1e-11, atol=1e-13)
    wrong = gumbel_rao_twin(cell, n, 5, row_offset=lambda r: r % rows)  # rows restart per block
    assert not np.allclose(got, wrong, rtol=1e-6, atol=1e-9)


def test_gumbel_rao_four_classes_is_nan_with_a_note():
    cell = with_options(make_cell("categorical", "squared", logits=(1, 0, 0, 2)), rao_samples=4)
    mean, var, note = truth.exact(cell, ESTIMATORS["gumbel-rao"])
    assert np.all(np.isnan(mean)) and np.all(np.isnan(var)) and "three classes" in note


# --- three-class relaxed estimators ----------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["st-gumbel", pytest.param("gumbel-softmax", marks=pytest.mark.slow)]
)
def test_three_class_relaxed_variance(name):
    cell = make_cell("categorical", "squared", tau=0.5)
    mean, var, note = truth.exact(cell, ESTIMATORS[name])
    assert note == ""
    run = simulate(cell, name, N, seed=17)
    check_mean(run, exact=mean, powered=True)
    check_variance(run, exact_var=var)
    assert rejects(check_variance, run, exact_var=var * 1.1)


# --- sf-baseline --baseline loo: the U-statistic ---------------------------------------------
def loo_brute_force(values, probs, f, s, batch):
    """Every batch of outcomes with its probability: the loo estimate written literally."""
    moments = np.zeros((2, s.shape[1]))
    for idx in itertools.product(range(len(values)), repeat=batch):
        w = np.prod(probs[list(idx)])
        fs, ss = f[list(idx)], s[list(idx)]
        base = (fs.sum() - fs) / (batch - 1)
        g = ((fs - base)[:, None] * ss).mean(0)
        moments += w * np.array([g, g * g])
    return moments[0], moments[1] - moments[0] ** 2


@pytest.mark.parametrize("batch", [2, 3, 4])
def test_loo_exact_variance_discrete(batch):
    o = np.array(LOGITS)
    pi = special.softmax(o)
    w = np.arange(1.0, 4.0)
    f = (w - T) ** 2
    s = np.eye(3) - pi
    cell = make_cell("categorical", "squared", batch=batch)
    mean, var, note = truth.exact(cell, ESTIMATORS["sf-baseline"], "loo")
    want = loo_brute_force(range(3), pi, f, s, batch)
    np.testing.assert_allclose(mean, want[0], rtol=1e-12)
    np.testing.assert_allclose(var, want[1], rtol=1e-10)
    p = special.expit(0.4)
    cell = make_cell("bernoulli", "squared", logit=0.4, batch=batch)
    mean, var, _ = truth.exact(cell, ESTIMATORS["sf-baseline"], "loo")
    want = loo_brute_force(
        range(2),
        np.array([1 - p, p]),
        (np.array([0, 1]) - T) ** 2,
        np.array([[-p], [1 - p]]),
        batch,
    )
    np.testing.assert_allclose(var, want[1], rtol=1e-10)


@pytest.mark.slow
def test_loo_monte_carlo_categorical():
    cell = make_cell("categorical", "squared", batch=3)
    run = simulate(cell, "sf-baseline", N, seed=19, baseline="loo")
    check_variance(run)
    assert rejects(check_variance, run, exact_var=run.exact_var * 3 / 2)  # the 1/M law is wrong


# --- extremes --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["st", "reinmax", "gumbel-rao"])
def test_extremes_stay_finite(name):
    cells = [
        make_cell("categorical", "squared", tau=1e-3),
        make_cell("categorical", "squared", logits=(1e3, -1e3, 0.0)),
        make_cell("bernoulli", "squared", logit=1e3, tau=1e-3),
        make_cell("bernoulli", "squared", logit=-1e3),
    ]
    for cell in cells:
        cell = with_options(cell, rao_samples=3)
        mom = engine.simulate(cell, ESTIMATORS[name], 2000, 0)
        assert mom.nonfinite == 0 and np.all(np.isfinite(mom.moments)), (name, cell)

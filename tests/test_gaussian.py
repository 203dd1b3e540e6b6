"""The Gaussian side of the survey: mvd, mvd-coupled, sf-delta, reparam-delta, the gaussian
objective and the Normal ground truth beyond Gauss-Hermite (docs/math.md §7, §8).

Ground truth is derived here, independently of gradvar/truth_normal.py: exact expectations of
polynomials under the Rayleigh, Maxwell, normal and uniform laws with sympy (the estimators'
formulas written out symbolically), and scipy.integrate.quad for the oscillating cosine.
"""

import functools
import math

import numpy as np
import pytest
import sympy as sp
import wrong_gaussian as wrong
from helpers import check_mean, check_variance, make_cell, rejects, simulate
from scipy import integrate

from gradvar import truth
from gradvar.model import ESTIMATORS, OBJECTIVES

NEW = ("mvd", "mvd-coupled", "sf-delta", "reparam-delta")
ALL_NORMAL = ("sf", "sf-baseline", "reparam") + NEW

mu, sigma, k, a = sp.symbols("mu sigma k a", real=True)
x, y = sp.symbols("x y", real=True)
PDF = {
    "normal": (sp.exp(-(x**2) / 2) / sp.sqrt(2 * sp.pi), -sp.oo),
    "rayleigh": (x * sp.exp(-(x**2) / 2), 0),
    "maxwell": (x**2 * sp.exp(-(x**2) / 2) / sp.sqrt(2 * sp.pi), -sp.oo),
}


@functools.cache
def _moment(law, n):
    if law == "uniform":
        return sp.Rational(1, n + 1)
    pdf, lo = PDF[law]
    return sp.simplify(sp.integrate(x**n * pdf, (x, lo, sp.oo)))


def expect(expr, var, law):
    """E over ``var`` ~ law of a polynomial in ``var``, monomial by monomial."""
    poly = sp.Poly(sp.expand(expr), var)
    return sp.expand(
        sum(c * _moment(law, m[0]) for m, c in zip(poly.monoms(), poly.coeffs(), strict=True))
    )


def moments_of(g, laws):
    """(E g, Var g) for g a polynomial in the variables of ``laws`` [(symbol, law), ...]."""
    first, second = g, g * g
    for var, law in laws:
        first, second = expect(first, var, law), expect(second, var, law)
    return sp.simplify(first), sp.simplify(second - first**2)


def estimator_formulas(f, fd):
    """The estimators of docs/math.md §7 as sympy expressions of their variates:
    {name: ((g_mu, g_sigma), laws)}; fd = [f, f', f'', f'''] at mu."""
    W, W2, M, E, U, e = sp.symbols("W W2 M E U e", real=True)
    c = sigma * sp.sqrt(2 * sp.pi)
    z = mu + sigma * e
    cv = fd[0] + fd[1] * (z - mu) + fd[2] * (z - mu) ** 2 / 2
    return {
        "mvd": (
            ((f(mu + sigma * W) - f(mu - sigma * W2)) / c, (f(mu + sigma * M) - f(z)) / sigma),
            [(W, "rayleigh"), (W2, "rayleigh"), (M, "maxwell"), (e, "normal")],
        ),
        "mvd-coupled": (
            (
                (f(mu + sigma * W) - f(mu - sigma * W)) / c,
                (f(mu + sigma * M) - f(mu + sigma * U * M)) / sigma,
            ),
            [(W, "rayleigh"), (U, "uniform"), (M, "maxwell")],
        ),
        "sf-delta": (
            (
                (f(z) - cv) * e / sigma
                - fd[3] * sigma**2 * e**2 / 2
                + fd[1]
                + fd[3] * sigma**2 / 2,
                (f(z) - cv) * (e**2 - 1) / sigma + fd[2] * sigma,
            ),
            [(e, "normal")],
        ),
        "reparam-delta": (
            (
                sp.diff(f(x), x).subs(x, z) - fd[2] * sigma * e - fd[3] * sigma**2 * (e**2 - 1) / 2,
                (sp.diff(f(x), x).subs(x, z) - fd[1] - fd[2] * sigma * e) * e + fd[2] * sigma,
            ),
            [(e, "normal")],
        ),
    }


def _objective(name):
    f = {"quadratic": lambda t: (t - k) ** 2, "linear": lambda t: a * t}[name]
    fd = [sp.diff(f(x), x, n).subs(x, mu) for n in range(4)]
    return f, fd


@functools.cache
def closed_forms(objective):
    """{estimator: (means, variances)} as sympy expressions in mu, sigma and k or a."""
    f, fd = _objective(objective)
    out = {}
    for name, (gs, laws) in estimator_formulas(f, fd).items():
        pairs = [moments_of(g, [(v, law) for v, law in laws if g.has(v)]) for g in gs]
        out[name] = tuple(zip(*pairs, strict=True))
    return out


POINTS = [
    ("quadratic", dict(mu=1.0, sigma=1.0, k=0.0)),
    ("quadratic", dict(mu=0.3, sigma=1.7, k=-1.2)),
    ("quadratic", dict(mu=2.0, sigma=0.5, k=1.0)),
    ("linear", dict(mu=-0.4, sigma=1.3, a=1.0)),
    ("linear", dict(mu=2.0, sigma=0.6, a=-0.7)),
]


@pytest.mark.parametrize("objective,point", POINTS)
@pytest.mark.parametrize("est", NEW)
def test_exact_moments_match_closed_forms(est, objective, point):
    means, variances = closed_forms(objective)[est]
    subs = {mu: point["mu"], sigma: point["sigma"], k: point.get("k", 0), a: point.get("a", 1)}
    want_mean = np.array([float(m.subs(subs)) for m in means])
    want_var = np.array([float(v.subs(subs)) for v in variances])
    cell = make_cell("normal", objective, **point)
    got_mean, got_var, note = truth.exact(cell, ESTIMATORS[est])
    assert note == ""
    np.testing.assert_allclose(got_mean, want_mean, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got_var, want_var, rtol=1e-9, atol=1e-12)


def test_closed_forms_are_the_known_ones():
    """The sympy derivation reproduces docs/math.md §7: the delta estimators have variance 0
    on quadratics (and linear f); the coupling facts for linear f and the 1.53 sigma crossover
    for (z - k)^2."""
    quad, lin = closed_forms("quadratic"), closed_forms("linear")
    for est in ("sf-delta", "reparam-delta"):
        assert quad[est][1] == (0, 0) and lin[est][1] == (0, 0)
    vu, vc = sp.nsimplify(lin["mvd"][1][0] / a**2), lin["mvd-coupled"][1][0] / a**2
    assert abs(float(vu) - 0.137) < 5e-4 and abs(float(vc) - 0.273) < 5e-4
    d = sp.symbols("d", positive=True)
    gap = (quad["mvd-coupled"][1][0] - quad["mvd"][1][0]).subs(mu, k + d * sigma)
    (root,) = sp.solve(sp.simplify(gap / sigma**2), d)
    assert abs(float(root) - 1.53) < 5e-3
    # coupling lowers the sigma variance on (z - k)^2: the gap is a positive multiple of sigma^2
    sigma_gap = sp.simplify(quad["mvd"][1][1] - quad["mvd-coupled"][1][1])
    assert sigma_gap.subs({mu: 0.7, sigma: 1.3, k: -0.2}) > 0


@pytest.mark.parametrize("d,worse", [(1.45, False), (1.6, True)])
def test_coupling_crossover_in_exact_var(d, worse):
    cell = make_cell("normal", "quadratic", mu=0.5 + 2.0 * d, sigma=2.0, k=0.5)
    _, coupled, _ = truth.exact(cell, ESTIMATORS["mvd-coupled"])
    _, plain, _ = truth.exact(cell, ESTIMATORS["mvd"])
    assert (coupled[0] > plain[0]) == worse and coupled[1] < plain[1]


# --- Monte Carlo against the closed forms, with a wrong estimator rejected beside each ------
def test_mvd_monte_carlo_and_wrong_maxwell():
    cell = make_cell("normal", "quadratic", mu=0.3, sigma=1.7, k=-1.2)
    right = simulate(cell, "mvd", 400_000, seed=51)
    check_mean(right, powered=True)
    check_variance(right, powered=True)
    bad = simulate(cell, wrong.MVD_RAYLEIGH_FOR_MAXWELL, 400_000, seed=51)
    assert rejects(check_mean, bad, right.exact_grad)


def test_mvd_coupled_monte_carlo_and_wrong_constant():
    cell = make_cell("normal", "linear", mu=2.0, sigma=0.6, a=-0.7)
    right = simulate(cell, "mvd-coupled", 200_000, seed=52)
    check_mean(right, exact=right.exact_grad, powered=True)
    check_variance(right, powered=True)
    bad = simulate(cell, wrong.MVD_MISSING_SQRT_PI, 200_000, seed=52)
    assert rejects(check_mean, bad, right.exact_grad)


@pytest.mark.parametrize(
    "objective,point", [POINTS[1], ("gaussian", dict(mu=0.8, sigma=1.1, k=0.7))]
)
def test_delta_estimators_monte_carlo_and_wrong(objective, point):
    """Variance 0 (to rounding) on a quadratic; on exp(-k z^2) mean and variance as exact, and
    the partial-derivative and missing-term variants rejected."""
    cell = make_cell("normal", objective, **point)
    for est, bug, check in [
        ("reparam-delta", wrong.REPARAM_DELTA_PARTIAL, check_variance),
        ("sf-delta", wrong.SF_DELTA_NO_CV_MEAN, check_mean),
    ]:
        right = simulate(cell, est, 200_000, seed=53)
        if objective == "quadratic":
            assert np.all(right.st["grad_var"] < 1e-20) and np.all(right.exact_var < 1e-20)
            np.testing.assert_allclose(right.st["grad_mean"], right.exact_grad, rtol=1e-12)
            continue
        check_mean(right, powered=True)
        check_variance(right, powered=True)
        bad = simulate(cell, bug, 200_000, seed=53)
        truth_of_check = right.exact_var if check is check_variance else right.exact_grad
        assert rejects(check, bad, truth_of_check)


# --- the gaussian objective and the derivatives the delta estimators read -------------------
def test_gaussian_objective_closed_forms():
    """E f and its gradient against scipy quadrature of f times the density and its
    derivatives in mu and sigma."""
    m, s, kk = 0.7, 1.3, 0.9

    def expect(h):
        return integrate.quad(lambda z: h(z) * math.exp(-kk * z * z), -30, 30, epsabs=1e-14)[0]

    def pdf(z):
        return math.exp(-((z - m) ** 2) / (2 * s * s)) / (s * math.sqrt(2 * math.pi))

    mean = expect(pdf)
    d_mu = expect(lambda z: pdf(z) * (z - m) / s**2)
    d_sigma = expect(lambda z: pdf(z) * ((z - m) ** 2 / s**3 - 1 / s))
    obj = OBJECTIVES[("normal", "gaussian")]
    fam = {"mu": m, "sigma": s}
    assert obj.exact_mean(fam, {"k": kk}) == pytest.approx(mean, rel=1e-10)
    np.testing.assert_allclose(obj.exact_grad(fam, {"k": kk}), [d_mu, d_sigma], rtol=1e-10)


@pytest.mark.parametrize(
    "name,values,expr",
    [
        ("linear", {"a": -0.7}, lambda z: -0.7 * z),
        ("quadratic", {"k": 0.4}, lambda z: (z - 0.4) ** 2),
        ("cosine", {"omega": 3.0}, lambda z: sp.cos(3 * z)),
        ("gaussian", {"k": 0.9}, lambda z: sp.exp(-0.9 * z**2)),
    ],
)
def test_derivatives_at_match_sympy_and_kernel(name, values, expr):
    z = sp.symbols("z")
    obj = OBJECTIVES[("normal", name)]
    assert obj.derivatives == 3
    points = np.array([-1.3, 0.0, 0.4, 2.2])
    got = obj.derivatives_at(points, values)
    for n in range(4):
        want = [float(sp.diff(expr(z), z, n).subs(z, p)) for p in points]
        np.testing.assert_allclose(got[n], want, rtol=1e-12, atol=1e-12)
    grad = np.zeros(1)
    for p, f0, f1 in zip(points, got[0], got[1], strict=True):
        assert obj.kernel.py_func(np.array([p]), obj.pack(values, 1), grad) == pytest.approx(f0)
        assert grad[0] == pytest.approx(f1)


def test_delta_estimator_refused_without_derivatives(cli):
    result = cli("compare", "--family", "bernoulli", "--estimator", "sf-delta", "--samples", 100)
    assert result.exit_code == 2 and "derivatives" in result.output
    assert "Traceback" not in result.output


# --- oscillating objectives: exact_var where Gauss-Hermite fails ------------------------------
OMEGA, SIGMA, MU = 10.0, 1.5, 1.0  # omega sigma = 15


def _cos_moment(n, phase, b):
    """E[eps^n cos(phase + b eps)]: d^n/db^n cos(q + b eps) = eps^n cos(q + b eps + n pi/2), so
    it is the n-th b-derivative of E[cos(phase - n pi/2 + b eps)] = cos(phase - n pi/2) e^{-b^2/2}
    (docs/math.md §2), differentiated by sympy."""
    B = sp.symbols("B", real=True)
    expr = sp.diff(sp.cos(phase - n * sp.pi / 2) * sp.exp(-(B**2) / 2), B, n)
    return float(expr.subs(B, b))


def test_cos_moment_helper():
    for n in range(5):
        got = _cos_moment(n, 0.3, 1.1)
        want, _ = integrate.quad(
            lambda e, n=n: e**n * math.cos(0.3 + 1.1 * e) * math.exp(-e * e / 2), -40, 40, limit=500
        )
        assert got == pytest.approx(want / math.sqrt(2 * math.pi), rel=1e-10, abs=1e-13)


def _sf_reparam_closed():
    """sf and reparam second moments on cos(omega z), z = mu + sigma eps: cos^2 = (1 + cos 2t)/2,
    sin^2 = (1 - cos 2t)/2, so every term is an E[eps^n cos(2 omega mu + 2 omega sigma eps)]."""
    ph, b = 2 * OMEGA * MU, 2 * OMEGA * SIGMA

    def half(n, sign):  # E[eps^n (1 + sign cos(ph + b eps)) / 2]
        plain = [1, 0, 1, 0, 3][n]
        return 0.5 * (plain + sign * _cos_moment(n, ph, b))

    s2 = SIGMA**2
    sf = (half(2, 1) / s2, (half(4, 1) - 2 * half(2, 1) + half(0, 1)) / s2)
    rp = (OMEGA**2 * half(0, -1), OMEGA**2 * half(2, -1))
    grad = OBJECTIVES[("normal", "cosine")].exact_grad({"mu": MU, "sigma": SIGMA}, {"omega": OMEGA})
    return {"sf": np.array(sf) - grad**2, "reparam": np.array(rp) - grad**2}


def _quad_normal(g):
    val, err = integrate.quad(
        lambda e: g(e) * math.exp(-e * e / 2) / math.sqrt(2 * math.pi), -14, 14, limit=4000
    )
    return val


def _mvd_coupled_sigma_var():
    """E over M of E_U (f(mu + sigma M) - f(mu + sigma U M))^2 / sigma^2, the inner integral in
    closed form for cos: E_U cos(w(mu + s U m)) = (sin(w(mu + s m)) - sin(w mu)) / (w s m),
    E_U cos^2 = 1/2 + (sin(2w(mu + s m)) - sin(2 w mu)) / (4 w s m)."""
    w, s = OMEGA, SIGMA

    def inner(m):
        if abs(m) < 1e-12:
            return 0.0
        top = math.cos(w * (MU + s * m))
        e1 = (math.sin(w * (MU + s * m)) - math.sin(w * MU)) / (w * s * m)
        e2 = 0.5 + (math.sin(2 * w * (MU + s * m)) - math.sin(2 * w * MU)) / (4 * w * s * m)
        return (top * top - 2 * top * e1 + e2) / (s * s)

    second = _quad_normal(lambda m: m * m * inner(m))
    grad = OBJECTIVES[("normal", "cosine")].exact_grad({"mu": MU, "sigma": SIGMA}, {"omega": OMEGA})
    return second - grad[1] ** 2


def test_oscillating_cosine_has_exact_var_for_every_estimator():
    cell = make_cell("normal", "cosine", mu=MU, sigma=SIGMA, omega=OMEGA)
    closed = _sf_reparam_closed()
    for name in ALL_NORMAL:
        baselines = ("mean", "optimal") if ESTIMATORS[name].uses_baseline else ("mean",)
        for baseline in baselines:
            mean, var, note = truth.exact(cell, ESTIMATORS[name], baseline)
            assert note == "" and np.all(np.isfinite(var)), (name, baseline, note)
            scale = 1e-9 * (1 + np.sqrt(var).max())  # the mean is a difference of large terms
            np.testing.assert_allclose(mean, truth.exact_gradient(cell), rtol=1e-6, atol=scale)
            if name in closed:
                np.testing.assert_allclose(var, closed[name], rtol=1e-9)
            if name == "mvd-coupled":
                assert var[1] == pytest.approx(_mvd_coupled_sigma_var(), rel=1e-8)


# --- held-out style: scipy quadrature of each formula at scattered points (slow) ------------
def _quad(g, lo=-14.0, hi=14.0, pdf=None):
    pdf = pdf or (lambda t: math.exp(-t * t / 2) / math.sqrt(2 * math.pi))
    return integrate.quad(lambda t: g(t) * pdf(t), lo, hi, limit=4000, epsabs=1e-8, epsrel=1e-10)[0]


def _rayleigh(t):
    return t * math.exp(-t * t / 2)


def _maxwell(t):
    return t * t * math.exp(-t * t / 2) / math.sqrt(2 * math.pi)


def _uniform_mean(objective, values, m0, s, m):
    """E_U f(m0 + s U m) and E_U f^2 in closed form (gaussian: erf; cosine: sin)."""
    from scipy.special import erf

    if abs(m) < 1e-12:
        f = _f(objective, values)
        return f(m0), f(m0) ** 2
    if objective == "gaussian":

        def avg(kk):
            r = math.sqrt(kk)
            return math.sqrt(math.pi) * (erf(r * (m0 + s * m)) - erf(r * m0)) / (2 * r * s * m)

        return avg(values["k"]), avg(2 * values["k"])
    w = values["omega"]
    e1 = (math.sin(w * (m0 + s * m)) - math.sin(w * m0)) / (w * s * m)
    e2 = 0.5 + (math.sin(2 * w * (m0 + s * m)) - math.sin(2 * w * m0)) / (4 * w * s * m)
    return e1, e2


def _f(objective, values):
    if objective == "gaussian":
        return lambda z: math.exp(-values["k"] * z * z)
    return lambda z: math.cos(values["omega"] * z)


def independent_var(objective, values, m0, s, est):
    """Var of one estimate of ``est`` by scipy.integrate.quad of its formula (docs/math.md §7)."""
    f = _f(objective, values)
    fd = OBJECTIVES[("normal", objective)].derivatives_at(m0, values)
    grad = OBJECTIVES[("normal", objective)].exact_grad({"mu": m0, "sigma": s}, values)
    c = s * math.sqrt(2 * math.pi)

    def var(g, **kw):
        mean = _quad(g, **kw)
        return _quad(lambda t: (g(t) - mean) ** 2, **kw)

    if est == "mvd":
        ray = dict(lo=0.0, pdf=_rayleigh)
        vm = var(lambda t: f(m0 + s * t) / c, **ray) + var(lambda t: f(m0 - s * t) / c, **ray)
        vs = var(lambda t: f(m0 + s * t) / s, pdf=_maxwell) + var(lambda t: f(m0 + s * t) / s)
        return np.array([vm, vs])
    if est == "mvd-coupled":
        vm = var(lambda t: (f(m0 + s * t) - f(m0 - s * t)) / c, lo=0.0, pdf=_rayleigh)

        def second(m):
            e1, e2 = _uniform_mean(objective, values, m0, s, m)
            top = f(m0 + s * m)
            return (top * top - 2 * top * e1 + e2) / (s * s)

        return np.array([vm, _quad(second, pdf=_maxwell) - grad[1] ** 2])

    def cv(z):
        return fd[0] + fd[1] * (z - m0) + fd[2] * (z - m0) ** 2 / 2

    def fprime(z):
        return OBJECTIVES[("normal", objective)].derivatives_at(z, values)[1]

    if est == "sf-delta":
        gm = lambda e: (f(m0 + s * e) - cv(m0 + s * e)) * e / s - fd[3] * s * s * e * e / 2  # noqa: E731
        gs = lambda e: (f(m0 + s * e) - cv(m0 + s * e)) * (e * e - 1) / s  # noqa: E731
    else:
        gm = lambda e: fprime(m0 + s * e) - fd[2] * s * e - fd[3] * s * s * (e * e - 1) / 2  # noqa: E731
        gs = lambda e: (fprime(m0 + s * e) - fd[1] - fd[2] * s * e) * e  # noqa: E731
    return np.array([var(gm), var(gs)])


HELD_OUT = [
    ("gaussian", {"k": 0.3}, -1.1, 0.7),
    ("gaussian", {"k": 3.0}, 0.4, 1.9),
    ("gaussian", {"k": 1.0}, 2.5, 0.4),
    ("cosine", {"omega": 2.0}, 0.3, 1.2),
    ("cosine", {"omega": 7.5}, -0.6, 2.0),
    ("cosine", {"omega": 10.0}, 1.0, 1.5),
]


@pytest.mark.slow
@pytest.mark.parametrize("objective,values,m0,s", HELD_OUT)
@pytest.mark.parametrize("est", NEW)
def test_exact_var_matches_independent_quadrature(est, objective, values, m0, s):
    cell = make_cell("normal", objective, mu=m0, sigma=s, **values)
    _, var, note = truth.exact(cell, ESTIMATORS[est])
    assert note == ""
    np.testing.assert_allclose(var, independent_var(objective, values, m0, s, est), rtol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("objective,values,m0,s", HELD_OUT[:5])
@pytest.mark.parametrize("est", NEW)
def test_monte_carlo_matches_exact_at_scattered_points(est, objective, values, m0, s):
    cell = make_cell("normal", objective, mu=m0, sigma=s, **values)
    run = simulate(cell, est, 2_000_000, seed=57)
    check_mean(run)
    check_variance(run, powered=True)


def test_unconverged_quadrature_is_nan_with_a_note(monkeypatch):
    """With rules too coarse for cos(10 z) at sigma = 1.5 every level disagrees: NaN, not a
    number, and the note says why."""
    from gradvar import truth_normal

    monkeypatch.setattr(truth_normal, "LEVELS", (2, 3, 4))
    monkeypatch.setattr(truth_normal, "INNER_NODES", (2, 3, 4))
    cell = make_cell("normal", "cosine", mu=MU, sigma=SIGMA, omega=OMEGA)
    for name in ("sf", "reparam", "mvd", "mvd-coupled", "sf-delta"):
        mean, var, note = truth.exact(cell, ESTIMATORS[name])
        assert np.all(np.isnan(mean)) and np.all(np.isnan(var)), name
        assert note == "quadrature did not converge", (name, note)

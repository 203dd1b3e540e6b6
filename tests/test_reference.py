"""Ground truth: every closed form of REFERENCE section 3, reproduced by the reference module.

The expected values are written out here from the tables (not read from the library), so a
wrong closed form in objectives.py, a wrong score in families.py or a wrong quadrature in
reference.py fails.  No Monte Carlo here: tolerances are numerical (quadrature), not
statistical.
"""

import math

import numpy as np
import pytest
from helpers import make_cell, tiered
from scipy import integrate

from gradvar import truth
from gradvar.model import registry

EST = registry.ESTIMATORS
RTOL = 1e-9  # quadrature converges to ~1e-12 on these smooth integrands

NORMAL_POINTS = [(1.0, 1.0), (0.0, 1.0), (-2.5, 0.5), (3.0, 2.0), (0.7, 0.3)]  # (mu, sigma)
K_VALUES = [0.0, -3.0, 1.5]


def _e_f_quadrature(cell, nodes=160):
    """E[f] by Gauss-Hermite through the objective's own kernel (reference's state injection)."""
    states, weights = cell.family.quadrature(cell.family_values, nodes)
    return float(weights @ truth.objective_values_on(cell, states))


# --- table 1: E[f] and the gradient -----------------------------------------------------------
def table_normal(objective, mu, sigma, a=1.0, k=0.0, omega=1.0):
    """(E[f], d/dmu, d/dsigma) from REFERENCE section 3, table 1."""
    if objective == "linear":
        return a * mu, a, 0.0
    if objective == "quadratic":
        d = mu - k
        return d * d + sigma**2, 2 * d, 2 * sigma
    damp = math.exp(-(omega**2) * sigma**2 / 2)
    return (
        math.cos(omega * mu) * damp,
        -omega * math.sin(omega * mu) * damp,
        -(omega**2) * sigma * math.cos(omega * mu) * damp,
    )


CASES = (
    [("linear", dict(a=a)) for a in (1.0, -1.7)]
    + [("quadratic", dict(k=k)) for k in K_VALUES]
    + [("cosine", dict(omega=w)) for w in (1.0, 2.5)]
)


@pytest.mark.parametrize("objective,params", CASES)
@pytest.mark.parametrize("mu,sigma", NORMAL_POINTS)
def test_table1_mean_and_gradient(objective, params, mu, sigma):
    cell = make_cell("normal", objective, mu=mu, sigma=sigma, **params)
    e_f, g_mu, g_sigma = table_normal(objective, mu, sigma, **params)
    obj = cell.objective
    assert obj.exact_mean(cell.family_values, cell.objective_values) == pytest.approx(
        e_f, rel=1e-12, abs=1e-14
    )
    assert truth.exact_gradient(cell) == pytest.approx([g_mu, g_sigma], rel=1e-12, abs=1e-14)
    # E[f] through the kernel itself, by quadrature: the kernel computes the tabled f
    assert _e_f_quadrature(cell) == pytest.approx(e_f, rel=RTOL, abs=RTOL)
    # the gradient is the derivative of E[f]: central differences of the closed form
    h = 1e-5
    fd_mu = (
        table_normal(objective, mu + h, sigma, **params)[0]
        - table_normal(objective, mu - h, sigma, **params)[0]
    ) / (2 * h)
    fd_sigma = (
        table_normal(objective, mu, sigma + h, **params)[0]
        - table_normal(objective, mu, sigma - h, **params)[0]
    ) / (2 * h)
    assert [fd_mu, fd_sigma] == pytest.approx([g_mu, g_sigma], rel=1e-7, abs=1e-8)


# --- table 2: per-sample variances of SF and RP -------------------------------------------------
def table_variances(objective, mu, sigma, k=0.0):
    """(SF mu, SF sigma, RP mu, RP sigma) per-sample variances, REFERENCE section 3 table 2."""
    if objective == "linear":  # a = 1
        return mu**2 / sigma**2 + 2, 2 * mu**2 / sigma**2 + 10, 0.0, 1.0
    d = mu - k
    return (
        (d**4 + 14 * d**2 * sigma**2 + 15 * sigma**4) / sigma**2,
        2 * (d**4 + 30 * d**2 * sigma**2 + 37 * sigma**4) / sigma**2,
        4 * sigma**2,
        4 * d**2 + 8 * sigma**2,
    )


VAR_CASES = [("linear", {})] + [("quadratic", dict(k=k)) for k in K_VALUES]


@pytest.mark.parametrize("objective,params", VAR_CASES)
@pytest.mark.parametrize("mu,sigma", NORMAL_POINTS)
@pytest.mark.parametrize("batch", [1, 3])
def test_table2_variances(objective, params, mu, sigma, batch):
    cell = make_cell("normal", objective, mu=mu, sigma=sigma, batch=batch, **params)
    sf_mu, sf_sigma, rp_mu, rp_sigma = table_variances(objective, mu, sigma, **params)
    exact = truth.exact_gradient(cell)
    for est, expected in (("sf", [sf_mu, sf_sigma]), ("reparam", [rp_mu, rp_sigma])):
        mean, var = truth.exact_moments(cell, EST[est])
        assert mean == pytest.approx(exact, rel=RTOL, abs=RTOL), est  # unbiased
        # exact_var is the variance of one estimate: per-sample variance / batch
        assert var == pytest.approx(np.array(expected) / batch, rel=RTOL, abs=RTOL), est


def test_table2_rejects_wrong_formulas():
    """The comparison above is sharp: a dropped term or a factor 2 in the table fails it."""
    cell = make_cell("normal", "quadratic", mu=0.7, sigma=0.3, k=1.5)
    _, var = truth.exact_moments(cell, EST["sf"])
    d, s = 0.7 - 1.5, 0.3
    right = (d**4 + 14 * d**2 * s**2 + 15 * s**4) / s**2
    assert var[0] == pytest.approx(right, rel=RTOL)
    assert var[0] != pytest.approx((d**4 + 15 * s**4) / s**2, rel=1e-3)  # missing 14 d^2 s^2
    assert var[0] != pytest.approx(right / 2, rel=1e-3)


# --- the mean-shift sweep, f(z) = z ----------------------------------------------------------
@pytest.mark.parametrize("mu", np.linspace(-4, 4, 17))
def test_mean_shift_sweep(mu):
    """SF variance of d/dmu grows as mu^2/sigma^2 + 2; with b = E[f] it stays at 2; the
    pathwise estimate is exactly 1 with variance exactly 0."""
    cell = make_cell("normal", "linear", mu=mu, sigma=1.0, a=1.0)
    mean, var = truth.exact_moments(cell, EST["sf"])
    assert mean[0] == pytest.approx(1.0, rel=RTOL) and var[0] == pytest.approx(mu**2 + 2, rel=RTOL)
    mean, var = truth.exact_moments(cell, EST["sf-baseline"], "mean")
    assert mean[0] == pytest.approx(1.0, rel=RTOL) and var[0] == pytest.approx(2.0, rel=RTOL)
    assert var[1] == pytest.approx(10.0, rel=RTOL)  # (f - E f) s_sigma = eps (eps^2 - 1)
    mean, var = truth.exact_moments(cell, EST["reparam"])
    assert mean[0] == 1.0 and var[0] == 0.0  # exactly


@pytest.mark.parametrize("a", [1.0, 1.7, -0.3])
def test_reparam_linear_is_exact_for_any_slope(a):
    cell = make_cell("normal", "linear", mu=0.4, sigma=2.0, a=a)
    mean, var = truth.exact_moments(cell, EST["reparam"])
    assert mean[0] == a and var[0] == 0.0  # bit exact: every per-sample gradient is a
    assert var[1] == pytest.approx(a * a, rel=RTOL)


def test_optimal_baseline_beats_mean_baseline():
    """b_j = E[f s_j^2] / E[s_j^2] minimises the variance of each coordinate."""
    for mu, sigma in NORMAL_POINTS:
        cell = make_cell("normal", "quadratic", mu=mu, sigma=sigma, k=-1.0)
        _, v_mean = truth.exact_moments(cell, EST["sf-baseline"], "mean")
        _, v_opt = truth.exact_moments(cell, EST["sf-baseline"], "optimal")
        _, v_sf = truth.exact_moments(cell, EST["sf"])
        assert np.all(v_opt <= v_mean * (1 + 1e-12)) and np.all(v_opt <= v_sf * (1 + 1e-12))


# --- cosine: quadrature against closed forms, and NaN when it cannot converge ------------------
def _cosine_sf_mu_var(mu, sigma, omega):
    """Var of f(z) eps / sigma for f = cos(omega z), in closed form.

    E[cos^2(omega z) eps^2]
        = 1/2 + cos(2 omega mu) (1 - 4 omega^2 sigma^2) e^{-2 omega^2 sigma^2} / 2,
    using E[eps^2 cos(a + b eps)] = cos(a) (1 - b^2) e^{-b^2/2}.
    """
    w2s2 = (omega * sigma) ** 2
    second = 0.5 + 0.5 * math.cos(2 * omega * mu) * (1 - 4 * w2s2) * math.exp(-2 * w2s2)
    grad = -omega * math.sin(omega * mu) * math.exp(-w2s2 / 2)
    return second / sigma**2 - grad**2


def test_cosine_variance_closed_form_and_adaptive_quadrature():
    mu, sigma, omega = 0.3, 0.8, 1.3
    cell = make_cell("normal", "cosine", mu=mu, sigma=sigma, omega=omega)
    mean, var = truth.exact_moments(cell, EST["sf"])
    assert var[0] == pytest.approx(_cosine_sf_mu_var(mu, sigma, omega), rel=RTOL)
    # d/dsigma by scipy's adaptive integrator, independently of Gauss-Hermite
    pdf = lambda e: math.exp(-e * e / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    g = lambda e: math.cos(omega * (mu + sigma * e)) * (e * e - 1) / sigma  # noqa: E731
    m1 = integrate.quad(lambda e: g(e) * pdf(e), -np.inf, np.inf, epsabs=1e-13)[0]
    m2 = integrate.quad(lambda e: g(e) ** 2 * pdf(e), -np.inf, np.inf, epsabs=1e-13)[0]
    assert mean[1] == pytest.approx(m1, rel=1e-8) and var[1] == pytest.approx(
        m2 - m1 * m1, rel=1e-8
    )
    rp_mean, rp_var = truth.exact_moments(cell, EST["reparam"])
    assert rp_mean == pytest.approx(truth.exact_gradient(cell), rel=RTOL, abs=RTOL)
    # RP d/dmu = -omega sin(omega z): E[sin^2] = (1 - cos(2 omega mu) e^{-2 omega^2 sigma^2}) / 2
    second = omega**2 * 0.5 * (1 - math.cos(2 * omega * mu) * math.exp(-2 * (omega * sigma) ** 2))
    assert rp_var[0] == pytest.approx(second - rp_mean[0] ** 2, rel=RTOL)


@pytest.mark.parametrize("omega", [1.0, 3.0, 6.0, 8.0, 10.0, 20.0, 30.0, 100.0])
def test_oscillating_cosine_is_nan_or_right(omega):
    """Gauss-Hermite cannot resolve cos(omega z) for large omega sigma: the reference must then
    say NaN, and whatever number it does return must be the closed form."""
    mu, sigma = 0.3, 1.0
    cell = make_cell("normal", "cosine", mu=mu, sigma=sigma, omega=omega)
    mean, var = truth.exact_moments(cell, EST["sf"])
    exact = truth.exact_gradient(cell)
    assert np.all(np.isfinite(exact))  # the gradient itself is a closed form
    if np.isnan(var[0]):
        assert np.all(np.isnan(mean)) and np.all(np.isnan(var))
    else:
        assert mean == pytest.approx(exact, rel=1e-6, abs=1e-9)
        assert var[0] == pytest.approx(_cosine_sf_mu_var(mu, sigma, omega), rel=1e-6, abs=1e-9)
    if omega * sigma >= 30:
        assert np.all(np.isnan(var)), "an unconverged quadrature must be NaN"


# --- discrete families: enumeration ------------------------------------------------------------
def _softmax(o):
    e = np.exp(o - o.max())
    return e / e.sum()


def _categorical_f(objective, w, t, j):
    y = np.zeros(len(w))
    y[j] = 1.0
    return w @ y if objective == "linear" else (w @ y - t) ** 2


CAT_CASES = [
    ([2.0, 0.5, 0.1], "linear", None),
    ([2.0, 0.5, 0.1], "squared", 0.499),
    ([0.0, -1.0, 3.0, 0.5, 0.5], "squared", 2.2),
    ([1.0, -1.0], "linear", None),
]
# fast tier: the first case of each objective; the other class counts (each one more set of
# kernels to compile) are slow
CAT_MATRIX = tiered(
    CAT_CASES,
    covers=lambda logits, objective, t: [("objective", objective)],
    ids=lambda logits, objective, t: f"k{len(logits)}-{objective}",
)


@pytest.mark.parametrize("logits,objective,t", CAT_MATRIX)
def test_categorical_enumeration_gradient(logits, objective, t):
    o = np.array(logits)
    k = len(o)
    w = np.arange(1.0, k + 1) * 0.7
    params = dict(w=w) if t is None else dict(w=w, t=t)
    cell = make_cell("categorical", objective, logits=o, **params)
    p = _softmax(o)
    f = np.array([_categorical_f(objective, w, t, j) for j in range(k)])
    expected = p * (f - p @ f)
    assert truth.exact_gradient(cell) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # against finite differences of E[f] = p(o) . F
    h = 1e-6
    fd = np.array(
        [
            (_softmax(o + h * np.eye(k)[j]) @ f - _softmax(o - h * np.eye(k)[j]) @ f) / (2 * h)
            for j in range(k)
        ]
    )
    assert expected == pytest.approx(fd, rel=1e-6, abs=1e-9)
    # the score-function estimators are unbiased by enumeration, with the enumerated variance
    for est, baseline in (("sf", "mean"), ("sf-baseline", "mean"), ("sf-baseline", "optimal")):
        mean, var = truth.exact_moments(cell, EST[est], baseline)
        assert mean == pytest.approx(expected, rel=1e-12, abs=1e-15), (est, baseline)
        b = 0.0 if est == "sf" else (p @ f if baseline == "mean" else None)
        if b is not None:  # per outcome j: g = (F_j - b)(e_j - p)
            g = (f - b)[:, None] * (np.eye(k) - p)
            assert var == pytest.approx(p @ (g - expected) ** 2, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("phi,t", [(0.0, 0.499), (1.3, 0.499), (-2.0, 0.2)])
def test_bernoulli_enumeration_gradient(phi, t):
    cell = make_cell("bernoulli", "squared", logit=phi, t=t)
    p = 1 / (1 + math.exp(-phi))
    expected = (1 - 2 * t) * p * (1 - p)
    assert truth.exact_gradient(cell) == pytest.approx([expected], rel=1e-12, abs=1e-16)
    e_f = lambda q: q * (1 - t) ** 2 + (1 - q) * t**2  # noqa: E731
    h = 1e-6
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert (e_f(sig(phi + h)) - e_f(sig(phi - h))) / (2 * h) == pytest.approx(
        expected, rel=1e-6, abs=1e-10
    )
    mean, var = truth.exact_moments(cell, EST["sf"])
    # sf: g = f(b) (b - p): values (1 - t)^2 (1 - p) w.p. p and -t^2 p w.p. 1 - p
    g1, g0 = (1 - t) ** 2 * (1 - p), -(t**2) * p
    assert mean[0] == pytest.approx(expected, rel=1e-12, abs=1e-16)
    assert var[0] == pytest.approx(p * g1**2 + (1 - p) * g0**2 - expected**2, rel=1e-12)


def test_default_bernoulli_toy_signal():
    """The classic toy: at phi = 0, t = 0.499 the true gradient is 0.0005."""
    cell = make_cell("bernoulli", "squared")
    assert truth.exact_gradient(cell)[0] == pytest.approx(0.0005, rel=1e-12)


def test_unknown_ground_truth_is_nan():
    """No invented values: relaxed estimators on discrete families and loo get NaN moments."""
    cell = make_cell("categorical", "squared")
    for name, est in EST.items():
        if est.requires == "relax":
            mean, var = truth.exact_moments(cell, est)
            assert np.all(np.isnan(mean)) and np.all(np.isnan(var)), name
    mean, var = truth.exact_moments(
        make_cell("normal", "linear", batch=2), EST["sf-baseline"], "loo"
    )
    assert np.all(np.isnan(var))


def test_exact_estimator_moments():
    cell = make_cell("normal", "cosine", mu=0.3, omega=2.0)
    mean, var = truth.exact_moments(cell, EST["exact"])
    assert np.array_equal(mean, truth.exact_gradient(cell)) and np.all(var == 0.0)

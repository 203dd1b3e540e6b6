"""Discrete families: enumeration ground truth, unbiasedness, the relaxed objective, numerics.

Every statistical check uses Z_TOL standard errors and a fixed seed; each is sized so that
the plausible bug fails (the deliberately wrong estimator below must fail the same check).
"""

import numpy as np
import pytest
from helpers import Z_TOL, check_mean, rejects, simulate, tiered  # Z_TOL = 5: 5.7e-7 false alarms
from scipy import integrate, special, stats

import gradvar
from gradvar import engine, gumbel, spec, truth
from gradvar.kernels import codegen, rng
from gradvar.kernels.jit import kernel
from gradvar.model import registry

ALPHA = 1e-4  # significance of the chi-square frequency tests
LOGITS = "2,0.5,0.1"


def run(**kw):
    kw.setdefault("samples", 100_000)
    return gradvar.compare(summary=True, **kw)


def cell_of(**kw):
    return spec.plan(**kw).cells[0]


def z_var(row):
    """(MC variance - exact variance) in standard errors of the variance (4th moment)."""
    se = (row.var_ci_high - row.var_ci_low) / (2 * 1.959964)
    return (row.grad_var - row.exact_var) / se


# --- enumeration ground truth ------------------------------------------------------------
def expected_f(logits, f_of_class):
    p = special.softmax(logits)
    return p @ np.array([f_of_class(j) for j in range(len(logits))])


@pytest.mark.parametrize(
    "objective,sets", [("squared", {}), ("squared", {"w": "3,-1,0.5", "t": 2.0}), ("linear", {})]
)
def test_categorical_enumeration_gradient_matches_finite_differences(objective, sets):
    logits = np.array([2.0, 0.5, 0.1])
    c = cell_of(
        family="categorical", objective=objective, estimator="exact", logits=logits, sets=sets
    )
    w, t = c.objective_values["w"], c.objective_values.get("t", None)
    f = (lambda j: (w[j] - t) ** 2) if objective == "squared" else (lambda j: w[j])
    h = 1e-6
    numeric = [
        (expected_f(logits + h * e, f) - expected_f(logits - h * e, f)) / (2 * h) for e in np.eye(3)
    ]
    np.testing.assert_allclose(truth.exact_gradient(c), numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("logit,t", [(0.0, 0.499), (1.3, 0.2), (-2.0, 0.9)])
def test_bernoulli_enumeration_gradient_is_the_closed_form(logit, t):
    c = cell_of(family="bernoulli", estimator="exact", logit=logit, sets={"t": t})
    p = special.expit(logit)
    assert truth.exact_gradient(c)[0] == pytest.approx((1 - 2 * t) * p * (1 - p), rel=1e-12)


# --- unbiasedness of the score-function estimators against enumeration --------------------
SF_CASES = [
    dict(family="categorical", logits=LOGITS),
    dict(family="categorical", logits=LOGITS, objective="linear"),
    dict(family="bernoulli", logit=0.7),
]


def enumerate_outcomes(cell):
    """(probabilities, f of each outcome, score of each outcome), written out independently."""
    fv, ov = cell.family_values, cell.objective_values
    if cell.family.name == "bernoulli":
        p1 = special.expit(fv["logit"])
        return (
            np.array([1 - p1, p1]),
            (np.array([0.0, 1.0]) - ov["t"]) ** 2,
            np.array([[-p1], [1 - p1]]),
        )
    p = special.softmax(fv["logits"])
    w = ov["w"]
    f = (w - ov["t"]) ** 2 if cell.objective.name == "squared" else w
    return p, f, np.eye(len(p)) - p


def enumerated_variance(cell, b):
    """Variance of one estimate of (f - b) * score with a fixed baseline b (0 for sf)."""
    probs, f, score = enumerate_outcomes(cell)
    g = (f[:, None] - b) * score
    mean = probs @ g
    return probs @ (g - mean) ** 2 / cell.batch


def pilot_baseline(cell, baseline, seed):
    """The pilot's baseline, from the module the engine itself runs for this cell."""
    est = registry.ESTIMATORS["sf-baseline"]
    module = codegen.compiled(cell.family, cell.objective, est, cell.shape)
    return engine.baseline_aux(module, cell, baseline, seed, len(cell.coords))[1:]


def _case_id(case):
    return f"{case['family']}-{case.get('objective', 'squared')}"


# fast tier: every baseline on the first case, every case with the first baseline
SF_MATRIX = tiered(
    [(b, c) for c in SF_CASES for b in ("mean", "optimal", "loo")],
    covers=lambda b, c: [("baseline", b), ("case", _case_id(c))],
    ids=lambda b, c: f"{b}-{_case_id(c)}",
)


@pytest.mark.parametrize("baseline,case", SF_MATRIX)
def test_score_function_estimators_are_unbiased_with_exact_variance(case, baseline):
    res, _ = run(estimator="sf,sf-baseline", baseline=baseline, batch=2, seed=3, **case)
    assert (res.nonfinite == 0).all()
    assert (res.bias_z.abs() < Z_TOL).all(), res[["estimator", "param", "bias_z"]]
    cell = cell_of(estimator="sf", batch=2, **case)
    sf = res[res.estimator == "sf"]
    np.testing.assert_allclose(sf.exact_var, enumerated_variance(cell, 0.0), rtol=1e-10)
    assert (sf.apply(z_var, axis=1).abs() < Z_TOL).all()
    sfb = res[res.estimator == "sf-baseline"]
    if baseline == "loo":  # the U-statistic variance (enumerated pairs in truth.loo_moments)
        assert np.isfinite(sfb.exact_var).all()
        assert (sfb.apply(z_var, axis=1).abs() < Z_TOL).all()
        return
    # exact_var is the oracle baseline's variance; the run used the pilot's baseline, whose
    # own variance is the right yardstick for the Monte Carlo variance
    probs, f, score = enumerate_outcomes(cell)
    oracle = (
        probs @ (f[:, None] * score**2) / (probs @ score**2) if baseline == "optimal" else probs @ f
    )
    # atol: one bit with the optimal baseline has variance exactly 0 (rounding gives ~1e-34)
    np.testing.assert_allclose(
        sfb.exact_var, enumerated_variance(cell, oracle), rtol=1e-10, atol=1e-15
    )
    pilot = pilot_baseline(cell, baseline, seed=3)
    assert np.allclose(pilot, oracle, rtol=0.05, atol=0.05 * np.abs(f).max())
    sfb = sfb.assign(exact_var=enumerated_variance(cell, pilot))
    assert (sfb.apply(z_var, axis=1).abs() < Z_TOL).all()


def test_baselines_reduce_the_variance():
    res, _ = run(family="categorical", logits=LOGITS, estimator="sf,sf-baseline", seed=1)
    var = res.groupby("estimator").grad_var.sum()
    assert var["sf-baseline"] < 0.6 * var["sf"]  # exact: 3.19 against 5.98


# --- the relaxed objective: two classes by quadrature ------------------------------------
TWO_CLASS = [dict(family="bernoulli", logit=1.0), dict(family="categorical", logits="1,0")]
# fast tier: the bernoulli case; the categorical one repeats its checks with kernels compiled
# at two classes for these tests alone (~40 s on a cold cache), so it is slow
TWO_CLASS_TIERED = tiered(
    [(case,) for case in TWO_CLASS], covers=lambda case: ["two classes"], ids=lambda c: c["family"]
)


def _relaxed_value(family, a, tau, t, w=(1.0, 2.0)):
    """E[f(y)] by scipy.integrate.quad, written independently of the kernels.

    a = logit or o0 - o1."""

    def integrand(L):
        y = special.expit((a + L) / tau)
        val = (y - t) ** 2 if family == "bernoulli" else (w[0] * y + w[1] * (1 - y) - t) ** 2
        return val * stats.logistic.pdf(L)

    pieces = [(-np.inf, -a), (-a, np.inf)]
    return sum(
        integrate.quad(integrand, lo, hi, epsabs=1e-14, epsrel=1e-13, limit=500)[0]
        for lo, hi in pieces
    )


@pytest.mark.parametrize(
    "family,a", [("bernoulli", 1.0), ("bernoulli", -0.4), ("categorical", 1.0)]
)
@pytest.mark.parametrize("tau", [0.1, 0.5, 3.0])
def test_relaxed_gradient_is_the_derivative_of_the_relaxed_objective(family, a, tau):
    h, t = 1e-4, 0.499
    if family == "bernoulli":
        c = cell_of(family=family, logit=a, estimator="gumbel-softmax", tau=tau)
        want = [
            (_relaxed_value(family, a + h, tau, t) - _relaxed_value(family, a - h, tau, t))
            / (2 * h)
        ]
    else:
        c = cell_of(family=family, logits=[a, 0.0], estimator="gumbel-softmax", tau=tau)
        d = (_relaxed_value(family, a + h, tau, t) - _relaxed_value(family, a - h, tau, t)) / (
            2 * h
        )
        want = [d, -d]  # E[f] depends on o0 - o1 only
    np.testing.assert_allclose(truth.relaxed_gradient(c), want, rtol=1e-5, atol=1e-9)


def test_relaxed_gradient_closed_form_and_limits():
    # phi = 0, tau = 1: E[2 (y - t) y (1 - y)] = (1 - 2t) E[p(L)] = (1 - 2t) / 6
    c = cell_of(family="bernoulli", logit=0.0, estimator="gumbel-softmax", tau=1.0)
    assert truth.relaxed_gradient(c)[0] == pytest.approx((1 - 2 * 0.499) / 6, rel=1e-8)
    for tau, close in [(1e-3, True), (1.0, False)]:  # tau -> 0 recovers the discrete gradient
        c = cell_of(family="categorical", logits="1,0", estimator="gumbel-softmax", tau=tau)
        gap = np.abs(truth.relaxed_gradient(c) - truth.exact_gradient(c)).max()
        assert (gap < 1e-3) == close, gap
    # not computable beyond three classes: NaN, never invented
    c = cell_of(family="categorical", logits="2,0.5,0.1,0", estimator="gumbel-softmax", tau=0.5)
    assert np.isnan(truth.relaxed_gradient(c)).all()


@pytest.mark.parametrize("case", TWO_CLASS_TIERED)
def test_gumbel_softmax_is_unbiased_for_the_relaxed_objective_only(case):
    res, summ = run(estimator="gumbel-softmax,st-gumbel", tau=0.5, seed=5, **case)
    gs, st = res[res.estimator == "gumbel-softmax"], res[res.estimator == "st-gumbel"]
    z_relaxed = (gs.grad_mean - gs.relaxed_grad) / gs.grad_sem
    assert (z_relaxed.abs() < Z_TOL).all(), z_relaxed
    assert (gs.bias_z.abs() > Z_TOL).all(), gs.bias_z  # the CSV's bias is against the discrete
    # the exact mean and variance of both relaxed estimators, by quadrature
    for est, rows in (("gumbel-softmax", gs), ("st-gumbel", st)):
        mean, var = truth.exact_moments(
            cell_of(estimator=est, tau=0.5, **case), registry.ESTIMATORS[est]
        )
        assert (np.abs(rows.grad_mean - mean) / rows.grad_sem < Z_TOL).all()
        np.testing.assert_allclose(rows.exact_var, var)
        assert (rows.apply(z_var, axis=1).abs() < Z_TOL).all()
    assert (
        summ.loc[summ.estimator == "gumbel-softmax", "relaxed_bias_sq_norm"].iloc[0]
        < summ.loc[summ.estimator == "gumbel-softmax", "bias_sq_norm"].iloc[0]
    )


@pytest.mark.slow
@pytest.mark.parametrize("case", TWO_CLASS, ids=lambda c: c["family"])
@pytest.mark.parametrize("tau", [1e-3, 0.05, 2.0, 10.0])
def test_relaxed_estimators_match_quadrature_over_tau(case, tau):
    res, _ = run(estimator="gumbel-softmax,st-gumbel", tau=tau, samples=2_000_000, seed=9, **case)
    for est in ("gumbel-softmax", "st-gumbel"):
        rows = res[res.estimator == est]
        mean, _ = truth.exact_moments(
            cell_of(estimator=est, tau=tau, **case), registry.ESTIMATORS[est]
        )
        assert (np.abs(rows.grad_mean - mean) / rows.grad_sem < Z_TOL).all(), (est, rows)
        assert (rows.apply(z_var, axis=1).abs() < Z_TOL).all(), (est, rows)


# The deliberately wrong estimator: Gumbel-Softmax without the 1/tau of dy/do.  It lives in
# this module, so the engine compiles it like any registered estimator (its cache key covers
# this file).
@kernel
def gumbel_softmax_without_inverse_tau(fp, objp, opts, aux, key, counter0, batch, work, g):
    y, h, st, v = work[0], work[1], work[2], work[3]
    tau = opts[0]  # gradvar.model.options.TAU
    g[:] = 0.0
    for m in range(batch):
        noise(fp, key, counter0 + m, st)  # noqa: F821 (bound by the engine)
        path(fp, tau, st, y, h)  # noqa: F821
        obj(y, objp, v)  # noqa: F821
        vjp(fp, tau, st, y, v, g)  # noqa: F821
    for j in range(g.shape[0]):
        g[j] *= tau / batch  # the bug: the 1/tau of dy/do dropped


noise = path = vjp = obj = None
# held by the (unregistered) Estimator record, which the engine's compile step leaves alone
WRONG = registry.Estimator(
    "gs-without-1/tau",
    "",
    "",
    gumbel_softmax_without_inverse_tau,
    requires="relax",
    unbiased_for="relaxed",
    options=("tau",),
)


@pytest.mark.parametrize("case", TWO_CLASS_TIERED)
def test_the_relaxed_check_accepts_gumbel_softmax_and_rejects_a_wrong_estimator(case):
    """The shared mean check, powered to reject a factor 2, against the relaxed gradient."""
    cell = cell_of(estimator="gumbel-softmax", tau=0.5, **case)
    relaxed = truth.relaxed_gradient(cell)
    right = simulate(cell, "gumbel-softmax", 100_000, seed=5)
    check_mean(right, exact=relaxed, powered=True, what="relaxed mean")
    assert rejects(check_mean, right)  # against the discrete gradient: biased at tau = 0.5
    wrong = simulate(cell, WRONG, 100_000, seed=5)  # the mean is tau times the relaxed gradient
    assert rejects(check_mean, wrong, exact=relaxed)


# --- straight-through and Gumbel-Max -----------------------------------------------------
@pytest.mark.parametrize(
    "logits,tau", [([2.0, 0.5, 0.1], 0.5), ([1e3, -1e3, 0.0, 999.0], 1e-3), ([0.0, 0.0], 10.0)]
)
def test_straight_through_forward_value_is_exactly_one_hot(logits, tau):
    fam = registry.FAMILIES["categorical"]
    fp = fam.prepare({"logits": np.array(logits)})
    k = len(logits)
    gen = np.random.default_rng(0)
    y, h = np.empty(k), np.empty(k)
    for _ in range(200):
        state = gumbel.sample(k, rng=gen)
        fam.path(fp, tau, state, y, h)  # the compiled kernel
        assert set(h) <= {0.0, 1.0} and h.sum() == 1.0
        assert np.argmax(h) == np.argmax(np.array(logits) + state)
        assert np.isfinite(y).all() and y.sum() == pytest.approx(1.0)


def test_straight_through_equals_gumbel_softmax_for_a_linear_objective():
    """grad f is the constant w: the two estimators coincide sample by sample (same noise)."""
    res, _ = run(
        family="categorical",
        logits=LOGITS,
        objective="linear",
        estimator="gumbel-softmax,st-gumbel",
        samples=20_000,
    )
    gs, st = res[res.estimator == "gumbel-softmax"], res[res.estimator == "st-gumbel"]
    assert np.array_equal(gs.grad_mean.values, st.grad_mean.values)


def test_gumbel_max_kernel_samples_the_softmax():
    fam = registry.FAMILIES["categorical"]
    logits = np.array([2.0, 0.5, 0.1, -1.0])
    fp = fam.prepare({"logits": logits})
    key = rng.stream_key(4, rng.MAIN)
    state, x, s = np.empty(4), np.empty(4), np.empty(4)
    n = 20_000
    counts = np.zeros(4)
    for c in range(n):
        fam.noise(fp, key, c, state)
        fam.score(fp, state, x, s)
        counts += x
    assert stats.chisquare(counts, n * special.softmax(logits)).pvalue > ALPHA
    # the same test rejects a plausible bug: sampling softmax(logits / 2)
    assert stats.chisquare(counts, n * special.softmax(logits / 2)).pvalue < ALPHA


# --- numerics at the extremes --------------------------------------------------------------
ALL = "sf,sf-baseline,gumbel-softmax,st-gumbel,exact"


EXTREME_CASES = {
    "cat3": dict(family="categorical", logits="1000,-1000,0"),
    "cat2": dict(family="categorical", logits="-1000,1000"),
    "cat-near-tie": dict(family="categorical", logits="1000,999.9995,-1000"),
    "bernoulli": dict(family="bernoulli", logit="-1000,0,1000"),
}
# fast tier: every case with the first baseline, every baseline on the first case; but cat2,
# whose sf, sf-baseline and exact kernels compile at two classes for it alone (~35 s on a cold
# cache), is slow: cat3, cat-near-tie and bernoulli check the same extremes
EXTREME_MATRIX = tiered(
    [(b, name) for name in EXTREME_CASES for b in ("mean", "loo")],
    covers=lambda b, name: [("baseline", b)] + ([("case", name)] if name != "cat2" else []),
    ids=lambda b, name: f"{b}-{name}",
)


@pytest.mark.parametrize("baseline,name", EXTREME_MATRIX)
def test_extreme_logits_and_temperatures_give_finite_estimates(name, baseline):
    case = EXTREME_CASES[name]
    res, summ = run(estimator=ALL, baseline=baseline, batch=2, tau="0.001,10", samples=4000, **case)
    assert (res.nonfinite == 0).all() and (summ.nonfinite == 0).all()
    for col in ("grad_mean", "grad_var", "exact_grad"):
        assert np.isfinite(res[col]).all(), res[~np.isfinite(res[col])]
    ok = res[res.estimator.isin(["sf", "sf-baseline"]) & res.exact_var.notna()]
    assert (ok.bias_z.abs().fillna(0) < Z_TOL).all()


def test_non_finite_estimates_are_counted_not_dropped():
    with np.errstate(all="ignore"):
        res, summ = run(
            family="categorical",
            logits="0,0",
            w="1e200,1",
            estimator="gumbel-softmax",
            samples=1000,
        )
    assert (res.nonfinite == 1000).all() and res.grad_mean.isna().all()
    assert summ.nonfinite.iloc[0] == 1000


@pytest.mark.parametrize("tau", [0, -1, "nan", "0.5,0"])
def test_non_positive_tau_is_a_usage_error(tau):
    with pytest.raises(spec.SpecError, match="tau"):
        spec.plan(family="categorical", estimator="gumbel-softmax", tau=tau)


def test_reparam_on_a_discrete_family_is_a_usage_error():
    for family in ("categorical", "bernoulli"):
        with pytest.raises(spec.SpecError, match="reparam"):
            spec.plan(family=family, estimator="reparam")

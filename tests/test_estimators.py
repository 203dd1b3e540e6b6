"""Estimators through the engine: Monte Carlo mean and variance against exact ground truth.

Checks (helpers.py): the mean within Z_TOL = 5 standard errors of the exact gradient and the
variance within Z_TOL fourth-moment standard errors of the exact variance, each sized
(``powered``) so that a factor 2 would fail.  Every family has a deliberately wrong estimator
(wrong_estimators.py) that the same check rejects.  Parameter points avoid sigma = 1, mu = 0
and phi = 0, where several plausible bugs (a missing 1/sigma, a wrong p) are invisible.
"""

import numpy as np
import pytest
import wrong_estimators as wrong
from helpers import (
    Z_TOL,
    check_mean,
    check_variance,
    make_cell,
    objectives_default_first,
    rejects,
    simulate,
    tiered,
)

import gradvar
from gradvar import stats, truth
from gradvar.model import registry

EST = registry.ESTIMATORS
NORMAL = registry.FAMILIES["normal"]
N = 400_000  # fast tier: se(var)/var <= 0.1 for kurtosis up to ~400 (powered checks pass)
NORMAL_POINT = dict(mu=0.7, sigma=1.6)
NORMAL_OBJECTIVES = [
    ("linear", dict(a=1.3)),
    ("quadratic", dict(k=-0.5)),
    ("cosine", dict(omega=0.9)),
]
NORMAL_ESTIMATORS = [
    ("sf", "mean"),
    ("sf-baseline", "mean"),
    ("sf-baseline", "optimal"),
    ("reparam", "mean"),
]


# --- normal family: mean and variance against quadrature -------------------------------------
# fast tier: every estimator on the default objective, every objective with the first estimator
NORMAL_MATRIX = tiered(
    [
        (o, p, e, b)
        for o, p in sorted(NORMAL_OBJECTIVES, key=lambda c: c[0] != NORMAL.default_objective)
        for e, b in NORMAL_ESTIMATORS
    ],
    covers=lambda o, p, e, b: [("objective", o), ("estimator", e, b)],
    ids=lambda o, p, e, b: f"{o}-{e}-{b}",
)


@pytest.mark.parametrize("objective,params,est,baseline", NORMAL_MATRIX)
def test_normal_estimator_mean_and_variance(objective, params, est, baseline):
    cell = make_cell("normal", objective, **NORMAL_POINT, **params)
    run = simulate(cell, est, N, seed=11, baseline=baseline)
    check_mean(run, powered=True)
    check_variance(run, powered=True)


SLOW_POINTS = [dict(mu=mu, sigma=s) for mu, s in ((-2.0, 0.5), (3.0, 2.0), (0.3, 0.8))]


@pytest.mark.slow
@pytest.mark.parametrize("point", SLOW_POINTS, ids=lambda p: f"mu{p['mu']}-s{p['sigma']}")
@pytest.mark.parametrize("est,baseline", NORMAL_ESTIMATORS)
@pytest.mark.parametrize("objective,params", NORMAL_OBJECTIVES + [("quadratic", dict(k=2.0))])
@pytest.mark.parametrize("batch", [1, 3])
def test_normal_estimator_grid_slow(objective, params, est, baseline, point, batch):
    cell = make_cell("normal", objective, batch=batch, **point, **params)
    run = simulate(cell, est, 10_000_000, seed=12, baseline=baseline)
    check_mean(run, powered=True)
    check_variance(run, powered=True)


def test_pilot_baseline_variance_is_near_the_oracle():
    """exact_var of a pilot baseline is the oracle's (REFERENCE section 5); the run's own
    baseline, from 10^4 pilot samples, differs from the oracle's by delta ~ sd(f) / 100, which
    moves the variance by a few percent (first order in delta for ``mean``, second order for
    ``optimal``): enough to fail a 5-SE check at large n, hence Run.exact_var."""
    cell = make_cell("normal", "quadratic", **NORMAL_POINT, k=-0.5)
    for baseline in ("mean", "optimal"):
        run = simulate(cell, "sf-baseline", 1000, seed=3, baseline=baseline)
        assert np.array_equal(run.st["exact_var"], run.oracle_var)
        assert run.exact_var == pytest.approx(run.oracle_var, rel=0.05)
        assert not np.array_equal(run.exact_var, run.oracle_var)


@pytest.mark.slow
@pytest.mark.parametrize("est", ["sf", "reparam"])
def test_table2_to_a_fraction_of_a_percent_slow(est):
    """10^8 estimates: the variance is checked to ~0.1-1% (se from the fourth moment)."""
    cell = make_cell("normal", "quadratic", mu=-1.2, sigma=0.7, k=0.4)
    run = simulate(cell, est, 100_000_000, seed=14)
    check_mean(run, powered=True)
    check_variance(run, powered=True)
    assert np.all(run.var_se < 0.01 * run.exact_var)


# --- leave-one-out: closed forms derived for these tests -----------------------------------------
def loo_variances(objective, mu, sigma, batch, a=1.0, k=0.0):
    """Variance of one loo estimate (M = batch), per coordinate (mu, sigma).

    Derived with sympy by expanding the estimator as a polynomial in M independent N(0, 1)
    variables (d = mu - k).  Linear: (2 a^2 / (M - 1), 2 (5M - 4) a^2 / (M (M - 1))).
    """
    if objective == "linear":
        return np.array(
            [2 * a * a / (batch - 1), 2 * (5 * batch - 4) * a * a / (batch * (batch - 1))]
        )
    d, s2 = mu - k, sigma * sigma
    return {
        2: np.array([2 * (4 * d * d + 3 * s2), 8 * (3 * d * d + 4 * s2)]),
        4: np.array([8 * (d * d + s2) / 3, 4 * (8 * d * d + 11 * s2) / 3]),
    }[batch]


@pytest.mark.parametrize("batch", [2, 4])
@pytest.mark.parametrize("objective,params", NORMAL_OBJECTIVES[:2])
def test_loo_normal(objective, params, batch):
    cell = make_cell("normal", objective, batch=batch, **NORMAL_POINT, **params)
    run = simulate(cell, "sf-baseline", N, seed=13, baseline="loo")
    closed_form = loo_variances(objective, batch=batch, **NORMAL_POINT, **params)
    np.testing.assert_allclose(run.exact_var, closed_form, rtol=1e-9)  # the U-statistic
    check_mean(run, powered=True)
    check_variance(run, closed_form)


def test_loo_formula_is_checked_sharply():
    """The loo variance check rejects the plain-SF variance divided by M (what a loo that
    silently ignored its baseline would give) and a factor 2."""
    cell = make_cell("normal", "quadratic", batch=2, **NORMAL_POINT, k=-0.5)
    run = simulate(cell, "sf-baseline", N, seed=13, baseline="loo")
    right = loo_variances("quadratic", batch=2, **NORMAL_POINT, k=-0.5)
    assert rejects(check_variance, run, truth.exact_moments(cell, EST["sf"])[1])
    assert rejects(check_variance, run, 2 * right)


# --- the mean-shift experiment through the public API ------------------------------------------
def _mean_shift(mus, samples, seed):
    df = gradvar.compare(
        estimator="sf,sf-baseline,reparam", objective="linear", mu=mus, samples=samples, seed=seed
    )
    df = df[df.param == "mu"]
    for row in df.itertuples():
        expected = {"sf": row.mu**2 + 2, "sf-baseline": 2.0, "reparam": 0.0}[row.estimator]
        assert row.exact_var == pytest.approx(expected, rel=1e-9, abs=0)
        assert abs(row.bias_z) < Z_TOL or (row.grad_sem == 0 and row.bias == 0)
        se = (row.var_ci_high - row.grad_var) / stats.Z
        if row.estimator == "reparam":  # exactly 1 with variance exactly 0
            assert row.grad_mean == 1.0 and row.grad_var == 0.0
        else:
            assert abs(row.grad_var - expected) < Z_TOL * se
            assert Z_TOL * se <= 0.5 * expected  # a factor 2 would fail
    return df


def test_mean_shift_api():
    df = _mean_shift("-4,0,4", 200_000, seed=5)
    assert sorted(set(df.mu)) == [-4.0, 0.0, 4.0]


@pytest.mark.slow
def test_mean_shift_sweep_slow():
    df = _mean_shift("-4:4:17", 4_000_000, seed=6)
    assert len(df) == 17 * 3


# --- discrete families: unbiased against enumeration -------------------------------------------
DISCRETE_CELLS = [
    ("categorical", "linear", dict()),
    ("categorical", "squared", dict(logits=[0.5, -0.5, 0.3], t=1.0)),  # 3 classes, as elsewhere
    ("bernoulli", "squared", dict(logit=1.0, t=0.2)),
]
DISCRETE_ESTIMATORS = [
    ("sf", "mean", 1),
    ("sf-baseline", "mean", 1),
    ("sf-baseline", "optimal", 1),
    ("sf-baseline", "loo", 2),
    ("sf-baseline", "loo", 4),
    ("sf", "mean", 3),
]


# fast tier: every estimator on the first cell, every cell with the first estimator
DISCRETE_MATRIX = tiered(
    [cell + est for cell in DISCRETE_CELLS for est in DISCRETE_ESTIMATORS],
    covers=lambda f, o, p, e, b, m: [("cell", f, o), ("estimator", e, b, m)],
    ids=lambda f, o, p, e, b, m: f"{f}-{o}-{e}-{b}-{m}",
)


@pytest.mark.parametrize("family,objective,params,est,baseline,batch", DISCRETE_MATRIX)
def test_discrete_unbiased(family, objective, params, est, baseline, batch):
    cell = make_cell(family, objective, batch=batch, **params)
    run = simulate(cell, est, 200_000, seed=21, baseline=baseline)
    check_mean(run, powered=True)
    if baseline != "loo":
        check_variance(run, powered=True)


@pytest.mark.slow
@pytest.mark.parametrize("est,baseline,batch", DISCRETE_ESTIMATORS)
def test_bernoulli_toy_slow(est, baseline, batch):
    """The default toy (phi = 0, t = 0.499): a true gradient of 0.0005 under noise of sd ~0.125;
    1.6e7 estimates make a factor 2 visible."""
    cell = make_cell("bernoulli", "squared", batch=batch)
    run = simulate(cell, est, 16_000_000, seed=22, baseline=baseline)
    check_mean(run, powered=True)
    if baseline != "loo":
        check_variance(run, powered=True)


# --- exact identities ----------------------------------------------------------------------
@pytest.mark.parametrize("a", [1.0, 1.7, -0.3])
def test_reparam_linear_exactly_a(a):
    """Every estimate of d/dmu is exactly a: the mean is a and the variance 0, bit for bit."""
    cell = make_cell("normal", "linear", a=a, **NORMAL_POINT)
    run = simulate(cell, "reparam", 100_003, seed=1)
    assert run.mom.moments[0, 0] == a and run.mom.moments[0, 1] == 0.0
    assert run.st["grad_var"][0] == 0.0 and run.exact_var[0] == 0.0
    assert np.isnan(run.st["bias_z"][0])
    check_mean(run)  # d/dsigma = a eps: unbiased for 0
    check_variance(run, powered=True)  # variance a^2


@pytest.mark.parametrize("objective,params", NORMAL_OBJECTIVES)
def test_exact_estimator_has_zero_variance(objective, params):
    cell = make_cell("normal", objective, **NORMAL_POINT, **params)
    run = simulate(cell, "exact", 50_001, seed=1)
    assert np.array_equal(run.st["grad_mean"], run.exact_grad)
    assert np.all(run.st["grad_var"] == 0.0) and np.all(run.st["bias"] == 0.0)
    assert np.all(np.isnan(run.st["bias_z"]))  # REFERENCE section 2: NaN for exact


# --- deliberately wrong estimators: the same checks reject them ----------------------------------
def test_wrong_normal_score_is_rejected():
    cell = make_cell("normal", "quadratic", **NORMAL_POINT, k=-0.5)
    right = simulate(cell, "sf", N, seed=31)
    check_mean(right, powered=True)
    bad = simulate(cell, wrong.SF_SIGMA_SCORE, N, seed=31)
    assert rejects(check_mean, bad, right.exact_grad)


def test_wrong_batch_noise_is_rejected_by_the_variance_check():
    """Reusing one draw for the whole batch keeps the mean right (the mean check passes) but
    not the variance: only the variance check catches it."""
    cell = make_cell("normal", "quadratic", batch=2, **NORMAL_POINT, k=-0.5)
    right = simulate(cell, "sf", N, seed=32)
    check_mean(right, powered=True)
    check_variance(right, powered=True)
    bad = simulate(cell, wrong.SF_SAME_NOISE, N, seed=32)
    check_mean(bad, right.exact_grad)
    assert rejects(check_variance, bad, right.exact_var)


def test_wrong_variance_formulas_are_rejected():
    cell = make_cell("normal", "quadratic", **NORMAL_POINT, k=-0.5)
    run = simulate(cell, "sf", N, seed=33)
    check_variance(run, powered=True)
    d, s = NORMAL_POINT["mu"] + 0.5, NORMAL_POINT["sigma"]
    dropped = np.array(
        [
            (d**4 + 15 * s**4) / s**2,  # the 14 d^2 sigma^2 term dropped
            2 * (d**4 + 37 * s**4) / s**2,
        ]
    )  # the 30 d^2 sigma^2 term dropped
    assert rejects(check_variance, run, dropped)
    assert rejects(check_variance, run, 2 * run.exact_var)
    assert rejects(check_variance, run, run.exact_var / 2)


@pytest.mark.parametrize("family,objective,params", DISCRETE_CELLS[1:])
def test_wrong_self_baseline_is_rejected(family, objective, params):
    cell = make_cell(family, objective, batch=2, **params)
    right = simulate(cell, "sf-baseline", 200_000, seed=34, baseline="loo")
    check_mean(right, powered=True)
    bad = simulate(cell, wrong.SF_SELF_BASELINE, 200_000, seed=34)
    assert rejects(check_mean, bad, right.exact_grad)


def test_wrong_categorical_score_is_rejected():
    family, objective, params = DISCRETE_CELLS[1]
    cell = make_cell(family, objective, **params)
    right = simulate(cell, "sf", 200_000, seed=35)
    check_mean(right, powered=True)
    bad = simulate(cell, wrong.SF_UNCENTRED_SCORE, 200_000, seed=35)
    assert rejects(check_mean, bad, right.exact_grad)


def test_wrong_bernoulli_score_is_rejected():
    family, objective, params = DISCRETE_CELLS[2]
    cell = make_cell(family, objective, **params)
    right = simulate(cell, "sf", 200_000, seed=36)
    check_mean(right, powered=True)
    bad = simulate(cell, wrong.SF_LOGIT_SCORE, 200_000, seed=36)
    assert rejects(check_mean, bad, right.exact_grad)


# --- generic: every applicable (family, objective, estimator, baseline) from the registries -------
def _generic_value(param, dim):
    """A non-default, non-special value of a parameter (sigma != 1, mu != 0, phi != 0...)."""
    value = param.default_for(dim)
    if param.vector:
        return value
    return value * 1.3 if param.positive else value + 0.3


def _combinations():
    """Every applicable (family, objective, estimator, baseline), in registry order with each
    family's default objective first; the first case of each family, objective, estimator
    and baseline is in the fast tier (helpers.tiered), the rest of the matrix is slow."""
    cases = []
    for family, fam in registry.FAMILIES.items():
        for objective in objectives_default_first(family):
            for name, est in registry.ESTIMATORS.items():
                if not registry.applicable(est, fam) or est.train_only:
                    continue  # train-only estimators are tested in test_relax.py
                if est.needs_derivatives > registry.OBJECTIVES[(family, objective)].derivatives:
                    continue  # refused by spec.plan
                for baseline in registry.BASELINES if est.uses_baseline else ("mean",):
                    cases.append((family, objective, name, baseline))
    return tiered(cases, _covers, ids=_combination_id)


def _covers(family, objective, estimator, baseline):
    keys = [("family", family), ("objective", family, objective), ("estimator", estimator)]
    if EST[estimator].uses_baseline:
        keys.append(("baseline", baseline))
    return keys


def _combination_id(family, objective, estimator, baseline):
    tag = f"-{baseline}" if EST[estimator].uses_baseline else ""
    return f"{family}-{objective}-{estimator}{tag}"


def test_the_fast_tier_has_every_registered_entry():
    """helpers.tiered keeps a fast case of every family, objective, estimator (applicable to
    some family) and baseline of the registries."""
    fast = [case.values for case in _combinations() if not case.marks]
    assert {c[0] for c in fast} == set(registry.FAMILIES)
    assert {c[:2] for c in fast} == set(registry.OBJECTIVES)
    families = registry.FAMILIES.values()
    assert {c[2] for c in fast} == {
        name
        for name, est in EST.items()
        if any(registry.applicable(est, f) for f in families) and not est.train_only
    }
    assert {c[3] for c in fast if EST[c[2]].uses_baseline} == set(registry.BASELINES)


@pytest.mark.parametrize("family,objective,estimator,baseline", _combinations())
def test_every_registered_combination(family, objective, estimator, baseline):
    """Runs, is finite, and an estimator declared unbiased for the exact objective is unbiased
    (and has the exact variance where the reference knows it)."""
    fam, obj, est = (
        registry.FAMILIES[family],
        registry.OBJECTIVES[(family, objective)],
        EST[estimator],
    )
    fam_values = {p.name: _generic_value(p, 0) for p in fam.params}
    dim = fam.dim(fam_values)
    obj_values = {p.name: _generic_value(p, dim) for p in obj.params}
    batch = est.batch_needed(baseline)
    cell = make_cell(family, objective, batch=batch, **fam_values, **obj_values)
    run = simulate(cell, est, 50_000, seed=41, baseline=baseline)
    assert run.mom.n_finite == 50_000 and run.mom.nonfinite == 0
    assert np.all(np.isfinite(run.mom.moments))
    assert run.st["grad_mean"].shape == (len(cell.coords),)
    if _zero_to_rounding(run):  # no z-score applies to rounding noise
        if est.unbiased_for == "exact":  # (st on a linear f is constant but biased)
            np.testing.assert_allclose(run.st["grad_mean"], run.exact_grad, rtol=1e-12, atol=1e-14)
        assert np.all(run.exact_var <= 1e-20 * (1.0 + run.exact_grad**2))
        return
    if est.unbiased_for == "exact" and np.all(np.isfinite(run.exact_grad)):
        check_mean(run)
    if np.all(np.isfinite(run.exact_var)):
        check_variance(run, powered=False)


def _zero_to_rounding(run):
    """A deterministic estimate computed in floating point (the delta method on a polynomial of
    degree 2 or less): its variance is rounding noise (1e-31, not 0)."""
    scale = 1.0 + run.exact_grad**2
    return bool(np.all(np.isfinite(scale)) and np.all(run.st["grad_var"] <= 1e-20 * scale))


def _extreme_value(param, dim):
    """Logits of +-1e3 (REFERENCE section 2: the softmax must stay stable), other parameters
    far from their defaults; positive parameters (sigma) unchanged."""
    if param.positive:
        return param.default_for(dim)
    if param.vector:
        return np.resize([1e3, -1e3, 999.0], len(param.default_for(dim)))
    return 1e3


@pytest.mark.parametrize("family,objective,estimator,baseline", _combinations())
def test_every_combination_finite_at_extremes(family, objective, estimator, baseline):
    """tau = 1e-3 and parameters of +-1e3: every estimate finite, none dropped."""
    fam, est = registry.FAMILIES[family], EST[estimator]
    fam_values = {p.name: _extreme_value(p, 0) for p in fam.params}
    batch = max(2, est.batch_needed(baseline))
    cell = make_cell(family, objective, batch=batch, tau=1e-3, **fam_values)
    run = simulate(cell, est, 5_000, seed=42, baseline=baseline)
    assert run.mom.nonfinite == 0 and np.all(np.isfinite(run.mom.moments))


@pytest.mark.parametrize("sigma", [1e-300, 0.3, 1.0, 7.0, 1e300])
def test_normal_score_is_the_division_by_sigma_within_an_ulp(sigma):
    """The score multiplies by fp's 1 / sigma (prepared once): within about an ulp of
    eps / sigma and (eps^2 - 1) / sigma wherever 1 / sigma is finite (sigma from 5.6e-309
    up; below, every score is infinite or NaN, where a division kept the smallest |eps|
    finite).  A layout slip (the reciprocal not where the kernel reads it, or sigma
    itself) is off by far more."""
    fam = registry.FAMILIES["normal"]
    fp = fam.prepare({"mu": 0.5, "sigma": sigma})
    x, s = np.empty(1), np.empty(2)
    for e in np.random.default_rng(5).standard_normal(2000):
        fam.score.py_func(fp, np.array([e]), x, s)
        want = np.array([e / sigma, (e * e - 1.0) / sigma])
        assert np.all(np.abs(s - want) <= 2.0 * np.spacing(np.abs(want))), (e, s, want)
        assert x[0] == 0.5 + sigma * e

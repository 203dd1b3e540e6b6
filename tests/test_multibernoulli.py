"""The multibernoulli family (docs/math.md §8): D independent bits, against ground truth
derived here by brute-force enumeration in NumPy and tensor Gauss-Legendre over the uniforms."""

import itertools

import numpy as np
import pandas as pd
import pytest
from helpers import check_mean, check_variance, make_cell, rejects, simulate
from scipy.special import expit
from test_bernoulli import arm_at, disarm_at, moments_over_u, squared
from wrong_bernoulli import WRONG_ARM

from gradvar import engine, truth
from gradvar.model import registry
from gradvar.model.bernoulli import ARM_ENUM_DIM
from gradvar.model.families import MULTIBERNOULLI_ENUM_DIM

EST = registry.ESTIMATORS
LOGITS = [0.4, -1.1, 2.0]


def brute_mean(logits, f):
    """E[f(b)] by summing over the 2^D bit vectors."""
    p = expit(np.asarray(logits))
    total = 0.0
    for bits in itertools.product([0, 1], repeat=len(p)):
        b = np.array(bits, dtype=float)
        total += np.prod(np.where(b == 1, p, 1 - p)) * f(b[None, :])[0]
    return total


def brute_gradient(logits, f, h=1e-5):
    """Central differences of the enumerated E[f] in every logit."""
    logits = np.asarray(logits, dtype=float)
    out = []
    for i in range(len(logits)):
        e = np.zeros(len(logits))
        e[i] = h
        out.append((brute_mean(logits + e, f) - brute_mean(logits - e, f)) / (2 * h))
    return np.array(out)


def mb_cell(objective="squared", logits=LOGITS, **kw):
    return make_cell("multibernoulli", objective, logits=logits, **kw)


@pytest.mark.parametrize("objective", ["linear", "squared"])
@pytest.mark.parametrize("logits", [LOGITS, [0.0] * 10, [3.0, -0.2]])
def test_exact_gradient_closed_form_is_the_derivative_of_the_enumerated_mean(objective, logits):
    d = len(logits)
    w = np.full(d, 1.0 / d)
    f = (lambda b: b @ w) if objective == "linear" else squared(0.499)
    cell = mb_cell(objective, logits)
    np.testing.assert_allclose(truth.exact_gradient(cell), brute_gradient(logits, f), atol=1e-9)
    assert np.isclose(
        cell.objective.exact_mean(cell.family_values, cell.objective_values), brute_mean(logits, f)
    )
    # the family's own enumeration hook agrees with the objective's closed form
    states, _ = cell.family.outcomes(cell.family_values)
    hooked = cell.family.exact_gradient(cell.family_values, truth.objective_values_on(cell, states))
    np.testing.assert_allclose(hooked, truth.exact_gradient(cell), atol=1e-14)


def test_exact_gradient_closed_form_for_a_hundred_bits():
    logits = np.linspace(-3, 3, 100)
    p = expit(logits)
    w, t = np.full(100, 0.01), 0.499
    expected = p * (1 - p) * (w**2 * (1 - 2 * p) + 2 * w * (w @ p - t))
    np.testing.assert_allclose(truth.exact_gradient(mb_cell("squared", logits)), expected)


@pytest.mark.parametrize("name,at", [("arm", arm_at), ("disarm", disarm_at)])
@pytest.mark.parametrize("logits", [LOGITS, [0.0, 0.0], [-0.3, 0.8, 0.1]])
def test_arm_disarm_exact_matches_integration_over_u(name, at, logits):
    mean, var = moments_over_u(at, np.array(logits), squared(0.499))
    lib_mean, lib_var, note = truth.exact(mb_cell("squared", logits), EST[name])
    assert note == ""
    np.testing.assert_allclose(lib_mean, mean, rtol=1e-11, atol=1e-16)
    np.testing.assert_allclose(lib_var, var, rtol=1e-10, atol=1e-16)


@pytest.mark.parametrize("seed", range(5))
def test_disarm_variance_never_exceeds_arm(seed):
    logits = np.random.default_rng(seed).normal(0, 2, size=4)
    for objective in ("linear", "squared"):
        cell = mb_cell(objective, logits)
        _, arm, _ = truth.exact(cell, EST["arm"])
        _, disarm, _ = truth.exact(cell, EST["disarm"])
        assert np.all(disarm <= arm * (1 + 1e-12))


def test_sf_exact_variance_by_enumeration():
    """Var of f(b)(b_i - p_i) by summing over the 2^3 outcomes here."""
    p = expit(np.array(LOGITS))
    f = squared(0.499)
    first, second = np.zeros(3), np.zeros(3)
    for bits in itertools.product([0, 1], repeat=3):
        b = np.array(bits, dtype=float)
        weight = np.prod(np.where(b == 1, p, 1 - p))
        g = f(b[None, :])[0] * (b - p)
        first += weight * g
        second += weight * g**2
    _, var, note = truth.exact(mb_cell(), EST["sf"])
    np.testing.assert_allclose(var, second - first**2, rtol=1e-12)


@pytest.mark.parametrize("name", ["sf", "arm", "disarm", "rebar", "rebar-tied"])
@pytest.mark.parametrize("objective", [pytest.param("linear", marks=pytest.mark.slow), "squared"])
def test_unbiased_with_the_exact_variance(name, objective):
    cell = mb_cell(objective, tau=0.5, options={"eta": 0.9})
    run = simulate(cell, name, 200_000, seed=51)
    check_mean(run, powered=name != "sf")  # sf's gradient is too small to power at 2e5
    if np.all(np.isfinite(run.exact_var)):
        check_variance(run, powered=True)


def test_wrong_arm_is_rejected_on_three_bits():
    cell = mb_cell()
    run = simulate(cell, WRONG_ARM, 200_000, seed=52)
    assert rejects(check_variance, run, truth.exact(cell, EST["arm"])[1])


def test_rebar_exact_for_one_bit_only():
    mean, var, note = truth.exact(mb_cell(), EST["rebar"])
    assert np.isnan(var).all() and "one bit" in note
    one = truth.exact(mb_cell(logits=[0.7], t=0.3), EST["rebar"])
    scalar = truth.exact(make_cell("bernoulli", "squared", logit=0.7, t=0.3), EST["rebar"])
    np.testing.assert_allclose(one[:2], scalar[:2], rtol=1e-13)


def test_enumeration_limits_give_nan_with_a_note():
    big = mb_cell(logits=np.zeros(ARM_ENUM_DIM + 1))
    _, var, note = truth.exact(big, EST["arm"])
    assert np.isnan(var).all() and f"D = {ARM_ENUM_DIM}" in note
    assert np.isfinite(truth.exact(big, EST["sf"])[1]).all()
    huge = mb_cell(logits=np.zeros(MULTIBERNOULLI_ENUM_DIM + 1))
    _, var, note = truth.exact(huge, EST["sf"])
    assert np.isnan(var).all() and "outcomes" in note
    assert np.isfinite(truth.exact_gradient(huge)).all()  # closed form, any D


@pytest.mark.parametrize(
    "name",
    ["sf", "arm"]
    + [
        pytest.param(n, marks=pytest.mark.slow)
        for n in ("rebar", "disarm", "rebar-tied", "gumbel-softmax")
    ],
)
def test_one_bit_is_the_bernoulli_toy_sample_for_sample(name):
    """D = 1 with w = 1 draws the same noise as the bernoulli family: identical estimates."""
    one = mb_cell(logits=[0.6], t=0.2)
    scalar = make_cell("bernoulli", "squared", logit=0.6, t=0.2)
    np.testing.assert_array_equal(
        engine.estimates(one, EST[name], 500, seed=3), engine.estimates(scalar, EST[name], 500, 3)
    )


def test_relaxed_estimators_exact_for_one_bit():
    cell = mb_cell(logits=[0.6], t=0.2)
    _, var, note = truth.exact(cell, EST["gumbel-softmax"])
    assert note == "" and np.isfinite(var).all()
    _, var, note = truth.exact(mb_cell(), EST["gumbel-softmax"])
    assert np.isnan(var).all() and note


def test_a_hundred_bits_from_the_command_line(cli, tmp_path):
    out = tmp_path / "run"
    result = cli(
        "compare",
        "--family",
        "multibernoulli",
        "--logits",
        "0:0:100",
        "--estimator",
        "sf,arm,disarm",
        "--samples",
        "2000",
        "--out",
        str(out),
        "--no-plot",
    )
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 300 and set(rows.param) == {f"logits[{i}]" for i in range(100)}
    assert "100 coordinates" in result.output  # the console aggregates them
    assert result.output.count("logits[") < 10
    np.testing.assert_allclose(rows.exact_grad, 0.25 * 2 * 0.01 * (0.5 - 0.499), rtol=1e-9)
    arm = rows[rows.estimator == "arm"]
    assert arm.exact_var.isna().all() and (arm.f_evals == 2).all()  # 3^100 regions: no exact

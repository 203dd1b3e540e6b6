"""User objectives as expressions (gradvar.model.expressions): safe parsing, parity with the
built-in objectives, ground truth against closed forms and quadrature derived here, the note
on jumps, and the kernel cache."""

import json
import math
import random

import numpy as np
import pandas as pd
import pytest
from helpers import check_mean, check_variance, make_cell, rejects, run_python, simulate
from scipy import integrate
from scipy.stats import norm
from wrong_estimators import SF_SIGMA_SCORE, SF_UNCENTRED_SCORE

import gradvar
from gradvar import spec, truth
from gradvar.model import registry

TIMING = {"seconds", "estimates_per_s", "work_var"}


def _objective(family, text, **sets):
    return spec.objective_entry(registry.FAMILIES[family], text, tuple(sets))


def _cell(family, text, **values):
    obj = _objective(family, text, **{k: v for k, v in values.items() if k not in ("mu", "sigma")})
    return make_cell(family, obj=obj, **values)


# --- safe parsing ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, names",
    [
        ("__import__('os')", "__import__"),
        ("z.real", "z.real"),
        ("(lambda: 1)()", "lambda"),
        ("exp(z, 2)", "exp"),
        ("q * z", "q"),
        ("z[0]", "z[0]"),
        ("'text'", "text"),
        ("[z]", "[z]"),
        ("0 < z < 1", "0 < z < 1"),
        ("exp(x=z)", "exp(x=z)"),
        ("z +", "valid"),
        ("1/0", "1/0"),
        ("10.0**400 * z", "10.0**400"),
        ("(z - mu)**2", "family parameter"),
    ],
)
def test_refused_expressions_name_the_offending_part(cli, text, names):
    result = cli("compare", "--objective", text, "--samples", 10, "--no-plot")
    assert result.exit_code == 2, result.output
    assert names in result.output and "Traceback" not in result.output


def test_a_wrong_index_is_refused_with_the_number_of_classes(cli):
    args = ["compare", "--family", "categorical", "--logits", "1,2,3", "--samples", 10]
    result = cli(*args, "--objective", "(y[0] - 2*y[5])**2")
    assert result.exit_code == 2 and "y[5]" in result.output and "3 entries" in result.output
    assert cli(*args, "--objective", "y").exit_code == 2  # the categorical sample is a vector


def test_a_python_callable_is_refused_pointing_to_expressions_and_plugins():
    with pytest.raises(spec.SpecError, match="expression.*plugin"):
        gradvar.compare(objective=lambda z: z**2, samples=10)


_HOSTILE = [
    "__import__('pathlib').Path('{s}').touch()",
    "open('{s}', 'w')",
    "exec(\"open('{s}', 'w')\")",
    "eval('1')",
    "z.__class__.__bases__[0].__subclasses__()",
    "(lambda: open('{s}', 'w'))()",
    "[open('{s}', 'w') for _ in (1,)]",
    "globals()",
    "getattr(z, 'real')",
    "f'{{z}}'",
    "(q := 1)",
    "*z",
    "z if z else 1",
    "exp.__call__(z)",
    "b'x'",
    "1j * z",
    "True + z",
    "None",
    "z @ z",
    "z // 2",
    "z % 2",
    "~z",
    "not z",
    "z and 1",
    "z << 1",
    "{{z: 1}}",
    "sqrt",
    "where(z, 1, 0)",
    "min(z)",
    "yield z",
    "await z",
    "os.system('touch {s}')",
]
_VALID = ["z", "exp(-z**2)", "abs(z - 1)", "(z - 0.5)**2", "where(z > 0, z, 0)", "max(z, 1)"]


def _fuzz_cases(sentinel, count=300, seed=12):
    """Random hostile or malformed expressions: a hostile core inside valid context, or a
    valid expression cut or garbled so that it no longer parses (checked with ast)."""
    import ast

    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        kind = rng.random()
        if kind < 0.6:
            core = rng.choice(_HOSTILE).format(s=sentinel)
            outer = rng.choice(["{}", "z + {}", "exp({})", "where({} > 0, 1, 0)", "({}) * z"])
            cases.append(outer.format(core))
        else:
            text = rng.choice(_VALID)
            cut = rng.randrange(len(text) + 1)
            text = text[:cut] + rng.choice(["(", ")", ",", "**", "'", "\\", "=", ";", "#"])
            try:
                ast.parse(text, mode="eval")
            except SyntaxError:
                cases.append(text)
    return cases


def test_fuzz_hostile_and_malformed_expressions_exit_2_and_run_nothing(cli, tmp_path):
    sentinel = tmp_path / "SENTINEL"
    for text in _fuzz_cases(str(sentinel)):
        result = cli("compare", "--objective", text, "--samples", 10, "--no-plot", "--out", "o")
        assert result.exit_code == 2, (text, result.output)
        assert "Traceback" not in result.output, text
        assert not sentinel.exists(), f"{text!r} executed code"
    assert not (tmp_path / "o").exists()


def test_parameter_names_sympify_would_misread_are_plain_symbols():
    """E, I, N, S and gamma are constants or functions to sympify; here they are parameters:
    f = (z - E)^2 + I z + N + S gamma, so grad = (2 (mu - E) + I, 2 sigma)."""
    sets = {"E": 1.5, "I": 2.0, "N": 3.0, "S": 0.5, "gamma": 4.0}
    obj = _objective("normal", "(z - E)**2 + I*z + N + S*gamma", **sets)
    assert [p.name for p in obj.params] == ["E", "I", "N", "S", "gamma"]
    cell = make_cell("normal", obj=obj, mu=0.3, sigma=1.2, **sets)
    expected = [2 * (0.3 - 1.5) + 2.0, 2 * 1.2]
    np.testing.assert_allclose(truth.exact_gradient(cell), expected, rtol=1e-12)
    x, grad = np.array([0.7]), np.zeros(1)
    assert obj.kernel.py_func(x, cell.objp(), grad) == pytest.approx(
        (0.7 - 1.5) ** 2 + 2 * 0.7 + 3 + 2.0, rel=1e-14
    )
    assert grad[0] == pytest.approx(2 * (0.7 - 1.5) + 2.0, rel=1e-14)
    assert obj.degree == 2 and not obj.jumps and obj.derivatives == 3


def test_symbolic_derivatives_and_capabilities():
    obj = _objective("normal", "exp(-k*z**2)", k=1)
    f, d1, d2, d3 = obj.derivatives_at(0.4, {"k": 0.7})
    e = math.exp(-0.7 * 0.16)
    assert (f, d1) == pytest.approx((e, -2 * 0.7 * 0.4 * e), rel=1e-14)
    assert d2 == pytest.approx((4 * 0.49 * 0.16 - 1.4) * e, rel=1e-13)
    assert d3 == pytest.approx((-8 * 0.343 * 0.064 + 12 * 0.49 * 0.4) * e, rel=1e-13)
    assert obj.degree is None and obj.pieces is None
    assert not _objective("normal", "abs(z - 1)").jumps  # a kink
    assert not _objective("normal", "where(z > k, z - k, 0)", k=1).jumps  # continuous
    assert _objective("normal", "where(z > 1, z, 0)").jumps
    assert _objective("normal", "z > 0").jumps


# --- parity with the built-in objectives -------------------------------------------------------
def _same_results(a, b):
    """Every column equal but the objective's name, numbers to 1e-12 (1e-15 near zero; the
    bias z-score, a ratio of a difference of exact values, to 1e-10)."""
    assert list(a.columns) == list(b.columns)
    for col in a.columns:
        if col in TIMING or col == "objective":
            continue
        if pd.api.types.is_numeric_dtype(a[col]):
            rtol = 1e-10 if col == "bias_z" else 1e-12
            np.testing.assert_allclose(a[col], b[col], rtol=rtol, atol=1e-15, err_msg=col)
        else:
            assert a[col].fillna("").tolist() == b[col].fillna("").tolist(), col


@pytest.mark.parametrize(
    "family, builtin, expression, sets, estimator",
    [
        ("normal", "quadratic", "(z - k)**2", {"k": -0.5}, "sf,reparam,mvd,mvd-coupled"),
        pytest.param(
            "normal", "cosine", "cos(omega*z)", {"omega": 1.3}, None, marks=pytest.mark.slow
        ),
        pytest.param(
            "bernoulli", "squared", "(b - t)**2", {"t": 0.3}, None, marks=pytest.mark.slow
        ),
    ],
)
def test_expressions_equal_to_builtins_give_the_same_results(
    cli, family, builtin, expression, sets, estimator
):
    runs = []
    for objective in (builtin, expression):
        args = ["compare", "--family", family, "--objective", objective, "--samples", 20_000]
        args += [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
        args += ["--estimator", estimator] if estimator else []
        out = f"out-{len(runs)}"
        result = cli(*args, "--mu" if family == "normal" else "--logit", "0.4", "--out", out)
        assert result.exit_code == 0, result.output
        runs.append(pd.read_csv(f"{out}/results.csv"))
    _same_results(*runs)


# --- ground truth against closed forms and quadrature derived here -----------------------------
MU, SIGMA = 0.5, 1.5


def _normal_expectation(func):
    """E[func(eps)], eps ~ N(0, 1), by scipy.integrate.quad (split at 0 and the kinks)."""
    pts = [(1.0 - MU) / SIGMA, -MU / SIGMA]
    edges = [-np.inf, *sorted(pts), np.inf]
    return sum(
        integrate.quad(lambda e: func(e) * norm.pdf(e), a, b, epsabs=1e-13, epsrel=1e-12)[0]
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    )


def test_abs_ground_truth_and_monte_carlo():
    """f = |z - 1|: with d = mu - 1, dE/dmu = 2 Phi(d/s) - 1, dE/dsigma = 2 phi(d/s);
    reparam's g = sign(z - 1) (1, eps), so Var = 1 - (dE/dmu)^2 and 1 - (dE/dsigma)^2."""
    cell = _cell("normal", "abs(z - 1)", mu=MU, sigma=SIGMA)
    d = (MU - 1.0) / SIGMA
    grad = np.array([2 * norm.cdf(d) - 1, 2 * norm.pdf(d)])
    np.testing.assert_allclose(truth.exact_gradient(cell), grad, rtol=1e-9)
    mean, var, note = truth.exact(cell, registry.ESTIMATORS["reparam"])
    np.testing.assert_allclose(mean, grad, rtol=1e-9)
    np.testing.assert_allclose(var, 1 - grad**2, rtol=1e-8)
    assert note == ""
    sf_var = [
        _normal_expectation(lambda e: (abs(MU + SIGMA * e - 1) * e / SIGMA) ** 2) - grad[0] ** 2,
        _normal_expectation(lambda e: (abs(MU + SIGMA * e - 1) * (e * e - 1) / SIGMA) ** 2)
        - grad[1] ** 2,
    ]
    np.testing.assert_allclose(truth.exact(cell, registry.ESTIMATORS["sf"])[1], sf_var, rtol=1e-8)
    run = simulate(cell, "sf", 400_000, seed=21)
    check_mean(run, grad, powered=True)
    check_variance(run, sf_var)
    wrong = simulate(cell, SF_SIGMA_SCORE, 400_000, seed=21)
    assert rejects(check_mean, wrong, grad)


def test_the_mvd_estimators_take_an_expression():
    """Their ground truth evaluates f on arrays of quadrature nodes (it failed with a
    TypeError, exit 1).  f = |z - 1| at N(1, 1): the gradient is (0, 2 phi(0)); where the
    kink keeps a rule from converging, NaN and a note."""
    cell = _cell("normal", "abs(z - 1)", mu=1.0, sigma=1.0)
    grad = np.array([0.0, 2 * norm.pdf(0.0)])
    for name in ("mvd", "mvd-coupled"):
        mean, var, note = truth.exact(cell, registry.ESTIMATORS[name])
        np.testing.assert_allclose(mean, grad, atol=1e-9)
        assert np.all(np.isfinite(var)) and note == ""
        check_mean(simulate(cell, name, 200_000, seed=22), grad)
    mean, var, note = truth.exact(
        _cell("normal", "abs(z - 1)", mu=MU, sigma=SIGMA), registry.ESTIMATORS["mvd"]
    )
    assert np.all(np.isnan(mean)) and note == "quadrature did not converge"


def test_a_jump_biases_reparam_and_not_the_score_function(cli):
    """f = 1[z > 0]: d/dmu E f = phi(mu/sigma)/sigma; reparam's estimate is 0 everywhere."""
    cell = _cell("normal", "z > 0", mu=MU, sigma=SIGMA)
    true = norm.pdf(MU / SIGMA) / SIGMA
    assert truth.exact_gradient(cell)[0] == pytest.approx(true, rel=1e-9)
    reparam = simulate(cell, "reparam", 10_000, seed=3)
    assert np.all(reparam.st["grad_mean"] == 0.0)
    assert rejects(check_mean, reparam)
    check_mean(simulate(cell, "sf", 200_000, seed=3), powered=True)
    args = ["--estimator", "sf,reparam", "--samples", 1000, "--no-plot", "--sigma", SIGMA]
    result = cli("compare", "--objective", "z > 0", *args)
    assert result.exit_code == 0
    assert "may jump" in result.output and "the pathwise estimator reparam" in result.output
    assert "lose precision" not in result.output  # a bias, not rounding (exact var 0 agrees)
    kink = cli("compare", "--objective", "abs(z - 1)", *args, "--out", "k")
    assert kink.exit_code == 0 and "may jump" not in kink.output


def test_smooth_expression_ground_truth_by_gauss_hermite():
    """f = exp(-k z^2): E f = s^-1/2 exp(-k mu^2 / s), s = 1 + 2 k sigma^2 (REFERENCE 8),
    differentiated with sympy here; reparam's variance by scipy quadrature."""
    import sympy

    mu, sig, k = sympy.symbols("mu sigma k", positive=True)
    s = 1 + 2 * k * sig**2
    mean = s ** sympy.Rational(-1, 2) * sympy.exp(-k * mu**2 / s)
    at = {mu: MU, sig: SIGMA, k: 0.8}
    grad = np.array([float(sympy.diff(mean, v).subs(at)) for v in (mu, sig)])
    cell = _cell("normal", "exp(-k*z**2)", mu=MU, sigma=SIGMA, k=0.8)
    np.testing.assert_allclose(truth.exact_gradient(cell), grad, rtol=1e-10)

    def fprime(e):
        z = MU + SIGMA * e
        return -2 * 0.8 * z * math.exp(-0.8 * z * z)

    var = [
        _normal_expectation(lambda e: fprime(e) ** 2) - grad[0] ** 2,
        _normal_expectation(lambda e: (fprime(e) * e) ** 2) - grad[1] ** 2,
    ]
    np.testing.assert_allclose(truth.exact(cell, registry.ESTIMATORS["reparam"])[1], var, rtol=1e-8)


def test_discrete_expressions_by_enumeration():
    """Categorical f = (y0 - 2 y2)^2: grad_j = pi_j (F_j - pi.F), F = (1, 0, 4); Bernoulli
    f = (b - 0.45)^2: grad = (f(1) - f(0)) p (1 - p)."""
    logits = np.array([0.2, -0.4, 0.9])
    cell = _cell("categorical", "(y[0] - 2*y[2])**2", logits=logits)
    pi = np.exp(logits) / np.exp(logits).sum()
    F = np.array([1.0, 0.0, 4.0])
    np.testing.assert_allclose(truth.exact_gradient(cell), pi * (F - pi @ F), rtol=1e-12)
    run = simulate(cell, "sf", 200_000, seed=5)
    check_mean(run, powered=True)
    check_variance(run)
    assert rejects(check_mean, simulate(cell, SF_UNCENTRED_SCORE, 200_000, seed=5))
    p = 1 / (1 + math.exp(-0.3))
    bern = _cell("bernoulli", "(b - 0.45)**2", logit=0.3)
    assert truth.exact_gradient(bern)[0] == pytest.approx((0.55**2 - 0.45**2) * p * (1 - p))


def test_toml_and_api_take_expressions(tmp_path):
    results = gradvar.compare(
        objective="exp(-k*z**2)", set={"k": 1.0}, estimator="reparam", samples=1000, mu=0.5
    )
    assert set(results["objective"]) == {"exp(-k*z**2)"} and set(results["k"]) == {1.0}
    toml = tmp_path / "e.toml"
    toml.write_text(
        'command = "compare"\nobjective = "abs(z - 1)"\nestimator = "reparam"\nsamples = 1000\n'
        "no-plot = true\n"
    )
    folder = gradvar.run(str(toml), out=str(tmp_path / "out"))
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["experiment"]["objective"] == "abs(z - 1)" and folder


# --- the kernel cache: a repeated run compiles nothing -----------------------------------------
CACHE_PROBE = """
import json
from helpers import make_cell
from gradvar import engine, spec
from gradvar.kernels import codegen
from gradvar.model import registry
obj = spec.objective_entry(registry.FAMILIES["normal"], "tanh(k*z) + 0.25*z**3", ("k",))
cell = make_cell("normal", obj=obj, k=0.6)
est = registry.ESTIMATORS["reparam"]
engine.simulate(cell, est, 1000, 0)
stats = codegen.compiled(cell.family, obj, est, (2, cell.width)).run_chunks.stats
print(json.dumps([sum(stats.cache_hits.values()), sum(stats.cache_misses.values())]))
"""


def test_a_repeated_run_loads_the_expression_kernels_from_the_cache(tmp_cache):
    first = json.loads(run_python(CACHE_PROBE).strip().splitlines()[-1])
    second = json.loads(run_python(CACHE_PROBE).strip().splitlines()[-1])
    assert first == [0, 1] and second == [1, 0]
    assert len(list((tmp_cache / "kernels").glob("gradvar_expr_*.py"))) == 1


def test_the_same_text_with_other_parameter_names_is_the_registered_one_when_asked_for():
    """Declared names make another objective of the same text; a run names its objective by
    the text (engine.Task), so the one asked for last must be the registered one: after a run
    that declared (k, mu), a run of the text with k alone made a Task that failed
    ("is not the registered entry of that name"), as on a cluster after test_expressions."""
    from gradvar import engine

    fam, text = registry.FAMILIES["normal"], "exp(-k*z**2) - 1"
    wide = spec.objective_entry(fam, text, ("k", "mu"))
    narrow = spec.objective_entry(fam, text, ("k",))
    assert registry.OBJECTIVES[("normal", text)] is narrow
    cell = make_cell("normal", obj=narrow, k=0.5)
    task = engine.Task.from_cell(cell, registry.ESTIMATORS["reparam"], 100, 0)
    assert task.cell().objective is narrow
    spec.objective_entry(fam, text, ("mu", "k"))  # the other one, asked for again
    assert registry.OBJECTIVES[("normal", text)] is wide
    assert task.cell().objective is narrow  # rebuilt for the task's own parameter names

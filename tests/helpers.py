"""Shared helpers of the gradvar test suite: cells, runs and the two statistical checks.

The one tolerance
-----------------
Every statistical assertion is ``|estimate - truth| < Z_TOL * standard_error`` with
``Z_TOL = 5``.  Under the normal approximation one such check raises a false alarm with
probability ``FALSE_ALARM = 2 * (1 - Phi(5)) = 5.7e-7``; seeds are fixed per test, so every
run is deterministic and a failure is never a coin toss.  Score-function estimators are heavy
tailed, so variance checks use the standard error of the variance from the fourth central
moment (what ``stats.coordinate_stats`` puts into ``var_ci_low/high``), never a chi-square
(normal-theory) interval.

Sizing: with ``powered=True`` a check also asserts that its standard error is small enough
that a factor of 2 in the quantity it checks would exceed the tolerance, so a passing check
is never a vacuous one.  The deliberately wrong estimators in ``wrong_estimators.py`` prove
it: the same checks reject them.

Test modules import them with ``from helpers import ...`` (pytest puts ``tests/`` on
``sys.path``; code run in a subprocess by :func:`run_python` has it there too).  Fixtures
live in ``conftest.py``.

Two tiers
---------
Every generated kernel module (one per family, objective, estimator kernel and shape) costs
1-2 s to compile on a cold cache, so a matrix over the registries grows the fast tier by
families x objectives x estimators.  :func:`tiered` keeps the fast tier linear: the first
case of a matrix to exercise an entry (an estimator, a family, ...) stays fast, the others
are marked slow (``pytest -m slow`` runs them).  A newly registered entry gets its fast
case without editing the test.
"""

import csv
import math
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from gradvar import engine, stats, truth
from gradvar.model import registry
from gradvar.studies.compare import TIMING_COLUMNS

Z_TOL = 5.0
FALSE_ALARM = math.erfc(Z_TOL / math.sqrt(2.0))  # 5.7e-7 two-sided, per check

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS_DIR)


def family_defaults(family):
    fam = registry.FAMILIES[family]
    return {p.name: p.default_for(0) for p in fam.params}


def make_cell(
    family="normal", objective="quadratic", batch=1, tau=0.5, obj=None, options=None, **values
):
    """A :class:`gradvar.engine.Cell` with registry defaults for every value not given.

    ``obj`` may be an :class:`gradvar.model.registry.Objective` not in the registry
    (test objectives); ``options`` sets estimator options other than ``tau`` (``eta``), the
    others take their registered defaults.
    """
    fam = registry.FAMILIES[family]
    fam_values = {}
    for p in fam.params:
        v = values.pop(p.name, p.default_for(0))
        fam_values[p.name] = np.asarray(v, dtype=float) if p.vector else float(v)
    objective_ = obj if obj is not None else registry.OBJECTIVES[(family, objective)]
    dim = fam.dim(fam_values)
    obj_values = {p.name: p.default_for(dim) for p in objective_.params}
    unknown = set(values) - set(obj_values)
    assert not unknown, f"not a parameter of {family}/{objective_.name}: {unknown}"
    obj_values.update(
        {
            k: (np.asarray(v, dtype=float) if p.vector else float(v))
            for p in objective_.params
            for k, v in values.items()
            if k == p.name
        }
    )
    cell_options = {o.name: o.default for o in registry.OPTIONS.values()}
    cell_options.update({"tau": float(tau), **(options or {})})
    return engine.Cell(
        fam, fam_values, objective_, obj_values, options=cell_options, batch=int(batch)
    )


@dataclass
class Run:
    """One engine run with its statistics and the ground truth it is checked against.

    ``exact_var`` is what the run's variance must match: for the pilot-batch baselines
    (``mean``, ``optimal``) the exact variance *given the baseline the pilot produced*
    (``mom.aux``); ``oracle_var`` is the library's ``exact_var`` (REFERENCE section 5: the
    variance with the exact baseline), which differs from it by a few percent.
    """

    mom: object  # engine.Moments
    st: dict  # stats.coordinate_stats
    exact_grad: np.ndarray
    exact_var: np.ndarray
    oracle_var: np.ndarray

    @property
    def var_se(self):
        """Standard error of the variance (fourth moment), recovered from the 95% interval."""
        return (self.st["var_ci_high"] - self.st["grad_var"]) / stats.Z


def exact_var_given_aux(cell, est, aux):
    """Exact variance of one estimate with ``aux`` (e.g. the pilot baseline) held fixed:
    the estimator's own kernel on injected quadrature nodes / outcomes, as in reference.py."""
    fam = cell.family
    if fam.outcomes is not None:
        states, weights = fam.outcomes(cell.family_values)
    else:
        states, weights = fam.quadrature(cell.family_values, 160)
    g = truth.estimates_on(cell, est, states, np.asarray(aux, dtype=float))
    mean = weights @ g
    return weights @ (g - mean) ** 2 / cell.batch


def simulate(cell, est, n, seed, baseline="mean"):
    """Run ``est`` (an Estimator or a registry name) through the engine; stats and truth."""
    est = registry.ESTIMATORS[est] if isinstance(est, str) else est
    exact_grad = truth.exact_gradient(cell)
    mom = engine.simulate(cell, est, n, seed, baseline=baseline, exact_grad=exact_grad)
    _, oracle_var = truth.exact_moments(cell, est, baseline)
    exact_var = oracle_var
    pilot = est.uses_baseline and registry.BASELINES[baseline].needs_pilot
    if pilot and np.all(np.isfinite(oracle_var)):
        exact_var = exact_var_given_aux(cell, est, mom.aux)
    st = stats.coordinate_stats(mom, exact_grad, oracle_var)
    return Run(mom, st, exact_grad, exact_var, oracle_var)


def check_mean(run, exact=None, powered=False, what="mean"):
    """Assert the Monte Carlo mean is within Z_TOL standard errors of ``exact``, per coordinate.

    A coordinate with zero sample variance must equal ``exact`` exactly.  ``powered``: also
    assert sem is small enough that a factor 2 in a non-zero exact value would be rejected.
    """
    st = run.st
    exact = np.asarray(run.exact_grad if exact is None else exact, dtype=float)
    assert np.all(np.isfinite(exact)), f"no ground truth to check the {what} against: {exact}"
    assert run.mom.n_finite >= 2 and run.mom.nonfinite == 0, run.mom
    mean, sem = st["grad_mean"], st["grad_sem"]
    problems = []
    for j in range(len(exact)):
        if sem[j] == 0.0:
            if mean[j] != exact[j]:
                problems.append(f"coord {j}: zero variance but mean {mean[j]!r} != {exact[j]!r}")
            continue
        z = (mean[j] - exact[j]) / sem[j]
        if not abs(z) < Z_TOL:
            problems.append(
                f"coord {j}: {what} {mean[j]:.6g} vs exact {exact[j]:.6g}, "
                f"z = {z:.2f} (sem {sem[j]:.3g})"
            )
        if powered and exact[j] != 0.0:
            assert Z_TOL * sem[j] <= 0.5 * abs(exact[j]), (
                f"coord {j}: underpowered, sem {sem[j]:.3g} cannot reject a factor 2 "
                f"of {exact[j]:.3g}"
            )
    assert not problems, "; ".join(problems)


def check_variance(run, exact_var=None, powered=True):
    """Assert the Monte Carlo variance is within Z_TOL fourth-moment standard errors of
    ``exact_var``, per coordinate; with ``powered``, that a factor 2 would be rejected."""
    st = run.st
    exact_var = np.asarray(run.exact_var if exact_var is None else exact_var, dtype=float)
    assert np.all(np.isfinite(exact_var)), f"no exact variance to check against: {exact_var}"
    var, se = st["grad_var"], run.var_se
    problems = []
    for j in range(len(exact_var)):
        if se[j] == 0.0:
            if var[j] != exact_var[j]:
                problems.append(f"coord {j}: variance {var[j]!r} (exactly) != {exact_var[j]!r}")
            continue
        z = (var[j] - exact_var[j]) / se[j]
        if not abs(z) < Z_TOL:
            problems.append(
                f"coord {j}: variance {var[j]:.6g} vs exact {exact_var[j]:.6g}, "
                f"z = {z:.2f} (se {se[j]:.3g})"
            )
        if powered and exact_var[j] > 0:
            assert Z_TOL * se[j] <= 0.5 * exact_var[j], (
                f"coord {j}: underpowered, se {se[j]:.3g} cannot reject a factor 2 "
                f"of {exact_var[j]:.3g}"
            )
    assert not problems, "; ".join(problems)


def rejects(check, *args, **kwargs):
    """True when ``check`` (run without its sizing assertion) raises the AssertionError of a
    failed statistical check: how a test proves that a wrong estimator or formula fails."""
    kwargs.setdefault("powered", False)
    try:
        check(*args, **kwargs)
    except AssertionError:
        return True
    return False


def run_python(code, env=None, timeout=300):
    """Run ``code`` in a fresh interpreter (tests/ on the path); return its stdout."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        [TESTS_DIR, ROOT] + ([full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else [])
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def rows_without_timing(path):
    """A CSV's rows (dicts by column name) without the columns that measure wall time
    (``TIMING_COLUMNS``): what two runs of the same command must share to the letter."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for c in TIMING_COLUMNS:
            r.pop(c, None)
    return rows


def tiered(cases, covers, ids=None):
    """The cases of a parametrized matrix as ``pytest.param``, each marked slow unless it is
    the first, in the given order, to cover one of the keys ``covers(*case)`` returns.

    ``covers`` names what a case exercises, e.g. ``[("family", "normal"), ("estimator",
    "sf")]``: the fast tier then holds one case per family and one per estimator (not one
    per pair).  Put the cheapest case of each entry first (the family's default objective,
    the shapes other fast tests compile anyway).  ``ids(*case)`` names a case.
    """
    seen = set()
    params = []
    for case in cases:
        case = tuple(case)
        new = set(covers(*case)) - seen
        seen |= new
        marks = () if new else (pytest.mark.slow,)
        params.append(pytest.param(*case, marks=marks, id=ids(*case) if ids else None))
    return params


def objectives_default_first(family):
    """The objectives of ``family`` in registry order, its default objective first."""
    fam = registry.FAMILIES[family]
    names = [o for f, o in registry.OBJECTIVES if f == family]
    return sorted(names, key=lambda o: o != fam.default_objective)

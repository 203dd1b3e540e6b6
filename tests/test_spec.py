"""Option parsing and validation: every mistake is a SpecError whose message names the
option and the problem (the CLI turns it into exit status 2)."""

import math

import numpy as np
import pytest

from gradvar import spec
from gradvar.model import registry
from gradvar.spec import SpecError


# --- parse_values -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,expected",
    [
        ("1,2,3", [1.0, 2.0, 3.0]),
        (" 1, 2 ,", [1.0, 2.0]),
        ("-2.5", [-2.5]),
        ("1e6", [1e6]),
        ("0:1:5", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("3:3:1", [3.0]),
        ("log:1:100:3", [1.0, 10.0, 100.0]),
        ("log:0.01:10:4", [0.01, 0.1, 1.0, 10.0]),
        (2, [2.0]),
        (0.5, [0.5]),
        ([1, 2.5], [1.0, 2.5]),
        (np.array([3.0, 4.0]), [3.0, 4.0]),
    ],
)
def test_parse_values_forms(text, expected):
    assert spec.parse_values(text, "mu") == pytest.approx(expected, rel=1e-12)


def test_mean_shift_grid_is_exact():
    values = spec.parse_values("-4:4:17", "mu")
    assert len(values) == 17 and values[0] == -4.0 and values[-1] == 4.0
    assert 0.0 in values and values == [-4.0 + 0.5 * i for i in range(17)]


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("abc", "cannot parse 'abc'"),
        ("1:2", "cannot parse '1:2'"),
        ("1:2:3:4", "cannot parse"),
        ("log:1:2", "cannot parse"),
        ("1:2:2.5", "cannot parse"),
        ("0:1:0", "COUNT"),
        ("log:0:1:3", "START, STOP > 0"),
        ("log:-1:1:3", "START, STOP > 0"),
        ("", "empty"),
        (",", "empty"),
    ],
)
def test_parse_values_errors_name_the_option(text, fragment):
    with pytest.raises(SpecError) as err:
        spec.parse_values(text, "sigma")
    message = str(err.value)
    assert message.startswith("sigma") and fragment in message
    assert "\n" not in message


# --- plan: validation -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options,fragments",
    [
        (dict(family="gaussian"), ["family", "'gaussian'", "normal"]),
        (dict(objective="quadric"), ["objective", "'quadric'", "did you mean 'quadratic'"]),
        (dict(estimator="sf,reparm"), ["estimator", "'reparm'", "did you mean 'reparam'"]),
        (dict(baseline="avg"), ["baseline", "'avg'", "mean, optimal, loo"]),
        (dict(sigma=0), ["sigma", "> 0"]),
        (dict(sigma="1,-1"), ["sigma", "> 0", "-1"]),
        (dict(sigma="nan"), ["sigma", "finite"]),
        (dict(mu="inf"), ["mu", "finite"]),
        (dict(mu="1,nan"), ["mu", "finite"]),
        (dict(samples=0), ["samples", ">= 1"]),
        (dict(samples="1.5"), ["samples", "whole number"]),
        (dict(samples="many"), ["samples", "cannot parse"]),
        (dict(seed=-1), ["seed", ">= 0"]),
        (dict(batch=0), ["batch", ">= 1"]),
        (dict(estimator="sf-baseline", baseline="loo"), ["loo", "batch >= 2", "--batch 2"]),
        (dict(estimator="sf-baseline", baseline="loo", batch="1,2"), ["loo", "batch >= 2"]),
        (dict(sets={"kk": 1}), ["quadratic", "'kk'", "k"]),
        (dict(sets={"k": "x"}), ["k", "cannot parse"]),
        (dict(logit=1.0), ["normal", "'logit'", "mu, sigma"]),
        (
            dict(family="categorical", objective="squared", sets={"w": "1,2"}),
            ["w", "3 values", "got 2"],
        ),
        (dict(family="categorical", logits="1"), ["logits", "at least 2"]),
        (dict(family="categorical", logits="1,nan,2"), ["logits", "finite"]),
        (dict(family="categorical", sets={"t": "nan"}), ["t", "finite"]),
        (dict(family="categorical", estimator="gumbel-softmax", tau=0), ["tau", "> 0"]),
        (dict(family="bernoulli", estimator="st-gumbel", tau="0.5,-1"), ["tau", "> 0"]),
        # an option that no selected estimator reads would be dropped without a word
        (dict(estimator="sf,reparam", tau="0.5,1"), ["tau", "none of", "sf, reparam", "st-gumbel"]),
        (dict(family="categorical", estimator="gumbel-softmax", eta=1), ["eta", "rebar"]),
        (dict(family="categorical", estimator="st", rao_samples=3), ["rao_samples", "gumbel-rao"]),
    ],
)
def test_plan_errors_name_the_problem(options, fragments):
    with pytest.raises(SpecError) as err:
        spec.plan(**options)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "\n" not in message


def test_an_option_read_by_one_of_the_estimators_is_kept():
    plan = spec.plan(family="categorical", estimator="sf,gumbel-softmax", tau="0.5,1")
    assert [c.options["tau"] for c in plan.cells] == [0.5, 1.0]
    assert [[e.name for e in run] for run in plan.runs] == [
        ["sf", "gumbel-softmax"],
        ["gumbel-softmax"],
    ]


def _inapplicable():
    for fname, fam in registry.FAMILIES.items():
        for ename, est in registry.ESTIMATORS.items():
            if not (registry.applicable(est, fam) or est.train_only):  # train-only: refused first
                yield pytest.param(fname, ename, id=f"{fname}-{ename}")


@pytest.mark.parametrize("family,estimator", list(_inapplicable()))
def test_inapplicable_estimator_is_a_usage_error(family, estimator):
    """Every estimator a family lacks the capability for (read from the registry) is refused,
    naming the estimator, the family and the missing capability."""
    est = registry.ESTIMATORS[estimator]
    with pytest.raises(SpecError) as err:
        spec.plan(family=family, estimator=estimator)
    message = str(err.value)
    assert f"'{estimator}'" in message and f"'{family}'" in message and est.requires in message


def test_at_least_one_inapplicable_combination_exists():
    assert list(_inapplicable()), "reparam on a discrete family should be refused"


# --- plan: defaults and sweeps --------------------------------------------------------------
def test_defaults():
    p = spec.plan()
    assert p.family.name == "normal" and p.objective.name == "quadratic" and p.baseline == "mean"
    assert [e.name for e in p.estimators] == list(p.family.default_estimators)
    (cell,) = p.cells
    assert cell.family_values == {"mu": 1.0, "sigma": 1.0} and cell.objective_values == {"k": 0.0}
    assert cell.batch == 1 and math.isnan(cell.tau)  # no estimator of the run reads tau
    assert p.samples == 1_000_000 and p.seed == 0 and p.swept == []
    cat = spec.plan(family="categorical", estimator="gumbel-softmax")
    assert np.array_equal(cat.cells[0].family_values["logits"], [2.0, 0.5, 0.1])
    assert np.array_equal(cat.cells[0].objective_values["w"], [1.0, 2.0, 3.0])
    assert cat.cells[0].objective_values["t"] == 0.499 and cat.cells[0].tau == 0.5
    assert spec.plan(family="bernoulli").cells[0].family_values == {"logit": 0.0}


def test_sweeps_make_one_cell_per_combination():
    p = spec.plan(
        objective="cosine", mu="-1:1:3", sets={"omega": "1,2"}, samples="1e6", batch="1,4"
    )
    assert len(p.cells) == 3 * 2 * 2 and p.samples == 10**6
    assert set(p.swept) == {"mu", "omega", "batch"}
    combos = {(c.family_values["mu"], c.objective_values["omega"], c.batch) for c in p.cells}
    assert combos == {(m, w, b) for m in (-1.0, 0.0, 1.0) for w in (1.0, 2.0) for b in (1, 4)}
    # a vector parameter is one value, not a sweep
    q = spec.plan(
        family="categorical", objective="squared", logits="1,2,3,4", sets={"w": "4,3,2,1"}
    )
    assert len(q.cells) == 1 and q.swept == []
    assert np.array_equal(q.cells[0].objective_values["w"], [4.0, 3.0, 2.0, 1.0])


def test_estimators_deduplicated_in_order():
    p = spec.plan(estimator="reparam, sf,reparam")
    assert [e.name for e in p.estimators] == ["reparam", "sf"]


@pytest.mark.parametrize("text", ["1,,2", ",1", "1,,"])
def test_parse_values_rejects_empty_entries(text):
    with pytest.raises(spec.SpecError, match="empty entry"):
        spec.parse_values(text, "mu")

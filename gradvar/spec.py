"""Experiment specs: parsing option values, defaults, validation, and the cells of a sweep.

Everything a user can get wrong is checked here and raised as :class:`SpecError` with a
one-line message naming the problem; the CLI turns it into a usage error (exit status 2).
"""

import difflib
import itertools
import math
from dataclasses import dataclass

import numpy as np

from gradvar.model import registry


class SpecError(ValueError):
    """Bad input: the message names the option and the problem."""


def suggest(name, choices):
    close = difflib.get_close_matches(name, list(choices), n=2, cutoff=0.5)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return f"{hint} Choose from: {', '.join(choices)}."


def parse_values(text, name="value"):
    """Parse '1,2,3', 'START:STOP:COUNT' or 'log:START:STOP:COUNT' into a list of floats.

    A number or a list of numbers is taken as it is; anything else (a boolean, a table, a
    nested list) is refused naming ``name``."""
    if isinstance(text, (bool, np.bool_)):
        raise SpecError(f"{name}: expected numbers, got the boolean {text}")
    if isinstance(text, (int, float, np.floating, np.integer)):
        return [float(text)]
    if isinstance(text, (list, tuple, np.ndarray)):
        if not all(
            isinstance(v, (int, float, np.floating, np.integer))
            and not isinstance(v, (bool, np.bool_))
            for v in text
        ):
            raise SpecError(f"{name}: expected a list of numbers, got {list(text)!r}")
        if len(text) == 0:
            raise SpecError(f"{name}: empty list")
        return [float(v) for v in text]
    if not isinstance(text, str):
        raise SpecError(f"{name}: expected numbers, got {text!r}")
    text = text.strip()
    try:
        if text.startswith("log:") or text.count(":") == 2:
            log = text.startswith("log:")
            start, stop, count = text[4:].split(":") if log else text.split(":")
            count = int(count)
            if count < 1:
                raise SpecError(f"{name}: COUNT in {text!r} must be >= 1")
            if count > MAX_LIST:
                raise SpecError(f"{name}: COUNT in {text!r} must be <= {MAX_LIST}")
            start, stop = float(start), float(stop)
            if log:
                if start <= 0 or stop <= 0:
                    raise SpecError(
                        f"{name}: log:START:STOP:COUNT needs START, STOP > 0, got {text!r}"
                    )
                values = np.geomspace(start, stop, count)
            else:
                values = np.linspace(start, stop, count)
            return [float(v) for v in values]
        if text == "":
            raise SpecError(f"{name}: empty list")
        parts = text.split(",")
        if len(parts) > 1 and parts[-1].strip() == "":
            parts = parts[:-1]  # a trailing comma is harmless
        if any(v.strip() == "" for v in parts):
            raise SpecError(f"{name}: empty entry in {text!r}")
        values = [float(v) for v in parts]
    except SpecError:
        raise
    except ValueError:
        raise SpecError(
            f"{name}: cannot parse {text!r}; expected numbers like 1,2,3 or "
            "START:STOP:COUNT or log:START:STOP:COUNT"
        ) from None
    if not values:
        raise SpecError(f"{name}: empty list")
    return values


def check_finite(name, values, positive=False):
    for v in np.atleast_1d(values):
        if not math.isfinite(v):
            raise SpecError(f"{name} must be finite, got {v}")
        if positive and v <= 0:
            raise SpecError(f"{name} must be > 0, got {v:g}")


def parse_count(value, name):
    """An integer count that may be written 1e6."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (str, int, float, np.integer, np.floating)
    ):
        raise SpecError(f"{name}: expected a whole number, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{name}: cannot parse {value!r} as a number") from None
    if not math.isfinite(f) or f != int(f):
        raise SpecError(f"{name} must be a whole number, got {value!r}")
    return int(f)


def parse_one(value, name):
    """The one number of an option that takes a single value (a list is refused, never
    truncated to its first entry)."""
    values = parse_values(value, name)
    if len(values) != 1:
        raise SpecError(
            f"{name} takes one value here, got {len(values)} ({value}); run once per value"
        )
    return values[0]


def table_of(value, name):
    """A TOML table / dict (``set``, ``param``), refused naming ``name`` otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{name}: expected a table of KEY = VALUE, got {value!r}")
    return dict(value)


def flag_of(value, name):
    """A true/false option: a boolean, never the truthiness of a string."""
    if not isinstance(value, (bool, np.bool_)):
        raise SpecError(f"{name}: expected true or false, got {value!r}")
    return bool(value)


def check_size(value, name, limit):
    """A count within what can be represented and allocated: 1 <= value <= limit."""
    if not 1 <= value <= limit:
        raise SpecError(f"{name} must be >= 1 and <= {limit:.0e}, got {value:.6g}")
    return value


def names_of(value, what):
    """A list of names from a list or comma text; None (not given) is [], a value with no
    name in it ("", " ", ",", [""]) the error "WHAT: empty list"."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        if not all(isinstance(v, str) for v in value):
            raise SpecError(f"expected a list of names, got {list(value)!r}")
        names = [str(v).strip() for v in value]
    elif isinstance(value, str):
        names = [v.strip() for v in value.split(",")]
    else:
        raise SpecError(f"expected a name or a comma list of names, got {value!r}")
    names = [n for n in names if n]
    if not names:
        raise SpecError(f"{what}: empty list")
    return names


def estimators_for(estimator, family, train=False):
    """The registry entries named by ``estimator`` (list or comma text; the family's curated
    default set when None), each checked to be known and applicable to ``family``."""
    names = (
        names_of(estimator, "estimator")
        or list(family.default_estimators)
        or [
            n
            for n, e in registry.ESTIMATORS.items()
            if registry.applicable(e, family) and not e.train_only
        ]
    )
    ests = []
    for name in names:
        if name not in registry.ESTIMATORS:
            raise SpecError(f"unknown estimator {name!r}." + suggest(name, registry.ESTIMATORS))
        est = registry.ESTIMATORS[name]
        if est.train_only and not train:
            raise SpecError(
                f"estimator {name!r} trains its own control variate along a trajectory: "
                "use it in gradvar train"
            )
        if not registry.applicable(est, family):
            raise SpecError(
                f"estimator {name!r} needs the {est.requires!r} capability, which family "
                f"{family.name!r} does not have (it has: "
                f"{', '.join(sorted(family.capabilities))})"
            )
        if est not in ests:
            ests.append(est)
    return ests


def baselines_for(baseline):
    """Baseline names from a list or comma text, each checked; ["mean"] when None."""
    names = names_of(baseline, "baseline") or ["mean"]
    for name in names:
        if name not in registry.BASELINES:
            raise SpecError(f"unknown baseline {name!r}." + suggest(name, registry.BASELINES))
    return list(dict.fromkeys(names))


MAX_SAMPLES = 10**12  # estimates per cell: about an hour at the engine's rate
MAX_BATCH = 10**7  # samples per estimate
MAX_STEPS = 10**7  # training steps
MAX_SINGLES = 10**4  # single relaxed samples drawn per temperature by gumbel-max
MAX_VALUE = 1e150  # |value| of a pick-one list: its square must not overflow float64
MAX_CELLS = 10**5  # cells of one sweep
MAX_LIST = 10**6  # values of one list or START:STOP:COUNT range
MAX_CLASSES = 10**4  # classes of a categorical: exact enumeration is O(K^2) memory


def check_seed(seed):
    """A seed: a whole number 0 <= seed < 2^64."""
    seed = parse_count(seed, "seed")
    if not 0 <= seed < 2**64:
        raise SpecError(f"seed must be >= 0 and < 2^64, got {seed}")
    return seed


@dataclass
class Plan:
    """A validated experiment: the cells and the estimators (and baselines) to run in each."""

    family: object
    objective: object
    estimators: list
    baselines: list
    cells: list
    samples: int
    seed: int
    swept: list  # names of the parameters that take several values
    runs: list = None  # per cell, the estimators that run there (see ``estimators_in``)

    def estimators_in(self, index):
        """The estimators that run in cell ``index``: each runs in the first cell of every
        distinct value of the parameters and options it reads, so an estimator that ignores
        a swept option appears once per value of the ones it does use (REFERENCE 6b)."""
        return self.estimators if self.runs is None else self.runs[index]

    @property
    def baseline(self):
        """The first baseline (the only one in most runs)."""
        return self.baselines[0]

    @property
    def param_columns(self):
        """The parameter columns of the results tables, in the contract's order: family,
        objective, then tau; further options are appended after the statistics."""
        return (
            [p.name for p in self.family.params] + [p.name for p in self.objective.params] + ["tau"]
        )

    def variants(self, est):
        """The baselines ``est`` runs with in each cell ([""] for one without a baseline)."""
        return self.baselines if est.uses_baseline else [""]


def family_entry(family):
    if not isinstance(family, str):
        raise SpecError(f"family: expected a name, got {family!r}")
    if family not in registry.FAMILIES:
        raise SpecError(f"unknown family {family!r}." + suggest(family, registry.FAMILIES))
    return registry.FAMILIES[family]


def objective_entry(fam, objective, declared=()):
    """The objective named ``objective``, or the one an expression in the family's sample
    variable and the ``declared`` parameter names defines (gradvar.model.expressions)."""
    from gradvar.model import expressions

    if callable(objective):
        raise SpecError(
            "a Python function cannot be an objective: write it as an expression "
            "(objective='exp(-z**2)', parameters in set={...}) or register it in a plugin "
            "(--plugin FILE.py with gradvar.model.registry.objective)"
        )
    if objective is None:
        objective = fam.default_objective
    if not isinstance(objective, str):
        raise SpecError(f"objective must be a name or an expression, got {objective!r}")
    objectives = registry.objectives_for(fam.name)
    if not expressions.is_expression(fam, objective):
        return objectives[objective]
    if objective.strip().isidentifier() and objective.strip() not in (*declared, fam.variable):
        raise SpecError(
            f"unknown objective {objective!r} for family {fam.name!r}."
            + suggest(objective, [n for n in objectives if not expressions.is_expression(fam, n)])
            + f" Or write an expression in {fam.variable}: see `gradvar list`."
        )
    try:
        return expressions.objective_for(fam, objective, declared)
    except expressions.ExpressionError as err:
        raise SpecError(f"objective: {err}") from None


def _check_indices(obj, dim):
    from gradvar.model import expressions

    try:
        expressions.check_indices(obj, dim)
    except expressions.ExpressionError as err:
        raise SpecError(f"objective: {err}") from None


def _axis(param, raw, dim=None):
    """The values of one parameter: [vector] for a vector parameter, else the sweep list."""
    values = param.default_for(dim or 0) if raw is None else parse_values(raw, param.name)
    if param.vector:
        vec = np.atleast_1d(np.asarray(values, dtype=float))
        if dim is not None and len(vec) != dim:
            raise SpecError(f"{param.name} needs {dim} values (one per class), got {len(vec)}")
        check_finite(param.name, vec, param.positive)
        return [vec]
    values = list(np.atleast_1d(values))
    check_finite(param.name, values, param.positive)
    return values


def option_axis(option, raw):
    """The values of an estimator option (its default when not given)."""
    values = [option.default] if raw is None else parse_values(raw, option.name)
    check_finite(option.name, values, option.positive)
    if option.integer:
        values = [float(parse_count(v, option.name)) for v in values]
    for v in values:
        if v > option.maximum:
            raise SpecError(f"{option.name} must be <= {option.maximum:.0e}, got {v:.6g}")
    return values


def plan(
    family="normal",
    objective=None,
    estimator=None,
    baseline="mean",
    samples=1_000_000,
    batch=1,
    seed=0,
    sets=None,
    params=None,
    **values,
):
    """Validate options and expand sweeps into cells.  Values may be lists or option text.

    ``values`` holds family parameters (``mu=...``) and estimator options (``tau=...``) by
    name; ``params`` the same as a dict (the CLI's ``--param NAME=VALUES``); ``sets`` the
    objective's parameters.
    """
    from gradvar.engine import Cell

    fam = family_entry(family)
    sets = table_of(sets, "set")
    obj = objective_entry(fam, objective, tuple(sets))
    ests = estimators_for(estimator, fam)
    for e in ests:
        if e.needs_derivatives > obj.derivatives:
            raise SpecError(
                f"estimator {e.name!r} needs derivatives of f up to order {e.needs_derivatives}, "
                f"which objective {obj.name!r} does not provide (it has order {obj.derivatives})"
            )
    baselines = baselines_for(baseline)
    samples = parse_count(samples, "samples")
    if samples < 1:
        raise SpecError(f"samples must be >= 1, got {samples}")
    check_size(samples, "samples", MAX_SAMPLES)
    seed = check_seed(seed)

    given = table_of(params, "param")
    for key, value in values.items():
        if key in given:
            raise SpecError(f"{key} is given twice")
        given[key] = value
    options = {k: given.pop(k) for k in list(given) if k in registry.OPTIONS}
    unknown = set(given) - {p.name for p in fam.params}
    if unknown:
        raise SpecError(
            f"family {family!r} has no parameter {sorted(unknown)[0]!r}; its parameters: "
            + ", ".join(p.name for p in fam.params)
        )
    axes = {p.name: _axis(p, given.get(p.name)) for p in fam.params}
    dim = fam.dim({k: v[0] for k, v in axes.items()})
    if dim < fam.min_dim:
        vector = next((p.name for p in fam.params if p.vector), fam.name)
        raise SpecError(f"{vector}: a {fam.name} needs at least {fam.min_dim} classes, got {dim}")
    if dim > MAX_CLASSES:
        vector = next((p.name for p in fam.params if p.vector), fam.name)
        raise SpecError(f"{vector}: at most {MAX_CLASSES} classes, got {dim}")
    _check_indices(obj, dim)

    allowed = {p.name: p for p in obj.params}
    for key in sets:
        if key not in allowed:
            raise SpecError(
                f"objective {obj.name!r} has no parameter {key!r}; its parameters: "
                + (", ".join(allowed) or "none")
            )
    for name, p in allowed.items():
        axes[name] = _axis(p, sets.get(name), dim)

    for name, option in registry.OPTIONS.items():
        used = any(e.uses(name) for e in ests)
        if options.get(name) is not None and not used:  # given, and would be ignored
            readers = [e for e, entry in registry.ESTIMATORS.items() if entry.uses(name)]
            raise SpecError(
                f"{name} is read by none of the estimators "
                f"{', '.join(e.name for e in ests)}; it is an option of {', '.join(readers)}"
            )
        values_ = option_axis(option, options.get(name))
        axes[name] = values_ if used else [math.nan]
    batches = [parse_count(b, "batch") for b in parse_values(batch, "batch")]
    for b in batches:
        if b < 1:
            raise SpecError(f"batch must be >= 1, got {b}")
        check_size(b, "batch", MAX_BATCH)
        for e in ests:
            for base in baselines if e.uses_baseline else [""]:
                need = e.batch_needed(base)
                if b < need:
                    what = f"with baseline {base!r} " if base else ""
                    raise SpecError(
                        f"estimator {e.name!r} {what}needs batch >= {need}, "
                        f"got {b} (use --batch {need})"
                    )
    axes["batch"] = batches

    order = list(axes)
    count = math.prod(len(axes[k]) for k in order)
    if count > MAX_CELLS:
        raise SpecError(f"the sweep has {count} cells; at most {MAX_CELLS} in one run")
    cells, runs, seen = [], [], set()
    ignored = {e.name: {n for n in registry.OPTIONS if not e.uses(n)} for e in ests}
    for index in itertools.product(*(range(len(axes[k])) for k in order)):
        point = {k: axes[k][i] for k, i in zip(order, index, strict=True)}
        cells.append(
            Cell(
                fam,
                {p.name: point[p.name] for p in fam.params},
                obj,
                {p.name: point[p.name] for p in obj.params},
                options={name: point[name] for name in registry.OPTIONS},
                batch=int(point["batch"]),
            )
        )
        here = []
        for e in ests:
            key = (
                e.name,
                *(i for k, i in zip(order, index, strict=True) if k not in ignored[e.name]),
            )
            if key not in seen:
                seen.add(key)
                here.append(e)
        runs.append(here)
    swept = [k for k in order if len(axes[k]) > 1]
    return Plan(fam, obj, ests, baselines, cells, samples, seed, swept, runs)

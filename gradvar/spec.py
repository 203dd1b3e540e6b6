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
    """Parse '1,2,3', 'START:STOP:COUNT' or 'log:START:STOP:COUNT' into a list of floats."""
    if isinstance(text, (int, float, np.floating, np.integer)):
        return [float(text)]
    if isinstance(text, (list, tuple, np.ndarray)):
        return [float(v) for v in text]
    text = str(text).strip()
    try:
        if text.startswith("log:") or text.count(":") == 2:
            log = text.startswith("log:")
            start, stop, count = text[4:].split(":") if log else text.split(":")
            count = int(count)
            if count < 1:
                raise SpecError(f"{name}: COUNT in {text!r} must be >= 1")
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
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{name}: cannot parse {value!r} as a number") from None
    if not math.isfinite(f) or f != int(f):
        raise SpecError(f"{name} must be a whole number, got {value!r}")
    return int(f)


def estimators_for(estimator, family):
    """The registry entries named by ``estimator`` (list or comma text; all applicable ones
    when empty), each checked to be known and applicable to ``family`` (a Family)."""
    registry.load()
    names = (
        estimator
        if isinstance(estimator, (list, tuple))
        else ([e.strip() for e in str(estimator).split(",") if e.strip()] if estimator else None)
    )
    if not names:
        names = [n for n, e in registry.ESTIMATORS.items() if registry.applicable(e, family)]
    ests = []
    for name in names:
        if name not in registry.ESTIMATORS:
            raise SpecError(f"unknown estimator {name!r}." + suggest(name, registry.ESTIMATORS))
        est = registry.ESTIMATORS[name]
        if not registry.applicable(est, family):
            raise SpecError(
                f"estimator {name!r} needs the {est.requires!r} capability, which family "
                f"{family.name!r} does not have (it has: "
                f"{', '.join(sorted(family.capabilities))})"
            )
        if est not in ests:
            ests.append(est)
    return ests


@dataclass
class Plan:
    """A validated experiment: the cells and the estimators to run in each."""

    family: object
    objective: object
    estimators: list
    baseline: str
    cells: list
    samples: int
    seed: int
    swept: list  # names of the parameters that take several values

    @property
    def param_columns(self):
        return (
            [p.name for p in self.family.params] + [p.name for p in self.objective.params] + ["tau"]
        )


def plan(
    family="normal",
    objective=None,
    estimator=None,
    baseline="mean",
    samples=1_000_000,
    batch=1,
    seed=0,
    tau=None,
    sets=None,
    **family_values,
):
    """Validate options and expand sweeps into cells.  Values may be lists or option text."""
    from gradvar.engine import Cell

    registry.load()
    if family not in registry.FAMILIES:
        raise SpecError(f"unknown family {family!r}." + suggest(family, registry.FAMILIES))
    fam = registry.FAMILIES[family]
    objectives = registry.objectives_for(family)
    if objective is None:
        objective = fam.default_objective
    if objective not in objectives:
        raise SpecError(
            f"unknown objective {objective!r} for family {family!r}."
            + suggest(objective, objectives)
        )
    obj = objectives[objective]
    ests = estimators_for(estimator, fam)
    if baseline not in registry.BASELINES:
        raise SpecError(f"unknown baseline {baseline!r}." + suggest(baseline, registry.BASELINES))
    samples = parse_count(samples, "samples")
    if samples < 1:
        raise SpecError(f"samples must be >= 1, got {samples}")
    seed = parse_count(seed, "seed")
    if seed < 0:
        raise SpecError(f"seed must be >= 0, got {seed}")

    unknown = set(family_values) - {p.name for p in fam.params}
    if unknown:
        raise SpecError(
            f"family {family!r} has no parameter {sorted(unknown)[0]!r}; its parameters: "
            + ", ".join(p.name for p in fam.params)
        )
    axes = {}  # name -> list of values (scalar sweeps) or [vector]
    for p in fam.params:
        raw = family_values.get(p.name)
        values = p.default_for(0) if raw is None else parse_values(raw, p.name)
        if p.vector:
            vec = np.asarray(values, dtype=float)
            check_finite(p.name, vec, p.positive)
            axes[p.name] = [vec]
        else:
            values = list(np.atleast_1d(values))
            check_finite(p.name, values, p.positive)
            axes[p.name] = values
    dim = fam.dim({k: v[0] for k, v in axes.items()})
    if family == "categorical" and dim < 2:
        raise SpecError(f"logits: a categorical needs at least 2 classes, got {dim}")

    sets = dict(sets or {})
    allowed = {p.name: p for p in obj.params}
    for key in sets:
        if key not in allowed:
            raise SpecError(
                f"objective {objective!r} has no parameter {key!r}; its parameters: "
                + (", ".join(allowed) or "none")
            )
    for name, p in allowed.items():
        raw = sets.get(name)
        values = p.default_for(dim) if raw is None else parse_values(raw, name)
        if p.vector:
            vec = np.atleast_1d(np.asarray(values, dtype=float))
            if len(vec) != dim:
                raise SpecError(f"{name} needs {dim} values (one per class), got {len(vec)}")
            check_finite(name, vec, p.positive)
            axes[name] = [vec]
        else:
            values = list(np.atleast_1d(values))
            check_finite(name, values, p.positive)
            axes[name] = values

    uses_tau = any("tau" in e.options for e in ests)
    taus = [0.5] if tau is None else parse_values(tau, "tau")
    check_finite("tau", taus, positive=True)
    axes["tau"] = taus if uses_tau else [math.nan]
    batches = [parse_count(b, "batch") for b in parse_values(batch, "batch")]
    for b in batches:
        if b < 1:
            raise SpecError(f"batch must be >= 1, got {b}")
        for e in ests:
            need = e.min_batch({"baseline": baseline})
            if b < need:
                raise SpecError(
                    f"estimator {e.name!r} with baseline {baseline!r} needs batch >= {need}, "
                    f"got {b} (use --batch {need})"
                )
    axes["batch"] = batches

    order = list(axes)
    cells = []
    for combo in itertools.product(*(axes[k] for k in order)):
        values = dict(zip(order, combo, strict=False))
        cells.append(
            Cell(
                fam,
                {p.name: values[p.name] for p in fam.params},
                obj,
                {p.name: values[p.name] for p in obj.params},
                tau=values["tau"],
                batch=int(values["batch"]),
            )
        )
    swept = [k for k in order if len(axes[k]) > 1]
    return Plan(fam, obj, ests, baseline, cells, samples, seed, swept)

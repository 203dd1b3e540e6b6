"""``compare``: every estimator in every cell of a sweep, against the exact gradient and
variance.  The library side of ``gradvar compare``; ``run_cell`` and ``run_plan`` also run
the cells of ``sweep-tau``.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gradvar import defaults, engine, executor, spec, stats, truth
from gradvar.model import OPTIONS, registry
from gradvar.studies.base import (
    CheckedTables,
    Study,
    check_unknown_keywords,
    from_keywords,
    set_threads,
)

# columns that depend on wall time (work_var = grad_var * seconds / n); all others are a
# deterministic function of the command and seed
TIMING_COLUMNS = ("seconds", "estimates_per_s", "work_var")
RESULT_COLUMNS = [
    "family",
    "objective",
    "estimator",
    "baseline",
    "param",
    "n",
    "batch",
    "seed",
    "grad_mean",
    "grad_var",
    "grad_sem",
    "var_ci_low",
    "var_ci_high",
    "exact_grad",
    "exact_var",
    "bias",
    "bias_z",
    "mse",
    "nonfinite",
    "work_var",
    "seconds",
    "estimates_per_s",
    "relaxed_grad",
    "f_evals",
    "var_f_evals",
]
SUMMARY_STATS = [
    "total_var",
    "total_var_ci_low",
    "total_var_ci_high",
    "bias_sq_norm",
    "bias_sq_norm_ci_low",
    "bias_sq_norm_ci_high",
    "mse",
    "mse_ci_low",
    "mse_ci_high",
    "exact_total_var",
    "nonfinite",
    "seconds",
    "estimates_per_s",
    "relaxed_bias_sq_norm",
    "f_evals",
    "var_f_evals",
    "exact_note",
]


# summary.csv's last column: the delete-one-group MSE replicates behind mse_ci_low/high, as
# a comma list (sweep-tau's best-tau interval is computed from them)
JACKKNIFE = "mse_jackknife"


def format_value(value):
    """A parameter as the CLI accepts it: floats round-trip, vectors as comma lists."""
    if isinstance(value, np.ndarray):
        return ",".join(repr(float(v)) for v in value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    return float(value)


def cell_params(cell):
    """A cell's family and objective parameters as its CSV columns."""
    return {
        **{k: format_value(v) for k, v in cell.family_values.items()},
        **{k: format_value(v) for k, v in cell.objective_values.items()},
    }


def used_options(cell, est):
    """The cell's estimator options as ``est``'s CSV columns: NaN for those it does not read."""
    return {
        name: format_value(cell.options.get(name)) if est.uses(name) else math.nan
        for name in OPTIONS
    }


def cell_units(plan, index):
    """(estimator, baseline) of every run of the engine in cell ``index``, in row order:
    the estimators that run there (:meth:`gradvar.spec.Plan.estimators_in`) and their
    baseline variants."""
    return [(est, baseline) for est in plan.estimators_in(index) for baseline in plan.variants(est)]


def run_cell(plan, cell, progress=None, estimators=None, outcome=None):
    """The ``estimators`` (default: all of ``plan``'s) and their baseline variants in one
    cell: (result rows, summary rows) as dict lists.  A run gives each cell
    ``plan.estimators_in(i)``: an estimator runs once per distinct value of the options it
    reads, its other option columns empty.  ``outcome`` (an
    :class:`gradvar.executor.Outcome`) holds the truth and moments a cluster computed for
    them; without it they are computed here.
    """
    rows, summary = [], []
    estimators = plan.estimators if estimators is None else estimators
    if outcome is None:
        exact_grad = truth.exact_gradient(cell)
        # the relaxed objective's gradient (two classes, by quadrature), for tau estimators
        relaxed = truth.relaxed_gradient(cell) if any(e.uses_tau for e in estimators) else None
    else:
        exact_grad, relaxed = outcome.exact_grad, outcome.relaxed
    params = cell_params(cell)
    for est in estimators:
        options = used_options(cell, est)
        for baseline in plan.variants(est):
            if outcome is None:
                mom = engine.simulate(
                    cell,
                    est,
                    plan.samples,
                    plan.seed,
                    baseline=baseline,
                    exact_grad=exact_grad,
                    progress=progress,
                )
                _, exact_var, note = truth.exact(cell, est, baseline)
            else:
                mom, exact_var, note = outcome.units[(est.name, baseline)]
            evals = est.evals(cell.options) * cell.batch
            st = stats.coordinate_stats(mom, exact_grad, exact_var)
            rate = plan.samples / mom.seconds if mom.seconds > 0 else math.nan
            rel = relaxed if est.uses_tau else np.full(len(cell.coords), np.nan)
            common = dict(
                family=cell.family.name,
                objective=cell.objective.name,
                estimator=est.name,
                baseline=baseline,
                **params,
                **options,
                n=plan.samples,
                batch=cell.batch,
                seed=plan.seed,
            )
            for j, coord in enumerate(cell.coords):
                row = dict(
                    common,
                    param=coord,
                    **{k: float(v[j]) for k, v in st.items()},
                    nonfinite=mom.nonfinite,
                    seconds=mom.seconds,
                    estimates_per_s=rate,
                    relaxed_grad=float(rel[j]),
                    f_evals=evals,
                )
                row["work_var"] = row["grad_var"] * mom.seconds / plan.samples
                row["var_f_evals"] = row["grad_var"] * evals
                rows.append(row)
            agg = stats.summary_stats(mom, exact_grad)
            summary.append(
                dict(
                    common,
                    **agg,
                    exact_total_var=float(np.sum(exact_var)),
                    nonfinite=mom.nonfinite,
                    seconds=mom.seconds,
                    estimates_per_s=rate,
                    relaxed_bias_sq_norm=float(np.sum((st["grad_mean"] - rel) ** 2)),
                    f_evals=evals,
                    var_f_evals=agg["total_var"] * evals,
                    exact_note=note,
                    mse_jackknife=format_value(stats.mse_replicates(mom, exact_grad)),
                )
            )
    return rows, summary


def _tables(plan, rows, summary):
    lead = ["family", "objective", "estimator", "baseline"] + plan.param_columns
    extra = [name for name in OPTIONS if name not in lead]  # appended: scripts read by position
    results = pd.DataFrame(rows)
    results = results[lead + [c for c in RESULT_COLUMNS if c not in lead] + extra]
    summary = pd.DataFrame(summary)
    summary = summary[lead + ["n", "batch", "seed"] + SUMMARY_STATS + extra + [JACKKNIFE]]
    return results, summary


def run_plan(plan, progress=None, checkpoint=None, cluster=None):
    """Run every estimator in every cell of ``plan`` where it runs
    (:meth:`gradvar.spec.Plan.estimators_in`); return (results, summary) DataFrames.

    With ``checkpoint`` (a folder), each finished cell is saved there as two CSV files and
    cells already saved are read back instead of run again, so an interrupted sweep resumes
    where it stopped; the tables are then read from those files, so a resumed run gives the
    same bytes as an uninterrupted one.  With ``cluster`` (a :class:`gradvar.executor.
    Cluster`) the cells run there: the same tables.
    """
    store = (
        None if checkpoint is None else CheckedTables(checkpoint, "cell", ("results", "summary"))
    )
    saved, todo = {}, []
    for i in range(len(plan.cells)):
        if not plan.estimators_in(i):
            continue
        found = None if store is None else store.load(i)
        if found is None:
            todo.append(i)
        else:
            saved[i] = found
            if progress is not None:
                progress(len(cell_units(plan, i)) * plan.samples)
    parts = dict(saved)

    def run(i, outcome=None):
        return run_cell(plan, plan.cells[i], progress, plan.estimators_in(i), outcome)

    if cluster is None:
        finished = ((i, run(i)) for i in todo)
    else:  # in the order the cells finish there
        finished = ((i, run(i, outcome)) for i, outcome in cluster.outcomes(plan, todo, progress))
    for i, (r, s) in finished:
        parts[i] = (r, s) if store is None else store.save(i, _tables(plan, r, s))
    order = sorted(parts)
    if store is None:
        return _tables(plan, *(sum((parts[i][k] for i in order), []) for k in (0, 1)))
    results = pd.concat([parts[i][0] for i in order], ignore_index=True)
    summary = pd.concat([parts[i][1] for i in order], ignore_index=True)
    return results, summary


def runs(plan):
    """Estimator runs (estimator, baseline variant, cell) of a plan."""
    return sum(len(cell_units(plan, i)) for i in range(len(plan.cells)))


ENGINE_KEYS = ("family", "objective", "estimator", "baseline", "set", "param", "batch")
RUN_KEYS = ("samples", "seed", "threads", "no-plot")


def engine_keys():
    """Experiment keys of a study of engine cells: the fixed ones, every registered family
    parameter and every estimator option (one declaration each, see gradvar.model)."""
    return {*ENGINE_KEYS, *RUN_KEYS, *registry.parameter_names(), *OPTIONS}


def plan_of(experiment, family="normal", **overrides):
    """The :class:`gradvar.spec.Plan` of an experiment dict of engine cells."""
    values = {
        k: v
        for k, v in experiment.items()
        if (k in registry.parameter_names() or k in OPTIONS) and v is not None
    }
    arguments = dict(
        family=experiment.get("family", family),
        objective=experiment.get("objective"),
        estimator=experiment.get("estimator"),
        baseline=experiment.get("baseline", defaults.BASELINE),
        samples=experiment.get("samples", defaults.SAMPLES),
        batch=experiment.get("batch", defaults.BATCH),
        seed=experiment.get("seed", defaults.SEED),
        sets=experiment.get("set"),
        params=experiment.get("param"),
        **values,
    )
    arguments.update(overrides)
    return spec.plan(**arguments)


def one_or_list(values):
    """Distinct values in sweep order: the value itself when there is one."""
    values = list(dict.fromkeys(values))
    return values if len(values) > 1 else values[0]


def plain(value):
    """A parameter value as JSON: a float, or a list of floats for a vector."""
    arr = np.asarray(value, dtype=float)
    return [float(v) for v in arr] if arr.ndim else float(arr)


def resolved_cells(plan):
    """The resolved keys describing a plan's cells: family and objective parameters, the
    options its estimators read, batch."""
    out = {"family": plan.family.name, "objective": plan.objective.name}
    for p in plan.family.params:
        out[p.name] = _resolved_axis(plan.cells, lambda c, n=p.name: c.family_values[n], p)
    out["set"] = {
        p.name: _resolved_axis(plan.cells, lambda c, n=p.name: c.objective_values[n], p)
        for p in plan.objective.params
    }
    for name in OPTIONS:
        if any(e.uses(name) for e in plan.estimators):
            out[name] = one_or_list(float(c.options[name]) for c in plan.cells)
    out["batch"] = one_or_list(int(c.batch) for c in plan.cells)
    return out


def _resolved_axis(cells, get, param):
    if param.vector:
        return plain(get(cells[0]))
    return one_or_list(float(get(c)) for c in cells)


@dataclass
class CompareSpec:
    plan: spec.Plan
    no_plot: bool = False


class Compare(Study):
    name = "compare"
    tables = ("results", "summary")
    resumable = True
    uses_threads = True
    distributed = True

    def allowed_keys(self):
        return engine_keys()

    def spec(self, experiment):
        return CompareSpec(plan_of(experiment), bool(experiment.get("no-plot")))

    def resolved(self, spec):
        plan = spec.plan
        out = {
            "command": self.name,
            **resolved_cells(plan),
            "estimator": [e.name for e in plan.estimators],
            "baseline": one_or_list(plan.baselines),
            "samples": plan.samples,
            "seed": plan.seed,
            "no-plot": spec.no_plot,
        }
        return {k: out[k] for k in _ORDER if k in out} | out

    def total(self, spec):
        plan = spec.plan
        return runs(plan) * plan.samples

    def run(self, spec, progress=None, checkpoint=None, cluster=None):
        results, summary = run_plan(spec.plan, progress, checkpoint, cluster)
        return {"results": results, "summary": summary}

    def meta(self, spec, tables):
        return {
            "common_random_numbers": True,
            "cells": len(spec.plan.cells),
            "swept": spec.plan.swept,
        }

    def notes(self, spec):
        plan, given = spec.plan, []
        for name in OPTIONS:
            if not any(e.uses(name) for e in plan.estimators) and any(
                name in c.options and not math.isnan(c.options[name]) for c in plan.cells
            ):
                given.append(name)
        return [f"note: --{n} is ignored: none of the estimators uses it" for n in given]


_ORDER = ("command", "family", "objective", "estimator", "baseline")
STUDY = Compare()


def compare(
    estimator=None,
    objective=None,
    family="normal",
    samples=defaults.SAMPLES,
    batch=defaults.BATCH,
    baseline=defaults.BASELINE,
    seed=defaults.SEED,
    threads=None,
    summary=False,
    progress=None,
    scheduler=None,
    set=None,  # noqa: A002 (the experiment key, as in TOML and on the command line)
    param=None,
    **values,
):
    """Compare gradient estimators by Monte Carlo; the ``results.csv`` table as a DataFrame.

    The arguments are ``gradvar compare``'s options, with the same defaults: a list (or
    comma text) for a scalar parameter sweeps it, e.g.
    ``compare(estimator="sf,reparam", mu="-4:4:17")``; ``scheduler`` (``"local:2"``,
    ``"tcp://HOST:PORT"``) runs the cells on a Dask cluster.  Family parameters (``mu``,
    ``logits``, ...) and estimator options (``tau``) are keywords; objective parameters
    go in ``set={"k": 0.5}`` or, as a shortcut, are keywords too (``k=0.5``).  With
    ``summary=True`` returns ``(results, summary)``.
    """
    values, sets = split_objective_keywords(STUDY, "compare", family, objective, values, set)
    experiment = from_keywords(
        STUDY,
        dict(
            estimator=estimator,
            objective=objective,
            family=family,
            samples=samples,
            batch=batch,
            baseline=baseline,
            seed=seed,
            set=sets,
            param=param,
            **values,
        ),
    )
    plan = STUDY.spec(experiment).plan
    set_threads(threads)
    with executor.session(scheduler, threads) as cluster:
        results, summ = run_plan(plan, progress=progress, cluster=cluster)
    return (results, summ) if summary else results


def split_objective_keywords(study, function, family, objective, values, sets):
    """Keywords naming objective parameters go into ``set``; any other unknown keyword is
    an unexpected argument (TypeError naming it)."""
    sets = dict(sets or {})
    fam = spec.family_entry(family or "normal")
    obj = spec.objective_entry(fam, objective, (*sets, *values))
    rest = {}
    for name, value in values.items():
        if name in {p.name for p in obj.params} and name not in study.allowed_keys():
            sets[name] = value
        else:
            rest[name] = value
    check_unknown_keywords(study, rest, function)
    return rest, sets

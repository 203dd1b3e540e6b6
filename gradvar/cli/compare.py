"""``gradvar compare``: run estimators in one cell or a sweep, print, write a results folder.

The click command only gathers its options into an ``experiment`` dict (the same keys as
the options, REFERENCE section 6) and calls :func:`execute`, which ``gradvar run`` can call
with an experiment read from a TOML file or from a results folder's ``meta.json``.
"""

import time

import click

from gradvar import io
from gradvar.cli import common, tables

FAMILY_PARAMETERS = ("mu", "sigma", "logits", "logit")
EXAMPLES = """
\b
Examples:
  gradvar compare
  gradvar compare --estimator sf,reparam --samples 1e6
  gradvar compare --estimator sf,sf-baseline,reparam --objective linear --mu -4:4:17
  gradvar compare --set k=-3:3:7 --estimator sf,reparam
  gradvar compare --family categorical --logits 2,0.5,0.1 --estimator sf,gumbel-softmax --tau 0.5
  gradvar compare --family bernoulli --estimator sf-baseline --baseline loo --batch 2
"""


@click.command("compare", epilog=EXAMPLES)
@common.experiment_options
@common.run_options(samples="1e6")
@common.output_options
@common.resume_option
def compare_command(
    family,
    objective,
    sets,
    estimator,
    baseline,
    mu,
    sigma,
    logits,
    logit,
    tau,
    batch,
    samples,
    seed,
    threads,
    out,
    force,
    quiet,
    no_plot,
    resume,
):
    """Compare gradient estimators by Monte Carlo against the exact gradient and variance.

    In each cell (one parameter point) every estimator runs SAMPLES independent estimates
    on shared noise. The table shows, per estimator and gradient coordinate, the estimate
    ± its standard error, the exact gradient, the variance with its 95% CI, the exact
    variance, MSE and estimates/s. Several values of a scalar parameter make a sweep.

    Writes DIR/results.csv (one row per cell, estimator and coordinate), summary.csv
    (per cell and estimator), meta.json (the resolved experiment, versions, times) and
    variance plots.
    """
    experiment = {
        "command": "compare",
        "family": family,
        "objective": objective,
        "estimator": estimator,
        "baseline": baseline,
        "mu": mu,
        "sigma": sigma,
        "logits": logits,
        "logit": logit,
        "set": sets,
        "tau": tau,
        "batch": batch,
        "samples": samples,
        "seed": seed,
        "threads": threads,
        "no-plot": no_plot,
    }
    execute(experiment, out=out, force=force, quiet=quiet, resume=resume)


def default_estimators(family):
    """Every estimator the family supports except ``exact`` (its numbers are in exact_grad)."""
    from gradvar.model import registry

    registry.load()
    fam = registry.FAMILIES.get(family)
    if fam is None:
        return None  # spec.plan names the problem
    return [
        name
        for name, est in registry.ESTIMATORS.items()
        if not est.deterministic and registry.applicable(est, fam)
    ]


def build_plan(experiment):
    """Validate an experiment dict and expand it into a :class:`gradvar.spec.Plan`."""
    from gradvar import spec

    family = experiment.get("family") or "normal"
    values = {k: experiment[k] for k in FAMILY_PARAMETERS if experiment.get(k) is not None}
    return spec.plan(
        family=family,
        objective=experiment.get("objective"),
        estimator=experiment.get("estimator") or default_estimators(family),
        baseline=experiment.get("baseline") or "mean",
        samples=experiment.get("samples", "1e6"),
        batch=experiment.get("batch", 1),
        seed=experiment.get("seed", 0),
        tau=experiment.get("tau"),
        sets=experiment.get("set"),
        **values,
    )


def _resolved(param, raw, dim):
    """A parameter's values as given (parsed) or its default: a float, or a list."""
    from gradvar import spec

    values = param.default_for(dim) if raw is None else spec.parse_values(raw, param.name)
    values = [float(v) for v in (values if hasattr(values, "__len__") else [values])]
    return values if param.vector or len(values) > 1 else values[0]


def resolve(plan, experiment, threads):
    """The experiment with every default filled in: valid input for a re-run."""
    dim = plan.cells[0].dim
    sets = experiment.get("set") or {}
    resolved = {
        "command": "compare",
        "family": plan.family.name,
        "objective": plan.objective.name,
        "estimator": [e.name for e in plan.estimators],
        "baseline": plan.baseline,
    }
    for p in plan.family.params:
        resolved[p.name] = _resolved(p, experiment.get(p.name), dim)
    resolved["set"] = {p.name: _resolved(p, sets.get(p.name), dim) for p in plan.objective.params}
    if any("tau" in e.options for e in plan.estimators):
        resolved["tau"] = _one_or_list(float(c.tau) for c in plan.cells)
    resolved.update(
        batch=_one_or_list(int(c.batch) for c in plan.cells),
        samples=plan.samples,
        seed=plan.seed,
        threads=threads,
        **{"no-plot": bool(experiment.get("no-plot"))},
    )
    return resolved


def _one_or_list(values):
    values = list(dict.fromkeys(values))  # distinct, in sweep order
    return values if len(values) > 1 else values[0]


def execute(experiment, out=None, force=False, quiet=False, resume=False):
    """Run a compare experiment and write its results folder; print the table and paths.

    Bad input raises :class:`click.UsageError` (exit 2) before anything runs or is written;
    a failure while running raises :class:`click.ClickException` (exit 1) and leaves no folder.
    Ctrl-C keeps the finished cells in ``DIR.partial/``; ``resume`` continues from them.
    """
    started, t0 = io.now(), time.perf_counter()
    with common.usage_errors():
        plan = build_plan(experiment)
        target = common.target_folder(out, "compare", force)
    if experiment.get("tau") is not None and not any("tau" in e.options for e in plan.estimators):
        common.note("note: --tau is ignored: none of the estimators uses a temperature", quiet)
    with common.running_errors():
        from gradvar.studies import compare as api

        api.set_threads(experiment.get("threads"))
        threads = _threads()
        resolved = resolve(plan, experiment, threads)
    common.check_resume(target, resolved, resume)
    with common.running_errors(), common.resumable(target, force, resume, quiet) as tmp:
        common.record_experiment(tmp, resolved)
        total = len(plan.cells) * len(plan.estimators) * plan.samples
        t1 = time.perf_counter()
        with common.progress_bar(total, quiet, f"compare ({len(plan.cells)} cells)") as tick:
            results, summary = api.run_plan(plan, progress=tick, checkpoint=tmp / common.CELLS)
        t2 = time.perf_counter()
        timings = {"setup": t1 - t0, "run": t2 - t1, "estimation": float(summary["seconds"].sum())}
        meta = {
            "experiment": resolved,
            **io.versions(),
            "command_line": common.command_line(),
            "threads": threads,
            "started": started,
            "common_random_numbers": True,
            "cells": len(plan.cells),
            "swept": plan.swept,
        }
        files = write_folder(tmp, results, summary, meta, not resolved["no-plot"], timings)
    click.echo(tables.results_table(results))
    common.echo_files(target, files)
    return target


def write_folder(tmp, results, summary, meta, plot, timings):
    """results.csv, summary.csv, plots and meta.json into the folder being written."""
    t0 = time.perf_counter()
    io.write_csv(results, tmp / "results.csv")
    io.write_csv(summary, tmp / "summary.csv")
    t1 = time.perf_counter()
    pictures = []
    if plot:
        from gradvar import plots

        pictures = plots.draw_command("compare", tmp)
    t2 = time.perf_counter()
    files = ["results.csv", "summary.csv", *pictures, "meta.json"]
    timings.update(write_csv=t1 - t0, plot=t2 - t1)
    meta.update(
        finished=io.now(), timings={k: round(v, 4) for k, v in timings.items()}, files=files
    )
    io.write_json(meta, tmp / "meta.json")
    return files


def _threads():
    import numba

    return int(numba.get_num_threads())

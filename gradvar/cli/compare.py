"""``gradvar compare``: Click options to an experiment dict, :mod:`gradvar.studies.compare`
runs it into a results folder, the table is printed (:mod:`gradvar.cli.tables`)."""

import click

from gradvar.cli import common, tables

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
@common.scheduler_option
def compare_command(sets, params, out, force, quiet, resume, scheduler, **options):
    """Compare gradient estimators by Monte Carlo against the exact gradient and variance.

    In each cell (one parameter point) every estimator runs SAMPLES independent estimates
    on shared noise. The table shows, per estimator and gradient coordinate, the estimate
    ± its standard error, the exact gradient, the variance with its 95% CI, the exact
    variance, MSE and estimates/s. Several values of a scalar parameter make a sweep.

    Writes DIR/results.csv (one row per cell, estimator and coordinate), summary.csv
    (per cell and estimator), meta.json (the resolved experiment, versions, times) and
    variance plots.
    """
    experiment = common.experiment_of("compare", options, sets=sets, params=params)
    execute(experiment, out=out, force=force, quiet=quiet, resume=resume, scheduler=scheduler)


def execute(experiment, out=None, force=False, quiet=False, resume=False, scheduler=None):
    """Run a compare experiment into its results folder (also from ``gradvar run``)."""
    return common.run_study(
        "compare",
        experiment,
        out=out,
        force=force,
        quiet=quiet,
        resume=resume,
        scheduler=scheduler,
        table=lambda t: tables.results_table(t["results"]),
    )

"""``gradvar train``: what estimator variance does to optimisation."""

import click

from gradvar.cli import common
from gradvar.cli.tables import render

EXAMPLES = """
\b
Examples:
  gradvar train --problem bump --estimator exact --steps 5 --lr 1 --train-positions
  gradvar train --problem bump --estimator exact,gumbel-softmax --seed 0,1,2,3
  gradvar train --problem bernoulli-toy --steps 2000 --seed 0,1,2,3,4
  gradvar train --problem bernoulli-toy --estimator sf,rebar,relax --seed 0,1,2
"""


@click.command("train", epilog=EXAMPLES)
@click.option(
    "--problem",
    default="bump",
    show_default=True,
    metavar="NAME",
    help="bump (discretized Gaussian, maximise E[w.y]) or bernoulli-toy "
    "(minimise E[(b - 0.499)^2]).",
)
@click.option(
    "--estimator",
    metavar="LIST",
    help="Comma list of estimators. [default: bump exact,gumbel-softmax; "
    "bernoulli-toy sf,sf-baseline,gumbel-softmax,st-gumbel,exact]",
)
@click.option(
    "--seed",
    metavar="LIST",
    help="Seed, or a list of seeds (one run each). [default: bump 0; bernoulli-toy 0,1,2,3,4]",
)
@click.option(
    "--steps", metavar="N", help="Optimisation steps. [default: bump 5; bernoulli-toy 2000]"
)
@click.option("--lr", metavar="RATE", help="Learning rate. [default: bump 1; bernoulli-toy 0.01]")
@click.option(
    "--optimizer",
    type=click.Choice(["sgd", "adam"]),
    help="[default: bump sgd; bernoulli-toy adam]",
)
@click.option(
    "--batch",
    default="1",
    show_default=True,
    metavar="M",
    help="Samples per gradient estimate (raised to 2 for the loo baseline).",
)
@click.option(
    "--tau",
    metavar="T",
    help="Temperature of the relaxed estimators; rebar's fixed, relax's initial value. "
    "[default: bump 1; bernoulli-toy 0.5]",
)
@click.option(
    "--eta",
    metavar="ETA",
    help="Control-variate scale: rebar's fixed, relax's initial value. [default: 1]",
)
@click.option(
    "--baseline",
    metavar="NAME",
    help="Baseline of sf-baseline: mean, optimal or loo. [default: bump mean; bernoulli-toy loo]",
)
@click.option(
    "--train-positions",
    is_flag=True,
    help="bump: also train the positions x, as the original write-up did.",
)
@common.output_options
@common.resume_option
@common.scheduler_option
def train_command(
    problem,
    estimator,
    seed,
    steps,
    lr,
    optimizer,
    batch,
    tau,
    eta,
    baseline,
    train_positions,
    out,
    force,
    quiet,
    no_plot,
    resume,
    scheduler,
):
    """Gradient ascent or descent driven by each estimator.

    Every step also draws 100 extra estimates at the current parameters to measure the
    variance of one gradient estimate along the path.  Writes DIR/results.csv (columns
    problem, estimator, seed, step, param, value, objective, grad, grad_var, ..., eta,
    cv_tau, cv_eta), meta.json and training.png (parameter, objective and variance against
    step, mean and a band over seeds).  The bump problem prints m after each step.

    relax (bernoulli-toy) trains its control variate (eta, log tau and a 10-unit tanh
    network) by the same optimizer on the square of its own estimate; cv_tau and cv_eta
    are the values each step used.  Ctrl-C keeps the finished trajectories (estimator x
    seed) in DIR.partial/; --resume continues from the next one.  With --scheduler each
    trajectory is one task on the cluster.
    """
    experiment = common.experiment_of(
        "train",
        dict(
            problem=problem,
            estimator=estimator,
            seed=seed,
            steps=steps,
            lr=lr,
            optimizer=optimizer,
            batch=batch,
            tau=tau,
            eta=eta,
            baseline=baseline,
            train_positions=train_positions,
            no_plot=no_plot,
        ),
    )
    execute(experiment, out=out, force=force, quiet=quiet, resume=resume, scheduler=scheduler)


def execute(experiment, out=None, force=False, quiet=False, resume=False, scheduler=None):
    """Run a training experiment (also from ``gradvar run``); the bump problem prints m
    after each step."""

    def on_step(est, seed, step, params, objective):
        if "m" in params and not quiet:
            click.echo(
                f"{est:<15} seed {seed}  step {step}:  m = {params['m'][0]:.6f}   "
                f"E[w.y] = {objective:.6f}"
            )

    return common.run_study(
        "train",
        experiment,
        out=out,
        force=force,
        quiet=quiet,
        resume=resume,
        table=lambda t: summary_table(t["results"]),
        on_step=on_step,
        scheduler=scheduler,
    )


def summary_table(table):
    """Final parameter and objective per estimator (mean over seeds)."""
    last = table[table["step"] == table["step"].max()]
    rows = []
    for (est, param), group in last.groupby(["estimator", "param"], sort=False):
        rows.append(
            [
                est,
                param,
                f"{group['value'].mean():.6g}",
                f"{group['objective'].mean():.6g}",
                str(group["seed"].nunique()),
            ]
        )
    head = f"\nAfter {int(table['step'].max())} steps (mean over seeds):"
    return head + "\n" + render(["estimator", "param", "value", "objective", "seeds"], rows)

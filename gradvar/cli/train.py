"""``gradvar train``: what estimator variance does to optimisation."""

import time

import click

from gradvar import io
from gradvar.cli import common
from gradvar.cli.tables import render

EXAMPLES = """
\b
Examples:
  gradvar train --problem bump --estimator exact --steps 5 --lr 1 --train-positions
  gradvar train --problem bump --estimator exact,gumbel-softmax --seed 0,1,2,3
  gradvar train --problem bernoulli-toy --steps 2000 --seed 0,1,2,3,4
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
    help="Temperature of gumbel-softmax and st-gumbel. [default: bump 1; bernoulli-toy 0.5]",
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
def train_command(
    problem,
    estimator,
    seed,
    steps,
    lr,
    optimizer,
    batch,
    tau,
    baseline,
    train_positions,
    out,
    force,
    quiet,
    no_plot,
):
    """Gradient ascent or descent driven by each estimator.

    Every step also draws 100 extra estimates at the current parameters to measure the
    variance of one gradient estimate along the path.  Writes DIR/results.csv (columns
    problem, estimator, seed, step, param, value, objective, grad, grad_var), meta.json
    and training.png (parameter, objective and variance against step, mean and a band
    over seeds).  The bump problem prints m after each step.
    """
    experiment = {
        "command": "train",
        "problem": problem,
        "estimator": estimator,
        "seed": seed,
        "steps": steps,
        "lr": lr,
        "optimizer": optimizer,
        "batch": batch,
        "tau": tau,
        "baseline": baseline,
        "train-positions": train_positions,
        "no-plot": no_plot,
    }
    execute(experiment, out=out, force=force, quiet=quiet)


def resolve(experiment):
    """The experiment with every default filled in (valid input for a re-run)."""
    from gradvar import spec
    from gradvar.studies import train as training

    problem = experiment.get("problem") or "bump"
    if problem not in training.PROBLEMS:
        raise spec.SpecError(
            f"unknown problem {problem!r}." + spec.suggest(problem, training.PROBLEMS)
        )
    defaults = training.PROBLEMS[problem].defaults
    resolved = {"command": "train", "problem": problem}
    for key in ("estimator", "seed", "steps", "lr", "optimizer", "tau", "baseline"):
        value = experiment.get(key)
        resolved[key] = defaults[key] if value is None else value
    resolved["batch"] = spec.parse_count(experiment.get("batch", 1), "batch")
    if resolved["batch"] < 1:
        raise spec.SpecError(f"batch must be >= 1, got {resolved['batch']}")
    resolved["train-positions"] = bool(experiment.get("train-positions"))
    resolved["no-plot"] = bool(experiment.get("no-plot"))
    for key in ("steps", "lr", "tau"):
        spec.parse_values(resolved[key], key)  # names the option if it does not parse
    return resolved


def execute(experiment, out=None, force=False, quiet=False):
    """Run the training experiment into a results folder; print a summary and the paths."""
    started = io.now()
    with common.usage_errors():
        resolved = resolve(experiment)
        target = common.target_folder(out, "train", force)
        from gradvar.studies import train as training

        training.validate(**_arguments(resolved))

    def on_step(est, seed, step, params, objective):
        if resolved["problem"] == "bump" and not quiet:
            click.echo(
                f"{est:<15} seed {seed}  step {step}:  m = {params['m'][0]:.6f}   "
                f"E[w.y] = {objective:.6f}"
            )

    with common.running_errors():
        t0 = time.perf_counter()
        table = training.train(on_step=on_step, **_arguments(resolved))
        seconds = time.perf_counter() - t0
        meta = {
            "experiment": resolved,
            **io.versions(),
            "command_line": common.command_line(),
            "started": started,
            "seconds": round(seconds, 3),
        }
        files = ["results.csv"]
        with io.atomic_folder(target, force=force) as tmp:
            io.write_csv(table, tmp / "results.csv")
            if not resolved["no-plot"]:
                from gradvar import plots

                files += plots.draw_command("train", tmp)
            files.append("meta.json")
            meta.update(finished=io.now(), files=files)
            io.write_json(meta, tmp / "meta.json")
    click.echo(summary_table(table))
    common.echo_files(target, files)
    return target


def _arguments(resolved):
    return dict(
        problem=resolved["problem"],
        estimator=resolved["estimator"],
        seed=resolved["seed"],
        steps=resolved["steps"],
        lr=resolved["lr"],
        optimizer=resolved["optimizer"],
        batch=resolved["batch"],
        tau=resolved["tau"],
        baseline=resolved["baseline"],
        train_positions=resolved["train-positions"],
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

"""``gradvar pick-one``: why variance matters, with the smallest possible estimator."""

import click

from gradvar.cli import common
from gradvar.cli.tables import num, render

EXAMPLES = """
\b
Examples:
  gradvar pick-one
  gradvar pick-one 4,5,6 0,5,10
  gradvar pick-one --samples 1e6 --seed 1 4,5,6 0,5,10 -- -10,5,20
"""


@click.command("pick-one", epilog=EXAMPLES)
@click.argument("lists", nargs=-1, metavar="LIST...")
@common.run_options(samples="1e5", threads=False)
@common.output_options
@common.resume_option
def pick_one_command(lists, samples, seed, out, force, quiet, no_plot, resume):
    """Estimate the mean of each LIST by picking one element at random.

    The estimate is unbiased and its variance is the population variance of the list:
    4,5,6 and 0,5,10 both average 5, but one pick has variance 2/3 against 50/3. Prints
    per list the mean, the exact single-pick variance and a Monte Carlo check of both
    (SAMPLES picks). A LIST is comma-separated (or START:STOP:COUNT); write `--` before
    a list that starts with a minus sign. Default lists: 4,5,6 and 0,5,10.

    Ctrl-C keeps the picks made so far (saved about every second) in DIR.partial/;
    --resume continues them to the same result.
    """
    experiment = {"command": "pick-one", "lists": list(lists) or None, "samples": samples}
    experiment.update(seed=seed, **({"no-plot": True} if no_plot else {}))
    execute(experiment, out=out, force=force, quiet=quiet, resume=resume)


def execute(experiment, out=None, force=False, quiet=False, resume=False):
    """Run a pick-one experiment into its results folder (also from ``gradvar run``)."""
    return common.run_study(
        "pick-one",
        experiment,
        out=out,
        force=force,
        quiet=quiet,
        resume=resume,
        table=lambda t: table(t["results"]),
    )


def table(results):
    """Per list: mean, exact single-pick variance, the Monte Carlo check."""
    from gradvar.studies import pick_one as pickone

    rows = []
    for r in results.itertuples(index=False):
        values = [float(v) for v in str(r.values).split(",")]
        frac = pickone.exact_fraction(values)
        exact = f"{r.exact_var:.6g}" + (f" = {frac}" if frac and "/" in frac else "")
        rows.append(
            [
                ",".join(f"{v:g}" for v in values),
                f"{r.mean:.6g}",
                exact,
                f"{r.mc_mean:.4f} ± {r.mc_sem:.4f}" if r.n > 1 else num(r.mc_mean),
                num(r.mc_var),
            ]
        )
    n = int(results["n"].iloc[0])
    head = (
        f"Pick one element at random to estimate a list's mean: unbiased, and its variance "
        f"is the list's population variance.\nMonte Carlo check: n = {n:,} picks per list, "
        f"seed {int(results['seed'].iloc[0])}.\n"
    )
    return (
        head
        + "\n"
        + render(["list", "mean", "exact var of one pick", "MC mean ± sem", "MC var"], rows)
    )

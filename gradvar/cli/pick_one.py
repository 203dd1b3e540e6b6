"""``gradvar pick-one``: why variance matters, with the smallest possible estimator."""

import time

import click

from gradvar import io
from gradvar.cli import common
from gradvar.cli.tables import num, render

DEFAULT_LISTS = ("4,5,6", "0,5,10")
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
def pick_one_command(lists, samples, seed, out, force, quiet, no_plot):
    """Estimate the mean of each LIST by picking one element at random.

    The estimate is unbiased and its variance is the population variance of the list:
    4,5,6 and 0,5,10 both average 5, but one pick has variance 2/3 against 50/3. Prints
    per list the mean, the exact single-pick variance and a Monte Carlo check of both
    (SAMPLES picks). A LIST is comma-separated (or START:STOP:COUNT); write `--` before
    a list that starts with a minus sign. Default lists: 4,5,6 and 0,5,10.
    """
    experiment = {
        "command": "pick-one",
        "lists": list(lists or DEFAULT_LISTS),
        "samples": samples,
        "seed": seed,
        "no-plot": no_plot,
    }
    execute(experiment, out=out, force=force, quiet=quiet)


def validate(experiment):
    """(lists of floats, samples, seed) from an experiment dict, or SpecError."""
    from gradvar import spec

    lists = []
    for i, raw in enumerate(experiment.get("lists") or DEFAULT_LISTS):
        values = spec.parse_values(raw, f"list {i + 1}")
        spec.check_finite(f"list {i + 1}", values)
        lists.append(values)
    samples = spec.parse_count(experiment.get("samples", "1e5"), "samples")
    if samples < 1:
        raise spec.SpecError(f"samples must be >= 1, got {samples}")
    seed = spec.parse_count(experiment.get("seed", 0), "seed")
    if seed < 0:
        raise spec.SpecError(f"seed must be >= 0, got {seed}")
    return lists, samples, seed


def execute(experiment, out=None, force=False, quiet=False):
    """Run the pick-one illustration into a results folder; print the table and paths."""
    started, t0 = io.now(), time.perf_counter()
    with common.usage_errors():
        lists, samples, seed = validate(experiment)
        target = common.target_folder(out, "pick-one", force)
    with common.running_errors():
        import pandas as pd

        from gradvar.studies import pick_one as pickone

        results = pd.DataFrame(pickone.pick_one(lists, samples, seed))
        resolved = {
            "command": "pick-one",
            "lists": lists,
            "samples": samples,
            "seed": seed,
            "no-plot": bool(experiment.get("no-plot")),
        }
        meta = {
            "experiment": resolved,
            **io.versions(),
            "command_line": common.command_line(),
            "started": started,
        }
        with io.atomic_folder(target, force=force) as tmp:
            io.write_csv(results, tmp / "results.csv")
            pictures = []
            if not resolved["no-plot"]:
                from gradvar import plots

                pictures = plots.draw_command("pick-one", tmp)
            files = ["results.csv", *pictures, "meta.json"]
            meta.update(finished=io.now(), seconds=round(time.perf_counter() - t0, 4), files=files)
            io.write_json(meta, tmp / "meta.json")
    click.echo(table(results, lists))
    common.echo_files(target, files)
    return target


def table(results, lists):
    """Per list: mean, exact single-pick variance, the Monte Carlo check."""
    from gradvar.studies import pick_one as pickone

    rows = []
    for values, r in zip(lists, results.itertuples(index=False), strict=False):
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

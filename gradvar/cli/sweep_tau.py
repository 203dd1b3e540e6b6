"""``gradvar sweep-tau``: bias^2, variance and MSE of the relaxed estimators against tau.

Like ``compare``, the click command gathers its options into an ``experiment`` dict and
calls :func:`execute`, which ``gradvar run`` can call with an experiment from a TOML file or
a results folder's ``meta.json``.
"""

import time

import click

from gradvar.cli import common

DEFAULT_TAU = (
    "log:0.01:10:16"  # gradvar.studies.sweep_tau.DEFAULT_TAU (not imported: --help stays fast)
)
EXAMPLES = """
\b
Examples:
  gradvar sweep-tau
  gradvar sweep-tau --tau log:0.001:100:21 --samples 1e5
  gradvar sweep-tau --logits 1,0 --set t=0.3 --estimator gumbel-softmax --reference none
  gradvar sweep-tau --family bernoulli --logit 0 --reference sf-baseline --baseline loo --batch 2
"""


@click.command("sweep-tau", epilog=EXAMPLES)
@click.option(
    "--family",
    default="categorical",
    show_default=True,
    metavar="NAME",
    help="A family with relaxed samples: categorical or bernoulli.",
)
@click.option(
    "--objective", metavar="NAME", help="Objective f (see `gradvar list`). [default: squared]"
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    callback=common.parse_sets,
    metavar="KEY=VALUE",
    help="Objective parameter, repeatable: --set t=0.3, --set w=1,2,3.",
)
@click.option(
    "--logits", metavar="VECTOR", help="Categorical logits, one per class. [default: 2,0.5,0.1]"
)
@click.option(
    "--logit", metavar="VALUE", help="Bernoulli logit phi, p = sigmoid(phi). [default: 0]"
)
@click.option(
    "--tau",
    default=DEFAULT_TAU,
    show_default=True,
    metavar="VALUES",
    help="Temperature grid (> 0): log:START:STOP:COUNT, START:STOP:COUNT or a list.",
)
@click.option(
    "--estimator",
    default="gumbel-softmax,st-gumbel",
    show_default=True,
    metavar="LIST",
    help="Estimators that use tau, run once per temperature.",
)
@click.option(
    "--reference",
    default="sf,sf-baseline",
    show_default=True,
    metavar="LIST",
    help="Tau-independent estimators, run once and drawn as horizontal lines ('none' for none).",
)
@click.option(
    "--baseline",
    default="mean",
    show_default=True,
    metavar="NAME",
    help="Baseline of sf-baseline: mean, optimal or loo (loo needs --batch >= 2).",
)
@click.option(
    "--batch",
    default="1",
    show_default=True,
    metavar="M",
    help="Samples averaged into one estimate.",
)
@common.run_options(samples="1e6")
@common.output_options
def sweep_tau_command(
    family,
    objective,
    sets,
    logits,
    logit,
    tau,
    estimator,
    reference,
    baseline,
    batch,
    samples,
    seed,
    threads,
    out,
    force,
    quiet,
    no_plot,
):
    """Find the temperature that minimises the MSE of Gumbel-Softmax and straight-through.

    For every tau of the grid, the relaxed estimators run SAMPLES estimates on the same
    noise; bias is measured against the exact gradient of the discrete objective. The
    table shows per estimator the MSE-minimising tau with its squared bias, variance and
    MSE (95% CI); the references (score function, with and without baseline) do not
    depend on tau.

    Writes DIR/results.csv (per tau, estimator and coordinate), summary.csv (per tau and
    estimator: squared bias norm, total variance, MSE with CIs, the noise floor total_var/n
    of the squared bias and its debiased value), best_tau.csv, meta.json and
    bias_variance_mse_vs_tau.png/.svg (log-log).
    """
    experiment = {
        "command": "sweep-tau",
        "family": family,
        "objective": objective,
        "logits": logits,
        "logit": logit,
        "set": sets,
        "tau": tau,
        "estimator": estimator,
        "reference": reference,
        "baseline": baseline,
        "batch": batch,
        "samples": samples,
        "seed": seed,
        "threads": threads,
        "no-plot": no_plot,
    }
    execute(experiment, out=out, force=force, quiet=quiet)


def _references(value):
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return ""
    return value


def build(experiment):
    """Validate an experiment dict: (tau plan, reference plan or None, keyword arguments)."""
    from gradvar.studies import sweep_tau as sweeptau

    kwargs = dict(
        family=experiment.get("family") or "categorical",
        objective=experiment.get("objective"),
        estimator=experiment.get("estimator") or sweeptau.DEFAULT_ESTIMATORS,
        reference=_references(experiment.get("reference", sweeptau.DEFAULT_REFERENCES)),
        tau=experiment.get("tau") or sweeptau.DEFAULT_TAU,
        samples=experiment.get("samples", "1e6"),
        batch=experiment.get("batch", 1),
        baseline=experiment.get("baseline") or "mean",
        seed=experiment.get("seed", 0),
        logits=experiment.get("logits"),
        logit=experiment.get("logit"),
    )
    swept, refs = sweeptau.plans(sets=experiment.get("set"), **kwargs)
    return swept, refs, kwargs


def resolve(swept, refs, experiment, threads):
    """The experiment with every default filled in: valid input for a re-run."""
    cell = swept.cells[0]
    fam = {p.name: _plain(cell.family_values[p.name]) for p in swept.family.params}
    return {
        "command": "sweep-tau",
        "family": swept.family.name,
        "objective": swept.objective.name,
        **fam,
        "set": {k: _plain(v) for k, v in cell.objective_values.items()},
        "tau": [float(c.tau) for c in swept.cells],
        "estimator": [e.name for e in swept.estimators],
        "reference": [e.name for e in refs.estimators] if refs else [],
        "baseline": swept.baseline,
        "batch": int(cell.batch),
        "samples": swept.samples,
        "seed": swept.seed,
        "threads": threads,
        "no-plot": bool(experiment.get("no-plot")),
    }


def _plain(value):
    import numpy as np

    arr = np.asarray(value, dtype=float)
    return [float(v) for v in arr] if arr.ndim else float(arr)


def execute(experiment, out=None, force=False, quiet=False):
    """Run a tau sweep and write its results folder; print the best-tau table and paths.

    Bad input raises :class:`click.UsageError` (exit 2) before anything runs or is written;
    a failure while running raises :class:`click.ClickException` (exit 1) and leaves no folder.
    """
    from gradvar import io

    started, t0 = io.now(), time.perf_counter()
    with common.usage_errors():
        swept, refs, kwargs = build(experiment)
        target = common.target_folder(out, "sweep-tau", force)
    with common.running_errors():
        from gradvar.studies import compare as api
        from gradvar.studies import sweep_tau as sweeptau

        api.set_threads(experiment.get("threads"))
        threads = _threads()
        resolved = resolve(swept, refs, experiment, threads)
        runs = len(swept.cells) * len(swept.estimators) + (len(refs.estimators) if refs else 0)
        with common.progress_bar(runs * swept.samples, quiet, "sweep-tau") as tick:
            results, summary = sweeptau.sweep_tau(
                progress=tick, **kwargs, **(experiment.get("set") or {})
            )
        best = sweeptau.best_tau(summary)
        meta = {
            "experiment": resolved,
            **io.versions(),
            "command_line": common.command_line(),
            "threads": threads,
            "started": started,
            "common_random_numbers": True,
            "bias_sq_note": "bias_sq_norm = ||mean - exact_grad||^2 has expectation "
            "||bias||^2 + total_var / n; bias_sq_debiased subtracts "
            "bias_sq_noise_floor = total_var / n (the plot shows it)",
        }
        files = write_folder(
            target, force, results, summary, best, meta, not resolved["no-plot"], t0
        )
    click.echo(table(best, summary))
    common.echo_files(target, files)
    return target


def write_folder(target, force, results, summary, best, meta, plot, t0):
    """results.csv, summary.csv, best_tau.csv, the figure and meta.json, atomically."""
    from gradvar import io

    with io.atomic_folder(target, force=force) as tmp:
        io.write_csv(results, tmp / "results.csv")
        io.write_csv(summary, tmp / "summary.csv")
        io.write_csv(best, tmp / "best_tau.csv")
        pictures = []
        if plot:  # drawn from the CSV files just written, as `gradvar plot` redraws them
            from gradvar import plots

            pictures = plots.draw_command("sweep-tau", tmp)
        files = ["results.csv", "summary.csv", "best_tau.csv", *pictures, "meta.json"]
        meta.update(finished=io.now(), seconds=round(time.perf_counter() - t0, 4), files=files)
        io.write_json(meta, tmp / "meta.json")
    return files


def table(best, summary):
    """The header line and the best-tau table."""
    from gradvar.studies import sweep_tau as sweeptau

    first = summary.iloc[0]
    params = f"logits {first['logits']}" if "logits" in summary else f"logit {first['logit']:g}"
    taus = summary["tau"].dropna().unique()
    head = (
        f"sweep-tau: {first['family']} ({params}), objective {first['objective']}, "
        f"{len(taus)} temperatures from {taus.min():g} to {taus.max():g}, "
        f"n = {int(first['n']):,} estimates each, seed {int(first['seed'])}.\n"
        "MSE-minimising temperature per estimator (bias against the exact discrete gradient):\n"
    )
    return head + "\n" + sweeptau.format_best(best)


def _threads():
    import numba

    return int(numba.get_num_threads())

"""``gradvar sweep-tau``: Click options to an experiment dict, :mod:`gradvar.studies.sweep_tau`
runs it into a results folder, the best-tau table is printed."""

import math

import click

from gradvar import defaults, io
from gradvar.cli import common

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
    default=defaults.SWEEP_TAU_FAMILY,
    show_default=True,
    metavar="NAME",
    help="A family with relaxed samples (see `gradvar list`).",
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
@common.family_parameter_options
@click.option(
    "--tau",
    default=defaults.SWEEP_TAU_GRID,
    show_default=True,
    metavar="VALUES",
    help="Temperature grid (> 0): log:START:STOP:COUNT, START:STOP:COUNT or a list.",
)
@common.other_estimator_options
@click.option(
    "--estimator",
    default=defaults.SWEEP_TAU_ESTIMATORS,
    show_default=True,
    metavar="LIST",
    help="Estimators that use tau, run once per temperature.",
)
@click.option(
    "--reference",
    default=defaults.SWEEP_TAU_REFERENCES,
    show_default=True,
    metavar="LIST",
    help="Tau-independent estimators, run once and drawn as horizontal lines ('none' for none).",
)
@click.option(
    "--baseline",
    default=defaults.BASELINE,
    show_default=True,
    metavar="LIST",
    help="Baseline of sf-baseline (see `gradvar list`; loo needs --batch >= 2); a list runs "
    "each on the same noise.",
)
@click.option(
    "--batch",
    default=str(defaults.BATCH),
    show_default=True,
    metavar="M",
    help="Samples averaged into one estimate.",
)
@common.run_options(samples="1e6")
@common.output_options
@common.resume_option
@common.scheduler_option
def sweep_tau_command(sets, params, out, force, quiet, resume, scheduler, **options):
    """Bias^2, variance and MSE of the relaxed estimators across a temperature grid.

    Each estimator that uses tau runs SAMPLES estimates at every temperature; the
    tau-independent references run once on the same noise. Bias is measured against the
    exact gradient of the discrete objective. Prints the MSE-minimising temperature per
    estimator; writes DIR/results.csv, summary.csv (per tau and estimator, with the
    noise floor of the squared bias), best_tau.csv, meta.json and
    bias_variance_mse_vs_tau.png/.svg.
    """
    experiment = common.experiment_of("sweep-tau", options, sets=sets, params=params)
    execute(experiment, out=out, force=force, quiet=quiet, resume=resume, scheduler=scheduler)


def execute(experiment, out=None, force=False, quiet=False, resume=False, scheduler=None):
    """Run a sweep-tau experiment into its results folder (also from ``gradvar run``)."""
    return common.run_study(
        "sweep-tau",
        experiment,
        out=out,
        force=force,
        quiet=quiet,
        resume=resume,
        scheduler=scheduler,
        table=lambda t: table(t["best_tau"], t["summary"]),
    )


def table(best, summary):
    """The header line and the best-tau table."""
    first = summary.iloc[0]
    params = f"logits {first['logits']}" if "logits" in summary else f"logit {first['logit']:g}"
    taus = summary["tau"].dropna().unique()
    head = (
        f"sweep-tau: {first['family']} ({params}), objective {first['objective']}, "
        f"{len(taus)} temperatures from {taus.min():g} to {taus.max():g}, "
        f"n = {int(first['n']):,} estimates each, seed {int(first['seed'])}.\n"
        "MSE-minimising temperature per estimator (bias against the exact discrete gradient):\n"
    )
    return head + "\n" + format_best(best)


def _fmt(x, digits=3):
    return "nan" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def format_best(best):
    """The best-tau table as text (what ``gradvar sweep-tau`` prints)."""
    header = [
        "estimator",
        "grid tau",
        "fitted tau [95% CI]",
        "bias^2",
        "variance",
        "MSE",
        "MSE 95% CI",
    ]
    lines = []
    for _, r in best.iterrows():
        tau = (
            "-"
            if r["role"] == "reference"
            else _fmt(r["tau"]) + (" (grid edge)" if r["at_grid_edge"] else "")
        )
        bias = max(r["bias_sq_debiased"], 0.0) if math.isfinite(r["bias_sq_debiased"]) else math.nan
        name = io.estimator_label(r["estimator"], r["baseline"])  # no "(nan)": read from CSV
        lines.append(
            [
                name,
                tau,
                _fitted(r),
                _fmt(bias),
                _fmt(r["total_var"]),
                _fmt(r["mse"]),
                f"[{_fmt(r['mse_ci_low'])}, {_fmt(r['mse_ci_high'])}]",
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def fmt(cells):
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        )

    text = [fmt(header), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines]
    return "\n".join(text) + (
        "\n(grid tau: the grid point of least MSE; fitted: best_tau in best_tau.csv, the vertex"
        " of a parabola in log MSE\n against log tau around it, with a jackknife interval over"
        " the engine's groups of estimates;\n bias^2 debiased: ||mean - exact||^2 - total_var"
        " / n, floored at 0)"
    )


def _fitted(r):
    """'1.53 [1.52, 1.54]': the fitted best tau and its interval ('-' for a reference)."""
    if r["role"] == "reference":
        return "-"
    best, low, high = r["best_tau"], r["best_tau_low"], r["best_tau_high"]
    if not math.isfinite(best):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{best:.3g} [n/a]"
    # enough significant digits that the interval's ends differ
    d = 3 if high <= low else min(8, max(3, 2 + math.ceil(math.log10(best / (high - low)))))
    return f"{best:.{d}g} [{low:.{d}g}, {high:.{d}g}]"

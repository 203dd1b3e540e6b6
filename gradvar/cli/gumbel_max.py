"""``gradvar gumbel-max``: argmax(logits + G) samples softmax(logits), and its relaxation."""

import click

from gradvar.cli import common

EXAMPLES = """
\b
Examples:
  gradvar gumbel-max
  gradvar gumbel-max --logits 1,0,-1,-2 --samples 1e6 --seed 3
  gradvar gumbel-max --tau 0.01,0.1,1,100 --singles 5
"""


@click.command("gumbel-max", epilog=EXAMPLES)
@click.option(
    "--logits",
    default="2,0.5,0.1",
    show_default=True,
    metavar="VECTOR",
    help="Categorical logits, one per class.",
)
@click.option(
    "--tau",
    default="0.1,0.5,1,10",
    show_default=True,
    metavar="VALUES",
    help="Temperatures (> 0) of the relaxed samples softmax((logits + G) / tau).",
)
@click.option(
    "--singles",
    default="3",
    show_default=True,
    metavar="S",
    help="Single relaxed samples shown per temperature (the same noise at each).",
)
@common.run_options(samples="1e6", threads=False)
@common.output_options
@common.resume_option
def gumbel_max_command(logits, tau, singles, samples, seed, out, force, quiet, no_plot, resume):
    """Show that argmax(logits + G), G iid Gumbel(0, 1), samples softmax(logits).

    Draws SAMPLES Gumbel vectors (inverse cdf of uniforms strictly inside (0, 1)), counts
    the argmax classes and tests the frequencies against softmax(logits) with Pearson's
    chi-square (classes expected fewer than 5 times are pooled). With the same noise it
    shows the relaxed samples y = softmax((logits + G) / tau): their mean, softmax(logits)
    as tau -> 0 and uniform as tau grows, and a few single samples.

    Writes DIR/results.csv (class, logit, prob, count, freq), summary.csv (chi-square
    statistic and p-value), relaxed.csv (tau, kind = mean | sample, class, value),
    meta.json, gumbel_max_frequencies.png and relaxed_samples.png. Ctrl-C keeps the draws
    made so far (saved about every second) in DIR.partial/; --resume continues them to the
    same result.
    """
    experiment = common.experiment_of(
        "gumbel-max",
        dict(logits=logits, tau=tau, singles=singles, samples=samples, seed=seed, no_plot=no_plot),
    )
    execute(experiment, out=out, force=force, quiet=quiet, resume=resume)


def execute(experiment, out=None, force=False, quiet=False, resume=False):
    """Run a gumbel-max experiment into its results folder (also from ``gradvar run``)."""
    return common.run_study(
        "gumbel-max",
        experiment,
        out=out,
        force=force,
        quiet=quiet,
        resume=resume,
        table=lambda t: table(t["results"], t["summary"], t["relaxed"]),
    )


def table(results, summary, relaxed):
    """Frequencies against probabilities, the chi-square line, the relaxed means per tau."""
    from gradvar.cli.tables import mean_sem, render

    s = summary.iloc[0]
    rows = [
        [
            str(int(r["class"])),
            f"{r['logit']:g}",
            f"{r['prob']:.6f}",
            f"{int(r['count']):,}",
            mean_sem(r["freq"], r["freq_sem"]),
        ]
        for _, r in results.iterrows()
    ]
    pooled = f", {int(s['pooled'])} rare classes pooled" if s["pooled"] else ""
    out = [
        f"Gumbel-Max: argmax(logits + G) over n = {int(s['n']):,} draws, seed {int(s['seed'])}.",
        "",
        render(["class", "logit", "softmax", "count", "frequency ± sem"], rows, right=(1, 2, 3, 4)),
        "",
        f"chi-square = {s['chi2']:.4g} on {int(s['dof'])} degrees of freedom{pooled}, "
        f"p-value = {s['p_value']:.4g}",
        "",
        "Relaxed samples y = softmax((logits + G) / tau), mean over the same draws:",
        "",
    ]
    means = relaxed[relaxed["kind"] == "mean"]
    classes = sorted(means["class"].unique())
    rows = [
        [f"{tau:g}"] + [f"{v:.4f}" for v in g.sort_values("class")["value"]]
        for tau, g in means.groupby("tau")
    ]
    rows.append(["-> 0"] + [f"{p:.4f}" for p in results["prob"]])
    out.append(
        render(
            ["tau"] + [f"E[y{c}]" for c in classes], rows, right=tuple(range(1, len(classes) + 1))
        )
    )
    return "\n".join(out)

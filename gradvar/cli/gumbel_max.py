"""``gradvar gumbel-max``: argmax(logits + G) samples softmax(logits), and its relaxation."""

import time

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
def gumbel_max_command(logits, tau, singles, samples, seed, out, force, quiet, no_plot):
    """Show that argmax(logits + G), G iid Gumbel(0, 1), samples softmax(logits).

    Draws SAMPLES Gumbel vectors (inverse cdf of uniforms strictly inside (0, 1)), counts
    the argmax classes and tests the frequencies against softmax(logits) with Pearson's
    chi-square (classes expected fewer than 5 times are pooled). With the same noise it
    shows the relaxed samples y = softmax((logits + G) / tau): their mean, softmax(logits)
    as tau -> 0 and uniform as tau grows, and a few single samples.

    Writes DIR/results.csv (class, logit, prob, count, freq), summary.csv (chi-square
    statistic and p-value), relaxed.csv (tau, kind = mean | sample, class, value),
    meta.json, gumbel_max_frequencies.png and relaxed_samples.png.
    """
    experiment = {
        "command": "gumbel-max",
        "logits": logits,
        "tau": tau,
        "singles": singles,
        "samples": samples,
        "seed": seed,
        "no-plot": no_plot,
    }
    execute(experiment, out=out, force=force, quiet=quiet)


def _checked(experiment):
    """Validate cheaply before anything runs: (logits, taus, singles, samples, seed)."""
    from gradvar import spec

    logits = spec.parse_values(experiment.get("logits") or "2,0.5,0.1", "logits")
    spec.check_finite("logits", logits)
    if len(logits) < 2:
        raise spec.SpecError(f"logits: a categorical needs at least 2 classes, got {len(logits)}")
    taus = spec.parse_values(experiment.get("tau") or "0.1,0.5,1,10", "tau")
    spec.check_finite("tau", taus, positive=True)
    singles = spec.parse_count(experiment.get("singles", 3), "singles")
    samples = spec.parse_count(experiment.get("samples", "1e6"), "samples")
    seed = spec.parse_count(experiment.get("seed", 0), "seed")
    for name, value, low in (("singles", singles, 0), ("samples", samples, 1), ("seed", seed, 0)):
        if value < low:
            raise spec.SpecError(f"{name} must be >= {low}, got {value}")
    return logits, taus, singles, samples, seed


def execute(experiment, out=None, force=False, quiet=False):
    """Run the Gumbel-Max demonstration into a results folder; print the tables and paths."""
    from gradvar import io

    started, t0 = io.now(), time.perf_counter()
    with common.usage_errors():
        logits, taus, singles, samples, seed = _checked(experiment)
        target = common.target_folder(out, "gumbel-max", force)
    with common.running_errors():
        from gradvar.studies import gumbel_max as gumbelmax

        results, summary, relaxed = gumbelmax.gumbel_max(logits, samples, seed, taus, singles)
        resolved = {
            "command": "gumbel-max",
            "logits": logits,
            "tau": taus,
            "singles": singles,
            "samples": samples,
            "seed": seed,
            "no-plot": bool(experiment.get("no-plot")),
        }
        meta = {
            "experiment": resolved,
            **io.versions(),
            "command_line": common.command_line(),
            "started": started,
            "noise": "numpy.random.default_rng(seed), uniforms "
            "(m + 1/2) 2^-52 strictly inside (0, 1), Gumbel by the inverse cdf",
        }
        with io.atomic_folder(target, force=force) as tmp:
            io.write_csv(results, tmp / "results.csv")
            io.write_csv(summary, tmp / "summary.csv")
            io.write_csv(relaxed, tmp / "relaxed.csv")
            pictures = []
            if not resolved["no-plot"]:  # from the CSV files just written, like `gradvar plot`
                from gradvar import plots

                pictures = plots.draw_command("gumbel-max", tmp)
            files = ["results.csv", "summary.csv", "relaxed.csv", *pictures, "meta.json"]
            meta.update(finished=io.now(), seconds=round(time.perf_counter() - t0, 4), files=files)
            io.write_json(meta, tmp / "meta.json")
    click.echo(table(results, summary, relaxed))
    common.echo_files(target, files)
    return target


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

"""The figures of a ``gradvar gumbel-max`` folder, from its ``results.csv``, ``summary.csv``
and ``relaxed.csv``.

``gumbel_max_frequencies.png``: the empirical frequencies of argmax(logits + G), with 95%
error bars, against softmax(logits).  ``relaxed_samples.png``: per tau, the mean relaxed
sample E[softmax((logits + G) / tau)] with 95% error bars, a few single relaxed samples and
the two limits (softmax(logits) as tau -> 0, uniform as tau -> inf).
"""

import numpy as np

from gradvar.plots import common

FREQUENCY_FIGURE = "gumbel_max_frequencies.png"
RELAXED_FIGURE = "relaxed_samples.png"


def draw(folder):
    """Draw the two gumbel-max figures into ``folder``; returns the file names."""
    results = common.read(folder)
    summary = common.read(folder, "summary.csv")
    relaxed = common.read(folder, "relaxed.csv")
    return [
        common.save(frequency_figure(results, summary), folder, FREQUENCY_FIGURE),
        common.save(relaxed_figure(relaxed), folder, RELAXED_FIGURE),
    ]


def frequency_figure(results, summary):
    """Empirical frequencies of argmax(logits + G) (with 95% error bars) against softmax."""
    k = len(results)
    fig = common.figure(max(5.5, 0.5 * k + 3), 4.6)
    ax = fig.subplots()
    x = np.arange(k)
    ax.bar(x - 0.2, results["prob"], 0.4, label="softmax(logits)", color="#9ecae1")
    ax.bar(
        x + 0.2,
        results["freq"],
        0.4,
        yerr=1.96 * results["freq_sem"],
        capsize=3,
        label="frequency of argmax(logits + G), 95% bars",
        color="#3182bd",
    )
    ax.set_xticks(
        x, [f"{c}\n({lo:g})" for c, lo in zip(results["class"], results["logit"], strict=False)]
    )
    s = summary.iloc[0]
    ax.set(
        xlabel="class (logit)",
        ylabel="probability",
        title=f"Gumbel-Max: argmax(logits + G) ~ softmax(logits)\nn = {int(s['n']):,}, "
        f"chi-square = {s['chi2']:.3g} (dof {int(s['dof'])}), p-value = {s['p_value']:.3g}",
    )
    ax.set_ylim(0, max(results["prob"].max(), results["freq"].max()) * 1.1)
    ax.grid(axis="y", alpha=0.3)
    common.legend_below(fig, fontsize=9)
    return fig


def relaxed_figure(relaxed):
    """Per tau: E[softmax((logits + G) / tau)] with 95% error bars, a few single relaxed
    samples (markers, one colour per sample), and the limits tau -> 0 and tau -> inf."""
    from matplotlib.legend_handler import HandlerTuple
    from matplotlib.lines import Line2D

    taus = sorted(relaxed["tau"].unique())
    fig = common.figure(3.6 * len(taus), 4.0)
    axes = fig.subplots(1, len(taus), sharey=True, squeeze=False)[0]
    count = 0
    for ax, tau in zip(axes, taus, strict=False):
        count = _relaxed_panel(ax, relaxed[relaxed["tau"] == tau])
        ax.set(title=f"tau = {tau:g}", xlabel="class")
    axes[0].set_ylabel("y = softmax((logits + G) / tau)")
    handles, labels = axes[0].get_legend_handles_labels()
    if count:
        samples = tuple(
            Line2D([], [], ls="", marker="o", ms=4.5, color=c) for c in common.series_colors(count)
        )
        handles.append(samples)
        labels.append(f"{count} single samples y, one colour each (the same G at every tau)")
    common.legend_below(
        fig, handles, labels, fontsize=9, handler_map={tuple: HandlerTuple(ndivide=None)}
    )
    common.suptitle(
        fig,
        "Relaxed Gumbel-Softmax samples: one-hot-like as tau -> 0, uniform as tau grows",
        fontsize=11,
    )
    return fig


def _relaxed_panel(ax, sub):
    """One tau: the mean relaxed sample, the two limits and the single samples; returns the
    number of single samples."""
    mean = sub[sub["kind"] == "mean"].sort_values("class")
    x = mean["class"].to_numpy()
    ax.bar(
        x,
        mean["value"],
        0.6,
        yerr=1.96 * mean["sem"],
        capsize=3,
        color="#9ecae1",
        label="E[y] (Monte Carlo, 95% bars)",
    )
    ax.plot(x, mean["prob"], "_", color="black", ms=22, mew=2, label="softmax(logits) (tau -> 0)")
    ax.axhline(1.0 / len(x), color="grey", ls=":", lw=1, label="uniform 1/K (tau -> inf)")
    samples = sub[sub["kind"] == "sample"]
    count = samples["sample"].nunique()
    colors = common.series_colors(count)
    for i, (_, one) in enumerate(samples.groupby("sample")):
        one = one.sort_values("class")
        shift = (i - (count - 1) / 2) * 0.1  # side by side, so equal values stay visible
        ax.plot(
            one["class"] + shift,
            one["value"],
            "o",
            ms=4.5,
            alpha=0.9,
            color=colors[i],
            clip_on=False,  # a value of 0 or 1 sits on the axis edge: keep the whole marker
            zorder=4,
        )
    ax.set_xticks(x)
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    return count

"""The figure of a ``gradvar pick-one`` folder, drawn from its ``results.csv`` alone.

``pick-one.png``: one panel per list, side by side on a shared axis: the probability of each
possible single-pick estimate, the mean (the target) and the band mean ± 1 standard deviation.
"""

import math

import numpy as np

from gradvar import io
from gradvar.plots import common

FIGURE = "pick-one.png"


def draw(folder):
    """Draw ``pick-one.png`` into the pick-one folder ``folder``; returns the file names."""
    return [common.save(figure(common.read(folder, text=("values",))), folder, FIGURE)]


def figure(results):
    """The single-pick distribution of every list of a pick-one results table."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from gradvar.studies import pick_one as pickone

    lists = [np.array([float(v) for v in text.split(",")]) for text in results["values"]]
    cols = min(len(lists), 4)
    rows = -(-len(lists) // cols)
    fig = common.figure(max(6.0, 1.0 + 3.0 * cols), 1.3 + 2.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True).ravel()
    colors = common.series_colors(len(lists))
    top = 0.0
    for i, (ax, values, row) in enumerate(
        zip(axes, lists, results.itertuples(index=False), strict=False)
    ):
        support, prob = pickone.distribution(values)
        top = max(top, float(np.max(prob)))
        sd = math.sqrt(row.exact_var)
        if math.isfinite(row.mean - sd) and math.isfinite(row.mean + sd):  # overflows: no band
            ax.axvspan(row.mean - sd, row.mean + sd, color=colors[i], alpha=0.15, lw=0)
        ax.vlines(support, 0, prob, color=colors[i], lw=3)
        ax.plot(support, prob, "o", color=colors[i], ms=6)
        ax.axvline(row.mean, color="black", ls="--", lw=1.2)
        ax.set_title(
            f"[{io.describe_value(row.values)}]: var {_var_text(row.values, row.exact_var)}\n"
            f"Monte Carlo: mean {row.mc_mean:.4g}, var {row.mc_var:.4g}",
            fontsize=9,
        )
        ax.set_xlabel("single-pick estimate")
        ax.grid(True, alpha=0.3)
    for ax in axes[len(lists) :]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel("probability")
    axes[0].set_ylim(0, 1.12 * top)  # markers at the top stay whole
    grey = "0.45"  # the legend explains the marks; the colour only tells the lists apart
    handles = [
        Patch(color=grey, alpha=0.25, lw=0, label="mean ± 1 sd"),
        Line2D([], [], color=grey, marker="o", lw=3, ms=6, label="P(estimate)"),
        Line2D([], [], color="black", ls="--", lw=1.2, label="mean (the target)"),
    ]
    common.legend_below(fig, handles)
    common.suptitle(
        fig,
        "Estimating a list's mean by picking one element at random:\nunbiased, "
        "with variance = the list's population variance "
        f"(Monte Carlo: n = {int(results['n'].iloc[0]):,} picks per list)",
    )
    return fig


def _var_text(text, var):
    from gradvar.studies import pick_one as pickone

    frac = pickone.exact_fraction([float(v) for v in text.split(",")])
    return frac if frac and "/" in frac else f"{var:.4g}"

"""The figure of a ``gradvar sweep-tau`` folder, from its ``summary.csv`` and ``best_tau.csv``.

``bias_variance_mse_vs_tau.png`` (and ``.svg``): three log-log panels against tau, the squared
bias, the total variance and the MSE of each relaxed estimator with 95% bands; the estimators
without a temperature (references) as horizontal lines; the best tau of each estimator starred,
and flagged when it sits at the edge of the grid (the optimum may then lie outside it); the
fitted best tau (the vertex of a parabola in log MSE against log tau, ``best_tau`` in
``best_tau.csv``) as a horizontal 95% error bar through the star.

Squared bias on log axes: the raw estimate ||mean - exact||^2 carries an upward bias of
total_var / n, which at small tau (variance ~ 1/tau) can exceed the true squared bias and
would draw a spurious floor.  The figure therefore shows the debiased estimate
(raw - total_var / n), with its interval, and the noise floor total_var / n as a dotted
line: hollow circles are estimates whose interval reaches 0 (not resolved from zero bias),
with a bar up to the upper bound; an estimate <= 0 cannot be drawn on a log axis and is
shown by its 95% upper bound alone (a hollow down-triangle).
"""

import math
from pathlib import Path

import numpy as np

from gradvar import io
from gradvar.plots import common

FIGURE = "bias_variance_mse_vs_tau"
PANELS = (
    ("bias", r"squared bias $\|E[\hat g] - \nabla_o E[f]\|^2$ (debiased)", "squared bias norm"),
    ("total_var", r"total variance $\mathrm{tr\,Var}[\hat g]$ of one estimate", "total variance"),
    ("mse", "MSE = squared bias + total variance", "mean squared error"),
)


def draw(folder):
    """Draw the sweep-tau figure (PNG and SVG) into ``folder``; returns the file names."""
    summary = common.read(folder, "summary.csv")
    if (Path(folder) / "best_tau.csv").exists():
        best = common.read(folder, "best_tau.csv")
    else:  # a folder written before best_tau.csv existed
        from gradvar.studies.sweep_tau import best_tau

        best = best_tau(summary)
    fig = figure(summary, best)
    return [common.save(fig, folder, FIGURE + ".png"), common.save(fig, folder, FIGURE + ".svg")]


def _band(ax, tau, mid, low, high, color, hollow=None):
    """Line with markers and a 95% band.  ``hollow`` points (interval reaching 0, which a
    log axis cannot show) get a hollow marker and a bar up to the upper bound instead."""
    hollow = np.zeros(len(tau), bool) if hollow is None else hollow
    ax.fill_between(
        tau,
        np.where(hollow, np.nan, low),
        np.where(hollow, np.nan, high),
        color=color,
        alpha=0.18,
        lw=0,
    )
    ax.plot(tau, np.where(mid > 0, mid, np.nan), color=color, lw=1.6)
    solid = (mid > 0) & ~hollow
    ax.plot(tau[solid], mid[solid], "o", color=color, ms=3.5)
    ring = hollow & (high > 0) & (mid > 0)
    ax.vlines(tau[ring], mid[ring], high[ring], color=color, lw=0.9)
    ax.plot(tau[ring], high[ring], "_", color=color, ms=7, mew=1.2)
    ax.plot(tau[ring], mid[ring], "o", mfc="white", mec=color, ms=4.5)
    below = hollow & (high > 0) & ~(mid > 0)  # estimate <= 0: only an upper bound to show
    ax.plot(tau[below], high[below], "v", mfc="white", mec=color, ms=6)


def figure(summary, best):
    """Squared bias, total variance and MSE against tau, from a sweep-tau summary table and
    its best-tau table; one legend below the panels, so that no curve is covered."""
    swept = summary[summary["role"] == "swept"]
    refs = summary[summary["role"] == "reference"]
    fig = common.figure(15, 4.9)
    axes = fig.subplots(1, 3, sharex=True)
    limits = [
        list(swept["bias_sq_debiased"])
        + list(swept["bias_sq_noise_floor"])
        + list(swept["bias_sq_debiased_ci_high"]),
        list(summary["total_var"]),
        list(summary["mse"]),
    ]
    # per panel, values below NOISE_FRACTION of its largest are not drawn (st's variance at
    # tau = 0.01 is 1e-130: a zero beside 1 that would stretch the axis over 100 decades)
    scales = [common.largest(v) for v in limits]
    lines, stars, edges = [], [], False
    for _, group in swept.groupby("estimator", sort=False):
        line, star, edge = _swept(axes, group.sort_values("tau"), best, scales)
        lines.append(line)
        stars += [star] if star else []
        edges |= edge
    for _, r in refs.iterrows():
        lines.append(_reference(axes, r, scales))
    handles = lines + stars + (_edge_key() if edges else []) + _bias_keys()
    cut = any(
        np.any((v > 0) & (v < common.NOISE_FRACTION * sc))
        for v, sc in zip((np.asarray(v, dtype=float) for v in limits), scales, strict=True)
    )
    handles += _cut_key() if cut else []
    for ax, (_, title, ylabel), values, scale in zip(axes, PANELS, limits, scales, strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        lims = common.positive_limits(common.on_log(values, scale))
        if lims:
            ax.set_ylim(*lims)
        ax.set(xlabel="temperature tau", ylabel=ylabel, title=title)
        ax.grid(alpha=0.3, which="both", lw=0.4)
    common.legend_below(fig, handles)
    common.suptitle(fig, _title(summary), fontsize=11)
    return fig


def _swept(axes, g, best, scales):
    """One relaxed estimator in the three panels; returns its legend handles (line, best-tau
    star or None) and whether its best tau is at the grid edge."""
    from matplotlib.lines import Line2D

    name, baseline = g["estimator"].iloc[0], g["baseline"].iloc[0]
    c = common.color(name, baseline)
    label = common.label(name, baseline)
    tau = g["tau"].to_numpy()
    deb = g["bias_sq_debiased"].to_numpy()
    lo, hi = g["bias_sq_debiased_ci_low"].to_numpy(), g["bias_sq_debiased_ci_high"].to_numpy()
    _band(axes[0], tau, common.on_log(deb, scales[0]), lo, hi, c, hollow=~(lo > 0))
    axes[0].plot(tau, common.on_log(g["bias_sq_noise_floor"], scales[0]), ":", color=c, lw=1.2)
    for k, col in ((1, "total_var"), (2, "mse")):
        _band(
            axes[k],
            tau,
            common.on_log(g[col], scales[k]),
            g[col + "_ci_low"].to_numpy(),
            g[col + "_ci_high"].to_numpy(),
            c,
        )
    line = Line2D([], [], color=c, lw=1.6, marker="o", ms=3.5, label=label)
    b = best[(best["estimator"] == name) & (best["role"] == "swept")]
    if b.empty or not math.isfinite(b["tau"].iloc[0]):
        return line, None, False
    b = b.iloc[0]
    edge = bool(b.get("at_grid_edge", False))
    axes[2].plot([b["tau"]], [b["mse"]], "*", color=c, ms=15, mec="black", mew=0.6, zorder=5)
    for ax in axes:
        ax.axvline(b["tau"], color=c, ls="--", lw=0.8, alpha=0.6)
    text = f"best tau {label}: {b['tau']:.3g}" + (" (grid edge)" if edge else "")
    fitted = float(b.get("best_tau", math.nan))
    if math.isfinite(fitted):
        low, high = float(b.get("best_tau_low", math.nan)), float(b.get("best_tau_high", math.nan))
        if math.isfinite(low) and math.isfinite(high):  # the fitted vertex and its 95% interval
            axes[2].errorbar(
                [fitted],
                [b["mse"]],
                xerr=[[fitted - low], [high - fitted]],
                fmt="none",
                ecolor=c,
                elinewidth=1.4,
                capsize=4,
                zorder=6,
            )
            text += f"; fitted {fitted:.4g} [{low:.4g}, {high:.4g}]"
        else:
            text += f"; fitted {fitted:.3g}"
    if edge:
        _edge_mark(axes[2], b["tau"], b["mse"], tau, c)
    star = Line2D([], [], ls="", marker="*", color=c, ms=12, mec="black", mew=0.6, label=text)
    return line, star, edge


def _edge_mark(ax, tau, mse, grid, color):
    """A best tau on the first or last grid point: a triangle beside its star pointing out of
    the grid (the optimum may lie there), and the words "grid edge"."""
    from matplotlib.transforms import offset_copy

    outward = 1 if tau >= np.nanmax(grid) else -1
    shifted = offset_copy(ax.transData, fig=ax.figure, x=outward * 12, units="points")
    ax.plot(
        [tau],
        [mse],
        ">" if outward > 0 else "<",
        color=color,
        ms=6,
        mec="black",
        mew=0.5,
        transform=shifted,
        clip_on=False,
        zorder=6,
    )
    ax.annotate(
        "grid edge",
        xy=(tau, mse),
        xytext=(-outward * 9, 9),
        textcoords="offset points",
        ha="right" if outward > 0 else "left",
        fontsize=8,
        color=color,
    )


def _cut_key():
    from matplotlib.lines import Line2D

    return [
        Line2D(
            [],
            [],
            ls="",
            label=f"values below {common.NOISE_FRACTION:g} x a panel's largest are not drawn "
            "(in summary.csv)",
        )
    ]


def _edge_key():
    from matplotlib.lines import Line2D

    return [
        Line2D(
            [],
            [],
            ls="",
            marker=">",
            color="0.45",
            mec="black",
            mew=0.5,
            label="best tau at the grid edge: the optimum may lie outside the grid",
        )
    ]


def _reference(axes, r, scales):
    """An estimator without tau as horizontal lines; returns its legend handle."""
    from matplotlib.lines import Line2D

    c = common.color(r["estimator"], r["baseline"])
    label = f"{common.label(r['estimator'], r['baseline'])}, no tau"
    for k, col in ((1, "total_var"), (2, "mse")):
        value = common.on_log([r[col]], scales[k])[0]
        if np.isfinite(value):
            axes[k].axhline(value, color=c, lw=1.4, ls="-.")
            axes[k].axhspan(r[col + "_ci_low"], r[col + "_ci_high"], color=c, alpha=0.12, lw=0)
    return Line2D([], [], color=c, lw=1.4, ls="-.", label=label)


def _bias_keys():
    """Legend handles for the marks of the squared-bias panel."""
    from matplotlib.lines import Line2D

    grey = "0.45"
    return [
        Line2D([], [], ls=":", color=grey, label="noise floor total_var / n (bias panel)"),
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            mfc="white",
            mec=grey,
            label="interval reaches 0 (bar to the 95% upper bound)",
        ),
        Line2D(
            [], [], ls="", marker="v", mfc="white", mec=grey, label="estimate <= 0: 95% upper bound"
        ),
    ]


def _title(summary):
    first = summary.iloc[0]
    if "logits" in summary and isinstance(first.get("logits"), str):
        params = "logits " + io.describe_value(first["logits"])
    else:
        params = f"logit {first.get('logit'):g}"
    return (
        f"sweep-tau: {first['family']} ({params}), objective {first['objective']}, "
        f"n = {int(first['n']):,} estimates per point of batch {int(first['batch'])}, "
        "bands 95% CI"
    )

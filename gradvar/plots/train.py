"""The figure of a ``gradvar train`` folder, drawn from its ``results.csv`` alone.

``training.png``: against the step, the parameter (p = sigmoid(logit) for the Bernoulli toy,
m for the bump), the exact objective and the variance of one gradient estimate (log axis);
one colour per estimator, a band of ±1 standard deviation over the seeds (the replicates).
When ``relax`` ran, a fourth panel shows the tau and eta its control variate trained.
"""

import numpy as np

from gradvar.plots import common

FIGURE = "training.png"


def draw(folder):
    """Draw ``training.png`` into the train folder ``folder``; returns the file names."""
    return [common.save(figure(common.read(folder)), folder, FIGURE)]


def _band(ax, steps, values, label, color):
    """Mean over seeds with a band of ±1 standard deviation (seeds are the replicates)."""
    mean = values.mean(axis=0)
    ax.plot(steps, mean, "o-" if len(steps) < 2 else "-", label=label, color=color, lw=1.6)
    if values.shape[0] > 1:
        sd = values.std(axis=0, ddof=1)
        ax.fill_between(steps, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)


def _log_band(ax, steps, values, color):
    """Geometric mean over seeds on a log axis, band ±1 sd of log10 (NaN: not drawn)."""
    logv = np.log10(values)
    mean = logv.mean(axis=0)
    ax.plot(steps, 10**mean, color=color, lw=1.6)
    if values.shape[0] > 1:
        sd = logv.std(axis=0, ddof=1)
        ax.fill_between(steps, 10 ** (mean - sd), 10 ** (mean + sd), color=color, alpha=0.2, lw=0)


def _label(first, batch_in_label):
    start = "from " if first["estimator"] == "relax" else ""  # relax trains tau and eta
    extra = [
        common.baseline_text(first["baseline"]),
        f"{start}tau {first['tau']:g}" if first["tau"] == first["tau"] else "",
        f"eta {first['eta']:g}" if first["eta"] == first["eta"] else "",
        f"batch {int(first['batch'])}" if batch_in_label else "",
    ]
    extra = [e for e in extra if e]
    return first["estimator"] + (f" ({', '.join(extra)})" if extra else "")


def figure(df):
    """Parameter, objective and gradient variance against step, one colour per estimator."""
    from matplotlib.ticker import MaxNLocator

    problem = df["problem"].iloc[0]
    param = list(dict.fromkeys(df["param"]))[0]
    df = df[df["param"] == param]
    for col in ("eta", "cv_tau", "cv_eta"):  # folders written before these columns
        if col not in df:
            df = df.assign(**{col: np.nan})
    keys = ["estimator", "baseline", "tau", "eta", "batch"]
    runs = list(df.groupby(keys, sort=False, dropna=False))
    batches = sorted({int(b) for b in df["batch"]})
    relax = df[df["estimator"] == "relax"]
    fig = common.figure(20 if len(relax) else 15, 4.5)
    axes = fig.subplots(1, 4 if len(relax) else 3, sharex=True)
    seeds = sorted(df["seed"].unique())
    variances, zero = [], []
    for _, sub in runs:
        first = sub.iloc[0]
        color = common.color(first["estimator"], first["baseline"])
        wide = sub.pivot(index="seed", columns="step", values="value")
        steps = wide.columns.to_numpy()
        values = wide.to_numpy()
        if problem == "bernoulli-toy":
            values = 1.0 / (1.0 + np.exp(-values))
        label = _label(first, len(batches) > 1)
        _band(axes[0], steps, values, label, color)
        objective = sub.pivot(index="seed", columns="step", values="objective").to_numpy()
        _band(axes[1], steps, objective, label, color)
        # the last step takes no update, so it has no gradient variance (NaN)
        var = sub.pivot(index="seed", columns="step", values="grad_var").to_numpy()[:, :-1]
        variances.append((steps[:-1], var, color, label))
    scale = common.largest(*[v for _, v, _, _ in variances])
    for steps, var, color, label in variances:
        shown = common.on_log(var, scale)
        if shown.size and not np.all(np.isnan(shown)):
            _log_band(axes[2], steps, shown, color)
        elif var.size:
            zero.append(label)
    ylabel = "p = sigmoid(logit)" if problem == "bernoulli-toy" else f"parameter {param}"
    n_seeds = f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}"
    batch = f", batch {batches[0]}" if len(batches) == 1 else ""
    band = ", band ±1 sd" if len(seeds) > 1 else ""
    axes[0].set(xlabel="step", ylabel=ylabel, title=f"{problem}: {ylabel} ({n_seeds}{batch}{band})")
    axes[1].set(xlabel="step", ylabel="objective E[f] (exact)", title="objective along the path")
    _variance_panel(axes[2], param, zero, any(v.size for _, v, _, _ in variances))
    if len(relax):
        _relax_panel(axes[3], relax, len(batches) > 1)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    for ax in [*axes[:2], *axes[3:]]:
        common.no_offset(ax)
    common.legend_below(fig, fontsize=9)
    return fig


def _relax_panel(ax, relax, batch_in_label):
    """RELAX's trained tau (solid) and eta (dash-dot) against the step, per run."""
    from matplotlib.lines import Line2D

    for _, sub in relax.groupby(["tau", "eta", "batch"], sort=False):
        color = common.color("relax")
        for col, style in (("cv_tau", "-"), ("cv_eta", "-.")):
            wide = sub.pivot(index="seed", columns="step", values=col)
            values = wide.to_numpy()
            mean = values.mean(axis=0)
            ax.plot(wide.columns, mean, style, color=color, lw=1.6)
            if values.shape[0] > 1:
                sd = values.std(axis=0, ddof=1)
                ax.fill_between(wide.columns, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)
    styles = [Line2D([], [], color="0.3", ls=ls) for ls in ("-", "-.")]
    ax.legend(styles, ["tau", "eta"], fontsize=8, loc="best")
    ax.set(
        xlabel="step",
        ylabel="value",
        title="relax: its trained tau and eta",
    )


def _variance_panel(ax, param, zero, any_update):
    note = f"\n({', '.join(zero)}: variance 0, not on the log axis)" if zero else ""
    ax.set(
        xlabel="step",
        ylabel=f"Var[gradient estimate of {param}]",
        title="variance of one estimate (geometric mean, band ±1 sd of log10)" + note,
    )
    if note:
        ax.title.set_fontsize(10)
    if ax.lines:
        common.log_y(ax)
    else:
        ax.set_yticks([])
        ax.text(
            0.5,
            0.5,
            "every variance is 0 (exact gradients):\nnothing to draw on a log axis"
            if any_update
            else "no update step, so no gradient variance",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=9,
            color="0.35",
        )

"""Figures of training trajectories, from the ``train`` results table only."""

import numpy as np


def _band(ax, steps, values, label, color):
    """Mean over seeds with a band of +-1 standard deviation (seeds are the replicates)."""
    mean = values.mean(axis=0)
    ax.plot(steps, mean, label=label, color=color, lw=1.6)
    if values.shape[0] > 1:
        sd = values.std(axis=0, ddof=1)
        ax.fill_between(steps, mean - sd, mean + sd, color=color, alpha=0.2, lw=0)


def plot_training(df, path):
    """Parameter (p = sigmoid(logit) for the Bernoulli toy), objective and the variance of
    the gradient estimate against step; one colour per estimator, band = +-1 sd over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problem = df["problem"].iloc[0]
    params = list(dict.fromkeys(df["param"]))
    shown = params[:1] if problem == "bump" else params
    estimators = list(dict.fromkeys(df["estimator"]))
    colors = dict(zip(estimators, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    seeds = sorted(df["seed"].unique())
    for est in estimators:
        sub = df[(df["estimator"] == est) & (df["param"] == shown[0])]
        first = sub.iloc[0]
        extra = [
            f"{first['baseline']}" if first["baseline"] else "",
            f"tau {first['tau']:g}" if first["tau"] == first["tau"] else "",
            f"batch {first['batch']}" if first["batch"] > 1 else "",
        ]
        label = est + (f" ({', '.join(e for e in extra if e)})" if any(extra) else "")
        wide = sub.pivot(index="seed", columns="step", values="value")
        steps = wide.columns.to_numpy()
        values = wide.to_numpy()
        if problem == "bernoulli-toy":
            values = 1.0 / (1.0 + np.exp(-values))
        _band(axes[0], steps, values, label, colors[est])
        objective = sub.pivot(index="seed", columns="step", values="objective").to_numpy()
        _band(axes[1], steps, objective, est, colors[est])
        var = sub.pivot(index="seed", columns="step", values="grad_var").to_numpy()[:, :-1]
        if np.nanmax(var) > 0:
            with np.errstate(divide="ignore"):
                logv = np.log10(np.where(var > 0, var, np.nan))
            _band(axes[2], steps[:-1], logv, est, colors[est])
    ylabel = "p = sigmoid(logit)" if problem == "bernoulli-toy" else f"parameter {shown[0]}"
    n_seeds = f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}"
    axes[0].set(xlabel="step", ylabel=ylabel, title=f"{problem}: {ylabel} ({n_seeds}, band ±1 sd)")
    axes[1].set(xlabel="step", ylabel="objective E[f] (exact)", title="objective along the path")
    axes[2].set(
        xlabel="step",
        ylabel=f"log10 Var[gradient estimate of {shown[0]}]",
        title="variance of one estimate (exact: 0)",
    )
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

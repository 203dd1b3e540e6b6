"""Figures of the discrete commands (``sweep-tau``, ``gumbel-max``), from result tables only.

Like :mod:`gradvar.plots`: matplotlib through :class:`matplotlib.figure.Figure` and the Agg
canvas (no pyplot), files replaced atomically.  ``sweep_tau_plots`` and ``gumbel_max_plots``
take a results folder's ``results.csv`` table and the folder (they read the folder's other
CSV files) and return the file names written; ``gradvar plot`` calls them through
:data:`gradvar.plots.PLOTTERS`.

Squared bias on log axes: the raw estimate ||mean - exact||^2 carries an upward bias of
total_var / n, which at small tau (variance ~ 1/tau) can exceed the true squared bias and
would draw a spurious floor.  The sweep plot therefore shows the debiased estimate
(raw - total_var / n), with its interval, and the noise floor total_var / n as a dotted
line: hollow circles are estimates whose interval reaches 0 (not resolved from zero bias),
with a bar up to the upper bound; an estimate <= 0 cannot be drawn on a log axis and is
shown by its 95% upper bound alone (a hollow down-triangle).
"""

import math
from pathlib import Path

import numpy as np

from gradvar import io

DPI = 130
SWEEP_FIGURE = "bias_variance_mse_vs_tau"
FREQUENCY_FIGURE = "gumbel_max_frequencies.png"
RELAXED_FIGURE = "relaxed_samples.png"


def _figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig, folder, name, fmt="png"):
    io.replace_file(Path(folder) / name, lambda tmp: fig.savefig(tmp, format=fmt, dpi=DPI))
    return name


def _palette():
    from matplotlib import colormaps

    return [colormaps["tab10"](i) for i in range(10)]


def sweep_tau_plots(results, folder):
    """``bias_variance_mse_vs_tau.png`` and ``.svg`` from the folder's ``summary.csv``."""
    from gradvar.studies.sweep_tau import best_tau

    summary = io.read_csv(Path(folder) / "summary.csv")
    fig = sweep_tau_figure(summary, best_tau(summary))
    return [
        _save(fig, folder, SWEEP_FIGURE + ".png"),
        _save(fig, folder, SWEEP_FIGURE + ".svg", "svg"),
    ]


def gumbel_max_plots(results, folder):
    """``gumbel_max_frequencies.png`` and ``relaxed_samples.png`` from the folder's CSVs."""
    summary = io.read_csv(Path(folder) / "summary.csv")
    relaxed = io.read_csv(Path(folder) / "relaxed.csv")
    return [
        _save(frequency_figure(results, summary), folder, FREQUENCY_FIGURE),
        _save(relaxed_figure(relaxed), folder, RELAXED_FIGURE),
    ]


def _positive_limits(values, pad=2.0):
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0])
    if v.size == 0:
        return None
    return v.min() / pad, v.max() * pad


def _panel(ax, tau, mid, low, high, color, label, hollow=None):
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
    ax.plot(tau, np.where(mid > 0, mid, np.nan), color=color, lw=1.6, label=label)
    solid = (mid > 0) & ~hollow
    ax.plot(tau[solid], mid[solid], "o", color=color, ms=3.5)
    ring = hollow & (high > 0) & (mid > 0)
    ax.vlines(tau[ring], mid[ring], high[ring], color=color, lw=0.9)
    ax.plot(tau[ring], high[ring], "_", color=color, ms=7, mew=1.2)
    ax.plot(tau[ring], mid[ring], "o", mfc="white", mec=color, ms=4.5)
    below = hollow & (high > 0) & ~(mid > 0)  # estimate <= 0: only an upper bound to show
    ax.plot(tau[below], high[below], "v", mfc="white", mec=color, ms=6)


def sweep_tau_figure(summary, best):
    """Three log-log panels against tau: squared bias (debiased, with the noise floor),
    total variance and MSE, with 95% bands; references as horizontal lines; best tau marked."""
    swept = summary[summary["role"] == "swept"]
    refs = summary[summary["role"] == "reference"]
    names = list(dict.fromkeys(swept["estimator"])) + list(dict.fromkeys(refs["estimator"]))
    colors = dict(zip(names, _palette(), strict=False))
    fig = _figure(15, 4.6)
    axes = fig.subplots(1, 3, sharex=True)
    limits = {
        0: list(swept["bias_sq_debiased"])
        + list(swept["bias_sq_noise_floor"])
        + list(swept["bias_sq_debiased_ci_high"]),
        1: list(summary["total_var"]),
        2: list(summary["mse"]),
    }
    lims = {k: _positive_limits(v) for k, v in limits.items()}
    for name in dict.fromkeys(swept["estimator"]):
        g = swept[swept["estimator"] == name].sort_values("tau")
        tau = g["tau"].to_numpy()
        c = colors[name]
        deb = g["bias_sq_debiased"].to_numpy()
        lo, hi = g["bias_sq_debiased_ci_low"].to_numpy(), g["bias_sq_debiased_ci_high"].to_numpy()
        _panel(axes[0], tau, deb, lo, hi, c, name, hollow=~(lo > 0))
        axes[0].plot(tau, g["bias_sq_noise_floor"].to_numpy(), ":", color=c, lw=1.2)
        for k, col in ((1, "total_var"), (2, "mse")):
            _panel(
                axes[k],
                tau,
                g[col].to_numpy(),
                g[col + "_ci_low"].to_numpy(),
                g[col + "_ci_high"].to_numpy(),
                c,
                name,
            )
        b = best[best["estimator"] == name].iloc[0]
        if math.isfinite(b["tau"]):
            axes[2].plot(
                [b["tau"]],
                [b["mse"]],
                "*",
                color=c,
                ms=15,
                mec="black",
                mew=0.6,
                zorder=5,
                label=f"best tau {name}: {b['tau']:.3g}",
            )
            for ax in axes:
                ax.axvline(b["tau"], color=c, ls="--", lw=0.8, alpha=0.6)
    for name in dict.fromkeys(refs["estimator"]):
        r = refs[refs["estimator"] == name].iloc[0]
        c = colors[name]
        for k, col in ((1, "total_var"), (2, "mse")):
            axes[k].axhline(r[col], color=c, lw=1.4, ls="-.", label=f"{name} (no tau)")
            axes[k].axhspan(r[col + "_ci_low"], r[col + "_ci_high"], color=c, alpha=0.12, lw=0)
    axes[0].plot([], [], ":", color="grey", label="noise floor total_var / n")
    axes[0].plot(
        [],
        [],
        "o",
        mfc="white",
        mec="grey",
        label="interval reaches 0 (bar to the 95% upper bound)",
    )
    axes[0].plot([], [], "v", mfc="white", mec="grey", label="estimate <= 0: 95% upper bound")
    titles = (
        r"squared bias $\|E[\hat g] - \nabla_o E[f]\|^2$ (debiased)",
        r"total variance $\mathrm{tr\,Var}[\hat g]$ of one estimate",
        "MSE = squared bias + total variance",
    )
    ylabels = ("squared bias norm", "total variance (trace)", "mean squared error")
    first = summary.iloc[0]
    params = (
        "logits " + str(first["logits"])
        if "logits" in summary and isinstance(first.get("logits"), str)
        else f"logit {first.get('logit')}"
    )
    for k, ax in enumerate(axes):
        ax.set_xscale("log")
        ax.set_yscale("log")
        if lims[k]:
            ax.set_ylim(*lims[k])
        ax.set(xlabel="temperature tau", ylabel=ylabels[k], title=titles[k])
        ax.grid(alpha=0.3, which="both", lw=0.4)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(
        f"sweep-tau: {first['family']} ({params}), objective {first['objective']}, "
        f"n = {int(first['n']):,} estimates per point, bands 95% CI",
        fontsize=11,
    )
    return fig


def frequency_figure(results, summary):
    """Empirical frequencies of argmax(logits + G) (with 95% error bars) against softmax."""
    k = len(results)
    fig = _figure(max(5.5, 0.5 * k + 3), 4.2)
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
    ax.legend(loc="upper right", fontsize=9)
    ax.set_ylim(0, max(results["prob"].max(), results["freq"].max()) * 1.25)
    ax.grid(axis="y", alpha=0.3)
    return fig


def relaxed_figure(relaxed):
    """Per tau: E[softmax((logits + G) / tau)] with 95% error bars, a few single relaxed
    samples, and softmax(logits), the tau -> 0 limit."""
    taus = sorted(relaxed["tau"].unique())
    fig = _figure(3.6 * len(taus), 3.8)
    axes = fig.subplots(1, len(taus), sharey=True, squeeze=False)
    for ax, tau in zip(axes[0], taus, strict=False):
        sub = relaxed[relaxed["tau"] == tau]
        mean = sub[sub["kind"] == "mean"].sort_values("class")
        x = mean["class"].to_numpy()
        ax.bar(
            x,
            mean["value"],
            0.6,
            yerr=1.96 * mean["sem"],
            capsize=3,
            color="#9ecae1",
            label="E[y] (Monte Carlo)",
        )
        ax.plot(
            x, mean["prob"], "_", color="black", ms=22, mew=2, label="softmax(logits) (tau -> 0)"
        )
        ax.axhline(1.0 / len(x), color="grey", ls=":", lw=1, label="uniform 1/K (tau -> inf)")
        samples = sub[sub["kind"] == "sample"]
        count = samples["sample"].nunique()
        for i, (_, one) in enumerate(samples.groupby("sample")):
            one = one.sort_values("class")
            shift = (i - (count - 1) / 2) * 0.1  # side by side, so equal values stay visible
            ax.plot(
                one["class"] + shift,
                one["value"],
                "o-",
                lw=0.8,
                ms=4,
                alpha=0.85,
                label="single samples y (same G at every tau)" if i == 0 else None,
                color=_palette()[1 + i % 9],
            )
        ax.set(title=f"tau = {tau:g}", xlabel="class", xticks=x)
        ax.set_ylim(0, 1.05)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("y = softmax((logits + G) / tau)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    fig.suptitle(
        "Relaxed Gumbel-Softmax samples: one-hot-like as tau -> 0, uniform as tau grows",
        fontsize=11,
    )
    return fig

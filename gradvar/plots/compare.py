"""Figures drawn from result tables only (never runs an experiment).

Matplotlib is imported inside the functions, through :class:`matplotlib.figure.Figure` and
the Agg canvas (no pyplot, no global state, no display needed).  Every function takes the
table(s) of a results folder and a folder to write into, and returns the file names written.
"""

import math
from pathlib import Path

import numpy as np

from gradvar import io

DPI = 130
MAX_PANELS = 9  # coordinates drawn in a sweep figure; the rest are in the CSV
MAX_GROUPS = 16  # coordinates drawn in a one-point figure


# --- shared pieces -------------------------------------------------------------------------
def _figure(width, height):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig, folder, name):
    io.replace_file(Path(folder) / name, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    return name


def _colors(n):
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


_g = io.describe_value


def describe(results, free=()):
    """'quadratic f(z) = (z - k)^2, k=0 under normal(mu, sigma=1)' for titles.

    Parameters in ``free`` (the swept ones) are named without a value; tau is added when an
    estimator used it.
    """
    from gradvar.model import registry

    row = results.iloc[0]
    family, objective = row["family"], row["objective"]
    fam = registry.FAMILIES.get(family)
    obj = registry.OBJECTIVES.get((family, objective))
    cols = io.parameter_columns(results)

    def part(name):
        if name in free:
            return name
        value = results[name].dropna()
        if value.dtype.kind not in "fiub":
            value = value[value.astype(str) != ""]
        return f"{name}={_g(value.iloc[0])}" if len(value) else None

    fam_names = [p.name for p in fam.params] if fam else []
    obj_names = [c for c in cols if c not in fam_names and c != "tau"]
    dist = ", ".join(filter(None, (part(c) for c in fam_names)))
    objp = ", ".join(filter(None, (part(c) for c in obj_names)))
    tau = part("tau") if "tau" in cols else None
    formula = f" {obj.summary}" if obj else ""
    return f"{objective}{formula}{', ' + objp if objp else ''} under {family}({dist})" + (
        f", {tau}" if tau else ""
    )


def _n_text(results, free=()):
    row = results.iloc[0]
    batch = "" if "batch" in free else f" of batch {int(row['batch'])}"
    return f"n = {int(row['n']):,} estimates{batch}"


def _labels(results):
    return [
        io.estimator_label(e, b)
        for e, b in zip(results["estimator"], results["baseline"], strict=False)
    ]


def _coordinates(results, limit):
    """The first ``limit`` gradient coordinates and a note when some are left out."""
    params = list(dict.fromkeys(results["param"]))
    if len(params) <= limit:
        return params, ""
    return params[:limit], f" (first {limit} of {len(params)} coordinates; all in results.csv)"


def _positive(values):
    values = np.asarray(values, dtype=float)
    return np.where(values > 0, values, np.nan)


# --- compare -------------------------------------------------------------------------------
def compare_plots(results, folder):
    """The variance plots of a compare results table.

    One point: ``variance.png``, variance per estimator and coordinate with CI error bars and
    the exact variance marked.  A sweep: ``variance-vs-<param>.png`` (one per combination of
    any further swept parameters), variance against the swept parameter, one line per
    estimator, CI bands, exact variance dashed; log y throughout.
    """
    swept = io.swept_columns(results)
    if not swept:
        return [_save(point_figure(results), folder, "variance.png")]
    frame = results.assign(_cell=io.cell_index(results), _label=_labels(results))
    x = max(swept, key=lambda c: (frame[c].dropna().nunique(), -swept.index(c)))
    others = [c for c in swept if c != x]
    names = []
    groups = _groups_by(frame, others)
    for values, part in groups:
        suffix = "".join(f"-{c}={_g(v)}" for c, v in zip(others, values, strict=False))
        fig = sweep_figure(part, x)
        names.append(_save(fig, folder, f"variance-vs-{x}{suffix}.png"))
    return names


def _groups_by(frame, columns):
    """Split a sweep by the values of ``columns`` (per cell, NaN rows follow their cell)."""
    if not columns:
        return [((), frame)]
    keys = {}
    for cell, group in frame.groupby("_cell", sort=True):
        key = tuple(group[c].dropna().iloc[0] for c in columns)
        keys.setdefault(key, []).append(cell)
    return [(key, frame[frame["_cell"].isin(cells)]) for key, cells in keys.items()]


def point_figure(results):
    """Variance per estimator (colour) and coordinate (group) with CIs and exact marks."""
    labels = list(dict.fromkeys(_labels(results)))
    params, cut = _coordinates(results, MAX_GROUPS)
    colors = dict(zip(labels, _colors(len(labels)), strict=False))
    fig = _figure(min(14.0, max(7.0, 2.0 + 0.35 * len(params) * max(3, len(labels)))), 5.0)
    ax = fig.add_subplot()
    width = 0.8 / len(labels)
    half = min(0.42 * width, 0.25)  # half width of an exact-variance bar
    zero = []
    frame = results.assign(_label=_labels(results))
    exact_label = "exact variance" if (_positive(frame["exact_var"]) > 0).any() else None
    for i, label in enumerate(labels):
        sub = frame[frame["_label"] == label].set_index("param").reindex(params)
        xs = np.arange(len(params)) + (i - (len(labels) - 1) / 2) * width
        var = _positive(sub["grad_var"])
        if np.all(np.isnan(var)):
            zero.append(label)
        low = np.clip(var - _positive(sub["var_ci_low"]), 0, None)
        high = np.clip(_positive(sub["var_ci_high"]) - var, 0, None)
        ax.errorbar(
            xs,
            var,
            yerr=[np.nan_to_num(low), np.nan_to_num(high)],
            fmt="o",
            color=colors[label],
            capsize=4,
            ms=6,
            label=label,
        )
        for xv, yv in zip(xs, var, strict=False):
            if np.isfinite(yv):
                ax.annotate(
                    f"{yv:.3g}",
                    (xv + half, yv),
                    xytext=(3, 0),
                    textcoords="offset points",
                    fontsize=7,
                    va="center",
                    color=colors[label],
                )
        ax.hlines(
            _positive(sub["exact_var"]),
            xs - half,
            xs + half,
            color="black",
            lw=2,
            zorder=3,
            label=exact_label if i == 0 else None,
        )
    _log_y(ax)
    ax.set_xticks(np.arange(len(params)), [f"d/d{p}" for p in params])
    ax.set_xlim(-0.5, len(params) - 0.5)
    ax.set_xlabel("gradient coordinate")
    ax.set_ylabel("variance of one gradient estimate")
    if zero:
        ax.text(
            0.01,
            0.01,
            "variance 0, not on the log axis: " + ", ".join(zero),
            transform=ax.transAxes,
            fontsize=8,
            va="bottom",
        )
    ax.grid(True, which="both", axis="y", alpha=0.25)
    fig.suptitle(
        f"Estimator variance: {describe(results)}{cut}\n{_n_text(results)}; "
        "dots: Monte Carlo with 95% CI, black bars: exact",
        fontsize=10,
    )
    fig.legend(loc="outside lower center", ncol=min(4, len(labels) + 1), fontsize=8, frameon=False)
    return fig


def _log_x(values):
    values = np.asarray(sorted(set(values)), dtype=float)
    if len(values) < 3 or np.any(values <= 0):
        return False
    steps = np.diff(np.log(values))
    return bool(values[-1] / values[0] >= 100 or np.allclose(steps, steps[0], rtol=1e-6))


def sweep_figure(results, x):
    """Variance against the swept parameter ``x``: a panel per coordinate, a line per estimator."""
    from matplotlib.lines import Line2D

    params, cut = _coordinates(results, MAX_PANELS)
    labels = list(dict.fromkeys(results["_label"]))
    colors = dict(zip(labels, _colors(len(labels)), strict=False))
    cols = min(len(params), 3)
    rows = -(-len(params) // cols)
    fig = _figure(1.0 + 4.2 * cols, 1.6 + 3.2 * rows)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True).ravel()
    log_x = _log_x(results[x].dropna())
    for ax, param in zip(axes, params, strict=False):
        zero = [
            label
            for label in labels
            if not _sweep_line(ax, results, x, param, label, colors[label])
        ]
        if log_x:
            ax.set_xscale("log")
            _log_axis(ax.xaxis, *ax.get_xlim())
            ax.tick_params(axis="x", which="minor", labelsize=7)
        _log_y(ax)
        note = f"\n({', '.join(zero)}: variance 0, not on the log axis)" if zero else ""
        ax.set_title(f"d/d{param}{note}", fontsize=10 if not zero else 9)
        ax.set_xlabel(x)
        ax.set_ylabel("variance of one estimate")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[len(params) :]:
        ax.set_visible(False)
    # other swept parameters take one value in ``results``: describe() and _n_text() name it
    title = f"Variance vs {x}: {describe(results, free=[x])}{cut}"
    fig.suptitle(
        f"{title}\n{_n_text(results, free=[x])} per point; "
        "lines: Monte Carlo with 95% CI band, dashed: exact",
        fontsize=10,
    )
    handles = [
        Line2D([], [], color=colors[label], marker="o", ms=3, label=label) for label in labels
    ]
    handles.append(Line2D([], [], color="0.3", ls="--", label="exact variance"))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(5, len(handles)),
        fontsize=8,
        frameon=False,
    )
    return fig


def _plain():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{v:g}")


def _log_axis(axis, low, high):
    """Plain-number labels on a log axis; minor ticks labelled as the range narrows."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(_plain())
    decades = math.log10(high / low) if 0 < low < high else 99.0

    def minor(value, _):
        mantissa = round(value / 10 ** math.floor(math.log10(value) + 1e-9), 6)
        return f"{value:g}" if decades < 1.2 or mantissa in (2.0, 5.0) else ""

    axis.set_minor_formatter(FuncFormatter(minor) if decades < 3 else NullFormatter())


def _log_y(ax):
    """Log y with plain-number tick labels, spanning at least a decade."""
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    if low > 0 and high / low < 10:  # at least a decade, so that ticks read sensibly
        centre = math.sqrt(low * high)
        low, high = min(low, centre / 3.2), max(high, centre * 3.2)
        ax.set_ylim(low, high)
    _log_axis(ax.yaxis, low, high)
    ax.tick_params(axis="y", which="minor", labelsize=7)


def _darker(color):
    return tuple(0.55 * c for c in color[:3])


def _sweep_line(ax, results, x, param, label, color):
    """Draw one estimator's variance curve; False when every variance is 0 (nothing drawn)."""
    sub = results[(results["param"] == param) & (results["_label"] == label)]
    if sub.empty:
        return True
    if sub[x].isna().all():  # independent of x (e.g. sf in a tau sweep): a horizontal line
        span = results[x].dropna()
        sub = sub.iloc[[0, 0]].assign(**{x: [span.min(), span.max()]})
    sub = sub.sort_values(x)
    xs = sub[x].to_numpy(dtype=float)
    var = _positive(sub["grad_var"])
    if np.all(np.isnan(var)):
        return False
    ax.plot(xs, var, "o-", color=color, ms=3, lw=1.2)
    ax.fill_between(
        xs,
        _positive(sub["var_ci_low"]),
        _positive(sub["var_ci_high"]),
        color=color,
        alpha=0.2,
        lw=0,
    )
    exact = _positive(sub["exact_var"])
    if not np.all(np.isnan(exact)):
        ax.plot(xs, exact, "--", color=_darker(color), lw=1.4, zorder=3)
    return True


# --- pick-one ------------------------------------------------------------------------------
def pick_one_plots(results, folder):
    """``pick-one.png``: the distribution of a single-pick estimate for each list."""
    return [_save(pick_one_figure(results), folder, "pick-one.png")]


def pick_one_figure(results):
    """One panel per list, side by side on a shared axis: the probability of each possible
    single-pick estimate, the mean (the target) and the band mean ± 1 standard deviation."""
    from gradvar.studies import pick_one as pickone

    lists = [np.array([float(v) for v in text.split(",")]) for text in results["values"]]
    cols = min(len(lists), 4)
    rows = -(-len(lists) // cols)
    fig = _figure(max(6.0, 1.0 + 3.0 * cols), 1.3 + 2.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True).ravel()
    colors = _colors(len(lists))
    for i, (ax, values, row) in enumerate(
        zip(axes, lists, results.itertuples(index=False), strict=False)
    ):
        support, prob = pickone.distribution(values)
        sd = math.sqrt(row.exact_var)
        ax.axvspan(
            row.mean - sd, row.mean + sd, color=colors[i], alpha=0.15, lw=0, label="mean ± 1 sd"
        )
        ax.vlines(support, 0, prob, color=colors[i], lw=3)
        ax.plot(support, prob, "o", color=colors[i], ms=6, label="P(estimate)")
        ax.axvline(row.mean, color="black", ls="--", lw=1.2, label="mean (the target)")
        ax.set_title(
            f"[{_g(row.values)}]: var {_var_text(row.values, row.exact_var)}\n"
            f"Monte Carlo: mean {row.mc_mean:.4g}, var {row.mc_var:.4g}",
            fontsize=9,
        )
        ax.set_xlabel("single-pick estimate")
        ax.grid(True, alpha=0.3)
    for ax in axes[len(lists) :]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel("probability")
    axes[0].set_ylim(0, None)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(
        "Estimating a list's mean by picking one element at random:\nunbiased, "
        "with variance = the list's population variance "
        f"(Monte Carlo: n = {int(results['n'].iloc[0]):,} picks per list)",
        fontsize=10,
    )
    return fig


def _var_text(text, var):
    from gradvar.studies import pick_one as pickone

    frac = pickone.exact_fraction([float(v) for v in text.split(",")])
    return frac if frac and "/" in frac else f"{var:.4g}"


def _discrete(name):
    """A plotter of :mod:`gradvar.plots.discrete` (sweep-tau, gumbel-max), imported on use."""

    def draw(results, folder):
        from gradvar.plots import discrete as plots_discrete

        return getattr(plots_discrete, name)(results, folder)

    return draw


def train_plots(results, folder):
    """``training.png`` of a ``gradvar train`` folder (see :mod:`gradvar.plots.train`)."""
    from gradvar.plots.train import plot_training

    plot_training(results, Path(folder) / "training.png")
    return ["training.png"]


PLOTTERS = {
    "compare": compare_plots,
    "pick-one": pick_one_plots,
    "sweep-tau": _discrete("sweep_tau_plots"),
    "gumbel-max": _discrete("gumbel_max_plots"),
    "train": train_plots,
}

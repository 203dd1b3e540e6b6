"""Figures of a ``gradvar compare`` folder, drawn from its ``results.csv`` alone.

One parameter point: ``variance.png``, the variance per estimator and gradient coordinate
with 95% error bars and the exact variance marked.  A sweep: ``variance-vs-<param>.png`` (one
file per combination of any further swept parameters, ``variance-vs-mu-sigma=0.5.png``), the
variance against the swept parameter, one line per estimator with a 95% band, the exact
variance dashed.  Log y throughout; a variance of 0 (or rounding noise, see
:func:`gradvar.plots.common.on_log`) is named in a note instead of drawn.
"""

import numpy as np

from gradvar import io
from gradvar.plots import common

MAX_PANELS = 9  # coordinates drawn in a sweep figure; the rest are in the CSV
MAX_GROUPS = 16  # coordinates drawn in a one-point figure

_g = io.describe_value


def draw(folder):
    """Draw the figures of the compare folder ``folder`` into it; returns the file names."""
    results = common.read(folder, text=io.NAME_COLUMNS)
    swept = io.swept_columns(results)
    if not swept:
        return [common.save(point_figure(results), folder, "variance.png")]
    frame = results.assign(_cell=io.cell_index(results), _label=common.labels(results))
    x = max(swept, key=lambda c: (frame[c].dropna().nunique(), -swept.index(c)))
    others = [c for c in swept if c != x]
    names = []
    for values, part in _groups_by(frame, others):
        suffix = "".join(f"-{c}={_g(v)}" for c, v in zip(others, values, strict=False))
        names.append(common.save(sweep_figure(part, x), folder, f"variance-vs-{x}{suffix}.png"))
    return names


def describe(results, free=()):
    """'quadratic f(z) = (z - k)^2, k=0 under normal(mu, sigma=1)' for titles.

    Parameters in ``free`` (the swept ones) are named without a value; tau is added when an
    estimator used it.
    """
    from gradvar.model import estimators, families, objectives, registry  # noqa: F401

    # importing the entry modules fills the registries (registry.load() does the same)
    row = results.iloc[0]
    family, objective = row["family"], row["objective"]
    fam = registry.FAMILIES.get(family)
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
    tau = part("tau") if "tau" in cols and "tau" not in free else None  # swept: on the axis
    summary = common.objective_text(family, objective)[0]
    formula = f" {summary}" if summary else ""
    return f"{objective}{formula}{', ' + objp if objp else ''} under {family}({dist})" + (
        f", {tau}" if tau else ""
    )


def _n_text(results, free=()):
    row = results.iloc[0]
    batch = "" if "batch" in free else f" of batch {int(row['batch'])}"
    return f"n = {int(row['n']):,} estimates{batch}"


def _colors(results):
    """{label: colour} in the order the labels first appear."""
    return {
        common.label(e, b): common.color(e, b)
        for e, b in zip(results["estimator"], results["baseline"], strict=False)
    }


def _coordinates(results, limit):
    """The first ``limit`` gradient coordinates and a note when some are left out."""
    params = list(dict.fromkeys(results["param"]))
    if len(params) <= limit:
        return params, ""
    return params[:limit], f" (first {limit} of {len(params)} coordinates; all in results.csv)"


def _groups_by(frame, columns):
    """Split a sweep by the values of ``columns``; a row with an empty value (an estimator
    that ignores that option, run once) belongs to every group."""
    if not columns:
        return [((), frame)]
    groups = [(key, io.at_point(frame, columns, key)) for key in io.sweep_points(frame, columns)]
    return [(key, part) for key, part in groups if len(part)]


def _coordinate_ticks(params):
    """Tick labels and axis label for the coordinates: "d/dmu", ...; many entries of one
    vector parameter ("logits[0]" ...) are ticked by their index alone, named on the axis
    ("d/dlogits[i]"), so that the labels do not run into each other."""
    base = {p.split("[")[0] for p in params}
    if len(params) > 8 and len(base) == 1 and all(p.endswith("]") for p in params):
        return [p[p.index("[") :] for p in params], f"gradient coordinate d/d{base.pop()}[i]"
    return [f"d/d{p}" for p in params], "gradient coordinate"


# --- one point -----------------------------------------------------------------------------
def point_figure(results):
    """Variance per estimator (colour) and coordinate (group) with CIs and exact marks."""
    from matplotlib.lines import Line2D

    colors = _colors(results)
    params, cut = _coordinates(results, MAX_GROUPS)
    frame = results.assign(_label=common.labels(results))
    frame = frame[frame["param"].isin(params)]
    scale = common.largest(frame["grad_var"], frame["var_ci_high"], frame["exact_var"])
    fig = common.figure(min(14.0, max(7.0, 2.0 + 0.35 * len(params) * max(3, len(colors)))), 5.0)
    ax = fig.add_subplot()
    width = 0.8 / len(colors)
    zero, exact_drawn = [], False
    for i, (label, color) in enumerate(colors.items()):
        sub = frame[frame["_label"] == label].set_index("param").reindex(params)
        xs = np.arange(len(params)) + (i - (len(colors) - 1) / 2) * width
        hidden, exact = _point_marks(ax, sub, xs, label, color, min(0.42 * width, 0.25), scale)
        if hidden:
            where = "" if len(hidden) == len(params) else f" ({', '.join(hidden)})"
            zero.append(label + where)
        exact_drawn |= exact
    common.log_y(ax)
    ticks, what = _coordinate_ticks(params)
    ax.set_xticks(np.arange(len(params)), ticks)
    ax.set_xlim(-0.5, len(params) - 0.5 + 0.6 * width)  # room for the last value label
    note = f"\n(variance 0, not on the log axis: {', '.join(zero)})" if zero else ""
    ax.set_xlabel(what + note)
    ax.set_ylabel("variance of one gradient estimate")
    ax.grid(True, which="both", axis="y", alpha=0.25)
    marks = "dots: Monte Carlo with 95% CI, numbers: Monte Carlo variance"
    common.suptitle(
        fig,
        f"Estimator variance: {describe(results)}{cut}\n{_n_text(results)}; {marks}"
        + (", black bars: exact" if exact_drawn else ""),
    )
    handles, names = ax.get_legend_handles_labels()
    if exact_drawn:
        handles.append(Line2D([], [], color="black", lw=2))
        names.append("exact variance")
    common.legend_below(fig, handles, names)
    return fig


def _point_marks(ax, sub, xs, label, color, half, scale):
    """One estimator's dots with 95% error bars, value labels and exact-variance bars.

    Returns the coordinates (d/dmu) whose variance is 0 and so not drawn, and whether any
    exact variance was drawn.
    """
    var = common.on_log(sub["grad_var"], scale)
    hidden = [
        f"d/d{p}"
        for p, v, raw in zip(sub.index, var, sub["grad_var"], strict=True)
        if np.isnan(v) and raw == raw  # a row with a variance too small to draw
    ]
    low = np.clip(var - common.on_log(sub["var_ci_low"]), 0, None)
    high = np.clip(common.on_log(sub["var_ci_high"]) - var, 0, None)
    ax.errorbar(
        xs,
        var,
        yerr=[np.nan_to_num(low), np.nan_to_num(high)],
        fmt="o",
        color=color,
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
                color=color,
                zorder=1,  # under the markers of the next estimator
            )
    exact = common.on_log(sub["exact_var"], scale)
    if np.all(np.isnan(exact)):
        return hidden, False
    ax.hlines(exact, xs - half, xs + half, color="black", lw=2, zorder=3)
    return hidden, True


# --- a sweep -------------------------------------------------------------------------------
def sweep_figure(results, x):
    """Variance against the swept parameter ``x``: a panel per coordinate, a line per estimator."""
    from matplotlib.lines import Line2D

    if "_label" not in results.columns:
        results = results.assign(_label=common.labels(results))
    params, cut = _coordinates(results, MAX_PANELS)
    colors = _colors(results)
    cols = min(len(params), 3)
    rows = -(-len(params) // cols)
    fig = common.figure(1.0 + 4.2 * cols, 1.6 + 3.2 * rows)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True).ravel()
    log_x = common.wants_log_x(results[x].dropna())
    exact_drawn = False
    for ax, param in zip(axes, params, strict=False):
        panel = results[results["param"] == param]
        scale = common.largest(panel["grad_var"], panel["var_ci_high"], panel["exact_var"])
        zero = []
        for label in colors:
            drawn, exact = _sweep_line(ax, panel, x, label, colors[label], scale)
            exact_drawn |= exact
            if not drawn:
                zero.append(label)
        if log_x:
            common.log_x(ax)
        common.log_y(ax)
        note = f"\n({', '.join(zero)}: variance 0, not on the log axis)" if zero else ""
        ax.set_title(f"d/d{param}{note}", fontsize=10 if not zero else 9)
        ax.set_xlabel(x)
        ax.set_ylabel("variance of one estimate")
        ax.grid(True, which="major", alpha=0.3)
    for ax in axes[len(params) :]:
        ax.set_visible(False)
    # other swept parameters take one value in ``results``: describe() and _n_text() name it
    title = f"Variance vs {x}: {describe(results, free=[x])}{cut}"
    common.suptitle(
        fig,
        f"{title}\n{_n_text(results, free=[x])} per point; "
        "lines: Monte Carlo with 95% CI band" + (", dashed: exact" if exact_drawn else ""),
    )
    handles = [Line2D([], [], color=c, marker="o", ms=3, label=lab) for lab, c in colors.items()]
    if exact_drawn:
        handles.append(Line2D([], [], color="0.3", ls="--", label="exact variance"))
    common.legend_below(fig, handles)
    return fig


def _sweep_line(ax, panel, x, label, color, scale):
    """Draw one estimator's variance curve in one panel.

    Returns (drawn, exact drawn); drawn is False when every variance is 0 or rounding noise,
    True also when the estimator has no row in this panel (nothing to report).
    """
    sub = panel[panel["_label"] == label]
    if sub.empty:
        return True, False
    if sub[x].isna().all():  # independent of x (e.g. sf in a tau sweep): a horizontal line
        span = panel[x].dropna()
        sub = sub.iloc[[0, 0]].assign(**{x: [span.min(), span.max()]})
    sub = sub.sort_values(x)
    xs = sub[x].to_numpy(dtype=float)
    var = common.on_log(sub["grad_var"], scale)
    if np.all(np.isnan(var)):
        return False, False
    ax.plot(xs, var, "o-", color=color, ms=3, lw=1.2)
    ax.fill_between(
        xs,
        common.on_log(sub["var_ci_low"]),
        common.on_log(sub["var_ci_high"]),
        color=color,
        alpha=0.2,
        lw=0,
    )
    exact = common.on_log(sub["exact_var"], scale)
    if np.all(np.isnan(exact)):
        return True, False
    ax.plot(xs, exact, "--", color=common.darker(color), lw=1.4, zorder=3)
    return True, True

"""The survey figures (Mohamed, Rosca, Figurnov & Mnih 2020, Figures 2 and 3), drawn from the
folders of a multi-run experiment (:mod:`gradvar.studies.experiments`).

One row per run (one objective), one column per gradient coordinate (d/dmu, d/dsigma); x is
the objective parameter the run sweeps (k, omega), y the variance of one estimate on a log
axis: Monte Carlo points with their 95% intervals, the exact variance dashed in the same
colour.  Variances that are zero to rounding (the delta method on a quadratic) cannot sit on a
log axis; the panel says so in words instead.
"""

import json
import math
from pathlib import Path

import numpy as np

from gradvar import io
from gradvar.plots import common

NAME = "survey.png"


def _swept(frame):
    """The parameter column the run sweeps (the one with several values)."""
    swept = [c for c in io.parameter_columns(frame) if frame[c].nunique(dropna=True) > 1]
    if len(swept) != 1:
        raise ValueError(f"a survey panel sweeps exactly one parameter, found {swept or 'none'}")
    return swept[0]


def _formula(frame):
    formula = common.objective_text(frame["family"].iloc[0], frame["objective"].iloc[0])[1]
    return f"f(z) = {formula}" if formula else str(frame["objective"].iloc[0])


def _marker(estimator):
    """One marker per estimator family, so that near colours stay apart: circles for the score
    function and pathwise estimators, triangles for the measure-valued, squares for the delta
    method's."""
    if estimator.startswith("mvd"):
        return "^"
    return "s" if estimator.endswith("-delta") else "o"


def _two_and_five(value, _):
    mantissa = round(value / 10 ** math.floor(math.log10(value) + 1e-9), 6)
    return f"{value:g}" if mantissa in (2.0, 5.0) else ""


def _panel(ax, frame, param, xcol):
    from matplotlib.ticker import FuncFormatter

    rows = frame[frame["param"] == param]
    scale = common.largest(rows["grad_var"], rows["exact_var"])
    zero = []
    for (est, base), group in rows.groupby(["estimator", "baseline"], sort=False, dropna=False):
        group = group.sort_values(xcol)
        colour, text = common.color(est, base), common.label(est, base)
        x = group[xcol].to_numpy(float)
        var = common.on_log(group["grad_var"], scale)
        exact = common.on_log(group["exact_var"], scale)
        if np.all(np.isnan(var)) and np.all(np.isnan(exact)):
            zero.append(text)
            continue
        low = np.clip(var - group["var_ci_low"].to_numpy(float), 0, None)
        high = np.clip(group["var_ci_high"].to_numpy(float) - var, 0, None)
        ax.errorbar(
            x,
            var,
            yerr=[low, high],
            fmt=_marker(est),
            ms=4,
            color=colour,
            capsize=2,
            lw=1,
            label=text,
        )
        ax.plot(x, exact, "--", color=colour, lw=1.1, label="_exact")
    ax.set_yscale("log")
    common.log_y(ax)
    if common.wants_log_x(rows[xcol]):  # the paper's Figure 3 sweeps k on a log grid
        common.log_x(ax)
        ax.xaxis.set_minor_formatter(FuncFormatter(_two_and_five))
    ax.set_xlabel(xcol)
    if zero:
        ax.text(
            0.02,
            0.02,
            "variance 0 (not on a log axis): " + ", ".join(zero),
            transform=ax.transAxes,
            fontsize=7,
            va="bottom",
        )


def draw_runs(folder, names, title=""):
    """The figure of the runs ``names`` (sub-folders of ``folder``); returns its file names."""
    from matplotlib.lines import Line2D

    frames = [common.read(Path(folder) / name, text=io.NAME_COLUMNS) for name in names]
    params = list(dict.fromkeys(p for f in frames for p in f["param"]))
    fig = common.figure(4.2 * len(params), 3.2 * len(frames) + 0.8)
    axes = fig.subplots(len(frames), len(params), squeeze=False)
    for row, frame in zip(axes, frames, strict=True):
        xcol = _swept(frame)
        for ax, param in zip(row, params, strict=True):
            _panel(ax, frame, param, xcol)
            ax.set_title(f"{_formula(frame)}, d/d{param}", fontsize=9)
        row[0].set_ylabel("variance of one estimate")
    handles, labels = [], []
    for ax in fig.axes:
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            if text not in labels and not text.startswith("_"):
                handles.append(handle)
                labels.append(text)
    handles.append(Line2D([], [], color="0.3", ls="--"))
    labels.append("exact variance")
    common.legend_below(fig, handles, labels)
    if title:
        common.suptitle(fig, title)
    return [common.save(fig, folder, NAME)]


def draw(folder):
    """Redraw the survey figure of a multi-run folder from its runs.json and CSV files."""
    with open(Path(folder) / "runs.json", encoding="utf-8") as fh:
        runs = json.load(fh)["runs"]
    first = common.read(Path(folder) / runs[0], text=io.NAME_COLUMNS)
    mu, sigma = first["mu"].iloc[0], first["sigma"].iloc[0]
    n = int(first["n"].iloc[0])
    title = f"Variance of the gradient estimators of E[f(z)], z ~ N({mu:g}, {sigma:g}^2)"
    title += f" (n = {n:,} estimates per point; after Mohamed et al. 2020)"
    return draw_runs(folder, runs, title)

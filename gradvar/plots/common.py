"""What every figure shares: creation, saving, estimator colours, log axes, labels, tables.

Matplotlib is imported inside the functions, through :class:`matplotlib.figure.Figure` and
the Agg canvas (no pyplot, no global state, no display needed), so that importing this module
costs nothing and ``gradvar --help`` never loads matplotlib.

Figures use constrained layout and are saved with ``bbox_inches="tight"``: a title, legend or
value label that sticks out of the figure enlarges the saved image instead of being clipped.
"""

import hashlib
import math
import textwrap
from pathlib import Path

import numpy as np

from gradvar import io

DPI = 130

# A variance below this fraction of the largest variance in its panel is rounding noise of an
# exact formula or of a sum of squares (for example 1e-34 where the true value is 0): it is not
# drawn on a log axis, where it would stretch the axis over decades of nothing.
NOISE_FRACTION = 1e-12

# One colour per estimator (and per baseline of sf-baseline), the same in every figure.  The
# first eight are the estimators gradvar has; the rest are reserved for estimators to come, so
# that adding one never recolours another.  Chosen to be far apart in CIELAB (no two closer
# than a colour difference of about 25) and dark enough to read on white.
ESTIMATOR_COLORS = {
    "sf": "#1f77b4",
    "sf-baseline (mean)": "#ff7f0e",
    "sf-baseline (optimal)": "#8c564b",
    "sf-baseline (loo)": "#e377c2",
    "reparam": "#2ca02c",
    "gumbel-softmax": "#d62728",
    "st-gumbel": "#9467bd",
    "exact": "#000000",
    # reserved
    "arm": "#bd9e39",
    "disarm": "#17becf",
    "rebar": "#393b79",
    "rebar-tied": "#9c9ede",
    "st": "#fc8d62",
    "reinmax": "#7b4173",
    "gumbel-rao": "#f0027f",
    "mvd": "#637939",
    "mvd-coupled": "#1b9e77",
    "sf-delta": "#e7969c",
    "reparam-delta": "#a65628",
    "relax": "#999999",
}
ESTIMATOR_COLORS["sf-baseline"] = ESTIMATOR_COLORS["sf-baseline (mean)"]  # the default baseline

# Colours for series that are not estimators (pick-one lists, single Gumbel samples): muted
# and different from the estimator table's first colours, so that they do not read as one.
SERIES_COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7"]


# --- figures -------------------------------------------------------------------------------
def figure(width, height):
    """A new :class:`~matplotlib.figure.Figure` on the Agg canvas, with constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig, folder, name):
    """Write ``fig`` to ``folder/name`` atomically (format from the suffix); returns ``name``.

    The same figure gives the same bytes: an SVG gets no date and fixed element ids.
    """
    import matplotlib

    fmt = Path(name).suffix.lstrip(".") or "png"
    metadata = {"Date": None} if fmt in ("svg", "pdf") else None

    def write(tmp):
        with matplotlib.rc_context({"svg.hashsalt": "gradvar"}):
            fig.savefig(
                tmp,
                format=fmt,
                dpi=DPI,
                bbox_inches="tight",
                pad_inches=0.08,
                metadata=metadata,
            )

    io.replace_file(Path(folder) / name, write)
    return name


def suptitle(fig, text, fontsize=10):
    """A figure title wrapped to the figure's width (each line of ``text`` on its own)."""
    width = fig.get_figwidth() * 72 / (0.55 * fontsize)  # characters that fit, roughly
    lines = [
        wrapped
        for line in text.split("\n")
        for wrapped in textwrap.wrap(line, max(30, int(width))) or [""]
    ]
    fig.suptitle("\n".join(lines), fontsize=fontsize)


def legend_below(fig, handles=None, labels=None, fontsize=8, columns=None, **options):
    """One legend for the whole figure, below every panel (never over the data).

    As many columns as fit in the figure's width, so that entries are not orphaned on a
    second row when they would fit on one; ``options`` go to ``Figure.legend``.
    """
    if handles is None:
        handles, labels = [], []
        for ax in fig.axes:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=False):
                if label not in labels and not label.startswith("_"):
                    handles.append(handle)
                    labels.append(label)
    if not handles:
        return None
    if labels is None:
        labels = [h.get_label() for h in handles]
    if columns is None:
        columns = _legend_columns(labels, fontsize, fig.get_figwidth())
    return fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=columns,
        fontsize=fontsize,
        frameon=False,
        **options,
    )


def _legend_columns(labels, fontsize, width):
    """The most columns whose entries fit in ``width`` inches, rows balanced.

    Matplotlib fills a legend column by column, each column as wide as its widest entry; an
    entry is about 0.52 em per character plus its handle and padding (about 3.5 em).
    """
    entry = [(0.52 * len(text) + 3.5) * fontsize / 72 for text in labels]
    n = len(labels)
    for columns in range(n, 1, -1):
        rows = -(-n // columns)
        used = -(-n // rows)  # a wider grid only leaves columns empty
        total = sum(max(entry[c * rows : (c + 1) * rows]) for c in range(used))
        if total <= 0.97 * width:
            return used
    return 1


# --- colours and labels --------------------------------------------------------------------
def baseline_text(baseline):
    """A baseline cell as text: ``""`` for an empty field (which pandas may read as NaN)."""
    return baseline if isinstance(baseline, str) else ""


def label(estimator, baseline=""):
    """``sf-baseline (loo)`` for an estimator with a baseline, else the estimator's name."""
    return io.estimator_label(estimator, baseline_text(baseline))


def labels(frame):
    """The :func:`label` of every row of a table with ``estimator`` and ``baseline`` columns."""
    baselines = frame["baseline"] if "baseline" in frame.columns else [""] * len(frame)
    return [label(e, b) for e, b in zip(frame["estimator"], baselines, strict=False)]


def color(estimator, baseline=""):
    """The colour of an estimator (with its baseline), identical in every figure.

    Known and reserved names come from :data:`ESTIMATOR_COLORS`; any other name gets a
    colour from a hash of its label, so it is stable across runs and machines.
    """
    key = label(estimator, baseline)
    for name in (key, str(estimator)):
        if name in ESTIMATOR_COLORS:
            return ESTIMATOR_COLORS[name]
    return hashed_color(key)


def hashed_color(name):
    """A stable, mid-dark colour for ``name`` (SHA-256 of the name, not Python's salted hash)."""
    from matplotlib.colors import hsv_to_rgb, to_hex

    digest = hashlib.sha256(name.encode("utf-8")).digest()
    hue = int.from_bytes(digest[:4], "big") / 2**32
    saturation = 0.55 + 0.35 * digest[4] / 255
    value = 0.55 + 0.25 * digest[5] / 255
    return to_hex(hsv_to_rgb((hue, saturation, value)))


def darker(color_, factor=0.55):
    """``color_`` darkened (for exact-value lines drawn over a Monte Carlo line)."""
    from matplotlib.colors import to_rgb

    return tuple(factor * c for c in to_rgb(color_))


def series_colors(n):
    """``n`` colours for series that are not estimators."""
    return [SERIES_COLORS[i % len(SERIES_COLORS)] for i in range(n)]


# --- log axes ------------------------------------------------------------------------------
def largest(*arrays):
    """The largest finite value over ``arrays`` (NaN when there is none)."""
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays] or [[]])
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else math.nan


def on_log(values, scale=None):
    """``values`` with what a log axis cannot honestly show replaced by NaN.

    Values <= 0 go, and so do values below :data:`NOISE_FRACTION` times ``scale`` (the
    largest value in the panel): an exact variance of 1e-34 next to one of 1 is a zero.
    """
    values = np.asarray(values, dtype=float)
    keep = values > 0
    if scale is not None and math.isfinite(scale) and scale > 0:
        keep &= values >= NOISE_FRACTION * scale
    return np.where(keep, values, np.nan)


def positive_limits(values, pad=2.0):
    """(low, high) around the positive finite ``values``, padded by a factor; None if none."""
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0])
    if v.size == 0:
        return None
    return v.min() / pad, v.max() * pad


def wants_log_x(values):
    """True for a positive grid that spans two decades or is geometric."""
    values = np.asarray(sorted(set(values)), dtype=float)
    if len(values) < 3 or np.any(values <= 0):
        return False
    steps = np.diff(np.log(values))
    return bool(values[-1] / values[0] >= 100 or np.allclose(steps, steps[0], rtol=1e-6))


def _plain():
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{v:g}")


def log_axis(axis, low, high):
    """Plain-number labels on a log axis; minor ticks labelled as the range narrows."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(_plain())
    decades = math.log10(high / low) if 0 < low < high else 99.0

    def minor(value, _):
        mantissa = round(value / 10 ** math.floor(math.log10(value) + 1e-9), 6)
        return f"{value:g}" if decades < 1.2 or mantissa in (2.0, 5.0) else ""

    axis.set_minor_formatter(FuncFormatter(minor) if decades < 3 else NullFormatter())


def log_y(ax):
    """Log y with plain-number tick labels, spanning at least a decade."""
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    if low > 0 and high / low < 10:  # at least a decade, so that ticks read sensibly
        centre = math.sqrt(low * high)
        low, high = min(low, centre / 3.2), max(high, centre * 3.2)
        ax.set_ylim(low, high)
    log_axis(ax.yaxis, low, high)
    ax.tick_params(axis="y", which="minor", labelsize=7)


def log_x(ax):
    """Log x with plain-number tick labels."""
    ax.set_xscale("log")
    log_axis(ax.xaxis, *ax.get_xlim())
    ax.tick_params(axis="x", which="minor", labelsize=7)


def no_offset(ax):
    """Plain tick labels without matplotlib's offset text (which can land on the title)."""
    from matplotlib.ticker import ScalarFormatter

    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "linear":
            axis.set_major_formatter(ScalarFormatter(useOffset=False))


# --- tables --------------------------------------------------------------------------------
def read(folder, name="results.csv", text=()):
    """A CSV table of a results folder (:func:`gradvar.io.read_csv`; ``text``: columns read
    as text)."""
    return io.read_csv(Path(folder) / name, text=text)


def objective_text(family, objective):
    """(summary, formula) of a results table's objective for titles: the registered
    entry's, or for an objective this process has not registered (a redraw by ``gradvar
    plot``) that reads as an expression (anything but a plain name, or the family's sample
    variable) what the registered expression would say, ("(expression)", its text); a
    name this process does not know (a plugin's) gives ("", None)."""
    import re

    from gradvar.model import FAMILIES, OBJECTIVES  # the package fills the registries

    obj = OBJECTIVES.get((family, objective))
    if obj is not None:
        return obj.summary, obj.formula
    fam = FAMILIES.get(family)
    text = str(objective).strip()
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", text) is not None
    if not plain or (fam is not None and text == fam.variable):
        return "(expression)", text
    return "", None

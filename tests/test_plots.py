"""The figures: one plotter per command, drawn from a results folder alone, and read as a
reader would (colours tied to estimators, nothing clipped or covered, honest log axes).

Runs are tiny: what is checked is what the figures show, not the numbers.
"""

import importlib
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import run_python

from gradvar import io, plots
from gradvar.plots import common
from gradvar.plots import compare as compare_plots
from gradvar.plots import sweep_tau as sweep_tau_plots

SAMPLES = "2000"

# one tiny run per command, and the figures its folder must get
RUNS = {
    "compare": (["compare", "--estimator", "sf,reparam"], ["variance.png"]),
    "compare-sweep": (
        ["compare", "--estimator", "sf,sf-baseline,reparam", "--objective", "linear"]
        + ["--mu", "-1:1:3"],
        ["variance-vs-mu.png"],
    ),
    "pick-one": (["pick-one", "4,5,6", "0,5,10"], ["pick-one.png"]),
    "sweep-tau": (
        ["sweep-tau", "--tau", "log:0.1:10:3"],
        ["bias_variance_mse_vs_tau.png", "bias_variance_mse_vs_tau.svg"],
    ),
    "gumbel-max": (["gumbel-max"], ["gumbel_max_frequencies.png", "relaxed_samples.png"]),
    "train": (
        ["train", "--problem", "bump", "--estimator", "exact,gumbel-softmax", "--steps", "2"],
        ["training.png"],
    ),
}


@pytest.fixture
def run(cli):
    """The suite's ``cli`` fixture (conftest.py), under this module's historical name."""
    return cli


def written(run, name, *extra):
    """Run RUNS[name] into folder ``name`` without plots; returns the folder's Path."""
    args, _ = RUNS[name]
    size = [] if args[0] == "train" else ["--samples", SAMPLES]
    result = run(*args, *size, "--out", name, "-q", "--no-plot", *extra)
    assert result.exit_code == 0, result.output
    return Path(name).resolve()


def legend_colors(fig):
    """{legend text: colour as hex} of every legend of ``fig``."""
    from matplotlib.colors import to_hex, to_rgba_array

    colors = {}
    for legend in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]:
        for text, handle in zip(legend.texts, legend.legend_handles, strict=True):
            colors[text.get_text()] = to_hex(to_rgba_array(handle.get_color())[0])
    return colors


# --- one room per command ------------------------------------------------------------------
def test_one_plot_module_per_command_with_one_contract():
    assert set(plots.PLOTTERS) == {"compare", "pick-one", "sweep-tau", "gumbel-max", "train"}
    for command, module in plots.PLOTTERS.items():
        assert module.__name__ == "gradvar.plots." + command.replace("-", "_")
        assert list(inspect.signature(module.draw).parameters) == ["folder"]
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("gradvar.plots.discrete")


@pytest.mark.parametrize("name", list(RUNS))
def test_every_plotter_draws_from_a_folder_alone(run, name):
    folder = written(run, name)
    expected = RUNS[name][1]
    assert not [p for p in folder.iterdir() if p.suffix in (".png", ".svg")]
    result = run("plot", folder)
    assert result.exit_code == 0, result.output
    for file in expected:
        assert (folder / file).stat().st_size > 10_000, file
        assert file in result.output
    first = {file: (folder / file).read_bytes() for file in expected}
    assert sorted(plots.draw(folder)) == sorted(expected)  # the library entry point too
    assert {file: (folder / file).read_bytes() for file in expected} == first  # same bytes


def test_the_command_is_guessed_when_meta_json_is_gone(run):
    for name in RUNS:
        folder = written(run, name)
        (folder / "meta.json").unlink()
        command = "compare" if name == "compare-sweep" else name
        assert plots.command_of(folder) == command


def test_plot_refuses_an_unknown_command(run):
    folder = written(run, "compare")
    meta = io.read_meta(folder)
    meta["experiment"]["command"] = "bogus"
    io.write_json(meta, folder / "meta.json")
    result = run("plot", folder)
    assert result.exit_code == 2 and "cannot draw results of 'bogus'" in result.output


def test_help_still_imports_no_matplotlib():
    code = "import sys, gradvar.cli, gradvar.plots; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- colours -------------------------------------------------------------------------------
def test_estimator_colours_are_identical_across_figures(run):
    small = compare_plots.point_figure(io.read_csv(written(run, "compare") / "results.csv"))
    sweep = written(run, "compare-sweep")
    wide = compare_plots.sweep_figure(io.read_csv(sweep / "results.csv"), "mu")
    tau = written(run, "sweep-tau")
    relaxed = sweep_tau_plots.figure(
        io.read_csv(tau / "summary.csv"), io.read_csv(tau / "best_tau.csv")
    )
    a, b, c = legend_colors(small), legend_colors(wide), legend_colors(relaxed)
    # reparam is second in one figure and third in the other: the same colour all the same
    for name in ("sf", "reparam"):
        assert a[name] == b[name] == common.color(name)
    assert b["sf-baseline (mean)"] == c["sf-baseline (mean), no tau"]
    assert c["sf, no tau"] == a["sf"]
    assert c["gumbel-softmax"] == common.color("gumbel-softmax")
    assert len({a["sf"], a["reparam"], c["gumbel-softmax"], c["st-gumbel"]}) == 4


def test_the_colour_table():
    known = ["sf", "reparam", "gumbel-softmax", "st-gumbel", "exact"]
    baselines = [common.color("sf-baseline", b) for b in ("mean", "optimal", "loo")]
    reserved = ["arm", "disarm", "rebar", "rebar-tied", "st", "reinmax", "gumbel-rao", "mvd"]
    reserved += ["mvd-coupled", "sf-delta", "reparam-delta", "relax"]
    colors = [common.color(n) for n in known + reserved] + baselines
    assert len(set(colors)) == len(colors) == 20
    assert common.color("sf-baseline", float("nan")) == common.color("sf-baseline", "mean")
    # an unknown estimator: a colour from a hash of its name, the same in another process
    code = "from gradvar.plots import common; print(common.color('my-new-estimator'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == common.color("my-new-estimator") not in colors
    assert common.color("my-new-estimator") != common.color("my-other-estimator")


# --- honest log axes -----------------------------------------------------------------------
def test_on_log_drops_zeros_and_rounding_noise():
    values = common.on_log([2.0, 0.0, -1.0, 1e-34, 1e-11, np.nan], scale=2.0)
    assert np.isnan(values[[1, 2, 3, 5]]).all() and values[0] == 2.0 and values[4] == 1e-11


def test_rounding_noise_exact_variances_are_not_drawn(run):
    results = io.read_csv(written(run, "compare-sweep") / "results.csv")
    reparam_mu = (results["estimator"] == "reparam") & (results["param"] == "mu")
    assert (results.loc[reparam_mu, "exact_var"] == 0).all()
    results.loc[reparam_mu, "exact_var"] = 1e-34  # what an exact formula's cancellation gives
    results.loc[reparam_mu, "grad_var"] = 3e-33
    fig = compare_plots.sweep_figure(results, "mu")
    panel = fig.axes[0]
    drawn = np.concatenate([line.get_ydata() for line in panel.lines]).astype(float)
    assert np.nanmin(drawn) > 1.0  # nothing near 1e-34: the axis spans the real variances
    assert panel.get_ylim()[0] > 0.1
    assert "reparam: variance 0, not on the log axis" in panel.get_title()


# --- what the sweep-tau figure says --------------------------------------------------------
def test_sweep_tau_names_the_loo_reference_and_flags_a_best_tau_at_the_grid_edge(run):
    args = ["--family", "bernoulli", "--logit", "0", "--reference", "sf-baseline"]
    args += ["--estimator", "gumbel-softmax,st-gumbel"]
    folder = written(run, "sweep-tau", *args, "--baseline", "loo", "--batch", "2")
    best = io.read_csv(folder / "best_tau.csv")
    assert best.loc[best["role"] == "swept", "at_grid_edge"].all()  # tau = 10 wins here
    fig = sweep_tau_plots.figure(io.read_csv(folder / "summary.csv"), best)
    texts = list(legend_colors(fig))
    assert "sf-baseline (loo), no tau" in texts
    # the fitted best tau (vertex of the parabola) follows the grid point in the same entry
    assert any(t.startswith("best tau gumbel-softmax: 10 (grid edge)") for t in texts), texts
    assert any("optimum may lie outside the grid" in t for t in texts)
    assert "grid edge" in [t.get_text() for t in fig.axes[2].texts]


# --- nothing clipped, nothing covered ------------------------------------------------------
def _inside(inner, outer, slack=1.0):
    return (
        inner.x0 >= outer.x0 - slack
        and inner.y0 >= outer.y0 - slack
        and inner.x1 <= outer.x1 + slack
        and inner.y1 <= outer.y1 + slack
    )


LONG_TITLE = [  # the --help example whose title and last value label used to be clipped
    "--family",
    "categorical",
    "--logits",
    "2,0.5,0.1",
    "--estimator",
    "sf,gumbel-softmax",
    "--tau",
    "0.5",
]


@pytest.mark.parametrize("name", ["compare", "compare-sweep", "sweep-tau", "gumbel-max", "train"])
def test_titles_fit_and_legends_cover_no_data(run, name, monkeypatch):
    folder = written(run, name, *(LONG_TITLE if name == "compare" else []))
    drawn = []
    monkeypatch.setattr(common, "save", lambda fig, folder_, file: drawn.append(fig) or file)
    plots.draw(folder)
    assert drawn
    for fig in drawn:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        title = getattr(fig, "_suptitle", None)
        if title is not None:  # wrapped to the figure's width
            assert _inside(title.get_window_extent(renderer), fig.bbox), title.get_text()
        assert all(ax.get_legend() is None for ax in fig.axes)  # no legend inside a panel
        for legend in fig.legends:
            box = legend.get_window_extent(renderer)
            assert _inside(box, fig.bbox)
            for ax in fig.axes:
                if ax.get_visible():
                    assert not box.overlaps(ax.get_window_extent(renderer))


# --- the drawing process (gradvar.drawer) ---------------------------------------------------
def test_the_drawing_process_is_wanted_only_by_commands_that_draw():
    from gradvar import drawer

    assert drawer.wanted(["compare", "--mu", "1"]) and drawer.wanted(["run", "x.toml"])
    for args in ([], ["list"], ["plot", "x"], ["cache", "clear"], ["compare", "--no-plot"]):
        assert not drawer.wanted(args), args
    assert not drawer.wanted(["sweep-tau", "--help"]) and not drawer.wanted(["--help"])


DRAWER_CODE = """
import sys, warnings
from pathlib import Path
from gradvar import drawer
from gradvar.plots import compare
folder, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "warns":  # before the fork: the drawing process has it too
    old = compare.draw
    def draw(folder):
        warnings.warn("drawn with a warning", UserWarning)
        return old(folder)
    compare.draw = draw
drawer.start(["compare"])
assert len(drawer._DRAWER) == 1, "no drawing process"
if mode == "gone":
    import multiprocessing
    for child in multiprocessing.active_children():
        child.kill()
        child.join()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
        names = drawer.draw_command("compare", folder)
    except Exception as exc:
        print("raised", type(exc).__name__, exc)
    else:
        print("drew", names, "by the drawing process:", bool(drawer._DRAWER))
print("warnings", [str(w.message) for w in caught])
"""


def drawn_by_process(folder, mode):
    """Run DRAWER_CODE on ``folder`` in a fresh interpreter (which may fork); its output."""
    code = DRAWER_CODE.replace("sys.argv[1]", repr(str(folder))).replace("sys.argv[2]", repr(mode))
    return run_python(code).strip().splitlines()


LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="drawer: Linux only")


@LINUX
@pytest.mark.parametrize("mode", ["plain", "gone", "warns"])
def test_the_drawing_process_draws_what_the_command_would(run, mode, tmp_path):
    folder = written(run, "compare")
    here = tmp_path / "here"
    shutil.copytree(folder, here)
    assert plots.draw_command("compare", here) == ["variance.png"]
    (folder / "variance.png").unlink(missing_ok=True)
    drew, warned = drawn_by_process(folder, mode)
    assert drew == f"drew ['variance.png'] by the drawing process: {mode != 'gone'}"
    assert warned == ("warnings ['drawn with a warning']" if mode == "warns" else "warnings []")
    assert (folder / "variance.png").read_bytes() == (here / "variance.png").read_bytes()


@LINUX
def test_a_figure_that_fails_in_the_drawing_process_raises_as_it_would_here(run):
    folder = written(run, "compare")
    (folder / "results.csv").write_text("estimator,param\nsf,mu\n")  # no numbers to draw
    with pytest.raises(Exception) as here:
        plots.draw_command("compare", folder)
    drew, warned = drawn_by_process(folder, "plain")
    assert drew == f"raised {type(here.value).__name__} {here.value}"
    assert warned == "warnings []"


def test_the_console_script_forks_a_drawing_process_only_to_draw():
    code = (
        "import sys; from gradvar import __main__ as m, drawer; sys.argv = ['gradvar', %r]\n"
        "try: m.main()\nexcept SystemExit: pass\nprint(len(drawer._DRAWER))"
    )
    assert run_python(code % "list").strip().splitlines()[-1] == "0"
    assert run_python(code % "--version").strip().splitlines()[-1] == "0"


LIFE_CODE = """
import os, signal, sys, time
from pathlib import Path
from gradvar import drawer
from gradvar.plots import compare
folder, mode = Path(sys.argv[1]), sys.argv[2]
old = compare.draw
def draw(folder):  # before the fork: the drawing process has it too
    (folder / "drawn_by").write_text(str(os.getpid()))
    if mode == "interrupted":
        time.sleep(60)
    return old(folder)
compare.draw = draw
drawer.start(["compare"])
import multiprocessing
(process,) = multiprocessing.active_children()
print(process.pid, flush=True)
if mode == "gone":  # as after Ctrl-C (interrupt.leave) or SIGKILL: no interpreter shutdown
    os._exit(0)
if mode == "expression":  # registered here after the fork: not in the drawing process
    from gradvar.model import expressions, registry
    expressions.objective_for(registry.FAMILIES["normal"], "exp(-k*z**2)", ["k"])
    drawer.draw_command("compare", folder)
    print(int((folder / "drawn_by").read_text()) == os.getpid())
if mode == "interrupted":  # Ctrl-C once the drawing process draws (however slow its start)
    def ctrl_c(signum, frame):
        if (folder / "drawn_by").exists() or time.monotonic() > started + 60:
            raise KeyboardInterrupt
        signal.setitimer(signal.ITIMER_REAL, 0.1)
    started = time.monotonic()
    signal.signal(signal.SIGALRM, ctrl_c)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        drawer.draw_command("compare", folder)
    except KeyboardInterrupt:
        print(process.is_alive(), sorted(p.name for p in folder.iterdir()))
    os._exit(0)
"""


def _life(folder, mode):
    code = LIFE_CODE.replace("sys.argv[1]", repr(str(folder))).replace("sys.argv[2]", repr(mode))
    return run_python(code).strip().splitlines()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@LINUX
def test_the_drawing_process_ends_when_the_command_is_gone(run):
    """Gone without its interpreter's shutdown (after Ctrl-C, kill -9): the drawing process
    reads EOF and ends (it must not hold a copy of the command's end of the pipe)."""
    import os
    import signal
    import time

    (pid,) = _life(written(run, "compare"), "gone")
    pid = int(pid)
    try:
        deadline = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "the drawing process outlived the command"
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@LINUX
def test_ctrl_c_while_drawing_stops_the_drawing_process(run):
    folder = written(run, "compare")
    pid, line = _life(folder, "interrupted")
    assert line == f"False {sorted(p.name for p in folder.iterdir())}"  # no temporary file
    assert "drawn_by" in line


@LINUX
def test_an_expression_registered_by_the_command_leaves_the_figure_to_the_drawing_process(run):
    """A figure titles an expression alike whether it is registered or not (the redraw test
    below): the drawing process, forked before the command registered it, draws it."""
    folder = written(run, "compare")
    pid, here = _life(folder, "expression")
    assert here == "False"
    assert (folder / "variance.png").exists()


COUNTED_CODE = """
import contextlib, io, sys, warnings
from gradvar import __main__ as m
from gradvar.plots import compare
old = compare.draw
def draw(folder):  # before the fork: the drawing process has it too
    for _ in range(3):
        warnings.warn("drawn with a warning", RuntimeWarning)
    return old(folder)
compare.draw = draw
sys.argv = ["gradvar", "compare", "--samples", "1e3", "--out", sys.argv[1]]
err = io.StringIO()
with contextlib.redirect_stderr(err):
    try:
        m.main()
    except SystemExit as stop:
        assert stop.code in (0, None), err.getvalue()
print(err.getvalue())
"""


@LINUX
def test_warnings_of_the_drawing_process_are_counted_as_the_commands_own(tmp_path):
    """The command counts every warning of its run and figures ("always"): the drawing
    process applies the command's filters as they are when it asks, not those of its fork."""
    out = tmp_path / "o"
    err = run_python(COUNTED_CODE.replace("sys.argv[1]", repr(str(out))))
    assert "note: 3 numerical warning(s) while running" in err, err
    assert (out / "variance.png").exists()


def test_a_redraw_of_an_expression_folder_keeps_its_title(tmp_path):
    """``gradvar plot`` in a fresh process (the expression not registered there) draws the
    figure of the run byte for byte; the titles say the same registered or not."""
    from gradvar.model import expressions, registry
    from gradvar.plots import common, compare

    def gradvar(*args):
        proc = subprocess.run(
            [sys.executable, "-m", "gradvar", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    run = ["compare", "--objective", "exp(-k*z**2)", "--set", "k=1", "--mu", "-1,1"]
    gradvar(*run, "--samples", "1e3", "--estimator", "sf,reparam", "--out", "o", "-q")
    first = (tmp_path / "o" / "variance-vs-mu.png").read_bytes()
    (tmp_path / "o" / "variance-vs-mu.png").unlink()
    gradvar("plot", "o", "-q")
    assert (tmp_path / "o" / "variance-vs-mu.png").read_bytes() == first
    fam = registry.FAMILIES["normal"]
    for text, names in [("exp(-k*z**2)", ["k"]), ("2", []), ("z", []), ("z>0", [])]:
        table = io.read_csv(tmp_path / "o" / "results.csv").assign(objective=text)
        key = ("normal", text)
        registry.OBJECTIVES.pop(key, None)
        unregistered = compare.describe(table), common.objective_text("normal", text)
        expressions.objective_for(fam, text, names)
        try:
            assert compare.describe(table) == unregistered[0]  # "... (expression) ..."
            assert (
                common.objective_text("normal", text) == unregistered[1] == ("(expression)", text)
            )
        finally:
            registry.OBJECTIVES.pop(key, None)
    assert common.objective_text("normal", "my-obj") == ("", None)  # a plugin's, not loaded
    assert common.objective_text("normal", "quadratic")[1] == "(z-k)^2"


def test_many_coordinates_of_one_vector_are_ticked_by_index():
    """16 labels "d/dlogits[10]" ... ran into each other (multibernoulli_100's figure)."""
    from gradvar.plots.compare import _coordinate_ticks

    many = [f"logits[{i}]" for i in range(16)]
    assert _coordinate_ticks(many) == (
        [f"[{i}]" for i in range(16)],
        "gradient coordinate d/dlogits[i]",
    )
    assert _coordinate_ticks(["mu", "sigma"]) == (["d/dmu", "d/dsigma"], "gradient coordinate")
    few = [f"logits[{i}]" for i in range(3)]
    assert _coordinate_ticks(few)[0] == ["d/dlogits[0]", "d/dlogits[1]", "d/dlogits[2]"]


def test_a_tau_sweep_title_does_not_end_in_a_bare_tau(tmp_path):
    """tau swept: the axis names it; the title said '..., tau' with no value."""
    from gradvar.plots.compare import describe

    res = gradvar_compare_table(tmp_path, "--tau", "0.5,1")
    assert not describe(res, free=["tau"]).endswith(", tau")
    assert describe(res.iloc[:1]).endswith(", tau=0.5")


def gradvar_compare_table(tmp_path, *args):
    from click.testing import CliRunner

    from gradvar.cli import main

    out = tmp_path / "o"
    base = ["compare", "--family", "categorical", "--estimator", "gumbel-softmax"]
    result = CliRunner().invoke(
        main, [*base, "--samples", "100", "--no-plot", "-q", "--out", str(out), *args]
    )
    assert result.exit_code == 0, result.output
    return io.read_csv(out / "results.csv")

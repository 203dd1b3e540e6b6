"""Figures drawn from a results folder's CSV tables alone (never runs an experiment).

One module per command, named like the command (``gradvar/plots/sweep_tau.py`` draws the
``sweep-tau`` folders), each with one entry point, ``draw(folder) -> list[str]``: it reads the
folder's own CSV files, writes its figures into the folder and returns their file names.
:data:`PLOTTERS` maps a command to its module; :func:`draw` redraws any results folder, and
:func:`draw_command` draws a folder that is still being written (no ``meta.json`` yet).
Shared pieces (figure creation, saving, one colour per estimator, log axes, labels) are in
:mod:`gradvar.plots.common`.  No module imports matplotlib until it draws.
"""

from pathlib import Path

from gradvar import io
from gradvar.plots import compare, gumbel_max, pick_one, survey, sweep_tau, train

PLOTTERS = {
    "compare": compare,
    "pick-one": pick_one,
    "sweep-tau": sweep_tau,
    "gumbel-max": gumbel_max,
    "train": train,
}

# Figures of multi-run folders (a runs.json naming the figure and the runs' sub-folders)
GROUP_PLOTTERS = {"survey": survey}


def command_of(folder):
    """The command that wrote ``folder``: meta.json's ``experiment.command``, or a guess from
    the files and columns when there is no meta.json (a folder of CSV files alone)."""
    meta = io.read_meta(folder)
    experiment = meta.get("experiment") if isinstance(meta, dict) else None
    command = experiment.get("command") if isinstance(experiment, dict) else None
    if command is not None:
        return command
    folder = Path(folder)
    if (folder / "relaxed.csv").exists():
        return "gumbel-max"
    if (folder / "best_tau.csv").exists():
        return "sweep-tau"
    with open(folder / "results.csv", encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
    if "values" in header:
        return "pick-one"
    if "step" in header and "problem" in header:
        return "train"
    return "compare"


def draw_command(command, folder):
    """Draw the figures of ``command`` from the CSV files in ``folder``; returns file names."""
    if command not in PLOTTERS:
        raise KeyError(
            f"no plotter for command {command!r}; there are plotters for: " + ", ".join(PLOTTERS)
        )
    return PLOTTERS[command].draw(folder)


def draw(folder):
    """Redraw the figures of the results folder ``folder``; returns the file names."""
    return draw_command(command_of(folder), folder)


def draw_group(folder):
    """Redraw a multi-run folder: every run's own figures, then the figure drawn from all of
    them; returns the file names (the runs' prefixed by their sub-folder)."""
    import json

    with open(Path(folder) / "runs.json", encoding="utf-8") as fh:
        manifest = json.load(fh)
    names = []
    for run in manifest["runs"]:
        names += [f"{run}/{name}" for name in draw(Path(folder) / run)]
    return names + GROUP_PLOTTERS[manifest["figure"]].draw(folder)

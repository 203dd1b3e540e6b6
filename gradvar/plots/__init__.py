"""Figures drawn from a results folder's tables (Matplotlib's Figure API)."""

from pathlib import Path


def draw_command(command, folder):
    """The figures of a ``command`` results folder, drawn from its CSV files; their names."""
    from gradvar import io
    from gradvar.plots import compare

    folder = Path(folder)
    return compare.PLOTTERS[command](io.read_csv(folder / "results.csv"), folder)


def draw(folder):
    """``gradvar.plot``: redraw a results folder's figures from its CSV files; their names."""
    from gradvar import io

    command = io.read_meta(folder).get("experiment", {}).get("command", "compare")
    return draw_command(command, folder)

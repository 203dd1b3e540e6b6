"""``gradvar plot DIR``: redraw a results folder's plots from its CSV files alone."""

from pathlib import Path

import click

from gradvar.cli import common


@click.command("plot")
@click.argument(
    "folders",
    nargs=-1,
    required=True,
    metavar="DIR...",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@common.plugin_option
def plot_command(folders, quiet, plugin):
    """Redraw the plots of one or more results folders from their CSV files.

    The command that made a folder is read from its meta.json (or guessed from its files
    and the columns of results.csv); nothing is re-run. Plots are replaced file by file,
    atomically. A folder made with a plugin is drawn with its titles in full when the
    plugin is given again (--plugin).

    \b
    Examples:
      gradvar compare --estimator sf,reparam --mu -2:2:5 --out results/shift
      gradvar plot results/shift
      gradvar plot --plugin examples/exponential.py results/exp
    """
    for folder in folders:
        for text in unloaded_plugins(folder, plugin):
            common.note(
                f"note: {folder} was made with the plugin {text}; its titles may differ", quiet
            )
        if (folder / "runs.json").is_file():  # a multi-run folder (gradvar run, [[run]] tables)
            with common.running_errors():
                from gradvar import plots

                names = plots.draw_group(folder)
            if not quiet:
                common.echo_files(folder, names)
            continue
        with common.usage_errors():
            command = check(folder)
            names = draw(command, folder)
        if not quiet:
            common.echo_files(folder, names)


def unloaded_plugins(folder, records):
    """Notes on the plugins ``folder``'s meta.json names that are not loaded here as they
    were (``records``: :func:`gradvar.plugins.records` of ``--plugin``): absent, or given
    with other content (sha256)."""
    import os

    from gradvar import io

    try:
        meta = io.read_meta(folder)
    except (ValueError, OSError):
        return []  # a damaged meta.json is reported by check()
    experiment = meta.get("experiment") if isinstance(meta, dict) else None
    named = experiment.get("plugins") if isinstance(experiment, dict) else None
    if not isinstance(named, list):
        return []
    loaded = [r for r in records or () if isinstance(r, dict)]
    shas = {r.get("sha256") for r in loaded}
    names = {os.path.basename(str(r.get("path"))) for r in loaded}  # a path may be relative
    notes = []
    for record in named:
        if not isinstance(record, dict) or record.get("sha256") in shas:
            continue
        path = str(record.get("path"))
        if os.path.basename(path) in names:
            notes.append(f"{path} has changed since the run")
        else:
            notes.append(f"{path} was not given (--plugin FILE.py)")
    return notes


def draw(command, folder):
    """Draw a checked folder; a table that lacks a column or holds text where a number
    belongs is bad input naming the folder's CSV, not a traceback."""
    from gradvar import plots
    from gradvar.spec import SpecError

    try:
        with common.running_errors():
            return plots.draw_command(command, folder)
    except click.ClickException as err:
        cause = err.__cause__
        if isinstance(cause, (KeyError, AttributeError)):  # a row's missing field
            column = cause.args[0] if isinstance(cause, KeyError) else cause.name
            raise SpecError(
                f"cannot draw {folder}: its results.csv (or another of its CSV files) "
                f"has no column {column!r}"
            ) from None
        if isinstance(cause, (ValueError, TypeError)):
            raise SpecError(
                f"cannot draw {folder}: its results.csv does not hold {command} "
                f"results ({type(cause).__name__}: {cause})"
            ) from None
        raise


def check(folder):
    """The command of a results folder, after checking that it can be drawn; usage errors
    name what is missing."""
    from gradvar import io, plots
    from gradvar.spec import SpecError

    path = Path(folder) / "results.csv"
    if not path.is_file():
        raise SpecError(f"{folder} is not a results folder: it has no results.csv file")
    meta = Path(folder) / "meta.json"
    if meta.exists() and not meta.is_file():
        raise SpecError(f"{meta} is not a file")
    try:
        if meta.exists() and not isinstance(io.read_meta(folder), dict):
            raise SpecError(f"{meta}: expected a JSON object")
        command = plots.command_of(folder)
        results = io.read_csv(path)
    except (ValueError, OSError) as err:  # includes JSON and CSV parse errors
        raise SpecError(f"cannot read {folder}: {err}") from None
    if command not in plots.PLOTTERS:
        raise SpecError(
            f"gradvar plot cannot draw results of {command!r} yet; it draws: "
            + ", ".join(plots.PLOTTERS)
        )
    if results.empty:
        raise SpecError(f"{path} has no rows")
    return command

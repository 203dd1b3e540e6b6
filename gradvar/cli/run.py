"""``gradvar run``: declarative experiments, each regenerating ``results/<name>/``.

An experiment is a TOML file (``experiments/NAME.toml``) or the ``experiment`` object of a
results folder's ``meta.json``: a ``command`` key and the command's options under their own
names (``estimator = "sf,reparam"``, ``mu = "-4:4:17"``, ``[set] k = 0.5``, ``no-plot = true``).
``run`` may replace an existing results folder: the old one stays in place until the new one
is complete.
"""

import importlib
import inspect
import json
import sys
import time
from pathlib import Path

import click

from gradvar.cli import common

# command name -> module in gradvar.cli with ``<name>_command`` and ``execute``
COMMANDS = {
    "compare": "compare",
    "pick-one": "pick_one",
    "train": "train",
    "sweep-tau": "sweep_tau",
    "gumbel-max": "gumbel_max",
}
NOT_KEYS = {
    "out",
    "force",
    "quiet",
    "help",
}  # options of a single invocation, not of the experiment
EXAMPLES = """
\b
Examples:
  gradvar run experiments/mean_shift.toml
  gradvar run --all
  gradvar run results/compare-20261122-101500/meta.json --out results/rerun
"""


def _module(command):
    return importlib.import_module(f"gradvar.cli.{COMMANDS[command]}")


def allowed_keys(command):
    """The experiment keys of a command: its options' names as typed on the command line."""
    cmd = getattr(_module(command), f"{COMMANDS[command]}_command")
    keys = {"command"}
    for param in cmd.params:
        if isinstance(param, click.Option):
            keys.add(max(param.opts, key=len).lstrip("-"))
        else:
            keys.add(param.name)
    return keys - NOT_KEYS


def load(path):
    """The experiment dict of a TOML file, a meta.json or a results folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "meta.json"
    if not path.exists():
        raise click.UsageError(f"{path}: no such file")
    try:
        if path.suffix == ".json":
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            data = data.get("experiment", data)
        else:
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover
                import tomli as tomllib
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
    except (ValueError, OSError) as err:
        raise click.UsageError(f"{path}: cannot read: {err}") from None
    return validate_keys(data, path)


def validate_keys(data, path):
    """Reject a missing or unknown command and unknown keys, naming the file and key."""
    if not isinstance(data, dict) or "command" not in data:
        raise click.UsageError(f"{path}: missing key 'command' (one of: {', '.join(COMMANDS)})")
    command = data["command"]
    if command not in COMMANDS:
        from gradvar.spec import suggest

        raise click.UsageError(
            f"{path}: unknown command {command!r}." + suggest(str(command), COMMANDS)
        )
    keys = allowed_keys(command)
    for key in data:
        if key not in keys:
            from gradvar.spec import suggest

            raise click.UsageError(
                f"{path}: unknown key {key!r} for command {command!r}." + suggest(key, sorted(keys))
            )
    return dict(data)


def default_target(path):
    """results/<file stem>/ for a TOML file; results/<folder name>/ for a meta.json."""
    path = Path(path)
    if path.is_dir():
        return Path("results") / path.name
    if path.name == "meta.json":
        return Path("results") / path.parent.name
    return Path("results") / path.stem


@click.command("run", epilog=EXAMPLES)
@click.argument("files", nargs=-1, type=click.Path(path_type=Path), metavar="FILE...")
@click.option("--all", "run_all", is_flag=True, help="Run every experiments/*.toml.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Results folder (one FILE only). [default: results/<file stem>/]",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notes on stderr.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue interrupted runs from their DIR.partial/ "
    "(compare and sweep-tau save finished cells as they go).",
)
def run_command(files, run_all, out, quiet, resume):
    """Run declarative experiments: each FILE writes results/<file stem>/.

    A FILE is a TOML experiment (a `command` key and the command's options by name) or a
    results folder's meta.json, whose `experiment` object is valid input.  An existing
    results folder is replaced, but only once the new one is complete.
    """
    files = list(files)
    if run_all:
        files += sorted(Path("experiments").glob("*.toml"))
        if not files:
            raise click.UsageError("--all: no experiments/*.toml under the current folder")
    if not files:
        raise click.UsageError("give FILE... or --all")
    if out is not None and len(files) > 1:
        raise click.UsageError("--out needs exactly one FILE")
    experiments = [(f, load(f)) for f in files]  # every file is checked before anything runs
    timings = []
    for path, experiment in experiments:
        target = out or default_target(path)
        common.note(f"== {path} -> {target}/", quiet)
        t0 = time.perf_counter()
        try:
            _execute(experiment, target, resume, quiet)
        except click.UsageError as err:
            raise click.UsageError(f"{path}: {err.message}") from None
        timings.append((path, time.perf_counter() - t0))
    if len(timings) > 1:
        click.echo("\nTime per experiment:")
        for path, seconds in timings:
            click.echo(f"  {seconds:8.1f} s  {path}")
        click.echo(f"  {sum(s for _, s in timings):8.1f} s  total")


def run_experiment(path, out=None, resume=False, quiet=True):
    """Python API (``gradvar.run``): run one experiment file; return its results folder."""
    target = Path(out) if out is not None else default_target(path)
    _execute(load(path), target, resume, quiet)
    return target


def _execute(experiment, target, resume, quiet):
    """Run a loaded experiment into ``target``, replacing it once the new one is complete."""
    execute = _module(experiment["command"]).execute
    extra = {"resume": resume} if "resume" in inspect.signature(execute).parameters else {}
    execute(dict(experiment), out=target, force=True, quiet=quiet, **extra)

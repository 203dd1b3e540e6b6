"""``gradvar run``: declarative experiments, each regenerating ``results/<name>/``.

The file format is the studies' (:mod:`gradvar.studies.experiments`): this module only
parses the command line, validates every file before any runs, and runs each through its
command's CLI module (which prints its table).
"""

import importlib
import time
from pathlib import Path

import click

from gradvar.cli import common

EXAMPLES = """
\b
Examples:
  gradvar run experiments/mean_shift.toml
  gradvar run experiments/survey_figure2.toml
  gradvar run --all
  gradvar run results/compare-20261122-101500/meta.json --out results/rerun
"""


@click.command("run", epilog=EXAMPLES)
@click.argument("files", nargs=-1, type=click.Path(path_type=Path), metavar="FILE...")
@click.option("--all", "run_all", is_flag=True, help="Run every experiments/*.toml.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Results folder (one FILE only). [default: results/<file stem>/]",
)
@click.option(
    "--force", is_flag=True, help="Let a meta.json replace the results folder it came from."
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notes on stderr.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue interrupted runs from their DIR.partial/ "
    "(every command saves finished work as it goes: cells, trajectories, draws).",
)
@common.trust_plugins_option
@common.scheduler_option
def run_command(files, run_all, out, force, quiet, resume, trust_plugins, scheduler):
    """Run declarative experiments: each FILE writes results/<file stem>/.

    A FILE is a TOML experiment (a `command` key and the command's options by name) or a
    results folder's meta.json, whose `experiment` object is valid input.  A TOML file with
    `[[run]]` tables holds several runs (each with a `name`; keys outside the tables are
    shared) drawn into one `figure`: run NAME writes results/<file stem>/NAME/.  Every file is
    checked (keys and values) before any runs.  An existing results folder is replaced,
    but only once the new one is complete.
    """
    from gradvar.studies import STUDIES, experiments, study

    files = list(files)
    if run_all:
        files += sorted(Path("experiments").glob("*.toml"))
        if not files:
            raise click.UsageError("--all: no experiments/*.toml under the current folder")
    if not files:
        raise click.UsageError("give FILE... or --all")
    with common.usage_errors():
        if scheduler:
            from gradvar import executor

            scheduler = executor.parse(scheduler)
        # every file is checked before anything runs
        loaded = experiments.load_all(files, out, force, trust_plugins)
    timings = []
    for exp in loaded:
        common.note(f"== {exp.path} -> {exp.target}/", quiet)
        t0 = time.perf_counter()
        module = importlib.import_module(f"gradvar.cli.{STUDIES[exp.data['command']]}")
        on = {}
        if scheduler and study(exp.data["command"]).distributed:
            on["scheduler"] = scheduler
        elif scheduler:
            common.note(f"note: --scheduler: {exp.data['command']} runs here", quiet)
        try:
            module.execute(
                dict(exp.data), out=exp.target, force=True, quiet=quiet, resume=resume, **on
            )
        except click.UsageError as err:
            raise click.UsageError(f"{exp.path}: {err.message}") from None
        if exp.group is not None and exp.target.name == exp.group.names[-1]:
            with common.running_errors():
                names = experiments.finish(exp.group)
            if not quiet:
                common.echo_files(exp.group.target, names)
        timings.append((exp.target, time.perf_counter() - t0))
    if len(timings) > 1:
        click.echo("\nTime per experiment:")
        for path, seconds in timings:
            click.echo(f"  {seconds:8.1f} s  {path}")
        click.echo(f"  {sum(s for _, s in timings):8.1f} s  total")

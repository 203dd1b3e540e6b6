"""What every command shares: option bundles (family parameters and estimator options
generated from the registries), error conversion (bad input: exit 2; failure while
running: exit 1), the progress bar, and :func:`run_study`, which runs a study into its
results folder and prints its table.

Imports here are click, the standard library and the registries (numpy only), so
``gradvar --help`` stays fast.
"""

import os
import shlex
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import click


# --- option bundles --------------------------------------------------------------------------
def parse_sets(ctx, param, values):
    """``--set KEY=VALUE`` (repeatable) -> {KEY: VALUE text}."""
    sets = {}
    for item in values:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise click.BadParameter(
                f"expected KEY=VALUE (for example k=0.5), got {item!r}", ctx=ctx, param=param
            )
        if key in sets:
            raise click.BadParameter(f"{key!r} is set twice", ctx=ctx, param=param)
        sets[key] = value
    return sets


def _stack(*decorators):
    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


def _family_parameter_options():
    """One option per family parameter, generated from the registry (the first family
    declaring a name gives its help; the others are named beside it)."""
    from gradvar.model import FAMILIES

    declared = {}
    for fam in FAMILIES.values():
        for p in fam.params:
            declared.setdefault(p.name, []).append((fam, p))
    import numpy as np

    options = []
    for name, entries in declared.items():
        fam, p = entries[0]
        families = ", ".join(f.name for f, _ in entries)
        default = (
            ",".join(f"{v:g}" for v in np.atleast_1d(p.default_for(0)))
            if not callable(p.default)
            else "per family"
        )
        what = "a comma list" if p.vector else "a list sweeps it: 1,2,3 or START:STOP:COUNT"
        positive = " (> 0)" if p.positive else ""
        options.append(
            click.option(
                f"--{name}",
                metavar="VECTOR" if p.vector else "VALUES",
                help=f"{p.help[:1].upper()}{p.help[1:]}{positive} of the {families} family; "
                f"{what}. [default: {default}]",
            )
        )
    return options


def other_estimator_options(func):
    """The estimator options other than tau, for a command with its own --tau."""
    return _stack(*estimator_option_options(skip=("tau",)))(func)


def family_parameter_options(func):
    """The family parameter options and the generic ``--param NAME=VALUES``."""
    return _stack(
        *_family_parameter_options(),
        click.option(
            "--param",
            "params",
            multiple=True,
            callback=parse_sets,
            metavar="NAME=VALUES",
            help="Any family parameter by name, repeatable (a plugin family's too): "
            "--param mu=-4:4:17.",
        ),
    )(func)


def estimator_option_options(skip=()):
    """One option per registered estimator option (tau, ...), from its declaration; those
    named in ``skip`` are left to the command."""
    from gradvar.model import ESTIMATORS, OPTIONS

    options = []
    for opt in OPTIONS.values():
        if opt.name in skip:
            continue
        users = ", ".join(n for n, e in ESTIMATORS.items() if e.uses(opt.name))
        options.append(
            click.option(
                opt.flag,
                opt.name,
                metavar="VALUES",
                help=f"{opt.help} (read by {users}); a list sweeps it: log:0.01:10:15. "
                f"[default: {opt.default:g}]",
            )
        )
    return options


def load_plugins(ctx, param, values):
    """``--plugin FILE.py`` (repeatable), imported as soon as it is parsed: the records."""
    from gradvar import plugins
    from gradvar.spec import SpecError

    try:
        return plugins.records(list(values))
    except SpecError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from None


def plugin_option(func):
    """--plugin FILE.py, repeatable: a Python file registering families, objectives,
    estimators or baselines (gradvar.model.registry).  It is imported after the options
    were built, so its families' parameters and its estimator options are given with
    ``--param NAME=VALUES``."""
    return click.option(
        "--plugin",
        "plugin",
        multiple=True,
        is_eager=True,
        callback=load_plugins,
        type=click.Path(dir_okay=False),
        metavar="FILE.py",
        help="Python file registering families, objectives or estimators (repeatable); "
        "its family parameters go in --param NAME=VALUES.",
    )(func)


def trust_plugins_option(func):
    return click.option(
        "--trust-plugins",
        is_flag=True,
        help="Run the plugins (Python code) an experiment file names in its `plugins` key.",
    )(func)


def experiment_options(func):
    """Family, objective, estimator and parameter options (docs/math.md, the contract)."""
    from gradvar import defaults
    from gradvar.model import BASELINES, FAMILIES

    return _stack(
        plugin_option,
        click.option(
            "--family",
            default="normal",
            show_default=True,
            metavar="NAME",
            help=f"Distribution p_theta: {', '.join(FAMILIES)}.",
        ),
        click.option(
            "--objective",
            metavar="NAME",
            help="Objective f: a name or an expression such as 'exp(-k*z**2)' with --set "
            "k=1 (see `gradvar list`). [default: "
            + "; ".join(f"{f.name} {f.default_objective}" for f in FAMILIES.values())
            + "]",
        ),
        click.option(
            "--set",
            "sets",
            multiple=True,
            callback=parse_sets,
            metavar="KEY=VALUE",
            help="Objective parameter, repeatable: --set k=0.5, --set w=1,2,3. "
            "A list of a scalar parameter sweeps it: --set k=-3:3:7.",
        ),
        click.option(
            "--estimator",
            metavar="LIST",
            help="Comma list of estimators (see `gradvar list`). [default: "
            + "; ".join(f"{f.name} {','.join(f.default_estimators)}" for f in FAMILIES.values())
            + "]",
        ),
        click.option(
            "--baseline",
            default=defaults.BASELINE,
            show_default=True,
            metavar="LIST",
            help=f"Baseline of sf-baseline: {', '.join(BASELINES)} (loo needs --batch >= 2); "
            "a list runs each on the same noise.",
        ),
        family_parameter_options,
        *estimator_option_options(),
        click.option(
            "--batch",
            default=str(defaults.BATCH),
            show_default=True,
            metavar="M",
            help="Samples averaged into one estimate; a list sweeps it.",
        ),
    )(func)


def run_options(samples="1e6", threads=True):
    """--samples, --seed and (for commands that run the engine) --threads."""
    options = [
        click.option(
            "--samples",
            default=samples,
            show_default=True,
            metavar="N",
            help="Independent estimates per cell (accepts 1e6).",
        ),
        click.option(
            "--seed",
            default="0",
            show_default=True,
            metavar="S",
            help="Seed; the same seed gives the same results.csv.",
        ),
    ]
    if threads:
        options.append(
            click.option(
                "--threads",
                type=click.IntRange(min=1),
                metavar="T",
                help="Worker threads. [default: all cores]",
            )
        )
    return _stack(*options)


def output_options(func):
    """--out, --force, --quiet and --no-plot."""
    return _stack(
        click.option(
            "--out",
            type=click.Path(file_okay=False, path_type=Path),
            metavar="DIR",
            help="Results folder. [default: results/<command>-<timestamp>/]",
        ),
        click.option(
            "--force", is_flag=True, help="Replace DIR if it is a results folder (has meta.json)."
        ),
        click.option(
            "--quiet",
            "-q",
            is_flag=True,
            help="No progress bar or notes on stderr (the table still prints).",
        ),
        click.option("--no-plot", "no_plot", is_flag=True, help="Write the CSVs but no plots."),
    )(func)


def resume_option(func):
    """--resume, for commands that save finished cells as they go."""
    return click.option(
        "--resume",
        is_flag=True,
        help="Continue an interrupted run from DIR.partial/ instead of starting over.",
    )(func)


def scheduler_option(func):
    """--scheduler ADDRESS (or DASK_SCHEDULER_ADDRESS): run the cells on a Dask cluster."""
    return click.option(
        "--scheduler",
        envvar="DASK_SCHEDULER_ADDRESS",
        metavar="ADDRESS",
        help="Run the cells on a Dask cluster: tcp://HOST:PORT of a running scheduler, or "
        "local[:N] for N worker processes here (needs pip install 'gradvar[dask]'); the "
        "same results.csv as a local run. [default: $DASK_SCHEDULER_ADDRESS, else local "
        "threads]",
    )(func)


# --- errors --------------------------------------------------------------------------------
@contextmanager
def usage_errors():
    """Turn bad input into click usage errors (exit status 2, one line naming the problem)."""
    from gradvar import io
    from gradvar.spec import SpecError

    try:
        yield
    except (SpecError, io.FolderExistsError) as err:
        raise click.UsageError(str(err)) from None


@contextmanager
def running_errors():
    """Turn a failure while running into a one-line error with exit status 1.

    Set GRADVAR_DEBUG=1 to see the traceback instead.
    """
    from gradvar import io

    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except io.FolderExistsError as err:  # another run holds or took the folder
        raise click.UsageError(str(err)) from None
    except Exception as err:
        if os.environ.get("GRADVAR_DEBUG"):
            raise
        raise click.ClickException(
            f"{type(err).__name__}: {err} (set GRADVAR_DEBUG=1 for the traceback)"
        ) from err


# --- output --------------------------------------------------------------------------------
def command_line():
    """The command line as typed (argv), for meta.json."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "gradvar"
    return " ".join(
        [prog if prog != "__main__.py" else "gradvar"] + [shlex.quote(a) for a in sys.argv[1:]]
    )


def note(message, quiet):
    """An informational line on stderr, silenced by --quiet."""
    if not quiet:
        click.echo(message, err=True)


def echo_files(folder, names):
    """Print the files written, one per line, after the table."""
    click.echo(f"\nWrote {folder}{os.sep}")
    for name in names:
        click.echo(f"  {Path(folder) / name}")


@contextmanager
def progress_bar(total, quiet, desc, unit="est"):
    """A tqdm bar on stderr counting ``unit`` (estimates; train: trajectories); yields its
    update function (None if quiet).

    The bar draws only when stderr is a terminal (tqdm's ``disable=None``), so logs and
    pipes do not fill with carriage returns.
    """
    if quiet:
        yield None
        return
    from tqdm import tqdm

    with tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        leave=False,
        disable=None,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.2,
    ) as bar:
        yield bar.update


def experiment_of(command, options, sets=None, params=None):
    """The experiment dict of a command's Click options: keys as on the command line
    (``no_plot`` -> ``no-plot``), unset options left out so the study fills its defaults."""
    experiment = {"command": command}
    for name, value in options.items():
        if name == "plugin":  # the records of the plugins --plugin loaded
            if value:
                experiment["plugins"] = list(value)
            continue
        if value is None or value is False:
            continue
        key = name.replace("_", "-") if name in ("no_plot", "train_positions") else name
        experiment[key] = value
    if sets:
        experiment["set"] = sets
    if params:
        experiment["param"] = params
    return experiment


# --- running a study ---------------------------------------------------------------------------
def jump_notes(spec):
    """A note when the objective may jump and a pathwise estimator runs: it may be biased."""
    plan = getattr(spec, "plan", None)
    if plan is None or not plan.objective.jumps:
        return []
    from gradvar.model import registry

    pathwise = [e.name for e in plan.estimators if registry.biased_by_a_jump(plan.objective, e)]
    if not pathwise:
        return []
    return [
        f"note: f = {plan.objective.name} may jump (a comparison or a discontinuous where): "
        f"the pathwise estimator{'s' if len(pathwise) > 1 else ''} {', '.join(pathwise)} "
        f"may be biased; the bias column shows it"
    ]


def run_study(
    command,
    experiment,
    out=None,
    force=False,
    quiet=False,
    resume=False,
    table=None,
    on_step=None,
    scheduler=None,
):
    """Run a command's study into its results folder; print ``table(tables)`` and the files.

    Bad input is a usage error (exit 2) before anything runs or is written; a failure while
    running is exit 1 and leaves no folder; Ctrl-C keeps the finished cells of a resumable
    study in ``DIR.partial/`` (exit 130).
    """
    from gradvar.studies import base, study

    try:
        with usage_errors():
            st = study(command)
            prepared = base.prepare(st, experiment, out, force, resume, command_line(), scheduler)
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted: {command} had not started; nothing written.", err=True)
        raise click.exceptions.Exit(130) from None
    if on_step is not None:
        prepared.spec.on_step = on_step
    for line in [*st.notes(prepared.spec), *jump_notes(prepared.spec)]:
        note(line, quiet)
    try:
        with (
            running_errors(),
            progress_bar(prepared.total, quiet or not prepared.total, command, st.unit) as tick,
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")  # counted, never leaked line by line
            files, tables = base.run_into_folder(prepared, progress=tick)
    except base.Interrupted as stop:
        click.echo(
            f"\nInterrupted: {stop.kept} kept in {stop.partial}{os.sep}; "
            "run the same command with --resume to continue.",
            err=True,
        )
        raise click.exceptions.Exit(130) from None
    except KeyboardInterrupt:  # a study without checkpoints: nothing half-written is kept
        click.echo(f"\nInterrupted: {command} keeps no partial results; nothing written.", err=True)
        raise click.exceptions.Exit(130) from None
    if caught:
        first = caught[0]
        note(
            f"note: {len(caught)} numerical warning(s) while running (the first: "
            f"{first.category.__name__}: {first.message}); numbers flagged '!' or shown as "
            "inf/n/a cannot be trusted",
            quiet,
        )
    if table is not None:
        click.echo(table(tables))
    echo_files(prepared.target, files)
    return prepared.target

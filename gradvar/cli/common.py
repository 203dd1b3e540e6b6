"""What every command shares: option bundles (REFERENCE section 6), the output folder,
error conversion (bad input: exit 2; failure while running: exit 1) and the progress bar.

Imports here are click and the standard library only, so ``gradvar --help`` stays fast.
"""

import os
import shlex
import sys
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


def experiment_options(func):
    """Family, objective, estimator and parameter options (REFERENCE section 6)."""
    return _stack(
        click.option(
            "--family",
            default="normal",
            show_default=True,
            metavar="NAME",
            help="Distribution p_theta: normal, categorical or bernoulli.",
        ),
        click.option(
            "--objective",
            metavar="NAME",
            help="Objective f (see `gradvar list`). [default: quadratic for normal, "
            "squared otherwise]",
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
            help="Comma list of estimators (see `gradvar list`). [default: every "
            "estimator the family supports except exact]",
        ),
        click.option(
            "--baseline",
            default="mean",
            show_default=True,
            metavar="NAME",
            help="Baseline of sf-baseline: mean, optimal or loo (loo needs --batch >= 2).",
        ),
        click.option(
            "--mu",
            metavar="VALUES",
            help="Normal mean; a list sweeps it: -4,0,4 or -4:4:17. [default: 1]",
        ),
        click.option(
            "--sigma",
            metavar="VALUES",
            help="Normal standard deviation (> 0); a list sweeps it. [default: 1]",
        ),
        click.option(
            "--logits",
            metavar="VECTOR",
            help="Categorical logits, one per class. [default: 2,0.5,0.1]",
        ),
        click.option(
            "--logit",
            metavar="VALUES",
            help="Bernoulli logit phi, p = sigmoid(phi); a list sweeps it. [default: 0]",
        ),
        click.option(
            "--tau",
            metavar="VALUES",
            help="Temperature of gumbel-softmax and st-gumbel (> 0); a list sweeps it: "
            "log:0.01:10:15. [default: 0.5]",
        ),
        click.option(
            "--batch",
            default="1",
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
        click.option("--force", is_flag=True, help="Replace DIR if it exists."),
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
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except Exception as err:
        if os.environ.get("GRADVAR_DEBUG"):
            raise
        raise click.ClickException(
            f"{type(err).__name__}: {err} (set GRADVAR_DEBUG=1 for the traceback)"
        ) from err


# --- output --------------------------------------------------------------------------------
def target_folder(out, command, force):
    """The results folder to write, checked before any work starts."""
    from gradvar import io

    target = Path(out) if out is not None else io.default_folder(command)
    io.check_target(target, force)
    return target


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
def progress_bar(total, quiet, desc):
    """A tqdm bar on stderr counting estimates; yields its update function (None if quiet).

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
        unit="est",
        unit_scale=True,
        leave=False,
        disable=None,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.2,
    ) as bar:
        yield bar.update


# --- resumable runs ---------------------------------------------------------------------------
CELLS = "cells"  # sub-folder of DIR.partial/ holding finished cells
EXPERIMENT = "experiment.json"  # the experiment a DIR.partial/ belongs to


@contextmanager
def resumable(target, force, resume, quiet):
    """The atomic results folder of a resumable command.

    Ctrl-C keeps ``DIR.partial/`` with the finished cells and says how to continue; on
    success the bookkeeping files are removed before the folder becomes ``DIR``.
    """
    import shutil

    from gradvar import io

    try:
        with io.atomic_folder(target, force=force, resume=resume, keep_on_interrupt=True) as tmp:
            yield tmp
            shutil.rmtree(tmp / CELLS, ignore_errors=True)
            (tmp / EXPERIMENT).unlink(missing_ok=True)
    except KeyboardInterrupt:
        partial = io.partial_path(target)
        done = len(list((partial / CELLS).glob("*.summary.csv"))) if partial.exists() else 0
        click.echo(
            f"\nInterrupted: {done} finished cell(s) kept in {partial}{os.sep}; "
            "run the same command with --resume to continue.",
            err=True,
        )
        raise click.exceptions.Exit(130) from None


def _resume_key(experiment):
    return {k: v for k, v in experiment.items() if k not in ("threads", "no-plot")}


def check_resume(target, experiment, resume):
    """With --resume, refuse a DIR.partial/ that belongs to a different experiment."""
    import json

    from gradvar import io

    path = io.partial_path(target) / EXPERIMENT
    if resume and path.exists():
        with open(path, encoding="utf-8") as fh:
            saved = json.load(fh)
        if saved != json.loads(json.dumps(_resume_key(experiment))):
            raise click.UsageError(
                f"{path.parent} holds a different experiment; run without --resume to start over"
            )


def record_experiment(tmp, experiment):
    """Note in DIR.partial/ which experiment its finished cells belong to."""
    from gradvar import io

    io.write_json(_resume_key(experiment), tmp / EXPERIMENT)

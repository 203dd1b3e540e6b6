"""What every study shares: the study protocol, experiment keys, and the one results-folder
writer.

A study is the library side of one command (``gradvar compare`` is
:mod:`gradvar.studies.compare`, its Click module :mod:`gradvar.cli.compare`, its figures
:mod:`gradvar.plots.compare`).  It turns an *experiment* (a dict: the keys of a TOML file,
of a meta.json ``experiment`` object, or the command's options by name) into a validated
spec, runs it into tables (DataFrames), and writes them through :func:`run_into_folder`:

1. :func:`prepare` validates the experiment, picks and checks the target folder and checks
   a resume, raising :class:`gradvar.spec.SpecError` or :class:`gradvar.io.FolderExistsError`
   before anything runs or is written;
2. :func:`run_into_folder` runs the study into ``DIR.partial/`` and renames it to ``DIR``
   once the CSVs, figures and ``meta.json`` are complete.  A resumable study checkpoints
   finished units of work there (cells, lists, draws); Ctrl-C keeps them and raises
   :class:`Interrupted`.

Keys of a multi-word option are spelled as on the command line (``no-plot``,
``train-positions``); the Python API spells them with underscores.
"""

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gradvar import io
from gradvar.spec import SpecError, flag_of, suggest

CELLS = "cells"  # sub-folder of DIR.partial/ holding finished cells
EXPERIMENT = "experiment.json"  # the experiment a DIR.partial/ belongs to
RUN_KEYS = ("threads", "no-plot")  # run-time choices: not part of what a resume must match
FLAGS = ("no-plot", "train-positions", "resume")  # true/false keys


class Study:
    """The library side of one command.  Subclasses set ``name``, ``keys`` (the experiment
    keys besides ``command``; a callable for keys that depend on the registries) and
    ``tables`` (CSV names in file order), and implement :meth:`spec`, :meth:`resolved`
    and :meth:`run`."""

    name = ""
    tables = ("results",)
    resumable = False  # checkpoints finished work in run(checkpoint=...), supports --resume
    unit = "est"  # what total() and the progress bar count
    uses_threads = False
    distributed = False  # runs its cells on a Dask cluster with --scheduler (gradvar.executor)

    def allowed_keys(self):
        raise NotImplementedError

    def spec(self, experiment):
        """The validated spec of an experiment dict (SpecError naming the problem)."""
        raise NotImplementedError

    def resolved(self, spec):
        """The experiment with every default filled in: valid input for a re-run."""
        raise NotImplementedError

    def total(self, spec):
        """Estimates the run will make (for a progress bar), 0 when it does not count."""
        return 0

    def run(self, spec, progress=None, checkpoint=None):
        """The study's tables: {name: DataFrame} in file order (a distributed study also
        takes ``cluster``, a :class:`gradvar.executor.Cluster`)."""
        raise NotImplementedError

    def kept(self, spec, cells):
        """What the checkpoint folder ``cells`` of an interrupted run keeps, for its note."""
        from gradvar import io

        done = len(list(cells.rglob(f"*{io.CHECK_SUFFIX}"))) if cells.is_dir() else 0
        return f"{done} finished cell(s)"

    def meta(self, spec, tables):
        """Entries of meta.json beside the common ones."""
        return {}

    def notes(self, spec):
        """Remarks on the input worth a line on stderr (an option nothing reads, ...)."""
        return []

    def check_keys(self, experiment, where=""):
        """Refuse unknown keys, naming the key (and the file, if given)."""
        keys = set(self.allowed_keys()) | {"command", "plugins"}
        prefix = f"{where}: " if where else ""
        if not isinstance(experiment, dict):
            raise SpecError(f"{prefix}an experiment is a table of keys and values")
        for key in experiment:
            if key not in keys:
                raise SpecError(
                    f"{prefix}unknown key {key!r} for command {self.name!r}."
                    + suggest(str(key), sorted(keys))
                )
        for key in FLAGS:
            if key in experiment:
                flag_of(experiment[key], f"{prefix}{key}")
        threads = experiment.get("threads")
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise SpecError(f"{prefix}threads: expected a whole number >= 1, got {threads!r}")


def from_keywords(study, arguments, **aliases):
    """An experiment dict from Python keyword arguments: underscores become the dashes of
    the command-line spelling where that is the key's spelling; None means "default"."""
    keys = set(study.allowed_keys())
    experiment = {"command": study.name}
    for name, value in arguments.items():
        key = aliases.get(name, name)
        dashed = key.replace("_", "-")
        if key not in keys and dashed in keys:
            key = dashed
        if value is not None:
            experiment[key] = value
    return experiment


def check_unknown_keywords(study, arguments, function):
    """A mistyped keyword is an unknown argument, like Python's own TypeError, naming the
    function and the close matches."""
    keys = set(study.allowed_keys())
    for name in arguments:
        if name not in keys and name.replace("_", "-") not in keys:
            choices = sorted(k.replace("-", "_") for k in keys)
            raise TypeError(
                f"{function}() got an unexpected keyword argument {name!r}."
                + suggest(name, choices)
            )


# --- checkpoints of long accumulations ---------------------------------------------------------
SAVE_SECONDS = 1.0  # an accumulating study saves its state at most this often


class Snapshot:
    """The saved state of one long accumulation (pick-one's picks of a list, gumbel-max's
    draws) in a checkpoint folder, as ``NAME.state.json`` (:func:`gradvar.io.write_state`).

    The study saves the whole state (its sums, counts and generator state) at chunk
    boundaries, every SAVE_SECONDS and when it finishes, so that Ctrl-C loses at most that
    much work and a resumed run continues bit for bit.  Without a folder it does nothing.
    """

    def __init__(self, folder, name):
        self.path = None if folder is None else Path(folder) / f"{name}{io.STATE_SUFFIX}"
        self.last = time.monotonic()

    def load(self):
        """The saved state, or None (nothing saved, or a damaged file: said on stderr)."""
        if self.path is None or not self.path.exists():
            return None
        state = io.read_state(self.path)
        if state is None:
            self.damaged()
        return state

    def damaged(self):
        print(f"note: {self.path} failed its check (hash); recomputing it", file=sys.stderr)

    def save(self, state, force=False):
        """Save ``state()`` if SAVE_SECONDS passed since the last save (or ``force``)."""
        if self.path is None or not (force or time.monotonic() - self.last >= SAVE_SECONDS):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        io.write_state(self.path, state())
        self.last = time.monotonic()


class CheckedTables:
    """Finished units of work (compare's cells, train's trajectories) in a checkpoint folder:
    unit i as the CSVs ``{prefix}{i:05d}.{table}.csv``, one per name in ``tables``, and their
    check file ``{prefix}{i:05d}.check.json`` written last (:func:`gradvar.io.write_checked`).
    A unit is read back after it is saved, so a resumed run gives the same bytes."""

    def __init__(self, folder, prefix, tables):
        self.folder, self.prefix, self.tables = Path(folder), prefix, tables
        self.folder.mkdir(parents=True, exist_ok=True)

    def files(self, i):
        """(the CSVs of unit i in the order of ``tables``, its check file)."""
        stem = f"{self.prefix}{i:05d}"
        csvs = [self.folder / f"{stem}.{table}.csv" for table in self.tables]
        return csvs, self.folder / f"{stem}{io.CHECK_SUFFIX}"

    def load(self, i):
        """Unit i's tables (in the order of ``tables``) as saved, or None: not saved, or
        damaged (said on stderr; it is then recomputed)."""
        csvs, check = self.files(i)
        found = io.read_checked(check, csvs) if check.exists() else None
        if found is None and any(path.exists() for path in (check, *csvs)):
            print(
                f"note: {check.parent / check.stem} failed its check (rows and hash); "
                "recomputing it",
                file=sys.stderr,
            )
        return found

    def save(self, i, tables):
        """Save unit i's tables (DataFrames in the order of ``tables``), the check file last;
        return them as read back, the bytes a resumed run reads."""
        csvs, check = self.files(i)
        io.write_checked(check, dict(zip(csvs, tables, strict=True)))
        return io.read_checked(check, csvs)


def saved_states(cells):
    """The states saved in a checkpoint folder ``cells``, by file name (damaged ones left out)."""
    if not cells.is_dir():
        return {}
    found = {p.name: io.read_state(p) for p in sorted(cells.glob(f"*{io.STATE_SUFFIX}"))}
    return {name: state for name, state in found.items() if state is not None}


# --- running into a results folder ------------------------------------------------------------
class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a resumable run: ``partial`` keeps ``kept`` ("12 finished cell(s)")."""

    def __init__(self, partial, kept):
        super().__init__(f"{kept} kept in {partial}")
        self.partial, self.kept = Path(partial), kept


@dataclass
class Prepared:
    """A validated run, ready to write: what :func:`prepare` checked."""

    study: Study
    spec: object
    resolved: dict
    target: Path
    force: bool
    resume: bool
    command_line: str
    unique: bool = False  # the target is a default name: take the next free one if taken
    scheduler: str | None = None  # the Dask scheduler of a distributed run (gradvar.executor)
    worker_threads: int | None = None  # --threads: engine threads per task on a worker
    started: str = field(default_factory=io.now)
    t0: float = field(default_factory=time.perf_counter)

    @property
    def total(self):
        return self.study.total(self.spec)


def set_threads(threads):
    """Use ``threads`` worker threads (None: all cores); returns the number in use."""
    import numba

    if threads:
        numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
    return int(numba.get_num_threads())


def prepare(
    study, experiment, out=None, force=False, resume=False, command_line="gradvar", scheduler=None
):
    """Validate everything a run needs before it starts; raises SpecError or
    FolderExistsError (bad input) and writes nothing.  ``scheduler`` (a run-time choice like
    threads, never part of the experiment) runs the cells on a Dask cluster."""
    if scheduler is not None:
        from gradvar import executor

        if not study.distributed:
            raise SpecError(f"--scheduler: {study.name} does not run its work on a cluster")
        scheduler = executor.parse(scheduler)
    study.check_keys(experiment)
    spec = study.spec(experiment)
    target = io.output_folder(out) if out is not None else io.default_folder(study.name)
    io.check_target(target, force)
    resolved = study.resolved(spec)
    if experiment.get("plugins"):  # their {"path", "sha256"} records (gradvar.plugins)
        resolved["plugins"] = experiment["plugins"]
    if study.uses_threads:
        resolved["threads"] = set_threads(experiment.get("threads"))
    if resume and study.resumable:
        check_resume(target, resolved)
    unique = out is None
    threads = experiment.get("threads")
    return Prepared(
        study, spec, resolved, target, force, resume, command_line, unique, scheduler, threads
    )


def _resume_key(experiment):
    return {k: v for k, v in experiment.items() if k not in RUN_KEYS}


def check_resume(target, resolved):
    """Refuse a DIR.partial/ that belongs to a different experiment, or whose
    experiment.json is missing or unreadable (its cells could be anyone's)."""
    import json

    partial = io.partial_path(target)
    path = partial / EXPERIMENT
    if not partial.is_dir() or not any(c.name != io.OWNER for c in partial.iterdir()):
        return  # nothing to resume: the run starts afresh
    try:
        with open(path, encoding="utf-8") as fh:
            saved = json.load(fh)
    except (OSError, ValueError) as err:
        why = "has no experiment.json" if not path.exists() else f"has an unreadable {path.name}"
        raise SpecError(
            f"cannot resume: {partial} {why} ({type(err).__name__}), so its cells cannot be "
            "trusted; run without --resume to start over"
        ) from None
    if saved != json.loads(json.dumps(_resume_key(resolved))):
        raise SpecError(
            f"{path.parent} holds a different experiment; run without --resume to start over"
        )


def run_into_folder(prepared, progress=None):
    """Run a prepared study and write its folder; returns (files, tables).

    The CSVs are written first, the figures are drawn from them, ``meta.json`` comes last;
    the folder appears under its name only when all of it is complete.
    """
    from gradvar import executor

    study, spec = prepared.study, prepared.spec
    keep = study.resumable
    try:
        with (
            executor.session(prepared.scheduler, prepared.worker_threads) as cluster,
            io.atomic_folder(
                prepared.target,
                force=prepared.force,
                resume=prepared.resume,
                keep_on_interrupt=keep,
                unique=prepared.unique,
                work=CELLS,
            ) as tmp,
        ):
            prepared.target = tmp.with_name(tmp.name[: -len(io.PARTIAL_SUFFIX)])
            checkpoint = None
            if keep:
                io.write_json(_resume_key(prepared.resolved), tmp / EXPERIMENT)
                checkpoint = tmp / CELLS
            t1 = time.perf_counter()
            on = {} if cluster is None else {"cluster": cluster}
            tables = study.run(spec, progress=progress, checkpoint=checkpoint, **on)
            t2 = time.perf_counter()
            files = []
            for name, table in tables.items():
                io.write_csv(table, tmp / f"{name}.csv")
                files.append(f"{name}.csv")
            t3 = time.perf_counter()
            if not prepared.resolved.get("no-plot"):
                files += draw(study.name, tmp)
            t4 = time.perf_counter()
            if keep:
                shutil.rmtree(tmp / CELLS, ignore_errors=True)
                (tmp / EXPERIMENT).unlink(missing_ok=True)
            files.append("meta.json")
            timings = {"setup": t1 - prepared.t0, "run": t2 - t1, "write_csv": t3 - t2}
            timings["plot"] = t4 - t3
            meta = {
                "experiment": prepared.resolved,
                **io.versions(),
                "command_line": prepared.command_line,
                **({"threads": prepared.resolved["threads"]} if study.uses_threads else {}),
                **({} if cluster is None else {"scheduler": cluster.meta()}),
                "started": prepared.started,
                **study.meta(spec, tables),
                "finished": io.now(),
                "seconds": round(time.perf_counter() - prepared.t0, 4),
                "timings": {k: round(v, 4) for k, v in timings.items()},
                "files": files,
            }
            io.write_json(meta, tmp / "meta.json")
    except KeyboardInterrupt:
        if not keep:
            raise
        partial = io.partial_path(prepared.target)
        raise Interrupted(partial, study.kept(spec, partial / CELLS)) from None
    except Exception as err:
        partial = io.partial_path(prepared.target)
        busy = isinstance(err, io.FolderBusyError)  # another run's cells, not ours to report
        if keep and not busy and io.holds_files(partial / CELLS):  # kept by atomic_folder
            print(
                f"note: the run failed; {study.kept(spec, partial / CELLS)} kept in "
                f"{partial}{os.sep}: run the same command with --resume to continue",
                file=sys.stderr,
            )
        raise
    return files, tables


def draw(command, folder):
    """The figures of a results folder, drawn from its CSV files; returns their names (by
    the drawing process when the command line started one, :mod:`gradvar.drawer`)."""
    from gradvar import drawer

    return drawer.draw_command(command, Path(folder))

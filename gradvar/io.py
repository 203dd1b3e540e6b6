"""Results folders: CSV tables with round-trip floats, ``meta.json``, atomic folder writes.

A results folder is written into ``DIR.partial/`` beside the target and renamed to ``DIR``
only when everything in it is complete, so an interrupted or failed run never leaves a
half-written ``DIR``.  An existing ``DIR`` is replaced only when asked (``force``), and the
old folder stays in place until the new one is complete.
"""

import csv
import datetime
import json
import math
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


class FolderExistsError(FileExistsError):
    """The output folder exists and replacing it was not requested."""


# --- CSV -----------------------------------------------------------------------------------
def format_cell(value):
    """One CSV field: floats as their shortest round-trip repr, NaN/None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) or type(value).__name__.startswith("float"):
        value = float(value)
        return "" if math.isnan(value) else repr(value)
    if type(value).__name__.startswith(("int", "uint")):
        return str(int(value))
    return str(value)


def write_csv(frame, path):
    """Write a DataFrame as CSV whose floats read back bit for bit.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table; column order is kept.
    path : str or Path
        Destination file.

    Notes
    -----
    Floats are written with ``repr`` (the shortest string that round-trips), NaN as an empty
    field, lines end with ``\\n``: the same table always gives the same bytes.
    """
    columns = list(frame.columns)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for row in frame.itertuples(index=False, name=None):
            writer.writerow([format_cell(v) for v in row])


# the name columns of the compare tables (train's ``objective`` is a value)
NAME_COLUMNS = ("family", "objective", "estimator", "baseline", "param")


def read_csv(path, text=()):
    """Read a CSV written by :func:`write_csv`; floats exactly, empty text fields as ``""``;
    the columns in ``text`` as text whatever they hold (an expression objective "2" is not
    the number 2, pick-one's ``values`` "5" a list of one number)."""
    import pandas as pd

    # pandas >= 3 parses floats exactly by default and deprecates the option
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    dtype = {col: str for col in text}
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=dtype, **exact)
    for col in frame.columns:
        if frame[col].dtype.kind not in "fiub":
            frame[col] = frame[col].fillna("").astype(str)
    return frame


# --- meta.json -----------------------------------------------------------------------------
def now():
    """The current local time as an ISO 8601 string with its UTC offset."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def versions():
    """Versions of gradvar and the numerical libraries that produced a result."""
    import numba
    import numpy

    from gradvar import __version__

    return {
        "gradvar": __version__,
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "python": sys.version.split()[0],
    }


def write_json(data, path):
    """Write ``data`` as indented JSON; NaN is refused (it is not JSON)."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, allow_nan=False)
        fh.write("\n")


def read_meta(folder):
    """The ``meta.json`` of a results folder as a dict ({} when there is none)."""
    path = Path(folder) / "meta.json"
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


# --- folders -------------------------------------------------------------------------------
OWNER = ".owner"  # file in DIR.partial/ naming the pid of the run that holds its lock
NAME_MAX = 255  # longest file name on the usual file systems (ext4, xfs, tmpfs, APFS)


class FolderBusyError(FolderExistsError):
    """Another run holds the lock of the output folder."""


def default_folder(command, base="results"):
    """``results/<command>-<timestamp>/``, with a numeric suffix if that name is taken."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = Path(base) / f"{command}-{stamp}"
    while target.exists() or partial_path(target).exists():
        target = next_name(target)
    return target


def next_name(target):
    """``NAME-2`` after ``NAME``, ``NAME-3`` after ``NAME-2`` (the default folder's suffix)."""
    target = Path(target)
    stem, dash, number = target.name.rpartition("-")
    if dash and number.isdigit() and len(number) < 3:
        return target.with_name(f"{stem}-{int(number) + 1}")
    return target.with_name(f"{target.name}-2")


def partial_path(target):
    """Where ``target`` is written before it is complete: ``DIR.partial`` beside it."""
    target = Path(target)
    return target.with_name(target.name + PARTIAL_SUFFIX)


def output_folder(out):
    """The folder ``--out DIR`` names, refused (FolderExistsError) unless it can be one:
    not empty, ``.`` or ``..``, not ending in ``.partial`` (the name of a folder being
    written), short enough for the file system; a symlink is followed to its folder."""
    text = str(out)
    target = Path(out)
    if not text.strip() or target.name in ("", ".", ".."):
        raise FolderExistsError(f"--out {text!r} does not name a new folder; give a folder name")
    if target.name.endswith(PARTIAL_SUFFIX):
        raise FolderExistsError(
            f"--out {text}: names ending in {PARTIAL_SUFFIX} are kept for folders being written"
        )
    if len(os.fsencode(target.name + PARTIAL_SUFFIX)) > NAME_MAX:
        raise FolderExistsError(
            f"--out: folder name too long ({len(os.fsencode(target.name))} bytes; "
            f"at most {NAME_MAX - len(PARTIAL_SUFFIX)})"
        )
    if target.is_symlink():
        if not target.exists():
            raise FolderExistsError(f"--out {text} is a broken symlink")
        target = target.resolve()
    return target


def check_target(target, force=False):
    """Raise :class:`FolderExistsError` unless ``target`` may be written: it does not exist,
    or ``force`` is set and it is a gradvar results folder (it has a meta.json)."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise FolderExistsError(f"{target} exists and is not a folder")
    if target.exists() and not force:
        raise FolderExistsError(f"{target} already exists (use --force to replace it)")
    if target.exists() and not (target / "meta.json").is_file():
        raise FolderExistsError(
            f"{target} is not a gradvar results folder (it has no meta.json); "
            "--force replaces only results folders"
        )


def _missing_parents(path):
    """The ancestors of ``path`` that do not exist yet, nearest first."""
    missing = []
    for parent in Path(path).absolute().parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


def lock_owner(partial):
    """The pid written in a locked ``DIR.partial/`` (``?`` if it cannot be read)."""
    try:
        return (Path(partial) / OWNER).read_text(encoding="utf-8").strip() or "?"
    except OSError:
        return "?"


def lock_partial(partial):
    """Create ``partial`` if needed and take its exclusive lock (``flock`` on the folder);
    returns the file descriptor that holds it until closed (the lock of a process that died
    is released by the kernel, so a stale partial is simply taken over).

    Raises :class:`FolderBusyError` naming the folder and the pid when another run holds it.
    """
    import fcntl

    partial = Path(partial)
    while True:
        partial.mkdir(parents=True, exist_ok=True)
        fd = os.open(partial, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusyError(
                f"{partial} is being written by another gradvar run (pid "
                f"{lock_owner(partial)}); wait for it to finish or choose another --out"
            ) from None
        try:
            here = os.stat(partial)
            mine = os.fstat(fd)
            same = (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)
        except FileNotFoundError:
            same = False
        if same:  # else its owner renamed or removed it meanwhile: start again
            with open(partial / OWNER, "w", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()}\n")
            return fd
        os.close(fd)


def _clear(folder):
    """Remove what ``folder`` holds, keeping the folder itself (and its lock)."""
    for child in Path(folder).iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


@contextmanager
def atomic_folder(
    target, force=False, resume=False, keep_on_interrupt=False, unique=False, work=None
):
    """Yield a temporary folder that becomes ``target`` when the block finishes.

    Parameters
    ----------
    target : str or Path
        The folder to create.
    force : bool
        Replace an existing ``target`` (a results folder: it has a meta.json); the old one
        stays until the new one is complete.
    resume : bool
        Keep what an interrupted earlier run left in ``DIR.partial/`` (else start afresh).
    keep_on_interrupt : bool
        On Ctrl-C (KeyboardInterrupt) keep ``DIR.partial/`` so that a resumable command can
        continue from it; ``DIR`` itself is never created half-written.
    work : str, optional
        With ``keep_on_interrupt``: the sub-folder of ``DIR.partial/`` holding finished work;
        on any other error too ``DIR.partial/`` is kept once that sub-folder holds a file
        (finished work is never lost).
    unique : bool
        ``target`` is a default name: if another run has taken it meanwhile, use the next
        free ``NAME-2``, ``NAME-3``, ... (the yielded folder's name says which).

    Raises
    ------
    FolderExistsError
        ``target`` exists and ``force`` is false.
    FolderBusyError
        Another run holds ``DIR.partial/``: one writer per folder.

    Notes
    -----
    ``DIR.partial/`` is locked (:func:`lock_partial`) for the whole block, and only the
    lock's holder clears, removes or renames it, so two runs on one ``DIR`` never mix
    their cells or delete each other's folder.  On any other exception the temporary folder
    and any parent folders created for it are removed and the exception propagates.
    """
    target = Path(target)
    check_target(target, force)
    while True:
        partial = partial_path(target)
        created = _missing_parents(partial)
        try:
            fd = lock_partial(partial)
        except FolderBusyError:
            if not unique:
                raise
            target = next_name(target)
            continue
        taken = target.exists() or any(c.name != OWNER for c in partial.iterdir())
        if unique and taken:  # committed, or left by an interrupted run: not ours to clear
            os.close(fd)
            target = next_name(target)
            continue
        break
    try:
        try:
            if not resume:  # left over by an earlier interrupted run
                _clear(partial)
                (partial / OWNER).write_text(f"{os.getpid()}\n", encoding="utf-8")
            yield partial
            (partial / OWNER).unlink(missing_ok=True)
            _commit(partial, target, force)
        except BaseException as err:
            finished = work is not None and holds_files(partial / work)
            if keep_on_interrupt and (isinstance(err, KeyboardInterrupt) or finished):
                raise
            shutil.rmtree(partial, ignore_errors=True)
            for parent in created:
                try:
                    parent.rmdir()
                except OSError:
                    break
            raise
    finally:
        os.close(fd)


def holds_files(folder):
    """True when ``folder`` exists and holds at least one file (at any depth)."""
    folder = Path(folder)
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


def _commit(partial, target, force):
    """Rename ``partial`` to ``target``, moving an existing ``target`` aside first."""
    if target.exists() and not force:
        raise FolderExistsError(
            f"{target} was written by another run while this one was running; "
            "this run's results were not kept"
        )
    check_target(target, force)
    if not target.exists():
        os.rename(partial, target)
        return
    old = target.with_name(f"{target.name}.old-{os.getpid()}")
    os.rename(target, old)
    try:
        os.rename(partial, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


CHECK_SUFFIX = ".check.json"  # a checkpoint's row counts and hashes, written after its CSVs


def _digest(path):
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_checked(check, tables):
    """Write ``{path: DataFrame}`` as CSVs (each atomically), then ``check`` recording each
    file's row count and SHA-256: a checkpoint counts as written only when its check is."""
    record = {}
    for path, frame in tables.items():
        replace_file(path, lambda tmp, frame=frame: write_csv(frame, tmp))
        record[Path(path).name] = {"rows": len(frame), "sha256": _digest(path)}
    replace_file(check, lambda tmp: write_json(record, tmp))


def read_checked(check, paths):
    """The tables ``paths`` of a checkpoint as DataFrames, or None unless each file's row
    count and SHA-256 match what ``check`` recorded (a torn, emptied or foreign file)."""
    try:
        with open(check, encoding="utf-8") as fh:
            record = json.load(fh)
        frames = []
        for path in paths:
            entry = record[Path(path).name]
            if _digest(path) != entry["sha256"]:
                return None
            frame = read_csv(path)
            if len(frame) != entry["rows"]:
                return None
            frames.append(frame)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    return tuple(frames)


STATE_SUFFIX = ".state.json"  # a checkpointed accumulation: its SHA-256, then the state


def write_state(path, state):
    """Save a JSON-able dict atomically: the SHA-256 of its JSON text on the first line,
    then the text (floats by repr and ints of any size, so it is read back exactly)."""
    import hashlib

    text = json.dumps(state, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()
    replace_file(path, lambda tmp: Path(tmp).write_text(f"{digest}\n{text}", encoding="utf-8"))


def read_state(path):
    """The state :func:`write_state` saved in ``path``, or None if it fails its hash."""
    import hashlib

    try:
        digest, _, text = Path(path).read_text(encoding="utf-8").partition("\n")
        if hashlib.sha256(text.encode()).hexdigest() != digest:
            return None
        state = json.loads(text)
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return state if isinstance(state, dict) else None


def replace_file(path, write):
    """Write a file atomically: ``write(tmp_path)`` then rename over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


# --- reading the results.csv schema (docs/math.md §6) -----------------------------------
def parameter_columns(frame):
    """The cell's parameter columns of a results table: those between ``baseline`` and
    ``param``, then the estimator options appended after them (``eta``, ...)."""
    from gradvar.model import OPTIONS

    cols = list(frame.columns)
    if "baseline" not in cols or "param" not in cols:
        return []
    lead = cols[cols.index("baseline") + 1 : cols.index("param")]
    return lead + [c for c in cols[cols.index("param") :] if c in OPTIONS and c not in lead]


def swept_columns(frame):
    """Parameter columns (and ``batch``) that take more than one value in the table."""
    names = parameter_columns(frame) + (["batch"] if "batch" in frame.columns else [])
    return [c for c in names if frame[c].dropna().nunique() > 1]


def sweep_points(frame, columns):
    """Every combination of the values of ``columns`` (each in order of appearance, empty
    values left out): the points of a sweep, which is a full product of its axes."""
    import itertools

    axes = [list(dict.fromkeys(v for v in frame[c] if v == v and v != "")) for c in columns]
    return list(itertools.product(*axes))


def at_point(frame, columns, values):
    """The rows of ``frame`` at the sweep point ``values`` of ``columns``: each column equal
    to its value or empty, since an estimator that ignores a swept option has one row (its
    option column empty) that holds at every value of it."""
    import numpy as np

    mask = np.ones(len(frame), dtype=bool)
    for c, v in zip(columns, values, strict=True):
        mask &= ((frame[c] == v) | frame[c].isna()).to_numpy()
    return frame[mask]


def cell_index(frame):
    """Number the cells of a results table from its row order.

    ``run_plan`` writes the rows of one cell together (every estimator that runs there,
    every coordinate); a new cell starts where an (estimator, param) pair repeats or a
    parameter takes another value (empty values, options an estimator ignores, match any).
    Needs the CSV alone.
    """
    columns = [c for c in parameter_columns(frame) + ["batch"] if c in frame.columns]
    values = frame[columns].to_numpy(dtype=object)
    ids, seen, current, cell = [], set(), {}, 0
    for key, row in zip(zip(frame["estimator"], frame["param"], strict=False), values, strict=True):
        here = {c: v for c, v in zip(columns, row, strict=True) if v == v and v != ""}
        if key in seen or any(current.get(c, v) != v for c, v in here.items()):
            cell += 1
            seen, current = set(), {}
        seen.add(key)
        current.update(here)
        ids.append(cell)
    return ids


def describe_value(value, longest=6):
    """A parameter value for titles and headings: %g numbers, long vectors shortened."""
    if isinstance(value, str):
        parts = [f"{float(v):g}" for v in value.split(",")] if value else []
        if len(parts) > longest:
            return ",".join(parts[:3]) + f",... ({len(parts)} values)"
        return ",".join(parts)
    return f"{value:g}"


def estimator_label(estimator, baseline=""):
    """``sf-baseline (mean)`` for estimators that use a baseline, else the name."""
    if isinstance(baseline, str) and baseline:
        return f"{estimator} ({baseline})"
    return str(estimator)

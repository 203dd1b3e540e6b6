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


def read_csv(path):
    """Read a CSV written by :func:`write_csv`; floats exactly, empty text fields as ``""``."""
    import pandas as pd

    # pandas >= 3 parses floats exactly by default and deprecates the option
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""], **exact)
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
def default_folder(command, base="results"):
    """``results/<command>-<timestamp>/``, with a numeric suffix if that name is taken."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = Path(base) / f"{command}-{stamp}"
    suffix = 1
    while target.exists() or partial_path(target).exists():
        suffix += 1
        target = Path(base) / f"{command}-{stamp}-{suffix}"
    return target


def partial_path(target):
    """Where ``target`` is written before it is complete: ``DIR.partial`` beside it."""
    target = Path(target)
    return target.with_name(target.name + PARTIAL_SUFFIX)


def check_target(target, force=False):
    """Raise :class:`FolderExistsError` unless ``target`` may be written."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise FolderExistsError(f"{target} exists and is not a folder")
    if target.exists() and not force:
        raise FolderExistsError(f"{target} already exists (use --force to replace it)")


def _missing_parents(path):
    """The ancestors of ``path`` that do not exist yet, nearest first."""
    missing = []
    for parent in Path(path).absolute().parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing


@contextmanager
def atomic_folder(target, force=False, resume=False, keep_on_interrupt=False):
    """Yield a temporary folder that becomes ``target`` when the block finishes.

    Parameters
    ----------
    target : str or Path
        The folder to create.
    force : bool
        Replace an existing ``target``; the old one stays until the new one is complete.
    resume : bool
        Keep what an interrupted earlier run left in ``DIR.partial/`` (else start afresh).
    keep_on_interrupt : bool
        On Ctrl-C (KeyboardInterrupt) keep ``DIR.partial/`` so that a resumable command can
        continue from it; ``DIR`` itself is never created half-written.

    Raises
    ------
    FolderExistsError
        ``target`` exists and ``force`` is false.

    Notes
    -----
    On any other exception the temporary folder and any parent folders created for it are
    removed and the exception propagates: nothing is left behind.
    """
    target = Path(target)
    check_target(target, force)
    partial = partial_path(target)
    created = _missing_parents(partial)
    if partial.exists() and not resume:  # left over by an earlier interrupted run
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    try:
        yield partial
        _commit(partial, target, force)
    except BaseException as err:
        if keep_on_interrupt and isinstance(err, KeyboardInterrupt):
            raise
        shutil.rmtree(partial, ignore_errors=True)
        for parent in created:
            try:
                parent.rmdir()
            except OSError:
                break
        raise


def _commit(partial, target, force):
    """Rename ``partial`` to ``target``, moving an existing ``target`` aside first."""
    check_target(target, force)  # it may have appeared while we were running
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
    ``param``, and the estimator options appended after them (``rao_samples``, ...)."""
    from gradvar.model import OPTIONS

    cols = list(frame.columns)
    if "baseline" not in cols or "param" not in cols:
        return []
    lead = cols[cols.index("baseline") + 1 : cols.index("param")]
    return lead + [c for c in OPTIONS if c in cols and c not in lead]


def swept_columns(frame):
    """Parameter columns (and ``batch``) that take more than one value in the table."""
    names = parameter_columns(frame) + (["batch"] if "batch" in frame.columns else [])
    return [c for c in names if frame[c].dropna().nunique() > 1]


def cell_index(frame):
    """Number the cells of a results table from its row order.

    ``run_plan`` writes the rows of one cell together (every estimator, every coordinate);
    a new cell starts where an (estimator, param) pair repeats.  Needs the CSV alone.
    """
    ids, seen, cell = [], set(), 0
    for key in zip(frame["estimator"], frame["param"], strict=False):
        if key in seen:
            cell += 1
            seen = set()
        seen.add(key)
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

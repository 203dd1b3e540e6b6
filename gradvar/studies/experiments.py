"""Experiment files: TOML (``experiments/NAME.toml``) or a results folder's ``meta.json``.

An experiment is a ``command`` key and the study's keys (:meth:`Study.keys`), spelled as
on the command line: ``estimator = "sf,reparam"``, ``mu = "-4:4:17"``, ``[set] k = 0.5``,
``no-plot = true``.  :func:`load_all` reads and validates every file (keys and values)
before anything runs, so that a bad second file stops a run before the first one writes.
``gradvar run`` may replace an existing ``results/NAME/``: the old folder stays in place
until the new one is complete.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from gradvar.spec import SpecError, suggest
from gradvar.studies import STUDIES, base, study


@dataclass
class Experiment:
    """One loaded, validated experiment file."""

    path: Path
    data: dict
    target: Path

    @property
    def study(self):
        return study(self.data["command"])


def read(path):
    """The experiment dict of a TOML file, a meta.json or a results folder (SpecError)."""
    path = Path(path)
    if path.is_dir():
        path = path / "meta.json"
    if not path.is_file():
        raise SpecError(f"{path}: no such file")
    try:
        if path.suffix == ".json":
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            data = data.get("experiment", data) if isinstance(data, dict) else data
        else:
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover
                import tomli as tomllib
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise SpecError(f"{path}: cannot read: {err}") from None
    if not isinstance(data, dict) or "command" not in data:
        raise SpecError(f"{path}: missing key 'command' (one of: {', '.join(STUDIES)})")
    command = data["command"]
    if command not in STUDIES:
        raise SpecError(f"{path}: unknown command {command!r}." + suggest(str(command), STUDIES))
    return dict(data)


def default_target(path):
    """results/<file stem>/ for a TOML file; results/<folder name>/ for a meta.json."""
    path = Path(path)
    if path.is_dir():
        return Path("results") / path.name
    if path.name == "meta.json":
        return Path("results") / path.parent.name
    return Path("results") / path.stem


def load(path, out=None):
    """Read and fully validate one experiment file (keys and values); SpecError names the
    file."""
    data = read(path)
    st = study(data["command"])
    try:
        st.check_keys(data)
        st.spec(data)
    except SpecError as err:
        raise SpecError(f"{path}: {err}") from None
    return Experiment(Path(path), data, Path(out) if out is not None else default_target(path))


def load_all(paths, out=None, force=False):
    """Every file read and validated before any runs; a meta.json never replaces the
    folder it came from unless ``force``."""
    if out is not None and len(paths) > 1:
        raise SpecError("--out needs exactly one FILE")
    loaded = [load(p, out) for p in paths]
    for exp in loaded:
        source = exp.path if exp.path.is_dir() else exp.path.parent
        if exp.path.suffix != ".toml" and exp.target.resolve() == source.resolve() and not force:
            raise SpecError(
                f"{exp.path}: would replace the folder it came from; give --out DIR "
                "(or --force to replace it)"
            )
    return loaded


def run(path, out=None, resume=False, progress=None):
    """Python API (``gradvar.run``): run one experiment file into its results folder
    (``results/<file stem>/`` unless ``out``), replacing an existing one once the new one is
    complete; returns the folder."""
    (exp,) = load_all([path], out)
    prepared = base.prepare(exp.study, exp.data, exp.target, force=True, resume=resume)
    base.run_into_folder(prepared, progress=progress)
    return exp.target

"""Experiment files: TOML (``experiments/NAME.toml``) or a results folder's ``meta.json``.

An experiment is a ``command`` key and the study's keys (:meth:`Study.keys`), spelled as
on the command line: ``estimator = "sf,reparam"``, ``mu = "-4:4:17"``, ``[set] k = 0.5``,
``no-plot = true``.  :func:`load_all` reads and validates every file (keys and values)
before anything runs, so that a bad second file stops a run before the first one writes.
``gradvar run`` may replace an existing ``results/NAME/``: the old folder stays in place
until the new one is complete.

A file may hold several runs drawn into one figure: ``[[run]]`` tables, each with a ``name``
and the keys of one experiment; keys outside the tables (and ``[set]`` entries) are shared by
every run, a run's own keys override them, and ``figure`` names the plotter
(:data:`gradvar.plots.GROUP_PLOTTERS`) that draws the runs' folders together.  Run NAME of
``experiments/FILE.toml`` writes ``results/FILE/NAME/``; ``results/FILE/runs.json`` lists the
runs (what ``gradvar plot results/FILE`` reads) and the figure goes beside it.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from gradvar import plugins
from gradvar.spec import SpecError, suggest
from gradvar.studies import STUDIES, base, study

RUNS_FILE = "runs.json"  # the list of a multi-run folder's runs and its figure


@dataclass
class Group:
    """The runs of one multi-run file: drawn together into ``target`` once all have run."""

    path: Path
    target: Path
    figure: str
    names: list


@dataclass
class Experiment:
    """One loaded, validated experiment (a file, or one run of a multi-run file)."""

    path: Path
    data: dict
    target: Path
    group: Group | None = None

    @property
    def study(self):
        return study(self.data["command"])


def read(path, trust_plugins=False):
    """The experiment dict of a TOML file, a meta.json or a results folder (SpecError);
    a ``plugins`` key is loaded only when ``trust_plugins`` (see gradvar.plugins)."""
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
    if isinstance(data, dict) and "run" in data:  # a multi-run file: its runs share the plugins
        return plugins.from_experiment(dict(data), trust_plugins, where=str(path))
    if not isinstance(data, dict) or "command" not in data:
        raise SpecError(f"{path}: missing key 'command' (one of: {', '.join(STUDIES)})")
    command = data["command"]
    if command not in STUDIES:
        raise SpecError(f"{path}: unknown command {command!r}." + suggest(str(command), STUDIES))
    return plugins.from_experiment(dict(data), trust_plugins, where=str(path))


def default_target(path):
    """results/<file stem>/ for a TOML file; results/<folder name>/ for a meta.json."""
    path = Path(path)
    if path.is_dir():
        return Path("results") / path.name
    if path.name == "meta.json":
        return Path("results") / path.parent.name
    return Path("results") / path.stem


def _validated(path, data):
    if "command" not in data:
        raise SpecError(f"{path}: missing key 'command' (one of: {', '.join(STUDIES)})")
    if data["command"] not in STUDIES:
        raise SpecError(
            f"{path}: unknown command {data['command']!r}." + suggest(str(data["command"]), STUDIES)
        )
    st = study(data["command"])
    try:
        st.check_keys(data)
        st.spec(data)
    except SpecError as err:
        raise SpecError(f"{path}: {err}") from None
    return data


def _runs(path, data):
    """The runs of a multi-run file: (name, experiment dict) with the shared keys merged in."""
    from gradvar import plots

    shared = {key: value for key, value in data.items() if key not in ("run", "figure")}
    runs, figure = data["run"], data.get("figure", "")
    if not isinstance(runs, list) or not runs or not all(isinstance(r, dict) for r in runs):
        raise SpecError(f"{path}: 'run' must be one or more [[run]] tables")
    if figure not in plots.GROUP_PLOTTERS:
        raise SpecError(
            f"{path}: 'figure' must be one of: {', '.join(plots.GROUP_PLOTTERS)} (got {figure!r})"
        )
    out = []
    for i, run_ in enumerate(runs):
        name = run_.get("name")
        if not isinstance(name, str) or not name or Path(name).name != name:
            raise SpecError(f"{path}: run {i + 1} needs a 'name' (a folder name)")
        if name in [n for n, _ in out]:
            raise SpecError(f"{path}: two runs are named {name!r}")
        merged = {**shared, **{k: v for k, v in run_.items() if k != "name"}}
        if isinstance(shared.get("set"), dict) and isinstance(run_.get("set"), dict):
            merged["set"] = {**shared["set"], **run_["set"]}
        out.append((name, _validated(f"{path} [run {name!r}]", merged)))
    return figure, out


def load(path, out=None, trust_plugins=False):
    """Read and fully validate one single-run experiment file (keys and values); SpecError
    names the file.  Multi-run files: :func:`load_runs`."""
    exps = load_runs(path, out, trust_plugins)
    if exps[0].group is not None:
        raise SpecError(f"{path} holds [[run]] tables: load them with load_runs")
    return exps[0]


def load_runs(path, out=None, trust_plugins=False):
    """Read and fully validate one experiment file: a list of one :class:`Experiment`, or
    of one per run of a multi-run file; SpecError names the file."""
    data = read(path, trust_plugins)
    target = Path(out) if out is not None else default_target(path)
    if "run" not in data:
        return [Experiment(Path(path), _validated(path, data), target)]
    figure, runs = _runs(path, data)
    group = Group(Path(path), target, figure, [name for name, _ in runs])
    return [Experiment(Path(path), d, target / name, group) for name, d in runs]


def load_all(paths, out=None, force=False, trust_plugins=False):
    """Every file read and validated before any runs (the runs of multi-run files in order);
    a meta.json never replaces the folder it came from unless ``force``."""
    if out is not None and len(paths) > 1:
        raise SpecError("--out needs exactly one FILE")
    loaded = [exp for p in paths for exp in load_runs(p, out, trust_plugins)]
    for exp in loaded:
        source = exp.path if exp.path.is_dir() else exp.path.parent
        if exp.path.suffix != ".toml" and exp.target.resolve() == source.resolve() and not force:
            raise SpecError(
                f"{exp.path}: would replace the folder it came from; give --out DIR "
                "(or --force to replace it)"
            )
    return loaded


def finish(group):
    """After the last run of a multi-run file: write its runs.json and draw its figure;
    returns the figure's file names."""
    from gradvar import io, plots

    payload = json.dumps({"figure": group.figure, "runs": group.names}, indent=2) + "\n"
    io.replace_file(group.target / RUNS_FILE, lambda tmp: Path(tmp).write_text(payload))
    return plots.GROUP_PLOTTERS[group.figure].draw(group.target)


def run(path, out=None, resume=False, progress=None, trust_plugins=False):
    """Python API (``gradvar.run``): run one experiment file into its results folder
    (``results/<file stem>/`` unless ``out``), replacing an existing one once the new one is
    complete; returns the folder (of a multi-run file: the folder holding its runs)."""
    exps = load_all([path], out, force=True, trust_plugins=trust_plugins)
    for exp in exps:
        prepared = base.prepare(exp.study, exp.data, exp.target, force=True, resume=resume)
        base.run_into_folder(prepared, progress=progress)
    if exps[0].group is not None:
        finish(exps[0].group)
        return exps[0].group.target
    return exps[0].target

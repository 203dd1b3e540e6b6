"""Plugins: Python files that register families, objectives, estimators or baselines with
the public decorators of :mod:`gradvar.model.registry` (see examples/exponential.py).

A plugin is code, so it runs only when asked for: ``--plugin FILE.py`` on the command line,
or a ``plugins = ["FILE.py"]`` key of an experiment file, which ``gradvar run`` honours only
with ``--trust-plugins``.  A plugin is imported by content (:func:`gradvar.engine.
load_plugins`, which :class:`gradvar.engine.Task` uses too): its module is named after the
sha256 of its source, so the same file is imported once and the kernel cache (whose digest
hashes the module's file) never serves kernels of an older version.  A run records every
plugin as ``{"path", "sha256"}`` in meta.json; a re-run from that record refuses a file
whose hash changed.
"""

from pathlib import Path

from gradvar.spec import SpecError

KEY = "plugins"  # the experiment key (TOML, meta.json)


def load(path, sha256=None):
    """Import the plugin at ``path`` (once per content, through :func:`gradvar.engine.
    load_plugins`, the loader of :class:`gradvar.engine.Task`); returns its record
    ``{"path": path, "sha256": hash}``.  SpecError if it cannot be read, its hash is not
    ``sha256`` (when given), or importing it fails."""
    from gradvar import engine

    path = str(path)
    try:
        entry = engine.plugin_entry(path)
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(
            f"plugin {path}: cannot read: {getattr(err, 'strerror', None) or err}"
        ) from None
    digest = entry[2]
    if sha256 is not None and sha256 != digest:
        raise SpecError(
            f"plugin {path} changed since the run that recorded it "
            f"(sha256 {digest[:12]}..., recorded {str(sha256)[:12]}...); "
            "run it without the recorded hash to accept the new version"
        )
    try:
        engine.load_plugins([entry])
    except Exception as err:  # the plugin's own error: bad input, named, no traceback
        raise SpecError(f"plugin {path} failed to import: {type(err).__name__}: {err}") from None
    return {"path": path, "sha256": digest}


def records(entries):
    """Load a list of plugins (paths, or ``{"path", "sha256"}`` records); their records."""
    if entries is None:
        return []
    if isinstance(entries, (str, dict)):
        entries = [entries]
    out = []
    for entry in entries:
        if isinstance(entry, dict) and set(entry) <= {"path", "sha256"} and "path" in entry:
            out.append(load(entry["path"], entry.get("sha256")))
        elif isinstance(entry, (str, Path)):
            out.append(load(entry))
        else:
            raise SpecError(f"{KEY}: expected file names, got {entry!r}")
    return out


def from_experiment(data, trusted, where=""):
    """Load the plugins an experiment dict names (``plugins`` key) and put their records
    in its place; refuse unless ``trusted`` (gradvar run --trust-plugins)."""
    if KEY not in data:
        return data
    prefix = f"{where}: " if where else ""
    if not trusted:
        names = ", ".join(
            str(e.get("path") if isinstance(e, dict) else e)
            for e in (data[KEY] if isinstance(data[KEY], list) else [data[KEY]])
        )
        raise SpecError(
            f"{prefix}this experiment runs plugins ({names}), which are code: "
            "run it with --trust-plugins if you trust them"
        )
    try:
        return {**data, KEY: records(data[KEY])}
    except SpecError as err:
        raise SpecError(f"{prefix}{err}") from None

"""gradvar: a Monte Carlo laboratory for gradient estimators.

The public API mirrors the CLI, with the same names for the same concepts:
``gradvar.compare(...)`` returns the ``results.csv`` table, ``gradvar.sweep_tau(...)``,
``gradvar.gumbel_max(...)`` and ``gradvar.train(...)`` their commands' tables, and
``gradvar.run(path)`` runs an experiment file into its results folder.  The registries are in
``gradvar.registry`` and the Gumbel distribution in ``gradvar.gumbel``.  Imports are lazy
so that ``gradvar --help`` never loads numba or matplotlib.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

try:  # one source: pyproject.toml's version, as installed
    __version__ = version("gradvar")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
__all__ = ["compare", "sweep_tau", "gumbel_max", "train", "run"]
_API = {
    "compare": ("studies.compare", "compare"),
    "sweep_tau": ("studies.sweep_tau", "sweep_tau"),
    "gumbel_max": ("studies.gumbel_max", "gumbel_max"),
    "train": ("studies.train", "train"),
    "run": ("cli.run", "run_experiment"),
}


def __getattr__(name):
    if name in _API:
        module, attr = _API[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'gradvar' has no attribute {name!r}")

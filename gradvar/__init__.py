"""gradvar: a Monte Carlo laboratory for gradient estimators.

The public API mirrors the CLI, with the same names, defaults and validation:
``gradvar.compare(...)`` returns the ``results.csv`` table, ``gradvar.sweep_tau(...)``,
``gradvar.gumbel_max(...)``, ``gradvar.pick_one(...)`` and ``gradvar.train(...)`` their
commands' tables, ``gradvar.run(path)`` runs an experiment file into its results folder and
``gradvar.plot(folder)`` redraws a results folder's figures.  The registries are
``gradvar.model`` (``FAMILIES``, ``OBJECTIVES``, ``ESTIMATORS``, ``BASELINES``, ``OPTIONS``)
and the Gumbel distribution is ``gradvar.gumbel``.  Imports are lazy so that
``gradvar --help`` never loads numba or matplotlib.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

try:  # one source: pyproject.toml's version, as installed
    __version__ = version("gradvar")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
__all__ = ["compare", "sweep_tau", "gumbel_max", "pick_one", "train", "run", "plot", "gumbel"]
_API = {
    "compare": ("studies.compare", "compare"),
    "sweep_tau": ("studies.sweep_tau", "sweep_tau"),
    "gumbel_max": ("studies.gumbel_max", "gumbel_max"),
    "pick_one": ("studies.pick_one", "pick_one"),
    "train": ("studies.train", "train"),
    "run": ("studies.experiments", "run"),
    "plot": ("plots", "draw"),
}


def __getattr__(name):
    if name in _API:
        module, attr = _API[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    if name in ("gumbel", "model"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'gradvar' has no attribute {name!r}")

"""gradvar: a Monte Carlo laboratory for gradient estimators.

The public API mirrors the CLI: ``gradvar.compare(...)`` returns the ``results.csv`` table;
the registries are in ``gradvar.registry``.  Imports are lazy so that ``gradvar --help``
never loads numba or matplotlib.
"""
__version__ = "0.1.0"
__all__ = ["compare", "sweep_tau", "gumbel_max"]


def __getattr__(name):
    if name == "compare":
        from .api import compare

        return compare
    if name == "sweep_tau":
        from .sweeptau import sweep_tau

        return sweep_tau
    if name == "gumbel_max":
        from .gumbelmax import gumbel_max

        return gumbel_max
    raise AttributeError(f"module 'gradvar' has no attribute {name!r}")

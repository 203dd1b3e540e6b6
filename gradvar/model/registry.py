"""The registries: families, objectives and estimators, with their capabilities.

Each entry is plain data plus lazily compiled kernels (see :mod:`gradvar.kernels.jit`), so this
module and the CLI's help load without numba.  Adding an estimator or objective is one
decorated function in :mod:`gradvar.model.estimators` or :mod:`gradvar.model.objectives`; the CLI
choices, ``gradvar list``, validation and the generic tests all read these tables.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Param:
    """A named parameter of a family or objective.

    ``default`` may be a callable of the family's dimension (vector defaults such as
    ``w = 1, 2, ..., K``); ``positive`` declares the domain (sigma > 0, tau > 0).
    """

    name: str
    default: object
    vector: bool = False
    positive: bool = False
    help: str = ""

    def default_for(self, dim):
        value = self.default(dim) if callable(self.default) else self.default
        return np.asarray(value, dtype=float) if self.vector else float(value)


@dataclass(frozen=True)
class Family:
    """A parametric distribution p_theta and what it can do.

    Kernels (all read ``fp``, the float array made by ``prepare``):
    ``noise(fp, key, counter, state)`` draws the base noise of one sample;
    ``score(fp, state, x, s)`` writes the hard sample x and the score d log p / d theta;
    ``path(fp, tau, state, y, h)`` writes the pathwise (or relaxed) sample y and hard h;
    ``vjp(fp, tau, state, y, v, g)`` adds (dy/dtheta)^T v to g.
    """

    name: str
    params: tuple
    capabilities: frozenset
    summary: str
    prepare: Callable  # dict of parameter values -> fp (float array)
    dim: Callable  # dict of parameter values -> D, the sample dimension
    coords: Callable  # dict of parameter values -> names of the gradient coordinates
    noise: object
    score: object
    path: object
    vjp: object
    state_size: Callable  # D -> length of the noise state
    default_objective: str = ""  # the objective a command uses when none is given


@dataclass(frozen=True)
class Objective:
    """f(x) on a family's sample space, with ground truth where a closed form exists.

    ``kernel(x, objp, grad) -> f`` writes df/dx into ``grad``.  ``pack(values, D)`` lays
    the objective's parameters out as the float array ``objp``.  ``exact_mean`` and
    ``exact_grad`` take (family parameter dict, objective parameter dict) and return the
    closed form, or are None (ground truth then comes from quadrature or enumeration).
    """

    family: str
    name: str
    params: tuple
    summary: str
    formula: str
    kernel: object
    exact_mean: Callable | None = None
    exact_grad: Callable | None = None

    def pack(self, values, dim):
        parts = [np.atleast_1d(np.asarray(values[p.name], dtype=float)) for p in self.params]
        return np.concatenate(parts) if parts else np.zeros(1)


@dataclass(frozen=True)
class Estimator:
    """A gradient estimator: one kernel with the shared signature

    ``kernel(fp, objp, tau, aux, key, counter0, batch, work, g)``

    which writes one gradient estimate (the average over ``batch`` samples whose noise
    counters start at ``counter0``) into ``g``.  ``requires`` is the family capability it
    needs; ``unbiased_for`` is ``"exact"`` or ``"relaxed"``; ``options`` lists the options
    it reads (``baseline``, ``tau``).
    """

    name: str
    summary: str
    formula: str
    kernel: object
    requires: str | None = None
    unbiased_for: str = "exact"
    options: tuple = ()
    min_batch: Callable = field(default=lambda options: 1)
    deterministic: bool = False  # returns the exact gradient (prepared in aux), variance 0


FAMILIES = {}
OBJECTIVES = {}
ESTIMATORS = {}
BASELINES = {
    "mean": "b = E[f] from an independent pilot batch",
    "optimal": "b_j = E[f s_j^2] / E[s_j^2] from an independent pilot batch",
    "loo": "b_i = mean of f over the other samples of the estimate (needs batch >= 2)",
}


def register_family(family):
    FAMILIES[family.name] = family
    return family


def objective(family, name, params=(), summary="", formula="", exact_mean=None, exact_grad=None):
    """Decorator registering an objective kernel ``f(x, objp, grad) -> value``."""

    def wrap(kern):
        OBJECTIVES[(family, name)] = Objective(
            family, name, tuple(params), summary, formula, kern, exact_mean, exact_grad
        )
        return kern

    return wrap


def estimator(
    name,
    summary,
    formula,
    requires=None,
    unbiased_for="exact",
    options=(),
    min_batch=lambda options: 1,
    deterministic=False,
):
    """Decorator registering an estimator kernel with the shared signature."""

    def wrap(kern):
        ESTIMATORS[name] = Estimator(
            name,
            summary,
            formula,
            kern,
            requires,
            unbiased_for,
            tuple(options),
            min_batch,
            deterministic,
        )
        return kern

    return wrap


def load():
    """Import the modules that fill the registries (no numba import happens here)."""
    from gradvar.model import estimators, families, objectives  # noqa: F401


def objectives_for(family):
    load()
    return {name: o for (fam, name), o in OBJECTIVES.items() if fam == family}


def applicable(est, family):
    """True when the family has the capability the estimator requires."""
    return est.requires is None or est.requires in family.capabilities

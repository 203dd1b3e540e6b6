"""The registry types, their tables and the decorators that fill them.

This module imports no content: ``import gradvar.model`` (which any import of
``gradvar.model.registry`` triggers first) imports the modules that register the built-in
families, objectives, estimators, baselines and options, so the tables are full as soon as
they can be read.  Each kind of piece is one entry:

- a family (:class:`Family`): its parameters drive the CLI options, API keywords, TOML keys,
  validation and defaults; its hooks give ground truth (enumeration, quadrature, two-class
  relaxation, exact gradient);
- an objective (:class:`Objective`): one kernel, its parameters, closed forms and
  capabilities;
- an estimator (:class:`Estimator`): one kernel with the shared signature, its capabilities
  and options, its cost, an optional noise stream of its own and an optional exact hook;
- a baseline (:class:`Baseline`) of the baseline-corrected score function;
- an estimator option (:class:`Option`) such as ``tau``: one declaration gives the CLI option,
  the TOML/API key, the CSV column, its role as a cell axis and the kernel argument
  ``opts[option.index]``.

Entries are plain data plus lazily compiled kernels (:mod:`gradvar.kernels.jit`): nothing
here imports numba, so ``gradvar --help`` stays fast.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gradvar.kernels.layout import WORK_ROWS


@dataclass(frozen=True)
class Param:
    """A named parameter of a family or objective.

    ``default`` may be a callable of the family's dimension (vector defaults such as
    ``w = 1, 2, ..., K``); ``positive`` declares the domain (sigma > 0).
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
class Option:
    """An estimator option that is a cell axis: a list of values sweeps it.

    The kernel of an estimator that declares it in ``options`` reads its value as
    ``opts[index]`` (``index`` is given at registration: the position in :data:`OPTIONS`).
    The CLI spells it ``--name`` with dashes (``rao_samples`` -> ``--rao-samples``); TOML,
    the Python API and the CSV column use ``name``.
    """

    name: str
    default: float
    help: str
    positive: bool = True
    integer: bool = False
    index: int = -1
    maximum: float = math.inf  # the largest value accepted (a count that could not finish)

    @property
    def flag(self):
        return "--" + self.name.replace("_", "-")


FIXED, LEAVE_ONE_OUT = 0.0, 1.0  # sf-baseline's aux[0]: b_j in aux[1:], or leave-one-out


@dataclass(frozen=True)
class Baseline:
    """A baseline b of the score function (f(x) - b) grad log p(x).

    ``fixed(mean_f, mean_f_s2, mean_s2) -> b`` (one b per gradient coordinate) computes b
    from the moments E[f], E[f s_j^2], E[s_j^2]: the engine passes a pilot batch's means,
    the ground truth the exact ones (the oracle baseline).  A baseline without ``fixed``
    is computed inside the kernel from the other samples of the estimate (``mode``
    LEAVE_ONE_OUT) and needs ``min_batch`` samples.
    """

    name: str
    summary: str
    fixed: Callable | None = None
    mode: float = FIXED
    min_batch: int = 1

    @property
    def needs_pilot(self):
        return self.fixed is not None


@dataclass(frozen=True)
class Family:
    """A parametric distribution p_theta and what it can do.

    Kernels (all read ``fp``, the float array made by ``prepare``):
    ``noise(fp, key, counter, state)`` draws the base noise of one sample;
    ``score(fp, state, x, s)`` writes the hard sample x and the score d log p / d theta;
    ``path(fp, tau, state, y, h)`` writes the pathwise (or relaxed) sample y and hard h;
    ``vjp(fp, tau, state, y, v, g)`` adds (dy/dtheta)^T v to g;
    ``variate(fp, key, index)`` (optional): the noise as one flat sequence, the state of sample
    c being variates c S .. c S + S - 1 (S = ``state_size``); with it the generated kernels
    draw the noise of a block of samples in one vectorised loop.
    ``score_lanes(fp, t, x, s, q, rows)``, ``path_lanes(fp, tau, t, y, h, q, rows)`` and
    ``vjp_lanes(fp, tau, t, y, v, g, q, rows)`` (optional, with ``variate``): the same three
    kernels on a block of samples side by side, one per column (lane) of (width, R) matrices,
    ``t`` holding their noise (state j of lane r at ``t[j, r]``), ``q`` (LANE_Q, R) per-lane
    scalars of which they may use rows 0 .. 2 (row ``layout.F_LANE`` holds f);
    each lane must run the operations of the one-sample kernel in the same order (the same
    bits), so that the loops over the lanes vectorise without changing a result.

    Ground-truth hooks (None where they do not apply):
    ``outcomes(values) -> (states, weights)``: every value of the base noise that matters,
    with its probability (discrete families: one state per outcome);
    ``quadrature(values, nodes) -> (states, weights)``: a quadrature rule of ``nodes``
    nodes for E over the base noise, refined over ``quadrature_nodes`` until two agree;
    ``injection_exact``: the estimator capabilities whose estimate is a function of the
    injected states alone (so that outcomes or quadrature give its exact moments);
    ``exact_gradient(values, f) -> gradient`` from f at the ``outcomes`` states;
    ``two_class(values) -> (state_of_L, switch)`` for families whose noise is one logistic
    variate L (relaxed estimators then integrate over L), None otherwise;
    ``noise_pdf(e)`` and ``noise_support``: the density and support of a base noise that is
    one variate e, for adaptive integration piece by piece where f has kinks or jumps.
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
    default_estimators: tuple = ()  # the curated set a command runs when none is given
    variable: str = "x"  # the sample variable's name in formulas and expressions
    min_dim: int = 1
    outcomes: Callable | None = None
    quadrature: Callable | None = None
    quadrature_nodes: tuple = ()
    injection_exact: frozenset = frozenset()
    exact_gradient: Callable | None = None
    two_class: Callable | None = None
    enumeration_cap: int = 10**6  # most outcomes the ground truth enumerates
    noise_pdf: Callable | None = None  # density of a one-dimensional base noise (see below)
    noise_support: tuple = (-math.inf, math.inf)
    variate: object = None  # kernel (fp, key, index) -> variate number index (see above)
    score_lanes: object = None  # the lane forms of score, path, vjp (see above)
    path_lanes: object = None
    vjp_lanes: object = None

    @property
    def has_lanes(self):
        return None not in (self.variate, self.score_lanes, self.path_lanes, self.vjp_lanes)


@dataclass(frozen=True)
class Objective:
    """f(x) on a family's sample space, with ground truth where a closed form exists.

    ``kernel(x, objp, grad) -> f`` writes df/dx into ``grad``.  ``pack(values, D)`` lays
    the objective's parameters out as the float array ``objp``.  ``exact_mean`` and
    ``exact_grad`` take (family parameter dict, objective parameter dict) and return the
    closed form, or are None (ground truth then comes from quadrature or enumeration).
    Capabilities: ``derivatives`` (the highest order of df/dx it provides; the kernel gives
    f', ``derivatives_at(z, values)`` returns [f, f', ..., f^(derivatives)] at a point, in
    NumPy, for estimators that expand f around a point), ``degree`` (polynomial degree,
    None if not a polynomial), ``jumps`` (f may be discontinuous, so pathwise estimators may
    be biased), ``relaxed`` (defined on relaxed samples too).  ``exact_moments(cell, est,
    baseline)``: ground truth where the family's quadrature rule does not converge (None
    where it has none either).  ``pieces(x, values)`` labels the smooth piece of f a sample
    lies in, where f has kinks or jumps (None: smooth), so that the ground truth can
    integrate piece by piece.  ``lanes(x, objp, v, f, rows)`` (optional): the kernel on a
    block of samples, one per column r < rows of the (width, R) matrices x and v, f[r] = f of
    lane r, each lane computed with the operations of ``kernel`` in the same order (see
    ``Family.score_lanes``); without it the generated kernels call ``kernel`` lane by lane.
    """

    family: str
    name: str
    params: tuple
    summary: str
    formula: str
    kernel: object
    exact_mean: Callable | None = None
    exact_grad: Callable | None = None
    derivatives: int = 1
    degree: int | None = None
    jumps: bool = False
    relaxed: bool = True
    derivatives_at: Callable | None = None  # (z, values) -> [f, f', ..., f^(derivatives)]
    exact_moments: Callable | None = None  # (cell, est, baseline) -> (mean, var[, note]) or None
    pieces: Callable | None = None  # (x, values) -> label of the smooth piece x lies in
    lanes: object = None  # kernel (x, objp, v, f, rows): ``kernel`` on a block of lanes

    def pack(self, values, dim):
        parts = [np.atleast_1d(np.asarray(values[p.name], dtype=float)) for p in self.params]
        return np.concatenate(parts) if parts else np.zeros(1)


@dataclass(frozen=True)
class Estimator:
    """A gradient estimator: one kernel with the shared signature

    ``kernel(fp, objp, opts, aux, key, counter0, batch, work, g)``

    which writes one gradient estimate (the average over ``batch`` samples whose noise
    counters start at ``counter0``) into ``g``; ``opts[Option.index]`` holds the cell's
    option values, ``aux`` what the engine prepares per cell (baseline, exact gradient).
    ``requires`` is the family capability it needs; ``unbiased_for`` is ``"exact"``,
    ``"relaxed"`` or ``"none"``; ``options`` names the options it reads (``baseline`` and
    registered :class:`Option` names).  ``f_evals``: evaluations of f (or of its gradient)
    per sample.  ``stream``: the name of a noise stream of its own (see
    :func:`gradvar.kernels.rng.substream`), None if it uses only the family's noise.
    ``exact(cell, baseline) -> (mean, var) or (mean, var, note) or None``: ground truth the
    estimator supplies itself.  ``train_only``: it has state trained along a trajectory
    (``gradvar train``).  ``aux(cell)``: per-cell values its kernel reads (an expansion point,
    say; per-cell work is not counted in ``f_evals``).  ``needs_derivatives``: the order of
    df/dx the objective must provide (``Objective.derivatives``).  ``scratch_rows``: rows of
    ``work`` beyond the shared ones (``layout.WORK_ROWS`` on) that its kernel uses as scratch.
    ``lanes(fp, objp, opts, aux, t, rows, work, g)`` (optional): the estimates of batch 1 of
    ``rows`` samples side by side (one per column, see ``Family.score_lanes``) from their
    noise ``t``, written with the lane forms of the family's kernels and of the objective (bound
    as ``score``, ``path``, ``vjp``, ``obj``); ``work`` is the tuple (x, h, v, s, q) of lane
    matrices (:mod:`gradvar.kernels.layout`), g (P, R).  Each lane must give the bits of
    ``kernel``; families with lane forms then run it on blocks of samples.
    """

    name: str
    summary: str
    formula: str
    kernel: object
    requires: str | None = None
    unbiased_for: str = "exact"
    options: tuple = ()
    deterministic: bool = False  # returns the exact gradient (prepared in aux), variance 0
    f_evals: object = 1  # a number, or a callable of the cell's options dict
    stream: str | None = None
    exact: Callable | None = None
    train_only: bool = False
    min_batch: int = 1
    aux: Callable | None = None  # (cell) -> the array the kernel reads as aux
    needs_derivatives: int = 1  # the order of df/dx it needs from the objective
    scratch_rows: int = 0  # rows of work of its own, after the layout.WORK_ROWS shared ones
    lanes: object = None  # kernel: ``kernel`` at batch 1 on a block of samples (see above)

    def evals(self, options):
        """Evaluations of f (or of its gradient) per sample, for the cost columns."""
        return float(self.f_evals(options) if callable(self.f_evals) else self.f_evals)

    @property
    def work_rows(self):
        """The rows of the ``work`` array its kernel gets (each of the cell's width)."""
        return WORK_ROWS + self.scratch_rows

    def uses(self, option):
        return option in self.options

    @property
    def uses_baseline(self):
        return "baseline" in self.options

    @property
    def uses_tau(self):
        return "tau" in self.options

    @property
    def cell_options(self):
        """The registered :class:`Option` entries it reads (cell axes), in table order."""
        return [o for o in OPTIONS.values() if o.name in self.options]

    def batch_needed(self, baseline):
        """The smallest batch this estimator accepts with ``baseline``."""
        extra = BASELINES[baseline].min_batch if self.uses_baseline and baseline else 1
        return max(self.min_batch, extra)


FAMILIES: dict = {}
OBJECTIVES: dict = {}  # (family name, objective name) -> Objective
ESTIMATORS: dict = {}
BASELINES: dict = {}
OPTIONS: dict = {}


def register_family(family):
    FAMILIES[family.name] = family
    return family


def register_baseline(baseline):
    BASELINES[baseline.name] = baseline
    return baseline


def register_option(option):
    """Register an :class:`Option`; returns its index in the kernels' ``opts`` array."""
    if option.name in OPTIONS:
        return OPTIONS[option.name].index
    index = len(OPTIONS)
    OPTIONS[option.name] = Option(**{**option.__dict__, "index": index})
    return index


def objective(family, name, params=(), summary="", formula="", **capabilities):
    """Decorator registering an objective kernel ``f(x, objp, grad) -> value``.

    ``capabilities``: ``exact_mean``, ``exact_grad`` and the fields of :class:`Objective`.
    """

    def wrap(kern):
        OBJECTIVES[(family, name)] = Objective(
            family, name, tuple(params), summary, formula, kern, **capabilities
        )
        return kern

    return wrap


def estimator(name, summary, formula, **capabilities):
    """Decorator registering an estimator kernel with the shared signature.

    ``capabilities``: the fields of :class:`Estimator` (``requires``, ``options``, ...).
    """

    def wrap(kern):
        options = tuple(capabilities.pop("options", ()))
        ESTIMATORS[name] = Estimator(name, summary, formula, kern, options=options, **capabilities)
        return kern

    return wrap


def objectives_for(family):
    return {name: o for (fam, name), o in OBJECTIVES.items() if fam == family}


def applicable(est, family):
    """True when the family has the capability the estimator requires."""
    return est.requires is None or est.requires in family.capabilities


def biased_by_a_jump(objective, est):
    """True for a pathwise estimator (it requires ``reparam`` or ``relax``) on an objective
    that may jump: it may then be biased (it differentiates f where f is smooth)."""
    return bool(objective.jumps) and est.requires in ("reparam", "relax")


def parameter_names():
    """Every family parameter name, in registration order (the CLI's family options)."""
    names = {}
    for fam in FAMILIES.values():
        for p in fam.params:
            names.setdefault(p.name, p)
    return names

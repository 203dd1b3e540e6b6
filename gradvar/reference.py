"""Ground truth: exact gradients and exact estimator variances.

Exact gradients come from the objective's closed form (normal), or by enumeration
(categorical: p * (F - p.F), F_j = f(e_j); bernoulli: (f(1) - f(0)) p (1 - p)).

Exact variances run the estimator's own kernel, in pure Python, on noise that is not drawn
but injected: Gauss-Hermite nodes of eps ~ N(0, 1) for the normal family (converged when
n and 2n nodes agree, else NaN), and one state per outcome for the discrete families
(valid for score-function estimators only, whose estimate depends on the outcome alone).
Var = E[g^2] - E[g]^2 per sample, divided by ``batch``.  Baselines use their oracle value.
"""
import functools
import math
import types

import numpy as np

from .estimators import LOO

QUAD_NODES = (40, 80, 160, 320)  # hermegauss overflows beyond about 400 nodes
QUAD_RTOL = 1e-9


@functools.lru_cache(maxsize=None)
def _hermite(nodes):
    """Gauss-Hermite nodes and weights for E over N(0, 1) (weights normalised to sum 1)."""
    with np.errstate(all="ignore"):
        x, w = np.polynomial.hermite_e.hermegauss(nodes)
    x.setflags(write=False)
    w = w / math.sqrt(2.0 * math.pi)
    w.setflags(write=False)
    return x, w


def _states_normal(values, nodes):
    x, w = _hermite(nodes)
    return x[:, None], w


def _states_categorical(values, nodes):
    logits = np.asarray(values["logits"], dtype=float)
    k = len(logits)
    states = np.full((k, k), -np.inf)
    np.fill_diagonal(states, 0.0)  # argmax(o + G) = j exactly
    p = np.exp(logits - logits.max())
    return states, p / p.sum()


def _states_bernoulli(values, nodes):
    p = 0.5 * (1.0 + math.tanh(0.5 * float(values["logit"])))
    return np.array([[-np.inf], [np.inf]]), np.array([1.0 - p, p])


# family -> (states(values, nodes), capabilities for which the states are exact, needs nodes)
INJECTION = {
    "normal": (_states_normal, {"score", "reparam"}, True),
    "categorical": (_states_categorical, {"score"}, False),
    "bernoulli": (_states_bernoulli, {"score"}, False),
}


def _python_estimator(est, family, objective, state_table):
    """The estimator kernel as pure Python, its noise replaced by ``state_table[counter]``."""

    def injected(fp, key, counter, state):
        state[:] = state_table[counter]

    py = est.kernel.py_func
    names = dict(noise=injected, score=family.score.py_func, path=family.path.py_func,
                 vjp=family.vjp.py_func, obj=objective.kernel.py_func)
    return types.FunctionType(py.__code__, {**py.__globals__, **names}, py.__name__)


def objective_values_on(cell, states):
    """f at the hard sample of every injected state."""
    fam, obj = cell.family, cell.objective
    fp, objp, width = cell.fp(), cell.objp(), cell.width
    work = np.zeros((6, width))
    out = np.empty(len(states))
    for i, st in enumerate(states):
        work[2, :len(st)] = st
        fam.score.py_func(fp, work[2, :len(st)], work[0], work[4])
        out[i] = obj.kernel.py_func(work[0, :cell.dim], objp, work[3])
    return out


def _per_sample(cell, est, states, aux):
    p = len(cell.coords)
    func = _python_estimator(est, cell.family, cell.objective, states)
    work = np.zeros((6, cell.width))
    g = np.zeros(p)
    out = np.empty((len(states), p))
    fp, objp = cell.fp(), cell.objp()
    with np.errstate(all="ignore"):
        for i in range(len(states)):
            # the state row must have the family's state length for its kernels
            func(fp, objp, float(cell.tau), aux, np.uint64(0), i, 1, _Work(work, cell), g)
            out[i] = g
    return out


class _Work:
    """Rows of the work array trimmed to the lengths the family's kernels expect."""

    def __init__(self, work, cell):
        dim, p = cell.dim, len(cell.coords)
        size = cell.family.state_size(dim)
        self.rows = [work[0, :dim], work[1, :dim], work[2, :size], work[3, :dim], work[4, :p],
                     work[5, :p]]

    def __getitem__(self, i):
        return self.rows[i]


def oracle_aux(cell, baseline, states, weights):
    """aux of sf-baseline with the exact baseline (E[f], or E[f s_j^2] / E[s_j^2])."""
    p = len(cell.coords)
    aux = np.zeros(1 + p)
    if baseline == "loo":
        aux[0] = LOO
        return aux
    fam, fp = cell.family, cell.fp()
    f = objective_values_on(cell, states)
    mean_f = float(weights @ f)
    if baseline == "mean":
        aux[1:] = mean_f
        return aux
    work = np.zeros((6, cell.width))
    s2 = np.empty((len(states), p))
    for i, st in enumerate(states):
        work[2, :len(st)] = st
        fam.score.py_func(fp, work[2, :len(st)], work[0], work[4])
        s2[i] = work[4, :p] ** 2
    num, den = weights @ (f[:, None] * s2), weights @ s2
    aux[1:] = np.where(den > 0, num / np.where(den > 0, den, 1.0), mean_f)
    return aux


def exact_gradient(cell):
    """The exact gradient of E[f], or NaNs where none is available."""
    fam, obj = cell.family, cell.objective
    p = len(cell.coords)
    if obj.exact_grad is not None:
        return np.asarray(obj.exact_grad(cell.family_values, cell.objective_values), dtype=float)
    if fam.name in ("categorical", "bernoulli"):
        states, probs = INJECTION[fam.name][0](cell.family_values, 0)
        f = objective_values_on(cell, states)
        if fam.name == "categorical":
            return probs * (f - probs @ f)
        return np.array([(f[1] - f[0]) * probs[0] * probs[1]])
    return np.full(p, np.nan)


def exact_moments(cell, est, baseline="mean"):
    """(mean, variance of one estimate) of ``est`` in ``cell``, NaN where unknown."""
    p = len(cell.coords)
    nan = np.full(p, np.nan)
    if est.name == "exact":
        return exact_gradient(cell), np.zeros(p)
    if cell.family.name not in INJECTION:
        return nan, nan
    states_of, capabilities, needs_nodes = INJECTION[cell.family.name]
    if est.requires not in capabilities or (baseline == "loo" and "baseline" in est.options):
        return nan, nan
    previous = None
    for nodes in (QUAD_NODES if needs_nodes else (0,)):
        states, weights = states_of(cell.family_values, nodes)
        aux = oracle_aux(cell, baseline, states, weights) if "baseline" in est.options \
            else np.zeros(1 + p)
        g = _per_sample(cell, est, states, aux)
        # shifted by the first node: a constant estimate (reparam on linear, exact) gets its
        # value and variance 0 exactly, although the weights sum to 1 only up to rounding
        mean = g[0] + weights @ (g - g[0])
        var = np.maximum(weights @ (g - mean) ** 2, 0.0)
        current = (mean, var / cell.batch)
        if not needs_nodes:
            return current
        if previous is not None and all(
                np.allclose(a, b, rtol=QUAD_RTOL, atol=QUAD_RTOL * (1 + np.abs(b).max()))
                for a, b in zip(current, previous)):
            return current
        previous = current
    return nan, nan

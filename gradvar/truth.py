"""Ground truth: exact gradients and exact estimator variances.

Exact gradients come from the objective's closed form (normal), or by enumeration
(categorical: p * (F - p.F), F_j = f(e_j); bernoulli: (f(1) - f(0)) p (1 - p)).

Exact variances run the estimator's own kernel, in pure Python, on noise that is not drawn
but injected: Gauss-Hermite nodes of eps ~ N(0, 1) for the normal family (converged when
n and 2n nodes agree, else NaN), and one state per outcome for the discrete families
(valid for score-function estimators only, whose estimate depends on the outcome alone).
Var = E[g^2] - E[g]^2 per sample, divided by ``batch``.  Baselines use their oracle value.

Relaxed estimators (``gumbel-softmax``, ``st-gumbel``) with two classes (bernoulli, or a
categorical with K = 2) depend on one logistic variate: their exact mean and variance are
one-dimensional integrals (:func:`relaxed_moments`), and the exact mean of
``gumbel-softmax`` is the gradient of the relaxed objective (:func:`relaxed_gradient`).
"""

import functools
import math
import types

import numpy as np

from gradvar.model.estimators import LOO

QUAD_NODES = (40, 80, 160, 320)  # hermegauss overflows beyond about 400 nodes
QUAD_RTOL = 1e-9


@functools.cache
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
    names = dict(
        noise=injected,
        score=family.score.py_func,
        path=family.path.py_func,
        vjp=family.vjp.py_func,
        obj=objective.kernel.py_func,
    )
    return types.FunctionType(py.__code__, {**py.__globals__, **names}, py.__name__)


def objective_values_on(cell, states):
    """f at the hard sample of every injected state."""
    fam, obj = cell.family, cell.objective
    fp, objp, width = cell.fp(), cell.objp(), cell.width
    work = np.zeros((6, width))
    out = np.empty(len(states))
    for i, st in enumerate(states):
        work[2, : len(st)] = st
        fam.score.py_func(fp, work[2, : len(st)], work[0], work[4])
        out[i] = obj.kernel.py_func(work[0, : cell.dim], objp, work[3])
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
        self.rows = [
            work[0, :dim],
            work[1, :dim],
            work[2, :size],
            work[3, :dim],
            work[4, :p],
            work[5, :p],
        ]

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
        work[2, : len(st)] = st
        fam.score.py_func(fp, work[2, : len(st)], work[0], work[4])
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
    if est.deterministic:
        return exact_gradient(cell), np.zeros(p)
    if est.requires == "relax":
        return relaxed_moments(cell, est)
    if cell.family.name not in INJECTION:
        return nan, nan
    states_of, capabilities, needs_nodes = INJECTION[cell.family.name]
    if est.requires not in capabilities or (baseline == "loo" and "baseline" in est.options):
        return nan, nan
    previous = None
    for nodes in QUAD_NODES if needs_nodes else (0,):
        states, weights = states_of(cell.family_values, nodes)
        aux = (
            oracle_aux(cell, baseline, states, weights)
            if "baseline" in est.options
            else np.zeros(1 + p)
        )
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
            for a, b in zip(current, previous, strict=False)
        ):
            return current
        previous = current
    return nan, nan


# --- relaxed estimators, two classes: quadrature over the logistic noise ----------------
# With two classes every relaxed or straight-through estimate is a function of one logistic
# variate L (the difference of two Gumbels), so its exact mean and variance are integrals
# over L.  The hard sample switches at L*, and the soft one varies on a scale tau around L*:
# the integral is split there so the adaptive rule sees smooth pieces.
RELAX_RTOL = 1e-9  # requested relative accuracy; a result whose error estimate is worse is NaN
RELAX_WINDOW = 40.0  # half-width of the inner pieces around L*, in units of tau


def _two_class_noise(cell):
    """(state(L), L*) for two-class cells: the noise state with the law of the family's
    noise given L ~ Logistic(0, 1), and the L where the hard sample switches; None else."""
    values = cell.family_values
    if cell.family.name == "bernoulli":
        return (lambda L: np.array([L])), -float(values["logit"])
    if cell.family.name == "categorical" and cell.dim == 2:
        o = np.asarray(values["logits"], dtype=float)
        # argmax(o + G) = 0 iff o0 - o1 + (G0 - G1) > 0 and G0 - G1 ~ Logistic: G = (L, 0)
        return (lambda L: np.array([L, 0.0])), float(o[1] - o[0])
    return None


def _logistic_pdf(L):
    e = math.exp(-abs(L))
    return e / (1.0 + e) ** 2


def _estimate_at(cell, est, aux):
    """g(state): one estimate of ``est`` (batch 1) on an injected noise state."""
    table = np.zeros((1, cell.family.state_size(cell.dim)))
    func = _python_estimator(est, cell.family, cell.objective, table)
    work = _Work(np.zeros((6, cell.width)), cell)
    fp, objp, tau = cell.fp(), cell.objp(), float(cell.tau)
    p = len(cell.coords)

    def at(state):
        table[0] = state
        g = np.zeros(p)
        func(fp, objp, tau, aux, np.uint64(0), 0, 1, work, g)
        return g

    return at


def _integrate_over_L(func, switch, tau, p):
    """E[func(L)], L ~ Logistic(0, 1), split at the switch point; NaN if not converged."""
    from scipy.integrate import quad_vec

    w = RELAX_WINDOW * tau
    edges = [-np.inf, switch - w, switch, switch + w, np.inf]
    total, err = np.zeros(p), 0.0
    for a, b in zip(edges[:-1], edges[1:], strict=False):
        res, e, info = quad_vec(
            lambda L: func(L) * _logistic_pdf(L),
            a,
            b,
            epsabs=1e-300,
            epsrel=RELAX_RTOL,
            full_output=True,
        )
        if not info.success:
            return np.full(p, np.nan)
        total += res
        err += e
    if not np.all(np.isfinite(total)) or err > 1e3 * RELAX_RTOL * np.abs(total).max() + 1e-12:
        return np.full(p, np.nan)
    return total


def relaxed_moments(cell, est):
    """Exact (mean, variance of one estimate) of a relaxed estimator (``gumbel-softmax``,
    ``st-gumbel``) in a two-class cell by quadrature over the logistic noise; NaN otherwise."""
    p = len(cell.coords)
    nan = np.full(p, np.nan)
    noise = _two_class_noise(cell)
    tau = float(cell.tau)
    if noise is None or est.requires != "relax" or not tau > 0:
        return nan, nan
    state, switch = noise
    at = _estimate_at(cell, est, np.zeros(1 + p))
    with np.errstate(all="ignore"):
        mean = _integrate_over_L(lambda L: at(state(L)), switch, tau, p)
        if np.isnan(mean).any():
            return nan, nan
        var = _integrate_over_L(lambda L: (at(state(L)) - mean) ** 2, switch, tau, p)
    return mean, var / cell.batch


def relaxed_gradient(cell):
    """The gradient of the relaxed objective E[f(softmax((o + G) / tau))] at the cell's tau:
    the exact mean of ``gumbel-softmax`` (two classes, by quadrature); NaN where unknown."""
    from gradvar.model.registry import ESTIMATORS, load

    load()
    return relaxed_moments(cell, ESTIMATORS["gumbel-softmax"])[0]

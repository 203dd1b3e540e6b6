"""Ground truth: exact gradients and exact estimator variances.

Exact gradients come from the objective's closed form, or from the family's hooks
(:class:`gradvar.model.registry.Family`): enumeration over its ``outcomes`` (categorical:
p * (F - p.F), F_j = f(e_j); bernoulli: (f(1) - f(0)) p (1 - p)).

Exact variances run the estimator's own compiled kernel on noise that is not drawn but
injected (``on_states`` of the generated module, see :mod:`gradvar.kernels.codegen`): the family's
``quadrature`` nodes (normal: Gauss-Hermite nodes of eps ~ N(0, 1), converged when two
successive node counts agree, else NaN) or its ``outcomes`` (discrete families; valid for
the capabilities in ``injection_exact``, whose estimate depends on the outcome alone).
Var = E[g^2] - E[g]^2 per sample, divided by ``batch``.  Baselines use their oracle value.
An estimator may supply its own ground truth (``Estimator.exact``).

Relaxed estimators (``gumbel-softmax``, ``st-gumbel``) in families whose noise is one
logistic variate (the family's ``two_class`` hook: bernoulli, or a categorical with K = 2)
have exact means and variances that are one-dimensional integrals
(:func:`relaxed_moments`); the exact mean of ``gumbel-softmax`` is the gradient of the
relaxed objective (:func:`relaxed_gradient`).
"""

import functools
import math

import numpy as np

from gradvar.kernels import jit

QUAD_RTOL = 1e-9


def objective_values_on(cell, states):
    """f at the hard sample of every injected state."""
    fam, obj = cell.family, cell.objective
    fp, objp, width = cell.fp(), cell.objp(), cell.width
    work = np.zeros((6, width))
    out = np.empty(len(states))
    for i, st in enumerate(states):
        work[2, : len(st)] = st
        jit.in_python(fam.score)(fp, work[2, : len(st)], work[0], work[4])
        out[i] = jit.in_python(obj.kernel)(work[0, : cell.dim], objp, work[3])
    return out


def estimates_on(cell, est, states, aux):
    """The estimates (batch 1) of ``est`` whose base noise is each row of ``states``."""
    from gradvar.kernels import codegen

    p = len(cell.coords)
    module = codegen.compiled(cell.family, cell.objective, est, cell.shape)
    out = np.empty((len(states), p))
    with np.errstate(all="ignore"):
        module.on_states(
            cell.fp(),
            cell.objp(),
            cell.opts(),
            np.asarray(aux, dtype=float),
            np.ascontiguousarray(states, dtype=float),
            np.zeros((est.work_rows, cell.width)),
            np.zeros(p),
            out,
        )
    return out


def oracle_aux(cell, baseline, states, weights):
    """aux of sf-baseline with the exact baseline (the baseline's ``fixed`` rule applied to
    the exact moments E[f], E[f s_j^2], E[s_j^2])."""
    from gradvar.model import BASELINES

    base = BASELINES[baseline]
    p = len(cell.coords)
    aux = np.zeros(1 + p)
    aux[0] = base.mode
    if not base.needs_pilot:
        return aux
    fam, fp = cell.family, cell.fp()
    f = objective_values_on(cell, states)
    work = np.zeros((6, cell.width))
    s2 = np.empty((len(states), p))
    for i, st in enumerate(states):
        work[2, : len(st)] = st
        jit.in_python(fam.score)(fp, work[2, : len(st)], work[0], work[4])
        s2[i] = work[4, :p] ** 2
    aux[1:] = base.fixed(float(weights @ f), weights @ (f[:, None] * s2), weights @ s2, 1.0)
    return aux


def exact_gradient(cell):
    """The exact gradient of E[f], or NaNs where none is available."""
    fam, obj = cell.family, cell.objective
    p = len(cell.coords)
    if obj.exact_grad is not None:
        return np.asarray(obj.exact_grad(cell.family_values, cell.objective_values), dtype=float)
    if fam.outcomes is not None and fam.exact_gradient is not None:
        found = fam.outcomes(cell.family_values)
        if found is None:  # too many outcomes to enumerate
            return np.full(p, np.nan)
        states, _ = found
        return np.asarray(fam.exact_gradient(cell.family_values, objective_values_on(cell, states)))
    if fam.quadrature is not None or fam.noise_pdf is not None:
        return objective_moments(cell)[1]
    return np.full(p, np.nan)


def _injection_rules(cell):
    """(states(nodes), node counts) of the family: its outcomes once, or its quadrature rule
    refined until two node counts agree; None when it has neither."""
    fam, values = cell.family, cell.family_values
    if fam.outcomes is not None:
        if fam.outcomes(values) is None:  # too many outcomes to enumerate
            return None
        return (lambda nodes: fam.outcomes(values)), (None,)
    if fam.quadrature is not None:
        return (lambda nodes: fam.quadrature(values, nodes)), fam.quadrature_nodes
    return None


def exact_moments(cell, est, baseline="mean"):
    """(mean, variance of one estimate) of ``est`` in ``cell``, NaN where unknown."""
    mean, var, _ = exact(cell, est, baseline)
    return mean, var


def exact(cell, est, baseline="mean"):
    """(mean, variance of one estimate, note) of ``est`` in ``cell``: NaN where unknown, with
    the reason in ``note`` (empty when both are known)."""
    p = len(cell.coords)
    nan = np.full(p, np.nan)
    if est.deterministic:
        return exact_gradient(cell), np.zeros(p), ""
    if est.exact is not None:
        found = est.exact(cell, baseline)
        if found is None:
            return nan, nan, f"no exact moments of {est.name} here"
        return _with_note(*found)
    if est.requires == "relax":
        mean, var = relaxed_moments(cell, est)
        note = "" if np.all(np.isfinite(var)) else _relaxed_note(cell)
        return mean, var, note
    rules = _injection_rules(cell)
    if rules is None:
        fam = cell.family
        note = f"family {fam.name!r}: no quadrature rule; over {fam.enumeration_cap} outcomes"
        return nan, nan, note
    if est.requires not in cell.family.injection_exact:
        return nan, nan, f"no exact moments for the {est.requires!r} capability on this family"
    if est.uses_baseline and baseline and _is_loo(baseline):
        mean, var = loo_moments(cell, rules)
        note = "" if np.all(np.isfinite(var)) else "loo: quadrature did not converge"
        return mean, var, note
    if est.uses_baseline and baseline and not _has_oracle(baseline):
        return nan, nan, f"baseline {baseline!r} has no fixed oracle value"
    mean, var = _injected_moments(cell, est, baseline, rules)
    if not np.all(np.isfinite(var)) and cell.objective.exact_moments is not None:
        found = cell.objective.exact_moments(cell, est, baseline)
        if found is not None:
            return _with_note(*found)
    note = "" if np.all(np.isfinite(var)) else "quadrature did not converge"
    return mean, var, note


def _with_note(mean, var, note=None):
    if note is None:
        note = "" if np.all(np.isfinite(np.asarray(var, dtype=float))) else "not computed"
    return np.asarray(mean, dtype=float), np.asarray(var, dtype=float), note


def _relaxed_note(cell):
    if _two_class_noise(cell) is None and "softmax" not in cell.family.capabilities:
        return "relaxed estimators: exact moments for one softmax over two or three classes"
    if len(cell.coords) > 3 and _two_class_noise(cell) is None:
        return "relaxed estimators: exact moments for two or three classes only"
    return "quadrature did not converge"


def _injected_moments(cell, est, baseline, rules):
    """(mean, variance) by the family's outcomes or quadrature rule, NaN if unconverged."""
    p = len(cell.coords)
    nan = np.full(p, np.nan)
    edges = piece_edges(cell)
    if edges is not None:
        return _piecewise_moments(cell, est, baseline, edges)
    states_of, node_counts = rules
    previous = None
    for nodes in node_counts:
        states, weights = states_of(nodes)
        if est.uses_baseline:
            aux = oracle_aux(cell, baseline, states, weights)
        else:
            aux = est.aux(cell) if est.aux is not None else np.zeros(1 + p)
        g = estimates_on(cell, est, states, aux)
        # shifted by the first node: a constant estimate (reparam on linear, exact) gets its
        # value and variance 0 exactly, although the weights sum to 1 only up to rounding
        mean = g[0] + weights @ (g - g[0])
        var = np.maximum(weights @ (g - mean) ** 2, 0.0)
        current = (mean, var / cell.batch)
        if len(node_counts) == 1:
            return current
        if previous is not None and _agree(current, previous):
            return current
        previous = current
    return nan, nan


def _is_loo(baseline):
    from gradvar.model import BASELINES
    from gradvar.model.registry import LEAVE_ONE_OUT

    return BASELINES[baseline].mode == LEAVE_ONE_OUT


def _agree(current, previous):
    """Two successive refinements of a rule agree: (mean, var) equal to QUAD_RTOL."""
    return all(
        np.allclose(a, b, rtol=QUAD_RTOL, atol=QUAD_RTOL * (1 + np.abs(b).max()))
        for a, b in zip(current, previous, strict=True)
    )


def _has_oracle(baseline):
    """A baseline computed from the estimate's own samples (loo) has no fixed oracle value:
    the injection of one sample's noise does not give its variance."""
    from gradvar.model import BASELINES

    return BASELINES[baseline].needs_pilot


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
    hook = cell.family.two_class
    return None if hook is None else hook(cell.family_values)


def _logistic_pdf(L):
    e = math.exp(-abs(L))
    return e / (1.0 + e) ** 2


def _estimate_at(cell, est, aux):
    """g(state): one estimate of ``est`` (batch 1) on an injected noise state."""
    from gradvar.kernels import codegen

    p = len(cell.coords)
    module = codegen.compiled(cell.family, cell.objective, est, cell.shape)
    table = np.zeros((1, cell.family.state_size(cell.dim)))
    fp, objp, opts = cell.fp(), cell.objp(), cell.opts()
    work, g = np.zeros((est.work_rows, cell.width)), np.zeros(p)

    def at(state):
        table[0] = state
        out = np.empty((1, p))
        module.on_states(fp, objp, opts, aux, table, work, g, out)
        return out[0]

    return at


def _integrate_over_L(func, switch, tau, p):
    """E[func(L)], L ~ Logistic(0, 1), split at the switch point; NaN if not converged."""
    w = RELAX_WINDOW * tau
    edges = [-np.inf, switch - w, switch, switch + w, np.inf]
    return _piecewise_quad(func, _logistic_pdf, zip(edges[:-1], edges[1:], strict=True), p)


def _piecewise_quad(func, pdf, pieces, p):
    """E[func(u)] for u with density ``pdf``: the sum of ``quad_vec`` over the intervals
    ``pieces`` (pairs (a, b)) at relative accuracy RELAX_RTOL; NaN (length p) if a piece
    fails, the sum is not finite or the summed error estimate exceeds 1e3 RELAX_RTOL times
    its largest entry (+ 1e-12)."""
    from scipy.integrate import quad_vec

    total, err = np.zeros(p), 0.0
    for a, b in pieces:
        res, e, info = quad_vec(
            lambda u: func(u) * pdf(u), a, b, epsabs=1e-300, epsrel=RELAX_RTOL, full_output=True
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
    if est.requires != "relax" or not tau > 0:
        return nan, nan
    if noise is None:
        if "softmax" not in cell.family.capabilities:  # not one softmax over the classes
            return nan, nan
        return relaxed_conditional_moments(cell, est)
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
    from gradvar.model import ESTIMATORS

    return relaxed_moments(cell, ESTIMATORS["gumbel-softmax"])[0]


# --- conditional Gumbels given the argmax: K = 2 or 3 classes by quadrature -----------------
# Given argmax(log pi + G) = i, the perturbed log-probabilities have gaps
# z_j - z_i = -log1p(R_j / pi_j) for j != i, where R_j = E_j / E_i for independent Exp(1)
# variables E (the exponential race, Maddison et al. 2014): the m = K - 1 ratios have the
# joint density m! / (1 + sum R)^(m + 1).  In t_j = log R_j the integrand is smooth on the
# unit scale, so a tensor Gauss-Legendre rule in t, refined until two node counts agree,
# gives every moment of an estimate that is a function of (class, gaps).
COND_NODES = (8, 12, 16, 24)  # Gauss-Legendre nodes per panel, refined until two agree
COND_PANEL = 1.5  # panel width in t = log R (the integrand varies on the unit scale)
COND_WINDOW = 5.0  # ... within this distance of where it turns, twice as wide elsewhere
COND_PRUNE = 1e-20  # nodes lighter than this fraction of the heaviest are dropped
COND_TAIL = 27.0  # the rule covers t in [log(pi_j min(tau, 1)) - 27, 27]: the rest < 2e-12


def _class_probs(cell):
    """pi in the two-class view (class 0: b = 1, or the categorical's class 0) and a
    function mapping gap rows d (n, K) to the family's noise states with those gaps."""
    two = _two_class_noise(cell)
    if two is not None:
        state, switch = two
        pi = np.array(
            [0.5 * (1.0 - math.tanh(0.5 * switch)), 0.5 * (1.0 + math.tanh(0.5 * switch))]
        )
        return pi, lambda d: np.array([state(L) for L in switch + d[:, 0] - d[:, 1]])
    states, pi = cell.family.outcomes(cell.family_values)
    with np.errstate(divide="ignore"):
        logits = np.log(pi)  # o up to a constant: the softmax of o + G is shift invariant
    return pi, lambda d: d - logits


@functools.cache
def _panels(lo, hi, centres, nodes):
    """Composite Gauss-Legendre nodes and weights on [lo, hi]: panels of COND_PANEL within
    COND_WINDOW of the ``centres`` (where the integrand turns), of 2 COND_PANEL elsewhere
    (where it is a plain exponential in t)."""
    edges, t = [lo], lo
    while t < hi:
        near = min(abs(t - c) for c in centres) < COND_WINDOW
        t = min(hi, t + (COND_PANEL if near else 2 * COND_PANEL))
        edges.append(t)
    x, w = np.polynomial.legendre.leggauss(nodes)
    edges = np.array(edges)
    half = np.diff(edges)[:, None] / 2
    return ((edges[:-1, None] + half * (x + 1)).ravel(), (half * w).ravel())


def _gap_rule(pi, i, tau, nodes):
    """Gaps d (n, K) and weights (n,) of the law of z - z_i given argmax(z) = i."""
    others = [j for j in range(len(pi)) if j != i]
    axes = []
    for j in others:
        turn = math.log(pi[j] * min(tau, 1.0))  # where y turns; the density turns at 0
        centres = (round(turn, 1), round(math.log(pi[j]), 1), 0.0)
        t, w = _panels(float(math.floor(turn - COND_TAIL)), COND_TAIL, centres, nodes)
        axes.append((np.exp(t), w * np.exp(t)))  # R_j = e^t, dR_j = R_j dt
    r = [g.ravel() for g in np.meshgrid(*[a[0] for a in axes], indexing="ij")]
    wt = functools.reduce(
        np.multiply, [g.ravel() for g in np.meshgrid(*[a[1] for a in axes], indexing="ij")]
    )
    m = len(others)
    weights = wt * (math.factorial(m) / (1.0 + sum(r)) ** (m + 1))
    keep = weights > COND_PRUNE * weights.max()  # the far corners of the 2-D rule weigh nothing
    d = np.zeros((int(keep.sum()), len(pi)))
    for j, rj in zip(others, r, strict=True):
        d[:, j] = -np.log1p(rj[keep] / pi[j])
    return d, weights[keep]


_CONDITIONAL = {}  # memo: the same cell's st-gumbel moments serve st-gumbel and gumbel-rao
_CONDITIONAL_SIZE = 256


def _cell_key(cell, est):
    values = [(k, tuple(np.atleast_1d(v).tolist())) for k, v in cell.family_values.items()]
    obj = [(k, tuple(np.atleast_1d(v).tolist())) for k, v in cell.objective_values.items()]
    objective = (cell.objective.name, id(cell.objective))  # test objectives are unregistered
    return (cell.family.name, objective, tuple(values), tuple(obj), cell.tau, est.name)


def conditional_moments(cell, est):
    """Memoised :func:`_conditional_moments` (keyed by the cell's values, tau and name)."""
    key = _cell_key(cell, est)
    if key not in _CONDITIONAL:
        if len(_CONDITIONAL) >= _CONDITIONAL_SIZE:
            _CONDITIONAL.clear()
        _CONDITIONAL[key] = _conditional_moments(cell, est)
    return _CONDITIONAL[key]


def _conditional_moments(cell, est):
    """Per class i: (pi_i, E[g | i], Var(g | i)) of one estimate (batch 1) of ``est``, whose
    value depends on the class and the gaps of the perturbed logits only (``st-gumbel``,
    ``gumbel-softmax``); None when not computable (K > 3, no convergence)."""
    p = len(cell.coords)
    pi, to_states = _class_probs(cell)
    k, tau = len(pi), float(cell.tau)
    if k not in (2, 3) or not tau > 0 or not np.all(pi > 0):
        return None
    aux = np.zeros(1 + p)
    previous = None
    for nodes in COND_NODES:
        current = []
        for i in range(k):
            d, w = _gap_rule(pi, i, tau, nodes)
            with np.errstate(all="ignore"):
                g = estimates_on(cell, est, to_states(d), aux)
            mean = w @ g
            current.append((mean, w @ (g - mean) ** 2))
        flat = np.array(current).ravel()
        if not np.all(np.isfinite(flat)):
            return None
        if previous is not None and np.allclose(
            flat, previous, rtol=QUAD_RTOL, atol=QUAD_RTOL * (1 + np.abs(flat).max())
        ):
            return pi, np.array([c[0] for c in current]), np.array([c[1] for c in current])
        previous = flat
    return None


def _total_variance(pi, means, variances, inner=1.0):
    """Law of total variance over the class: E[Var(g | i)] / inner + Var(E[g | i])."""
    mean = pi @ means
    return mean, pi @ variances / inner + pi @ (means - mean) ** 2


def relaxed_conditional_moments(cell, est):
    """(mean, variance) of ``gumbel-softmax`` or ``st-gumbel`` for two or three classes by
    the conditional rule over the argmax regions; NaN otherwise."""
    nan = np.full(len(cell.coords), np.nan)
    found = conditional_moments(cell, est)
    if found is None:
        return nan, nan
    mean, var = _total_variance(*found)
    return mean, var / cell.batch


def gumbel_rao_moments(cell):
    """Exact (mean, variance, note) of ``gumbel-rao`` with K' = rao_samples: one conditional
    draw is one ``st-gumbel`` estimate given the class, so with C_i = Var(st-gumbel | i) and
    m_i = E[st-gumbel | i], Var = sum_i pi_i C_i / K' + sum_i pi_i (m_i - mean)^2."""
    from gradvar.model import ESTIMATORS

    p = len(cell.coords)
    nan = np.full(p, np.nan)
    rao = float(cell.options.get("rao_samples", math.nan))
    found = conditional_moments(cell, ESTIMATORS["st-gumbel"])
    if found is None or not rao >= 1:
        return nan, nan, "gumbel-rao: exact moments for two or three classes only"
    mean, var = _total_variance(*found, inner=rao)
    return mean, var / cell.batch, ""


# --- sf-baseline with the leave-one-out baseline: a U-statistic ------------------------------
def _f_and_scores(cell, states):
    """f and the score at the hard sample of every injected state."""
    fam, obj = cell.family, cell.objective
    fp, objp, p = cell.fp(), cell.objp(), len(cell.coords)
    work = np.zeros((6, cell.width))
    f, s = np.empty(len(states)), np.empty((len(states), p))
    for n, st in enumerate(states):
        work[2, : len(st)] = st
        jit.in_python(fam.score)(fp, work[2, : len(st)], work[0], work[4])
        f[n] = jit.in_python(obj.kernel)(work[0, : cell.dim], objp, work[3])
        s[n] = work[4, :p]
    return f, s


def loo_moments(cell, rules):
    """Exact (mean, variance) of ``sf-baseline --baseline loo`` with batch M >= 2.

    The estimate is the U-statistic of the kernel h(x1, x2) = (f1 - f2)(s1 - s2) / 2, so
    Var = 4 (M - 2) / (M (M - 1)) zeta1 + 2 / (M (M - 1)) zeta2 (Hoeffding 1948), with
    zeta1 = Var(E[h | x1]) and zeta2 = Var(h), from pairs of outcomes or quadrature nodes.
    """
    p, m = len(cell.coords), cell.batch
    nan = np.full(p, np.nan)
    if m < 2:
        return nan, nan
    states_of, node_counts = rules
    previous = None
    for nodes in node_counts:
        states, w = states_of(nodes)
        f, s = _f_and_scores(cell, states)
        ef, es, efs = w @ f, w @ s, w @ (f[:, None] * s)
        h1 = 0.5 * (f[:, None] * s - ef * s - es * f[:, None] + efs)
        mean = efs - ef * es
        zeta1 = w @ (h1 - mean) ** 2
        h = 0.5 * (f[:, None, None] - f[None, :, None]) * (s[:, None, :] - s[None, :, :])
        zeta2 = np.einsum("a,b,abj->j", w, w, (h - mean) ** 2)
        var = 4.0 * (m - 2) / (m * (m - 1)) * zeta1 + 2.0 / (m * (m - 1)) * zeta2
        current = (mean, np.maximum(var, 0.0))
        if len(node_counts) == 1:
            return current
        if previous is not None and _agree(current, previous):
            return current
        previous = current
    return nan, nan


# --- objectives without a closed form: integrals over the base noise ---------------------
# E[f] and its gradient E[f s] (s the score) by the family's quadrature rule, refined until two
# node counts agree; where f has kinks or jumps (Objective.pieces) and the base noise is one
# variate with a density (Family.noise_pdf), by adaptive integration split where f switches
# pieces, found by scanning the pieces' labels over the noise and bisecting.
PIECE_SCAN = 4001  # grid points of the scan
PIECE_RANGE = 40.0  # the scan covers [-40, 40] of the noise where its support is wider


def _sample_and_score(cell, state):
    """(x, s): the hard sample and the score at one base-noise state (NumPy)."""
    work = np.zeros((6, cell.width))
    st = np.atleast_1d(np.asarray(state, dtype=float))
    work[2, : len(st)] = st
    jit.in_python(cell.family.score)(cell.fp(), work[2, : len(st)], work[0], work[4])
    return work[0, : cell.dim].copy(), work[4, : len(cell.coords)].copy()


def piece_edges(cell):
    """[low, edges..., high]: the values of a one-dimensional base noise where f switches
    pieces, with the noise support's ends; None where piecewise integration does not apply."""
    fam, obj = cell.family, cell.objective
    if obj.pieces is None or fam.noise_pdf is None or fam.state_size(cell.dim) != 1:
        return None
    low, high = fam.noise_support

    def label(e):
        return obj.pieces(_sample_and_score(cell, e)[0], cell.objective_values)

    grid = np.linspace(max(low, -PIECE_RANGE), min(high, PIECE_RANGE), PIECE_SCAN)
    labels = [label(e) for e in grid]
    edges = []
    for a, b, la, lb in zip(grid[:-1], grid[1:], labels[:-1], labels[1:], strict=True):
        if la != lb:
            for _ in range(60):  # bisection to the last bits of the float
                m = 0.5 * (a + b)
                a, b = (m, b) if label(m) == la else (a, m)
            edges.append(0.5 * (a + b))
    return [low, *edges, high]


def _integrate_pieces(func, edges, pdf, p):
    """E[func(e)] for e with density ``pdf``, piece by piece (empty pieces skipped); NaN if
    not converged."""
    pieces = [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
    return _piecewise_quad(func, pdf, pieces, p)


def objective_moments(cell):
    """(E[f], gradient of E[f] = E[f s]) over the family's base noise, NaN if the integrals
    do not converge: for objectives without a closed form."""
    p = len(cell.coords)
    edges = piece_edges(cell)

    def f_and_fs(state):
        x, s = _sample_and_score(cell, state)
        f = jit.in_python(cell.objective.kernel)(x, cell.objp(), np.zeros(max(1, cell.dim)))
        return np.concatenate([[f], f * s])

    with np.errstate(all="ignore"):
        if edges is not None:
            out = _integrate_pieces(f_and_fs, edges, cell.family.noise_pdf, 1 + p)
            return out[0], out[1:]
        if cell.family.quadrature is None:
            return math.nan, np.full(p, np.nan)
        previous = None
        for nodes in cell.family.quadrature_nodes:
            states, weights = cell.family.quadrature(cell.family_values, nodes)
            current = weights @ np.array([f_and_fs(st) for st in states])
            if previous is not None and np.allclose(
                current, previous, rtol=QUAD_RTOL, atol=QUAD_RTOL * (1 + np.abs(current).max())
            ):
                return current[0], current[1:]
            previous = current
    return math.nan, np.full(p, np.nan)


def _piecewise_moments(cell, est, baseline, edges):
    """(mean, variance of one estimate) by adaptive integration piece by piece."""
    from gradvar.model import BASELINES

    p = len(cell.coords)
    pdf = cell.family.noise_pdf
    aux = est.aux(cell) if est.aux is not None else np.zeros(1 + p)
    if est.uses_baseline:
        base = BASELINES[baseline]
        aux = np.zeros(1 + p)
        aux[0] = base.mode

        def moments_of(state):
            x, s = _sample_and_score(cell, state)
            f = jit.in_python(cell.objective.kernel)(x, cell.objp(), np.zeros(max(1, cell.dim)))
            return np.concatenate([[f], f * s * s, s * s])

        with np.errstate(all="ignore"):
            m = _integrate_pieces(moments_of, edges, pdf, 1 + 2 * p)
        aux[1:] = base.fixed(m[0], m[1 : 1 + p], m[1 + p :], 1.0)
    at = _estimate_at(cell, est, np.asarray(aux, dtype=float))
    with np.errstate(all="ignore"):
        mean = _integrate_pieces(lambda e: at([e]), edges, pdf, p)
        if np.isnan(mean).any():
            return mean, np.full(p, np.nan)
        var = _integrate_pieces(lambda e: (at([e]) - mean) ** 2, edges, pdf, p)
    return mean, var / cell.batch

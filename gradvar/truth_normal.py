"""Ground truth on the Normal family beyond the Gauss-Hermite rule (docs/math.md §2, §7).

Every integral here is over a standard variate of the Normal's estimators (eps ~ N(0, 1),
W ~ Rayleigh, M ~ double-sided Maxwell, U ~ U(0, 1)) with a composite Gauss-Legendre rule:
PANEL_ORDER nodes on each of ``panels`` equal panels of [-SPAN, SPAN] (Rayleigh: [0, SPAN]),
the density folded into the weights.  Unlike Gauss-Hermite (whose node count overflows near
400) it resolves an oscillating f such as cos(omega z) with omega sigma = 15 (about 0.6
periods of cos^2 per panel at the coarsest level).  A value is reported once two successive
levels of LEVELS agree to ``truth.QUAD_RTOL``; otherwise NaN with a note.  The densities
vanish beyond SPAN to below 1e-55, far under the tolerance for the objectives' growth.

- :func:`injected_moments`: estimators that are functions of eps alone (sf, sf-baseline with
  its oracle baseline, reparam, sf-delta, reparam-delta) run their compiled kernel on the
  injected nodes, as :func:`gradvar.truth.exact` does with the family's rule;
- :func:`mvd_moments`: ``mvd`` (independent pairs: the variance of each difference is the sum
  of two 1-D variances) and ``mvd-coupled`` (mu: one Rayleigh integral; sigma: the 2-D integral
  over (M, U) of (f(mu + sigma M) - f(mu + sigma U M))^2, the inner one over U by
  Gauss-Legendre with INNER_NODES[level] nodes).
"""

import functools
import math

import numpy as np

from gradvar.kernels import jit

SPAN = 16.0
PANEL_ORDER = 16
LEVELS = (256, 512, 1024)  # panels per level
INNER_NODES = (32, 64, 128)  # Gauss-Legendre nodes over U in (0, 1), per level
_NOTE = "quadrature did not converge"


@functools.cache
def _composite(lo, hi, panels):
    """Composite Gauss-Legendre nodes and weights on [lo, hi]."""
    x, w = np.polynomial.legendre.leggauss(PANEL_ORDER)
    edges = np.linspace(lo, hi, panels + 1)
    half = 0.5 * np.diff(edges)
    nodes = (edges[:-1, None] + half[:, None] * (x[None, :] + 1.0)).ravel()
    weights = (half[:, None] * w[None, :]).ravel()
    return nodes, weights


def normal_rule(panels):
    """Nodes eps and weights of E over eps ~ N(0, 1)."""
    x, w = _composite(-SPAN, SPAN, panels)
    return x, w * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def rayleigh_rule(panels):
    """Nodes and weights of E over W ~ Rayleigh(1), density w exp(-w^2 / 2) on w > 0."""
    x, w = _composite(0.0, SPAN, panels)
    return x, w * x * np.exp(-0.5 * x * x)


def maxwell_rule(panels):
    """Nodes and weights of E over the double-sided Maxwell, density m^2 phi(m)."""
    x, w = normal_rule(panels)
    return x, w * x * x


def _agree(current, previous, rtol):
    """Two levels' (mean, var) agree: the means to rtol on the scale of the estimate (its
    standard deviation: a mean near 0 is a difference of large terms), the variances to rtol."""
    (m1, v1), (m0, v0) = current, previous
    scale = 1.0 + np.sqrt(np.abs(v0)).max()
    return np.allclose(m1, m0, rtol=rtol, atol=rtol * scale) and np.allclose(
        v1, v0, rtol=rtol, atol=rtol * (1.0 + np.abs(v0).max())
    )


def _refined(compute, p):
    """(mean, var) of ``compute(level)`` once two successive levels agree, else NaN."""
    from gradvar.truth import QUAD_RTOL

    previous = None
    with np.errstate(all="ignore"):
        for level in range(len(LEVELS)):
            current = compute(level)
            if previous is not None and _agree(current, previous, QUAD_RTOL):
                return current[0], current[1], ""
            previous = current
    return np.full(p, np.nan), np.full(p, np.nan), _NOTE


def injected_moments(cell, est, baseline):
    """(mean, var, note) of an estimator that is a function of eps alone, by its compiled
    kernel on the composite rule's nodes; None for other estimators."""
    from gradvar import truth

    if est.requires not in cell.family.injection_exact or est.exact is not None:
        return None
    if est.uses_baseline and baseline and not truth._has_oracle(baseline):
        return None
    p = len(cell.coords)

    def compute(level):
        eps, w = normal_rule(LEVELS[level])
        rule = (lambda nodes: (eps[:, None], w)), (None,)
        return truth._injected_moments(cell, est, baseline, rule)

    return _refined(compute, p)


def objective_values(cell, z):
    """f(z) for an array z: the objective's ``derivatives_at`` where it has one, else its
    kernel point by point."""
    obj, values = cell.objective, cell.objective_values
    if obj.derivatives_at is not None:
        return np.asarray(obj.derivatives_at(z, values)[0], dtype=float)
    objp, grad = cell.objp(), np.zeros(1)
    flat = [jit.in_python(obj.kernel)(np.array([t]), objp, grad) for t in np.ravel(z)]
    return np.reshape(np.array(flat, dtype=float), np.shape(z))


def _mean_var(values, w):
    mean = w @ values
    return mean, w @ (values - mean) ** 2


def mvd_moments(cell, coupled):
    """(mean, var of one estimate, note) of ``mvd`` or (``coupled``) ``mvd-coupled``."""
    mu, sigma = float(cell.family_values["mu"]), float(cell.family_values["sigma"])
    c = sigma * math.sqrt(2.0 * math.pi)

    def f(z):
        return objective_values(cell, z)

    def compute(level):
        panels = LEVELS[level]
        w, ww = rayleigh_rule(panels)
        plus, minus = f(mu + sigma * w), f(mu - sigma * w)
        m, wm = maxwell_rule(panels)
        if coupled:
            mean_mu, var_mu = _mean_var((plus - minus) / c, ww)
            u, wu = np.polynomial.legendre.leggauss(INNER_NODES[level])
            u, wu = 0.5 * (u + 1.0), 0.5 * wu
            diff = (f(mu + sigma * m)[:, None] - f(mu + sigma * m[:, None] * u[None, :])) / sigma
            mean_s = wm @ (diff @ wu)
            var_s = wm @ ((diff - mean_s) ** 2 @ wu)
        else:
            (ep, vp), (em, vm) = _mean_var(plus, ww), _mean_var(minus, ww)
            mean_mu, var_mu = (ep - em) / c, (vp + vm) / (c * c)
            eps, we = normal_rule(panels)
            eb, vb = _mean_var(f(mu + sigma * m), wm)
            ee, ve = _mean_var(f(mu + sigma * eps), we)
            mean_s, var_s = (eb - ee) / sigma, (vb + ve) / (sigma * sigma)
        mean = np.array([mean_mu, mean_s])
        return mean, np.maximum(np.array([var_mu, var_s]), 0.0) / cell.batch

    return _refined(compute, 2)
